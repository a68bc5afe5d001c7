//! `kassa-bench catalog`: product pages under a browsing spike. The same load generator (16
//! clients, the same skewed product mix: a few hot products, a long tail) asks Central for
//! `GET /v1/products/{id}` anonymously, and, in the same run, a bare axum handler that serves the
//! same bytes from a map (the raw baseline: what HTTP on this machine costs with no work at
//! all). Prints requests per second of each, their ratio (target ≥ 0.5), p50/p99, and the
//! product cache's hit rate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use kassa_central::store;
use kassa_central::Config;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::generated::product;

const PRODUCTS: usize = 2_000;
const CLIENTS: usize = 16;
const REQUESTS_PER_CLIENT: usize = 1_500;
const WARMUP_PER_CLIENT: usize = 100;

pub async fn run() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("kassa-bench-catalog-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let result = bench(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench(dir: &std::path::Path) -> anyhow::Result<()> {
    let config = Config {
        database_url: format!("sqlite://{}", dir.join("central.db").display()),
        search_dir: Some(dir.join("central.search")),
        anonymous_requests_per_second: 1_000_000,
        anonymous_requests_burst: 1_000_000,
        ..Config::default()
    };
    let state = kassa_central::build_state(config).await?;
    let mut rng = StdRng::seed_from_u64(7);
    let inputs = (0..PRODUCTS)
        .map(|n| product(&mut rng, n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    store::catalog::insert_many(&state.db, &inputs)
        .await
        .map_err(|e| anyhow::anyhow!("importing products: {e}"))?;
    let mut bodies = HashMap::new();
    let mut ids = Vec::with_capacity(PRODUCTS);
    for page in store::catalog::changed_since(&state.db, 0, i64::MAX).await? {
        ids.push(page.id);
        bodies.insert(page.id, serde_json::to_vec(&page)?);
    }
    // Skewed: a request picks one of the 20 hot products half the time, else any product.
    let mix: Vec<Vec<Uuid>> = (0..CLIENTS)
        .map(|_| {
            (0..REQUESTS_PER_CLIENT)
                .map(|_| {
                    if rng.gen_bool(0.5) {
                        ids[rng.gen_range(0..20)]
                    } else {
                        ids[rng.gen_range(0..ids.len())]
                    }
                })
                .collect()
        })
        .collect();

    let raw = serve_raw(Arc::new(bodies)).await?;
    let raw_figures = load(&raw.0, &mix).await?;
    raw.1.abort();
    let served = crate::Served::start(state.clone()).await?;
    let central = load(&served.base, &mix).await?;
    let (hits, misses) = cache_counts(&served.base).await?;
    served.stop().await?;
    println!(
        "catalog: {PRODUCTS} products, {CLIENTS} clients x {REQUESTS_PER_CLIENT} GET /v1/products/{{id}} (after {WARMUP_PER_CLIENT} warm-up each), anonymous"
    );
    println!(
        "catalog central: {:>7.0} req/s  p50 {:>5.2} ms  p99 {:>5.2} ms | raw axum (same bytes): {:>7.0} req/s  p50 {:>5.2} ms  p99 {:>5.2} ms | ratio {:.2} | product cache hit rate {:.1} % ({hits} hits, {misses} misses)",
        central.per_second,
        central.p50_ms,
        central.p99_ms,
        raw_figures.per_second,
        raw_figures.p50_ms,
        raw_figures.p99_ms,
        central.per_second / raw_figures.per_second,
        100.0 * hits / (hits + misses).max(1.0),
    );
    Ok(())
}

/// The baseline: a bare axum router answering each product's bytes from a map.
async fn serve_raw(
    bodies: Arc<HashMap<Uuid, Vec<u8>>>,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    async fn one(
        State(bodies): State<Arc<HashMap<Uuid, Vec<u8>>>>,
        Path(id): Path<Uuid>,
    ) -> axum::response::Response {
        match bodies.get(&id) {
            Some(bytes) => (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                bytes.clone(),
            )
                .into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = axum::Router::new()
        .route("/v1/products/{id}", axum::routing::get(one))
        .with_state(bodies);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((base, server))
}

struct Figures {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Every client's requests, concurrently; throughput over the whole run (warm-up included, so
/// both sides are measured alike), latencies over the counted requests.
async fn load(base: &str, mix: &[Vec<Uuid>]) -> anyhow::Result<Figures> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(mix.len());
    for ids in mix {
        let client = client.clone();
        let urls: Vec<String> = ids
            .iter()
            .map(|id| format!("{base}/v1/products/{id}"))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(urls.len());
            for (i, url) in urls.iter().enumerate() {
                let at = Instant::now();
                let response = client.get(url).send().await?;
                anyhow::ensure!(response.status().is_success(), "{}", response.status());
                response.bytes().await?;
                if i >= WARMUP_PER_CLIENT {
                    samples.push(at.elapsed());
                }
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut samples: Vec<Duration> = Vec::new();
    for task in tasks {
        samples.append(&mut task.await??);
    }
    let elapsed = started.elapsed();
    let (p50_ms, p99_ms, _) = crate::percentiles(&mut samples);
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let per_second = (mix.len() * REQUESTS_PER_CLIENT) as f64 / elapsed.as_secs_f64();
    Ok(Figures {
        per_second,
        p50_ms,
        p99_ms,
    })
}

/// The product cache's hits and misses from Central's `/metrics`.
async fn cache_counts(base: &str) -> anyhow::Result<(f64, f64)> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    let count = |outcome: &str| {
        let needle =
            format!("kassa_cache_requests_total{{cache=\"products\",outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((count("hit"), count("miss")))
}
