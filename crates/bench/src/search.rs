//! `kassa-bench search`: 100k generated products in SQLite and the search index; the same mix
//! of queries (words, typos, SKU and barcode lookups, filters, facets) through Central's HTTP
//! API and, in the same run, straight against the index in-process (`search::run`, the raw
//! baseline). One client, so the figures are latencies rather than contention.

use std::time::Instant;

use anyhow::Context;
use kassa_central::search;
use kassa_central::store;
use kassa_central::Config;
use kassa_domain::Currency;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::generated::{product, ADJECTIVES, CATEGORIES, NOUNS};

const PRODUCTS: usize = 100_000;
const QUERIES: usize = 2_000;
const WARMUP: usize = 200;
const IMPORT_BATCH: usize = 5_000;

/// The query mix, as query strings: the API gets them as they are, the raw run parses them
/// the way the API does.
fn queries(rng: &mut StdRng) -> Vec<String> {
    (0..QUERIES + WARMUP)
        .map(|i| {
            let noun = NOUNS[rng.gen_range(0..NOUNS.len())];
            let adjective = ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())];
            let category = CATEGORIES[rng.gen_range(0..CATEGORIES.len())];
            let n = rng.gen_range(0..PRODUCTS);
            match i % 8 {
                0 => format!("q={noun}&facets=category,brand,price"),
                1 => format!("q={adjective}+{noun}"),
                2 => format!("q={}", typo(noun)),
                3 => format!("q=B-{n:06}"),
                4 => format!("q=21{n:010}"),
                5 => format!("q={noun}&category={category}&facets=brand,price"),
                6 => format!("min_price=5.00&max_price=20.00&category={category}&facets=category,brand,price"),
                _ => format!("q={noun}&sort=price_asc&page=2&in_stock=false"),
            }
        })
        .collect()
}

/// Drops the second letter: `coffee` → `cffee`.
fn typo(word: &str) -> String {
    word.chars()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, c)| c)
        .collect()
}

pub async fn run() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("kassa-bench-search-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let result = bench(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench(dir: &std::path::Path) -> anyhow::Result<()> {
    let config = Config {
        database_url: format!("sqlite://{}", dir.join("central.db").display()),
        search_dir: Some(dir.join("central.search")),
        user_requests_per_second: 1_000_000,
        user_requests_burst: 1_000_000,
        ..Config::default()
    };
    let state = kassa_central::build_state(config).await?;
    let mut rng = StdRng::seed_from_u64(42);
    let started = Instant::now();
    for start in (0..PRODUCTS).step_by(IMPORT_BATCH) {
        let batch = (start..(start + IMPORT_BATCH).min(PRODUCTS))
            .map(|n| product(&mut rng, n))
            .collect::<anyhow::Result<Vec<_>>>()?;
        store::catalog::insert_many(&state.db, &batch)
            .await
            .map_err(|e| anyhow::anyhow!("importing products: {e}"))?;
    }
    let imported = started.elapsed();
    let started = Instant::now();
    let indexed = search::index::refresh(&state.search, &state.db).await?;
    println!(
        "search: {PRODUCTS} products imported in {:.1} s, {indexed} indexed in {:.1} s; {QUERIES} queries (after {WARMUP} warm-up), one client",
        imported.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let queries = queries(&mut rng);
    let raw = crate::latencies(&queries, WARMUP, |q| {
        let state = state.clone();
        async move {
            let parsed: search::SearchQuery =
                serde_urlencoded::from_str(&q).context("parsing a bench query")?;
            let (req, opts) =
                search::parse(parsed, Currency::EUR).map_err(|e| anyhow::anyhow!("{e}"))?;
            search::run(&state.search, &req, &opts)?;
            Ok(())
        }
    })
    .await?;
    let http = http_figures(&state, &queries).await?;
    println!(
        "search   http: p50 {:>6.2} ms  p99 {:>6.2} ms | raw index: p50 {:>6.2} ms  p99 {:>6.2} ms | p50 ratio {:.2}",
        http.p50_ms,
        http.p99_ms,
        raw.p50_ms,
        raw.p99_ms,
        http.p50_ms / raw.p50_ms
    );
    Ok(())
}

async fn http_figures(
    state: &kassa_central::AppState,
    queries: &[String],
) -> anyhow::Result<crate::Latencies> {
    let served = crate::Served::start(state.clone()).await?;
    let client = reqwest::Client::new();
    let figures = crate::latencies(queries, WARMUP, |q| {
        let request = client
            .get(format!("{}/v1/search?{q}", served.base))
            .bearer_auth(&served.token);
        async move {
            let response = request.send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "search answered {}",
                response.status()
            );
            response.bytes().await?;
            Ok(())
        }
    })
    .await;
    served.stop().await?;
    figures
}
