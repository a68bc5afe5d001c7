//! `kassa-bench register`: 100k products in a register's local store (seeded the way the catalog
//! feed stores them), then barcode lookups and search-as-you-type through `Register`, the calls
//! the till makes. Raw baselines in the same run, on the same database: the bare index probe
//! (`product_barcodes` by barcode) and the bare FTS5 match (row ids only, no ranking, no join,
//! no JSON). One caller, so the figures are latencies. Targets: lookup p99 < 1 ms, search
//! p99 < 10 ms.

use std::sync::Arc;
use std::time::Instant;

use kassa_domain::api::Product;
use kassa_register::secrets::MemoryStore;
use kassa_register::{catalog, Register, RegisterConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::generated::{product, ADJECTIVES, NOUNS};

const PRODUCTS: usize = 100_000;
const LOOKUPS: usize = 20_000;
const SEARCHES: usize = 5_000;
const WARMUP: usize = 500;
const SEED_BATCH: usize = 5_000;
/// Hits a search asks for (what the selling screen shows).
const HITS: u32 = 20;

pub async fn run() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("kassa-bench-register-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let result = bench(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench(dir: &std::path::Path) -> anyhow::Result<()> {
    let config = RegisterConfig::new(dir.join("register.db"), "http://127.0.0.1:9");
    let register = Register::open(config, Arc::new(MemoryStore::default())).await?;
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    let mut barcodes = Vec::with_capacity(PRODUCTS);
    for start in (0..PRODUCTS).step_by(SEED_BATCH) {
        let mut tx = register.db().begin_write().await?;
        for n in start..(start + SEED_BATCH).min(PRODUCTS) {
            let p = stored(product(&mut rng, n)?, n);
            barcodes.push(p.barcodes[0].as_str().to_owned());
            catalog::apply(&mut tx, &p).await?;
        }
        tx.commit().await?;
    }
    let count = catalog::count(register.db()).await?;
    anyhow::ensure!(
        count == PRODUCTS as i64,
        "seeded {count} products, wanted {PRODUCTS}"
    );
    println!(
        "register: {PRODUCTS} products stored in {:.1} s; {LOOKUPS} barcode lookups and {SEARCHES} searches (after {WARMUP} warm-up each), one caller",
        started.elapsed().as_secs_f64()
    );

    let scans: Vec<String> = (0..LOOKUPS + WARMUP)
        .map(|_| barcodes[rng.gen_range(0..barcodes.len())].clone())
        .collect();
    let reader = register.db().reader().clone();
    let raw_lookup = crate::latencies(&scans, WARMUP, |code| {
        let reader = reader.clone();
        async move {
            let id: Option<String> =
                sqlx::query_scalar("SELECT product_id FROM product_barcodes WHERE barcode = ?")
                    .bind(code)
                    .fetch_optional(&reader)
                    .await?;
            anyhow::ensure!(id.is_some(), "raw lookup missed");
            Ok(())
        }
    })
    .await?;
    let lookup = crate::latencies(&scans, WARMUP, |code| {
        let register = register.clone();
        async move {
            let product = register.lookup_barcode(&code).await?;
            anyhow::ensure!(product.barcodes[0].as_str() == code, "wrong product");
            Ok(())
        }
    })
    .await?;
    print_row("lookup", &lookup, "raw index probe", &raw_lookup);

    let typed = typed_queries(&mut rng);
    let raw_search = crate::latencies(&typed, WARMUP, |q| {
        let reader = reader.clone();
        async move {
            let Some(fts) = catalog::fts_query(&q) else {
                return Ok(());
            };
            let _: Vec<i64> = sqlx::query_scalar(
                "SELECT rowid FROM products_fts WHERE products_fts MATCH ? LIMIT ?",
            )
            .bind(fts)
            .bind(HITS)
            .fetch_all(&reader)
            .await?;
            Ok(())
        }
    })
    .await?;
    let empty = std::cell::Cell::new(0usize);
    let search = crate::latencies(&typed, WARMUP, |q| {
        let register = register.clone();
        let empty = &empty;
        async move {
            if register.search(&q, HITS).await?.is_empty() {
                empty.set(empty.get() + 1);
            }
            Ok(())
        }
    })
    .await?;
    print_row("search", &search, "raw FTS5 match", &raw_search);
    for (kind, name) in KINDS.iter().enumerate() {
        let of_kind: Vec<String> = typed
            .iter()
            .enumerate()
            .filter(|(i, _)| i % KINDS.len() == kind)
            .map(|(_, q)| q.clone())
            .collect();
        let figures = crate::latencies(&of_kind, WARMUP / KINDS.len(), |q| {
            let register = register.clone();
            async move {
                register.search(&q, HITS).await?;
                Ok(())
            }
        })
        .await?;
        println!(
            "register search {name:<22}: p50 {:>6.3} ms  p99 {:>6.3} ms",
            figures.p50_ms, figures.p99_ms
        );
    }
    println!("register search: {} of {} queries found nothing (names are random adjective-noun-number triples: some typed ones do not exist)", empty.get(), typed.len());
    register.db().close().await;
    Ok(())
}

/// What the catalog feed would have delivered for generated product `n`.
fn stored(input: kassa_domain::api::ProductInput, n: usize) -> Product {
    Product {
        id: uuid::Uuid::now_v7(),
        sku: input.sku,
        barcodes: input.barcodes,
        name: input.name,
        description: input.description,
        category: input.category,
        brand: input.brand,
        price: input.price,
        tax_class: input.tax_class,
        attributes: input.attributes,
        archived: false,
        version: 1,
        updated_at: chrono::Utc::now(),
        change_seq: i64::try_from(n).unwrap_or(i64::MAX) + 1,
    }
}

/// The kinds of [`typed_queries`], in their order.
const KINDS: [&str; 6] = [
    "3-letter prefix",
    "one word",
    "word + 4-letter prefix",
    "full name",
    "SKU",
    "barcode digits",
];

/// What a cashier types into the search box: word prefixes as they grow, two-word names, SKUs
/// and barcode digits.
fn typed_queries(rng: &mut StdRng) -> Vec<String> {
    (0..SEARCHES + WARMUP)
        .map(|i| {
            let noun = NOUNS[rng.gen_range(0..NOUNS.len())];
            let adjective = ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())];
            let n = rng.gen_range(0..PRODUCTS);
            match i % KINDS.len() {
                0 => noun[..3].to_owned(),
                1 => noun.to_owned(),
                2 => format!("{adjective} {}", &noun[..4.min(noun.len())]),
                3 => format!("{adjective} {noun} {}", n % 97),
                4 => format!("B-{n:06}"),
                _ => format!("21{n:010}"),
            }
        })
        .collect()
}

fn print_row(what: &str, figures: &crate::Latencies, raw_name: &str, raw: &crate::Latencies) {
    println!(
        "register {what:<6}: p50 {:>6.3} ms  p99 {:>6.3} ms | {raw_name}: p50 {:>6.3} ms  p99 {:>6.3} ms | p50 ratio {:.2}",
        figures.p50_ms,
        figures.p99_ms,
        raw.p50_ms,
        raw.p99_ms,
        figures.p50_ms / raw.p50_ms
    );
}
