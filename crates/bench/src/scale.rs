//! Central scaled out on one machine: the topology `./x cluster` runs (PostgreSQL primary and
//! streaming replica, Redis, NATS, three instances, HAProxy from `deploy/haproxy.cfg`), and the
//! `scale` benchmark: the same offered load through HAProxy to one and to three instances, and
//! the error window when one of three is killed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use kassa_central::devtools::cluster::{haproxy_config, CentralProcess, HaProxy, RedisServer};
use kassa_central::devtools::{Durability, NatsServer, PgCluster, PgReplica};

/// Everything one cluster runs; dropping it stops it all (PostgreSQL and NATS when this
/// process exits).
pub struct Topology {
    pub instances: Vec<CentralProcess>,
    pub haproxy: HaProxy,
    pub database_url: String,
    pub read_url: Option<String>,
    _replica: Option<PgReplica>,
    _primary: PgCluster,
    pub redis: RedisServer,
    _sim: Option<Background>,
}

/// A child killed on drop.
struct Background(std::process::Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A sibling binary of this one (the same target dir and profile).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding kassa-bench")?;
    let bin = exe.with_file_name(name);
    anyhow::ensure!(
        bin.exists(),
        "{} is not built (cargo build -p {name})",
        bin.display()
    );
    Ok(bin)
}

fn deployed_haproxy_cfg() -> anyhow::Result<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/haproxy.cfg");
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}

/// Options for [`Topology::start`].
pub struct Shape {
    pub instances: usize,
    pub replica: bool,
    /// HAProxy's port (0: a free one).
    pub port: u16,
    /// The card processor simulator beside it (for the register app and the API tour).
    pub processor_sim: bool,
    /// Per-caller limits out of the way (the bench offers 100 requests a second as one cashier;
    /// the default budget is 50 a second).
    pub unlimited_callers: bool,
}

impl Topology {
    /// Starts the whole topology with the demo store loaded.
    pub async fn start(shape: &Shape) -> anyhow::Result<Self> {
        let central = sibling("kassa-central")?;
        let primary = PgCluster::start(Durability::Durable)
            .context("PostgreSQL is needed (apt-get install postgresql)")?;
        let database_url = primary.create_database().await?;
        let demo = std::process::Command::new(&central)
            .arg("demo")
            .env("KASSA_DATABASE_URL", &database_url)
            .output()
            .context("kassa-central demo")?;
        anyhow::ensure!(
            demo.status.success(),
            "kassa-central demo: {}",
            String::from_utf8_lossy(&demo.stderr)
        );
        let (replica, read_url) = if shape.replica {
            let replica = primary.start_replica(0)?;
            let database = database_url
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let url = replica.url(&database);
            (Some(replica), Some(url))
        } else {
            (None, None)
        };
        let redis = RedisServer::start().context("redis-server is needed")?;
        let nats = NatsServer::shared().context("nats-server is needed")?;
        let lb_port = if shape.port == 0 {
            kassa_central::devtools::free_port()
        } else {
            shape.port
        };
        let lb_url = format!("http://127.0.0.1:{lb_port}");
        let sim = if shape.processor_sim {
            let port = kassa_central::devtools::free_port();
            let child = std::process::Command::new(sibling("kassa-processor-sim")?)
                .args([
                    "--bind",
                    &format!("127.0.0.1:{port}"),
                    "--webhook-url",
                    &format!("{lb_url}/v1/webhooks/payments"),
                ])
                .stdout(std::process::Stdio::null())
                .spawn()
                .context("starting kassa-processor-sim")?;
            Some((Background(child), port))
        } else {
            None
        };
        let mut env: Vec<(&str, String)> = vec![
            ("KASSA_DATABASE_URL", database_url.clone()),
            ("KASSA_REDIS_URL", redis.url()),
            ("KASSA_NATS_URL", nats.url()),
            ("KASSA_SHUTDOWN_DRAIN_MS", "1500".into()),
            // HAProxy on loopback: its X-Forwarded-For names the client.
            ("KASSA_TRUSTED_PROXIES", "127.0.0.1".into()),
            ("KASSA_DB_CONNECTIONS_MAX", "16".into()),
            ("RUST_LOG", "warn".into()),
        ];
        if shape.unlimited_callers {
            env.push(("KASSA_USER_REQUESTS_PER_SECOND", "100000".into()));
            env.push(("KASSA_USER_REQUESTS_BURST", "100000".into()));
        }
        if let Some(url) = &read_url {
            env.push(("KASSA_DATABASE_READ_URL", url.clone()));
        }
        if let Some((_, port)) = &sim {
            env.push(("KASSA_PROCESSOR_URL", format!("http://127.0.0.1:{port}")));
            env.push(("KASSA_PROCESSOR_SECRET", "sk_test_kassa".into()));
            env.push(("KASSA_WEBHOOK_SECRET", "whsec_demo".into()));
        }
        let mut instances = Vec::new();
        for _ in 0..shape.instances {
            instances.push(CentralProcess::start(&central, &env)?);
        }
        for instance in &mut instances {
            instance.wait_ready(Duration::from_secs(120)).await?;
        }
        let backends: Vec<String> = instances
            .iter()
            .map(|i| format!("127.0.0.1:{}", i.port))
            .collect();
        let deployed = deployed_haproxy_cfg()?;
        let haproxy = HaProxy::start_on(lb_port, |port| haproxy_config(&deployed, port, &backends))
            .context("haproxy is needed (apt-get install haproxy)")??;
        // HAProxy's health checks see every instance up (rise 2 × 500 ms).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Ok(Self {
            instances,
            haproxy,
            database_url,
            read_url,
            _replica: replica,
            _primary: primary,
            redis,
            _sim: sim.map(|(child, _)| child),
        })
    }
}

/// `./x cluster`: the topology on HAProxy's `KASSA_CLUSTER_PORT` (8080) until Ctrl-C.
pub async fn cluster() -> anyhow::Result<()> {
    let port = std::env::var("KASSA_CLUSTER_PORT")
        .ok()
        .map(|p| p.parse::<u16>().context("KASSA_CLUSTER_PORT"))
        .transpose()?
        .unwrap_or(8080);
    let topology = Topology::start(&Shape {
        instances: 3,
        replica: true,
        port,
        processor_sim: true,
        unlimited_callers: false,
    })
    .await?;
    println!("\nKassa Central cluster (demo store loaded):");
    println!(
        "  HAProxy (use this):  {}   (try {0}/ready, {0}/openapi.json)",
        topology.haproxy.url()
    );
    for (i, instance) in topology.instances.iter().enumerate() {
        println!("  instance {}:          {}", i + 1, instance.url());
    }
    println!("  PostgreSQL primary:  {}", topology.database_url);
    if let Some(url) = &topology.read_url {
        println!("  streaming replica:   {url}");
    }
    println!("  Redis:               {}", topology.redis.url());
    if let Some(nats) = NatsServer::shared() {
        println!("  NATS JetStream:      {}", nats.url());
    }
    println!(
        "\nKassa Register against it: KASSA_CENTRAL_URL={} (see README). Ctrl-C stops everything.",
        topology.haproxy.url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("stopping the cluster");
    drop(topology);
    Ok(())
}

/// One request's outcome: when it was sent (since the run began), how long it took, success.
#[derive(Debug, Clone, Copy)]
struct Sample {
    sent: Duration,
    took: Duration,
    ok: bool,
}

/// The offered load: `rate` requests a second for `length`, a fixed mix (three reads per
/// order), open loop (a slow answer does not slow the offer).
const RATE_PER_S: u64 = 100;
const LENGTH: Duration = Duration::from_secs(20);

async fn offer(lb: &str, token: &str, kill_at: Option<(Duration, u32)>) -> Vec<Sample> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let started = Instant::now();
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_S));
    let mut tasks = Vec::new();
    let mut kill = kill_at;
    let run_tag = uuid::Uuid::now_v7().simple().to_string();
    for n in 0..(RATE_PER_S * LENGTH.as_secs()) {
        ticker.tick().await;
        if let Some((at, pid)) = kill {
            if started.elapsed() >= at {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
                kill = None;
            }
        }
        let (client, lb, token, samples) = (
            client.clone(),
            lb.to_owned(),
            token.to_owned(),
            samples.clone(),
        );
        let key = format!("bench-{run_tag}-{n}");
        tasks.push(tokio::spawn(async move {
            let sent = started.elapsed();
            let t = Instant::now();
            let ok = if n % 4 == 3 {
                let sku = format!("DEMO-{:04}", n % 200 + 1);
                client
                    .post(format!("{lb}/v1/orders"))
                    .bearer_auth(&token)
                    .header("idempotency-key", key)
                    .json(&serde_json::json!({"location": "WAREHOUSE", "lines": [{"sku": sku, "qty": 1}]}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 201 || r.status().as_u16() == 409)
            } else {
                client
                    .get(format!("{lb}/v1/products?limit=20&since={}", n % 150))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            };
            let took = t.elapsed();
            samples
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Sample { sent, took, ok });
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let samples = samples
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    samples
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list"
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, samples: &[Sample]) {
    let mut ok: Vec<Duration> = samples.iter().filter(|s| s.ok).map(|s| s.took).collect();
    ok.sort();
    let errors: Vec<&Sample> = samples.iter().filter(|s| !s.ok).collect();
    let window = match (errors.first(), errors.last()) {
        (Some(first), Some(last)) => {
            let end = last.sent + last.took;
            format!("{} ms", end.saturating_sub(first.sent).as_millis())
        }
        _ => "none".into(),
    };
    println!(
        "{name:<32} {:>6} requests  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {:>4}  error window {window}",
        samples.len(),
        percentile(&ok, 0.50).as_secs_f64() * 1000.0,
        percentile(&ok, 0.99).as_secs_f64() * 1000.0,
        errors.len(),
    );
}

async fn cashier_token(lb: &str) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .post(format!("{lb}/v1/auth/login"))
        .json(&serde_json::json!({"username": "cashier", "password": "cashier-pass-1"}))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "login: {}",
        response.status()
    );
    let body: serde_json::Value = response.json().await?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access token")
}

/// `kassa-bench scale`.
pub async fn run() -> anyhow::Result<()> {
    println!(
        "\n== scale: {RATE_PER_S} requests/s for {} s through HAProxy (3 catalog reads : 1 order), \
         open loop; {} cores here ==",
        LENGTH.as_secs(),
        std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get)
    );
    for instances in [1, 3] {
        let topology = Topology::start(&Shape {
            instances,
            replica: false,
            port: 0,
            processor_sim: false,
            unlimited_callers: true,
        })
        .await?;
        let lb = topology.haproxy.url();
        let token = cashier_token(&lb).await?;
        let samples = offer(&lb, &token, None).await;
        report(&format!("{instances} instance(s), steady"), &samples);
        if instances == 3 {
            let pid = topology.instances[0].pid();
            let samples = offer(&lb, &token, Some((LENGTH / 2, pid))).await;
            report("3 instances, one kill -9 midway", &samples);
        }
    }
    println!(
        "(2 cores run every process here: more instances add no throughput; the figures are \
         latency and the failover window. Clients that retry with their Idempotency-Key see no \
         error: crates/central/tests/cluster/failover.rs)"
    );
    Ok(())
}
