//! A throwaway PostgreSQL cluster for `./x fuzz` (`initdb` + `pg_ctl` from the system's
//! binaries, as root through the `postgres` user), stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

pub struct Cluster {
    bin: PathBuf,
    data: String,
    port: u16,
}

impl Cluster {
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin = pg_bin().context("no initdb under /usr/lib/postgresql")?;
        let pg_dir = dir.join("pg");
        std::fs::create_dir_all(&pg_dir).context("creating the cluster dir")?;
        if crate::is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg_dir)
                .status()
                .context("chown")?;
            if !status.success() {
                bail!("chown of the PostgreSQL dir failed");
            }
        }
        let pg_dir_s = pg_dir.to_str().context("temp dir is not UTF-8")?.to_owned();
        let data = format!("{pg_dir_s}/data");
        let port = crate::fuzz::free_port()?;
        let cluster = Self { bin, data, port };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ],
        )?;
        let opts = format!(
            "-p {port} -k {pg_dir_s} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off"
        );
        let log = format!("{pg_dir_s}/log");
        cluster.run(
            "pg_ctl",
            &["-D", &cluster.data, "-o", &opts, "-l", &log, "-w", "start"],
        )?;
        Ok(cluster)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut cmd = if crate::is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        };
        let out = cmd
            .args(args)
            .output()
            .with_context(|| format!("running {tool}"))?;
        if !out.status.success() {
            bail!("{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data, "-m", "immediate", "stop"]);
    }
}

/// The newest PostgreSQL's binaries under /usr/lib/postgresql.
pub fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}
