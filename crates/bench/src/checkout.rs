//! `kassa-bench checkout`: a flash sale on one hot SKU, 16 concurrent clients through Central's
//! HTTP API, against the raw baseline: the same database doing only the conditional decrement and
//! the order insert in a loop at the same concurrency. SQLite with `synchronous=FULL`, PostgreSQL
//! with `fsync=on`, `synchronous_commit=on`.
//!
//! The HTTP run is made twice, each in a fresh child process of this binary with Central's own
//! log and trace set-up (the tracing subscriber is process-wide): untraced (logs only, as Central
//! runs without `OTEL_EXPORTER_OTLP_ENDPOINT`, its INFO spans made for the logs) and traced at
//! 100 % sampling, with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/HTTP receiver in this
//! process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use kassa_central::devtools::{Durability, PgCluster};
use kassa_central::store::{self, Db, PoolLimits};
use kassa_central::Config;
use kassa_domain::api::{ProductInput, StockReason};
use kassa_domain::{Currency, Money, Role, Sku, TaxClass, Username};

const CLIENTS: usize = 16;
const ORDERS: usize = 3000;
const WARMUP: usize = 200;
const STOCK: i64 = 1_000_000;

/// One measured run.
struct Figures {
    orders_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

pub async fn run() -> anyhow::Result<()> {
    println!("checkout: {ORDERS} orders of 1 unit of one SKU, {CLIENTS} concurrent clients (after {WARMUP} warm-up)");
    each_backend(&["sqlite", "postgres"], 1).await
}

/// `kassa-bench checkout-tracing [sqlite|postgres|both] [rounds]`: only what the cost of tracing
/// needs (issue 14): the raw baseline once, then `rounds` (default 3) pairs of untraced and
/// traced HTTP runs, alternating, each on a fresh database, one line per run and the ratio of
/// the totals (the machine's load moves single runs).
pub async fn tracing(args: &[String]) -> anyhow::Result<()> {
    let backends: &[&str] = match args.first().map(String::as_str) {
        None | Some("sqlite") => &["sqlite"],
        Some("postgres") => &["postgres"],
        Some("both") => &["sqlite", "postgres"],
        Some(other) => anyhow::bail!("unknown backend {other:?}: sqlite, postgres or both"),
    };
    let rounds = match args.get(1) {
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("rounds must be a positive number, not {n:?}"))?,
        None => 3,
    };
    println!("checkout tracing: {rounds} rounds of {ORDERS} orders, {CLIENTS} concurrent clients (after {WARMUP} warm-up), untraced then traced");
    each_backend(backends, rounds).await
}

async fn each_backend(backends: &[&str], rounds: usize) -> anyhow::Result<()> {
    if backends.contains(&"sqlite") {
        let dir = std::env::temp_dir().join(format!("kassa-bench-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir)?;
        let mut n = 0;
        let result = report("sqlite", rounds, || {
            n += 1;
            let url = format!("sqlite://{}", dir.join(format!("{n}.db")).display());
            async move { Ok(url) }
        })
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        result?;
    }
    if backends.contains(&"postgres") {
        match PgCluster::start(Durability::Durable) {
            Some(cluster) => report("postgres", rounds, || cluster.create_database()).await?,
            None => println!("postgres: skipped (no PostgreSQL binaries)"),
        }
    }
    Ok(())
}

/// The raw baseline, then `rounds` of untraced and traced HTTP runs, each on a database from
/// `database`.
async fn report<F, Fut>(backend: &str, rounds: usize, mut database: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let raw = raw_baseline(&database().await?).await?;
    let (mut untraced_total, mut traced_total) = (0.0, 0.0);
    for _ in 0..rounds {
        let http = child_checkout(&database().await?, None).await?;
        println!(
            "{backend:<8} http: {:>7.0} orders/s  p50 {:>6.2} ms  p99 {:>6.2} ms | raw: {:>7.0} orders/s  p50 {:>6.2} ms  p99 {:>6.2} ms | ratio {:.2} | load average {}",
            http.orders_per_s, http.p50_ms, http.p99_ms, raw.orders_per_s, raw.p50_ms, raw.p99_ms,
            http.orders_per_s / raw.orders_per_s, load_average()
        );
        let (traced, spans) = traced_checkout(&database().await?).await?;
        println!(
            "{backend:<8} traced (100 % sampled, OTLP/HTTP to a local receiver): {:>7.0} orders/s  p50 {:>6.2} ms  p99 {:>6.2} ms | untraced {:>7.0} orders/s | ratio {:.2} | {spans} | load average {}",
            traced.orders_per_s, traced.p50_ms, traced.p99_ms, http.orders_per_s,
            traced.orders_per_s / http.orders_per_s, load_average()
        );
        untraced_total += 1.0 / http.orders_per_s;
        traced_total += 1.0 / traced.orders_per_s;
    }
    if rounds > 1 {
        // Same orders per run: the ratio of total times is the ratio of overall throughputs.
        println!(
            "{backend:<8} over {rounds} rounds: traced / untraced {:.2}",
            untraced_total / traced_total
        );
    }
    Ok(())
}

/// The 1-minute load average (other work on the machine), or "?".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The HTTP run in a child process that exports every span over OTLP/HTTP to a receiver here;
/// returns its figures and how many spans arrived.
async fn traced_checkout(url: &str) -> anyhow::Result<(Figures, Spans)> {
    let receiver = kassa_telemetry::receiver::Receiver::start().await?;
    let figures = child_checkout(url, Some(&receiver)).await?;
    let received = receiver.spans();
    if std::env::var_os("KASSA_BENCH_SPAN_NAMES").is_some() {
        let by_id: std::collections::HashMap<&str, &str> = received
            .iter()
            .map(|s| (s.span_id.as_str(), s.name.as_str()))
            .collect();
        let mut names = std::collections::BTreeMap::<(String, String), usize>::new();
        for s in &received {
            let parent = by_id.get(s.parent_span_id.as_str()).copied().unwrap_or("-");
            *names
                .entry((parent.to_owned(), s.name.clone()))
                .or_default() += 1;
        }
        for ((parent, name), n) in names {
            println!("  {n:>7}  {parent} > {name}");
        }
    }
    let spans = Spans {
        all: received.len(),
        database: received
            .iter()
            .filter(|s| s.attributes.contains_key("db.system"))
            .count(),
        exports: receiver.requests(),
    };
    anyhow::ensure!(
        spans.all > ORDERS,
        "only {} spans arrived: was anything traced?",
        spans.all
    );
    Ok((figures, spans))
}

/// The HTTP run in a fresh child process of this binary: exporting to `receiver`, or not
/// traced at all (no `OTEL_*` variables). Both sides of the comparison run the same way, so
/// neither pays for what an earlier run left in this process.
async fn child_checkout(
    url: &str,
    receiver: Option<&kassa_telemetry::receiver::Receiver>,
) -> anyhow::Result<Figures> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?);
    child.args([CHILD, url]);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            child.env_remove(name);
        }
    }
    if let Some(receiver) = receiver {
        let endpoint = receiver
            .traces_url
            .strip_suffix("/v1/traces")
            .context("the receiver's URL")?;
        child
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_TRACES_SAMPLER", "always_on")
            .env("OTEL_SERVICE_NAME", "kassa-bench-central");
    }
    let output = child.output().await.context("running the checkout child")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "the checkout child failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figures = stdout
        .lines()
        .find_map(|l| l.strip_prefix("FIGURES "))
        .context("the checkout child printed no figures")?;
    let parsed: Vec<f64> = figures
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [orders_per_s, p50_ms, p99_ms] = parsed[..] else {
        anyhow::bail!("unreadable figures {figures:?}");
    };
    if let Some(cpu) = stdout.lines().find_map(|l| l.strip_prefix("CPU ")) {
        println!("         {cpu}");
    }
    Ok(Figures {
        orders_per_s,
        p50_ms,
        p99_ms,
    })
}

/// What the receiver got from one traced run.
struct Spans {
    all: usize,
    /// Spans with `db.system`.
    database: usize,
    /// Export requests (batches).
    exports: usize,
}

impl std::fmt::Display for Spans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[expect(clippy::cast_precision_loss, reason = "statistics")]
        let per_order = |n: usize| n as f64 / (ORDERS + WARMUP) as f64;
        write!(
            f,
            "{} spans in {} exports ({:.1} per order, {:.1} of them database spans)",
            self.all,
            self.exports,
            per_order(self.all),
            per_order(self.database)
        )
    }
}

/// The child's scenario name (`kassa-bench checkout-child <database url>`).
pub const CHILD: &str = "checkout-child";

/// In the child: the HTTP checkout with the exporter the environment configures (none without
/// `OTEL_EXPORTER_OTLP_ENDPOINT`), its figures on one line; the spans still queued are flushed
/// before it returns.
pub async fn child(url: &str) -> anyhow::Result<()> {
    // Central's own logs and traces, as `kassa-central` sets them up: "off" is Central without
    // `OTEL_EXPORTER_OTLP_ENDPOINT`, whose log filter (`info`) still makes its INFO spans.
    let telemetry = kassa_central::telemetry::init(false)?;
    anyhow::ensure!(
        telemetry.exporting() == kassa_telemetry::otlp_endpoint().is_some(),
        "exporting without an endpoint, or not exporting with one"
    );
    let figures = http_checkout(url).await?;
    let threads = cpu_by_thread();
    drop(telemetry);
    println!(
        "FIGURES {} {} {}",
        figures.orders_per_s, figures.p50_ms, figures.p99_ms
    );
    println!("CPU {}", cpu_line(&threads, process_cpu_ticks()));
    Ok(())
}

/// CPU time (clock ticks, user + system) of this process's live threads, summed by thread name
/// with its digits dropped (`tokio-runtime-w`, `sqlx-sqlite-worker-`, the exporter's thread):
/// where a run's CPU went. Empty where `/proc` is not there.
fn cpu_by_thread() -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, ticks)) = stat_name_and_ticks(&stat) {
            let name: String = name.chars().filter(|c| !c.is_ascii_digit()).collect();
            *by_name.entry(name).or_default() += ticks;
        }
    }
    by_name
}

/// The whole process's CPU ticks, threads that ended included.
fn process_cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat_name_and_ticks(&stat).map(|(_, ticks)| ticks))
        .unwrap_or(0)
}

/// `comm` and utime + stime from a `/proc/…/stat` line (`pid (comm) state …`, fields 14 and 15).
fn stat_name_and_ticks(stat: &str) -> Option<(&str, u64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// "process 812 ms/1000 orders: tokio-runtime-w 540, sqlx-sqlite-worker- 180, …" (ticks are
/// 10 ms on Linux).
fn cpu_line(threads: &std::collections::BTreeMap<String, u64>, process: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "statistics")]
    let per_1000 = |ticks: u64| ticks as f64 * 10.0 * 1000.0 / (ORDERS + WARMUP) as f64;
    let mut parts: Vec<(&String, &u64)> = threads.iter().filter(|(_, t)| **t > 0).collect();
    parts.sort_by(|a, b| b.1.cmp(a.1));
    let parts: Vec<String> = parts
        .into_iter()
        .map(|(name, ticks)| format!("{name} {:.0}", per_1000(*ticks)))
        .collect();
    format!(
        "CPU ms per 1000 orders: process {:.0} ({})",
        per_1000(process),
        parts.join(", ")
    )
}

/// Runs `op(i)` for i in 0..n on `CLIENTS` tasks; returns throughput and latencies.
async fn drive<F, Fut>(n: usize, op: F) -> anyhow::Result<Figures>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let t = Instant::now();
                op(i).await?;
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut all: Vec<Duration> = Vec::with_capacity(n);
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (p50_ms, p99_ms, _) = crate::percentiles(&mut all);
    #[expect(clippy::cast_precision_loss, reason = "statistics")]
    let orders_per_s = n as f64 / elapsed;
    Ok(Figures {
        orders_per_s,
        p50_ms,
        p99_ms,
    })
}

/// Location, product and stock through the store (no HTTP), for both runs alike.
async fn seed(db: &Db) -> anyhow::Result<String> {
    let location = store::locations::insert(db, "STORE-1", "Bench")
        .await?
        .context("location")?;
    let product = ProductInput {
        sku: Sku::parse("HOT-1")?,
        barcodes: vec![],
        name: "Hot item".into(),
        description: String::new(),
        category: "Bench".into(),
        brand: "Bench".into(),
        price: Money::from_minor(999, Currency::EUR),
        tax_class: TaxClass::Standard,
        attributes: Default::default(),
        archived: false,
    };
    store::catalog::insert(db, &product)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let location_id = location.id.to_string();
    let mut tx = db.begin_write().await?;
    let movement = store::stock::Movement {
        sku: "HOT-1",
        location_id: &location_id,
        delta: STOCK,
        reason: StockReason::Receiving,
        reference: None,
        note: None,
        created_by: None,
    };
    store::stock::move_on_hand(&mut tx, &movement)
        .await?
        .context("receiving")?;
    tx.commit().await?;
    Ok(location_id)
}

/// The raw baseline: conditional decrement + order insert, one transaction each.
async fn raw_baseline(url: &str) -> anyhow::Result<Figures> {
    let db = Db::connect(
        url,
        &PoolLimits {
            connections_max: 16,
            ..PoolLimits::default()
        },
    )
    .await?;
    db.migrate().await?;
    let location_id = Arc::new(seed(&db).await?);
    let owner = store::users::insert(&db, &Username::parse("bench")?, "x", Role::Cashier)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .id
        .to_string();
    let op = {
        let (db, location_id, owner) = (db.clone(), location_id.clone(), Arc::new(owner));
        move |_i: usize| {
            let (db, location_id, owner) = (db.clone(), location_id.clone(), owner.clone());
            async move {
                let mut tx = db.begin_write().await?;
                let reserved = sqlx::query(
                    "UPDATE stock SET reserved = reserved + 1 WHERE sku = 'HOT-1' AND location_id = $1 \
                     AND on_hand - reserved >= 1",
                )
                .bind(location_id.as_str())
                .execute(&mut *tx)
                .await?;
                anyhow::ensure!(
                    reserved.rows_affected() == 1,
                    "raw baseline ran out of stock"
                );
                sqlx::query(
                    "INSERT INTO orders (id, owner_id, location_id, source, status, currency, subtotal_minor, \
                     discount_minor, tax_minor, total_minor, totals, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'online', 'RESERVED', 'EUR', 999, 0, 167, 999, '{}', 0, 0)",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(owner.as_str())
                .bind(location_id.as_str())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
    let op = Arc::new(op);
    let warm = op.clone();
    drive(WARMUP, move |i| warm(i)).await?;
    drive(ORDERS, move |i| op(i)).await
}

/// The real thing: POST /v1/orders with an Idempotency-Key over HTTP.
async fn http_checkout(url: &str) -> anyhow::Result<Figures> {
    let config = Config {
        database_url: url.to_owned(),
        user_requests_per_second: 1_000_000,
        user_requests_burst: 1_000_000,
        ..Config::default()
    };
    let state = kassa_central::build_state(config).await?;
    seed(&state.db).await?;
    let served = crate::Served::start(state).await?;
    let (base, token) = (served.base.clone(), served.token.clone());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()?;
    let body =
        serde_json::json!({ "location": "STORE-1", "lines": [{ "sku": "HOT-1", "qty": 1 }] });
    let op = Arc::new(move |i: usize| {
        let request = client
            .post(format!("{base}/v1/orders"))
            .bearer_auth(&token)
            .header(
                "idempotency-key",
                format!("bench-{i}-{}", uuid::Uuid::now_v7()),
            )
            .json(&body);
        async move {
            let response = request.send().await?;
            anyhow::ensure!(
                response.status() == 201,
                "checkout answered {}",
                response.status()
            );
            Ok(())
        }
    });
    let warm = op.clone();
    drive(WARMUP, move |i| warm(i)).await?;
    let figures = drive(ORDERS, move |i| op(i)).await;
    served.stop().await?;
    figures
}
