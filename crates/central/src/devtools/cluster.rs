//! Processes for the scale-out stories and `./x cluster`: real `kassa-central serve` instances,
//! a `redis-server` and an `haproxy`, each on a free loopback port with its files in a temp dir.
//! Every process gets a watchdog that kills it when the owning process exits, however it exits;
//! dropping the handle kills it at once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use uuid::Uuid;

use super::free_port;

/// A temp dir of our own, deleted on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills `pid` once this process is gone (a test that panics or is killed leaves nothing).
fn watchdog(pid: u32) -> anyhow::Result<()> {
    let script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done; kill -9 {pid} 2>/dev/null",
        std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting a watchdog")?;
    Ok(())
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

/// The last `lines` lines of a log file (for failure messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Finds `name` on PATH or in the sbin dirs Debian puts servers in.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/sbin".into(),
            "/usr/bin".into(),
            "/usr/local/bin".into(),
        ])
        .map(|dir| dir.join(name))
        .find(|bin| bin.exists())
}

/// `Some(path)` when `program` is installed; else `None` after saying the stories are skipped,
/// or a panic when `require_var` (e.g. `KASSA_REQUIRE_REDIS`) is set.
pub fn require_program(program: &str, package: &str, require_var: &str) -> Option<PathBuf> {
    match find_program(program) {
        Some(bin) => Some(bin),
        None => {
            assert!(
                std::env::var(require_var).is_err(),
                "{require_var} is set but {program} is not installed (apt-get install {package})"
            );
            eprintln!(
                "\n!!! SKIPPED: stories that need {program} (apt-get install {package}) !!!\n"
            );
            None
        }
    }
}

/// One `kassa-central serve` process.
#[derive(Debug)]
pub struct CentralProcess {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl CentralProcess {
    /// Starts `binary serve` on a free port with `env` (on top of this process's environment);
    /// its search index and log go to a temp dir of its own. Does not wait: see
    /// [`CentralProcess::wait_ready`].
    pub fn start(binary: &Path, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let dir = TempDir::new("kassa-central-proc")?;
        let port = free_port();
        let log = dir.0.join("central.log");
        let out = std::fs::File::create(&log).context("creating the instance log")?;
        let mut cmd = Command::new(binary);
        cmd.arg("serve")
            .env("KASSA_BIND", format!("127.0.0.1:{port}"))
            .env("KASSA_SEARCH_DIR", dir.0.join("search"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().context("sharing the instance log")?)
            .stderr(out);
        for (name, value) in env {
            cmd.env(name, value);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        watchdog(child.id())?;
        Ok(Self {
            child,
            port,
            log,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The instance's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/ready` answers 200, at most `timeout`; fails at once if the process exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "kassa-central on port {} exited ({status}); log:\n{}",
                    self.port,
                    log_tail(&self.log, 40)
                );
            }
            let ready = client.get(format!("{}/ready", self.url())).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "kassa-central on port {} not ready within {timeout:?}; log:\n{}",
                self.port,
                log_tail(&self.log, 40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: the instance dies mid-request.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("killing kassa-central")?;
        self.child.wait().context("reaping kassa-central")?;
        Ok(())
    }

    /// SIGTERM: the instance shuts down gracefully.
    pub fn terminate(&self) -> anyhow::Result<()> {
        signal(self.child.id(), "TERM")
    }

    /// Waits for the process to exit, at most `timeout`; its exit status.
    pub async fn wait_exit(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "kassa-central on port {} still running after {timeout:?}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for CentralProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` without persistence on a free loopback port; it can be killed and started
/// again on the same port (Redis going away and coming back).
#[derive(Debug)]
pub struct RedisServer {
    bin: PathBuf,
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

impl RedisServer {
    /// `None` when `redis-server` is not installed (panics when `KASSA_REQUIRE_REDIS` is set).
    pub fn start() -> Option<Self> {
        let bin = require_program("redis-server", "redis-server", "KASSA_REQUIRE_REDIS")?;
        let mut server = match TempDir::new("kassa-redis") {
            Ok(dir) => Self {
                bin,
                child: None,
                port: free_port(),
                dir,
            },
            Err(e) => panic!("{e:#}"),
        };
        if let Err(e) = server.restart() {
            panic!("starting a throwaway redis-server: {e:#}");
        }
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on its port and waits until it accepts connections.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "redis-server is already running");
        let log = self.dir.0.join("redis.log");
        let child = Command::new(&self.bin)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
            ])
            .arg(&log)
            .arg("--dir")
            .arg(&self.dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        watchdog(child.id())?;
        self.child = Some(child);
        wait_listening(self.port, Duration::from_secs(10))
            .with_context(|| format!("redis-server log:\n{}", log_tail(&log, 20)))
    }

    /// `kill -9`.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("killing redis-server")?;
            child.wait().context("reaping redis-server")?;
        }
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn wait_listening(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "nothing listens on {port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `haproxy` running `deploy/haproxy.cfg` with its listener and servers moved to test ports:
/// every other line (health checks, retries, timeouts) is the deployed file's.
#[derive(Debug)]
pub struct HaProxy {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

/// The deployed HAProxy config, with `bind` and `server` lines of the `kassa` sections rewritten
/// to listen on `port` and to balance over `backends` (host:port each).
pub fn haproxy_config(deployed: &str, port: u16, backends: &[String]) -> String {
    let mut out = String::new();
    let mut servers_written = false;
    for line in deployed.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("bind ") {
            out.push_str(&format!("    bind 127.0.0.1:{port}\n"));
        } else if trimmed.starts_with("server ") {
            if !servers_written {
                // The deployed file's server options (after the address) apply to each.
                let options: Vec<&str> = trimmed.split_whitespace().skip(3).collect();
                for (i, backend) in backends.iter().enumerate() {
                    out.push_str(&format!(
                        "    server central{} {backend} {}\n",
                        i + 1,
                        options.join(" ")
                    ));
                }
                servers_written = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

impl HaProxy {
    /// Starts haproxy with `config` (see [`haproxy_config`]). `None` when haproxy is not
    /// installed (panics when `KASSA_REQUIRE_HAPROXY` is set).
    pub fn start(config_for_port: impl FnOnce(u16) -> String) -> Option<anyhow::Result<Self>> {
        Self::start_on(0, config_for_port)
    }

    /// [`HaProxy::start`] listening on `port` (0: a free one).
    pub fn start_on(
        port: u16,
        config_for_port: impl FnOnce(u16) -> String,
    ) -> Option<anyhow::Result<Self>> {
        let bin = require_program("haproxy", "haproxy", "KASSA_REQUIRE_HAPROXY")?;
        let port = if port == 0 { free_port() } else { port };
        Some(Self::start_with(&bin, port, config_for_port))
    }

    fn start_with(
        bin: &Path,
        port: u16,
        config_for_port: impl FnOnce(u16) -> String,
    ) -> anyhow::Result<Self> {
        let dir = TempDir::new("kassa-haproxy")?;
        let cfg = dir.0.join("haproxy.cfg");
        std::fs::write(&cfg, config_for_port(port)).context("writing haproxy.cfg")?;
        let check = Command::new(bin)
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .context("running haproxy -c")?;
        anyhow::ensure!(
            check.status.success(),
            "haproxy refuses the config: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.0.join("haproxy.log")).context("haproxy log")?;
        let child = Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("sharing the haproxy log")?)
            .stderr(log)
            .spawn()
            .context("starting haproxy")?;
        watchdog(child.id())?;
        wait_listening(port, Duration::from_secs(10))?;
        Ok(Self {
            child,
            port,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::haproxy_config;

    #[test]
    fn the_deployed_haproxy_config_is_moved_to_test_ports_and_keeps_its_settings() {
        let deployed = include_str!("../../../../deploy/haproxy.cfg");
        let backends = ["127.0.0.1:7001".to_owned(), "127.0.0.1:7002".to_owned()];
        let config = haproxy_config(deployed, 7000, &backends);
        assert!(config.contains("    bind 127.0.0.1:7000\n"));
        assert!(config.contains("    server central1 127.0.0.1:7001 check\n"));
        assert!(config.contains("    server central2 127.0.0.1:7002 check\n"));
        assert!(!config.contains("central3"), "{config}");
        assert!(!config.contains(":8080"), "{config}");
        // What makes failover safe is kept as deployed.
        for kept in [
            "option httpchk GET /ready",
            "retry-on conn-failure",
            "option http-server-close",
            "default-server inter 500ms fall 2 rise 2",
        ] {
            assert!(config.contains(kept), "{kept} lost:\n{config}");
        }
    }
}
