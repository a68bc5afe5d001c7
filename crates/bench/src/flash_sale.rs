//! `kassa-bench flash-sale`: [`BUYERS`] buyers, [`CLIENTS`] at a time, race for [`UNITS`] units
//! of one SKU through Central's HTTP API (`POST /v1/orders`, one unit each), three ways on each
//! backend: without Redis (the raw baseline: every answer is the database's), with Redis (the
//! hot-SKU gate answers sold out), and with Redis killed once half the units are sold and started
//! again, empty, a second later.
//!
//! Figures per run: units sold (must be exactly [`UNITS`]), time until the last unit was sold
//! and until every buyer had an answer, p50/p99 of the sales (201) and of the sold-out answers
//! (409), answers by status, and database connection checkouts per sold-out answer, measured
//! over [`AFTER`] more buyers once sold out (each checkout is a statement or a transaction of
//! several; zero means the database was not touched).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use kassa_central::config::Secret;
use kassa_central::devtools::cluster::RedisServer;
use kassa_central::devtools::{Durability, PgCluster};
use kassa_central::store::{self, Db};
use kassa_central::Config;
use kassa_domain::api::{ProductInput, StockReason};
use kassa_domain::{Currency, Money, Sku, TaxClass};

const BUYERS: usize = 20_000;
const UNITS: i64 = 500;
const CLIENTS: usize = 64;
/// Buyers sent after the sell-out to count database checkouts per sold-out answer.
const AFTER: usize = 1000;
const SKU: &str = "FLASH-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    WithoutRedis,
    WithRedis,
    RedisKilled,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::WithoutRedis => "without Redis",
            Self::WithRedis => "with Redis",
            Self::RedisKilled => "Redis killed",
        }
    }
}

/// What one run saw.
struct Run {
    sold: usize,
    sold_out_s: f64,
    all_answered_s: f64,
    sale_p50_ms: f64,
    sale_p99_ms: f64,
    refusal_p50_ms: f64,
    refusal_p99_ms: f64,
    statuses: Vec<(u16, usize)>,
    checkouts_per_sold_out: f64,
    db_units_reserved: i64,
}

pub async fn run() -> anyhow::Result<()> {
    println!(
        "flash-sale: {BUYERS} buyers, {CLIENTS} at a time, for {UNITS} units of one SKU \
         (then {AFTER} more to count database checkouts per sold-out answer)"
    );
    anyhow::ensure!(
        RedisServer::start().is_some(),
        "redis-server is not installed (apt-get install redis-server)"
    );
    let dir = std::env::temp_dir().join(format!("kassa-bench-flash-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let mut urls = Vec::new();
    for mode in [Mode::WithoutRedis, Mode::WithRedis, Mode::RedisKilled] {
        let db = dir.join(format!("{mode:?}.db"));
        urls.push((mode, format!("sqlite://{}", db.display())));
    }
    let result = report("sqlite", urls).await;
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    match PgCluster::start(Durability::Durable) {
        Some(cluster) => {
            let mut urls = Vec::new();
            for mode in [Mode::WithoutRedis, Mode::WithRedis, Mode::RedisKilled] {
                urls.push((mode, cluster.create_database().await?));
            }
            report("postgres", urls).await?;
        }
        None => println!("postgres: skipped (no PostgreSQL binaries)"),
    }
    Ok(())
}

async fn report(backend: &str, urls: Vec<(Mode, String)>) -> anyhow::Result<()> {
    let mut baseline = None;
    for (mode, url) in urls {
        let run = sale(&url, mode).await?;
        let statuses: Vec<String> = run
            .statuses
            .iter()
            .map(|(status, n)| format!("{status}×{n}"))
            .collect();
        println!(
            "{backend:<8} {:<13}: sold {:>3} (database: {:>3} reserved) | sold out after {:>6.2} s, all answered after {:>6.2} s | sales p50 {:>7.2} ms p99 {:>7.2} ms | sold-out p50 {:>6.2} ms p99 {:>7.2} ms | {:.2} db checkouts per sold-out answer | {}",
            mode.name(),
            run.sold,
            run.db_units_reserved,
            run.sold_out_s,
            run.all_answered_s,
            run.sale_p50_ms,
            run.sale_p99_ms,
            run.refusal_p50_ms,
            run.refusal_p99_ms,
            run.checkouts_per_sold_out,
            statuses.join(" "),
        );
        match mode {
            Mode::WithoutRedis => baseline = Some(run),
            Mode::WithRedis => {
                if let Some(base) = &baseline {
                    println!(
                        "{backend:<8} ratio with/without Redis: all answered {:.2}× as fast, sold-out p50 {:.2}× / p99 {:.2}× as fast",
                        base.all_answered_s / run.all_answered_s,
                        base.refusal_p50_ms / run.refusal_p50_ms,
                        base.refusal_p99_ms / run.refusal_p99_ms,
                    );
                }
            }
            Mode::RedisKilled => {}
        }
    }
    Ok(())
}

/// Location, product and [`UNITS`] on hand through the store.
async fn seed(db: &Db) -> anyhow::Result<String> {
    let location = store::locations::insert(db, "STORE-1", "Bench")
        .await?
        .context("location")?;
    let product = ProductInput {
        sku: Sku::parse(SKU)?,
        barcodes: vec![],
        name: "Flash item".into(),
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
        sku: SKU,
        location_id: &location_id,
        delta: UNITS,
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

/// One answer: status, latency, when it arrived (since the start).
type Answer = (u16, Duration, Duration);

async fn sale(url: &str, mode: Mode) -> anyhow::Result<Run> {
    let mut redis = match mode {
        Mode::WithoutRedis => None,
        _ => Some(RedisServer::start().context("redis-server")?),
    };
    let config = Config {
        database_url: url.to_owned(),
        user_requests_per_second: 1_000_000,
        user_requests_burst: 1_000_000,
        inflight_max: 100_000,
        session_cache_ttl: Duration::from_secs(3600),
        redis_url: redis.as_ref().map(|r| Secret::new(r.url())),
        ..Config::default()
    };
    let state = kassa_central::build_state(config).await?;
    let location_id = seed(&state.db).await?;
    let reconciler = kassa_central::stock::hot_gate::spawn_reconciler(
        state.clone(),
        state.config.hot_gate_reconcile_interval,
    );
    let served = crate::Served::start(state.clone()).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()?;
    let buy = Arc::new(Buy {
        client,
        url: format!("{}/v1/orders", served.base),
        token: served.token.clone(),
        sold: AtomicUsize::new(0),
    });

    // Redis killed once half is sold, started again (empty) a second later.
    let outage = Arc::new(AtomicBool::new(false));
    let killer = match (mode, redis.take()) {
        (Mode::RedisKilled, Some(mut server)) => {
            let (buy, outage) = (buy.clone(), outage.clone());
            Some(tokio::spawn(async move {
                while buy.sold.load(Ordering::Relaxed) < usize::try_from(UNITS / 2).unwrap_or(0) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                tokio::task::spawn_blocking(move || {
                    server.kill()?;
                    std::thread::sleep(Duration::from_secs(1));
                    server.restart()?;
                    Ok::<_, anyhow::Error>(server)
                })
                .await?
                .inspect(|_| outage.store(true, Ordering::Relaxed))
            }))
        }
        (_, server) => {
            redis = server;
            None
        }
    };
    let started = Instant::now();
    let answers = drive(&buy, "buy", BUYERS, started).await?;
    let server = match killer {
        Some(killer) => Some(killer.await??),
        None => redis,
    };
    anyhow::ensure!(
        mode != Mode::RedisKilled || outage.load(Ordering::Relaxed),
        "Redis was not killed"
    );

    let checkouts = state.db.checkouts();
    let after = drive(&buy, "after", AFTER, Instant::now()).await?;
    let refused_after = after.iter().filter(|(s, _, _)| *s == 409).count();
    #[expect(clippy::cast_precision_loss, reason = "statistics")]
    let checkouts_per_sold_out =
        (state.db.checkouts() - checkouts) as f64 / refused_after.max(1) as f64;

    reconciler.abort();
    let level = store::stock::level(state.db.pool(), SKU, &location_id)
        .await?
        .context("stock row")?;
    served.stop().await?;
    drop(server);
    Ok(summarise(
        answers,
        &after,
        checkouts_per_sold_out,
        level.reserved,
    ))
}

fn summarise(answers: Vec<Answer>, after: &[Answer], per_sold_out: f64, reserved: i64) -> Run {
    let mut sales: Vec<Duration> = Vec::new();
    let mut refusals: Vec<Duration> = Vec::new();
    let mut sold_out_at = Duration::ZERO;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for (status, latency, at) in answers.iter().chain(after) {
        *statuses.entry(*status).or_default() += 1;
        match status {
            201 => {
                sales.push(*latency);
                sold_out_at = sold_out_at.max(*at);
            }
            409 => refusals.push(*latency),
            _ => {}
        }
    }
    let sold = sales.len();
    let (sale_p50_ms, sale_p99_ms, _) = percentiles_or_zero(&mut sales);
    let (refusal_p50_ms, refusal_p99_ms, _) = percentiles_or_zero(&mut refusals);
    Run {
        sold,
        sold_out_s: sold_out_at.as_secs_f64(),
        all_answered_s: answers
            .iter()
            .map(|(_, _, at)| *at)
            .max()
            .unwrap_or_default()
            .as_secs_f64(),
        sale_p50_ms,
        sale_p99_ms,
        refusal_p50_ms,
        refusal_p99_ms,
        statuses: statuses.into_iter().collect(),
        checkouts_per_sold_out: per_sold_out,
        db_units_reserved: reserved,
    }
}

fn percentiles_or_zero(samples: &mut [Duration]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    crate::percentiles(samples)
}

struct Buy {
    client: reqwest::Client,
    url: String,
    token: String,
    sold: AtomicUsize,
}

impl Buy {
    async fn one(&self, key: String) -> anyhow::Result<u16> {
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("idempotency-key", key)
            .json(
                &serde_json::json!({ "location": "STORE-1", "lines": [{ "sku": SKU, "qty": 1 }] }),
            )
            .send()
            .await?;
        let status = response.status().as_u16();
        let _ = response.bytes().await?;
        if status == 201 {
            self.sold.fetch_add(1, Ordering::Relaxed);
        }
        Ok(status)
    }
}

/// `n` buyers through [`CLIENTS`] connections; every answer with its latency and arrival.
async fn drive(
    buy: &Arc<Buy>,
    prefix: &str,
    n: usize,
    started: Instant,
) -> anyhow::Result<Vec<Answer>> {
    let next = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (buy, next, answers) = (buy.clone(), next.clone(), answers.clone());
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let t = Instant::now();
                let status = buy.one(format!("{prefix}-{i}")).await?;
                let answer = (status, t.elapsed(), started.elapsed());
                answers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(answer);
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let answers = std::mem::take(
        &mut *answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    Ok(answers)
}
