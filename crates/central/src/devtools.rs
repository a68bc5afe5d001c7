//! Throwaway PostgreSQL clusters for tests and benchmarks: `initdb` + `pg_ctl` from the system's
//! binaries in a temp dir on a free loopback port. A watchdog shell stops the cluster and deletes
//! its files when the owning process exits, however it exits. Throwaway NATS servers
//! (`nats-server -js` from the system package) the same way, for the event relay.

pub mod cluster;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::Context;
use uuid::Uuid;

/// A PostgreSQL cluster in a temp dir on a free loopback port, one per test process. A watchdog
/// shell stops it and deletes its files when the test process exits, however it exits.
pub struct PgCluster {
    port: u16,
}

/// Settings for tests (fast, not crash-safe) or benchmarks (durable, like production).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Fast,
    Durable,
}

static CLUSTER: OnceLock<Option<PgCluster>> = OnceLock::new();

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("port", &self.port)
            .finish()
    }
}

fn find_pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run_pg(bin: &Path, tool: &str, args: &[&str], as_postgres: bool) -> anyhow::Result<()> {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    };
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("running {tool}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A free loopback port (free when asked; bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

impl PgCluster {
    /// One fast cluster per process, started on first use; `None` when PostgreSQL is not
    /// installed (panics instead when `KASSA_REQUIRE_POSTGRES` is set).
    pub fn shared() -> Option<&'static PgCluster> {
        CLUSTER
            .get_or_init(|| Self::start(Durability::Fast))
            .as_ref()
    }

    /// Starts a cluster owned by this process; `None` when PostgreSQL is not installed (and
    /// `KASSA_REQUIRE_POSTGRES` is not set: then it panics, as a failure to start does).
    pub fn start(durability: Durability) -> Option<Self> {
        let Some(bin) = find_pg_bin() else {
            assert!(
                std::env::var("KASSA_REQUIRE_POSTGRES").is_err(),
                "KASSA_REQUIRE_POSTGRES is set but no PostgreSQL binaries are under /usr/lib/postgresql"
            );
            eprintln!("\n!!! SKIPPED: PostgreSQL tests (no initdb under /usr/lib/postgresql; apt-get install postgresql) !!!\n");
            return None;
        };
        match Self::start_with(&bin, durability) {
            Ok(cluster) => Some(cluster),
            Err(e) => panic!("starting a throwaway PostgreSQL cluster: {e:#}"),
        }
    }

    fn start_with(bin: &Path, durability: Durability) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("kassa-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).context("creating the cluster dir")?;
        let root = is_root();
        if root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()?;
            anyhow::ensure!(status.success(), "chown of the PostgreSQL temp dir failed");
        }
        let data = dir.join("data");
        let data_s = data.to_str().context("temp dir is not UTF-8")?.to_owned();
        let dir_s = dir.to_str().context("temp dir is not UTF-8")?.to_owned();
        run_pg(
            bin,
            "initdb",
            &["-D", &data_s, "-A", "trust", "-U", "postgres", "-E", "UTF8"],
            root,
        )?;
        let port = free_port();
        let speed = match durability {
            Durability::Fast => "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            Durability::Durable => "-c fsync=on -c synchronous_commit=on -c full_page_writes=on",
        };
        let opts = format!(
            "-p {port} -k {dir_s} -c listen_addresses=127.0.0.1 -c max_connections=400 {speed}"
        );
        let log = format!("{dir_s}/log");
        run_pg(
            bin,
            "pg_ctl",
            &["-D", &data_s, "-o", &opts, "-l", &log, "-w", "start"],
            root,
        )?;
        let stop = format!(
            "{} {}/pg_ctl -D {data_s} -m immediate stop >/dev/null 2>&1; rm -rf {dir_s}",
            if root { "runuser -u postgres --" } else { "" },
            bin.display()
        );
        let watchdog = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; {stop}",
            std::process::id()
        );
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting the PostgreSQL watchdog")?;
        Ok(Self { port })
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A streaming replica of this cluster (`pg_basebackup -R`) on a port of its own, replaying
    /// each commit `apply_delay_ms` after the primary made it (`recovery_min_apply_delay`).
    pub fn start_replica(&self, apply_delay_ms: u64) -> anyhow::Result<PgReplica> {
        let bin = find_pg_bin().context("no PostgreSQL binaries")?;
        let root = is_root();
        let dir =
            std::env::temp_dir().join(format!("kassa-pg-replica-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).context("creating the replica dir")?;
        if root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()?;
            anyhow::ensure!(status.success(), "chown of the replica dir failed");
        }
        let dir_s = dir.to_str().context("temp dir is not UTF-8")?.to_owned();
        let data = format!("{dir_s}/data");
        let primary_port = self.port.to_string();
        run_pg(
            &bin,
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port,
                "-U",
                "postgres",
                "-D",
                &data,
                "-R",
                "-c",
                "fast",
                "-X",
                "stream",
            ],
            root,
        )?;
        let auto = format!("{data}/postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
        conf.push_str(&format!(
            "recovery_min_apply_delay = '{apply_delay_ms}ms'\n"
        ));
        std::fs::write(&auto, conf).context("writing the replica's settings")?;
        let port = free_port();
        let replica = PgReplica {
            port,
            bin,
            data,
            root,
        };
        // Before the start, so that a replica that fails to start is cleaned up too.
        let watchdog = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; {} {}/pg_ctl -D {} -m immediate stop >/dev/null 2>&1; rm -rf {dir_s}",
            std::process::id(),
            if root { "runuser -u postgres --" } else { "" },
            replica.bin.display(),
            replica.data,
        );
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting the replica watchdog")?;
        let opts = format!(
            "-p {port} -k {dir_s} -c listen_addresses=127.0.0.1 -c max_connections=400 -c hot_standby=on"
        );
        let log = format!("{dir_s}/log");
        run_pg(
            &replica.bin,
            "pg_ctl",
            &[
                "-D",
                &replica.data,
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "-t",
                "30",
                "start",
            ],
            root,
        )
        .with_context(|| {
            format!(
                "the replica's log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })?;

        Ok(replica)
    }

    /// A new empty database; returns its URL.
    pub async fn create_database(&self) -> anyhow::Result<String> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let name = format!("t_{}", Uuid::new_v4().simple());
        let mut conn = sqlx::AnyConnection::connect(&self.url("postgres")).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(self.url(&name))
    }
}

/// A streaming replica started by [`PgCluster::start_replica`]; stopped (and its files deleted)
/// when the owning process exits, or at once with [`PgReplica::stop`].
#[derive(Debug)]
pub struct PgReplica {
    port: u16,
    bin: PathBuf,
    data: String,
    root: bool,
}

impl PgReplica {
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the replica now (`pg_ctl stop -m immediate`): the replica going away.
    pub fn stop(&self) -> anyhow::Result<()> {
        run_pg(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data, "-m", "immediate", "stop"],
            self.root,
        )
    }
}

/// A throwaway NATS server with JetStream (`nats-server` from the system package) in a temp dir
/// on a free loopback port, one per process; a watchdog stops it and deletes its files when the
/// owning process exits.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    /// True when the server runs with `sync_interval: always` (nats-server 2.10 and later); the
    /// Debian package's 2.9.x does not know the setting and syncs on its own schedule.
    pub syncs_always: bool,
}

static NATS: OnceLock<Option<NatsServer>> = OnceLock::new();

fn find_nats_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join("nats-server"))
        .find(|bin| bin.exists())
}

/// The server's config: JetStream syncing every write to disk before it acks, when it can (the
/// store dir and JetStream itself come from `-sd` and `-js`).
fn nats_config(sync_always: bool) -> &'static str {
    if sync_always {
        "jetstream {\n  sync_interval: always\n}\n"
    } else {
        "# this nats-server does not know sync_interval (2.9.x): its default flush applies\n"
    }
}

impl NatsServer {
    /// One server per process, started on first use; `None` when `nats-server` is not installed
    /// (panics instead when `KASSA_REQUIRE_NATS` is set).
    pub fn shared() -> Option<&'static NatsServer> {
        NATS.get_or_init(Self::start).as_ref()
    }

    /// Starts a server owned by this process (see [`NatsServer::shared`] for `None`).
    pub fn start() -> Option<Self> {
        let Some(bin) = find_nats_bin() else {
            assert!(
                std::env::var("KASSA_REQUIRE_NATS").is_err(),
                "KASSA_REQUIRE_NATS is set but nats-server is not installed (apt-get install nats-server)"
            );
            eprintln!("\n!!! SKIPPED: NATS tests (no nats-server on PATH; apt-get install nats-server) !!!\n");
            return None;
        };
        match Self::start_with(&bin) {
            Ok(server) => Some(server),
            Err(e) => panic!("starting a throwaway nats-server: {e:#}"),
        }
    }

    fn start_with(bin: &Path) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("kassa-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).context("creating the NATS temp dir")?;
        let dir_s = dir.to_str().context("temp dir is not UTF-8")?.to_owned();
        let store = format!("{dir_s}/store");
        let conf = dir.join("nats.conf");
        std::fs::write(&conf, nats_config(true)).context("writing nats.conf")?;
        // `-t` checks the config and exits: 2.9.x refuses `sync_interval`.
        let check = Command::new(bin)
            .arg("-t")
            .arg("-c")
            .arg(&conf)
            .output()
            .context("running nats-server -t")?;
        let syncs_always = check.status.success();
        if !syncs_always {
            eprintln!(
                "\n!!! nats-server at {} does not accept `sync_interval: always` (2.9.x): the test \
                 server syncs on its own schedule; see docs/events.md for production !!!\n",
                bin.display()
            );
            std::fs::write(&conf, nats_config(false)).context("writing nats.conf")?;
        }
        let port = free_port();
        let log = std::fs::File::create(dir.join("log")).context("creating the NATS log")?;
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-sd",
                &store,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().context("sharing the NATS log")?)
            .stderr(log)
            .spawn()
            .context("starting nats-server")?;
        let watchdog = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; kill {} 2>/dev/null; sleep 1; rm -rf {dir_s}",
            std::process::id(),
            child.id()
        );
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting the NATS watchdog")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = child.try_wait().context("watching nats-server")?;
            anyhow::ensure!(
                exited.is_none(),
                "nats-server exited ({exited:?}); log: {}",
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "nats-server did not listen on {port} within 10 s; log: {}",
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(Self { port, syncs_always })
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// The time zone `name` from the system's time zone database (Debian's tzdata), or `None`
/// when it is missing (a skipped test; panics instead when `KASSA_REQUIRE_TZDATA` is set).
pub fn time_zone(name: &str) -> Option<jiff::tz::TimeZone> {
    match jiff::tz::TimeZone::get(name) {
        Ok(zone) => Some(zone),
        Err(err) => {
            assert!(
                std::env::var("KASSA_REQUIRE_TZDATA").is_err(),
                "KASSA_REQUIRE_TZDATA is set but {name} is unknown ({err}; apt-get install tzdata)"
            );
            eprintln!(
                "\n!!! SKIPPED: time zone test ({name} unknown; apt-get install tzdata) !!!\n"
            );
            None
        }
    }
}
