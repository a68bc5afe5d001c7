//! `kassa-bench sync` (and `kassa-bench leases` alone): shortfalls per 10,000 offline sales
//! with and without stock leases (issue 16), at a given stock level.
//!
//! A store with one till, and one with three, and the web shop; [`PRODUCTS`] products whose demand is skewed (the
//! k-th best seller sells about 1/k as much as the best). Each product has `level` × its
//! expected demand (the forecast of the tills' offline sales and the web shop's orders
//! together; the demand drawn varies around it) on hand. The
//! link goes down; the tills make [`SALES`] sales of 1–3 lines offline between them while the
//! web shop takes its [`WEB_ORDERS`] orders at Central; then the tills sync. Without leases the
//! web shop sells what the tills had already sold: each such unit is a shortfall. With leases
//! each till first leases what its own history says it will sell over the outage
//! ([`kassa_domain::lease::propose`] with a horizon a quarter longer than the outage, at most
//! 80 % of what is available for a lone till, 30 % for each of three), and its offline
//! sales take their units from the lease. Same seed, same demand in both runs. Figures: sales
//! with a shortfall and units short per 10,000 offline sales, and web orders refused (the
//! units a lease holds are not the web shop's to sell).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use kassa_central::{AppState, Config};
use kassa_domain::api::{OfflineOrder, ProductInput, SyncOrdersRequest, SYNC_BATCH_ORDERS_MAX};
use kassa_domain::lease::{LeaseRequest, LeaseSettings, Velocity};
use kassa_domain::{CartLine, Currency, Role, Sku, Username};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const SALES: usize = 10_000;
const WEB_ORDERS: usize = 6_000;
const PRODUCTS: usize = 100;
/// The stores: (tills, the lease cap a manager sets for one till, percent of available).
const STORES: [(usize, u32); 2] = [(1, 80), (3, 30)];
const LOCATION: &str = "STORE-1";
const PASSWORD: &str = "bench-password";
/// Each product's stock as a share of its expected demand.
const LEVELS: [f64; 2] = [1.0, 1.2];
/// Web orders in flight at once.
const WEB_CONCURRENCY: usize = 8;

pub async fn run() -> anyhow::Result<()> {
    println!(
        "leases: {SALES} offline sales at the tills while the web shop takes {WEB_ORDERS} orders, \
         {PRODUCTS} products, stock = level × expected demand (SQLite)"
    );
    for (tills, cap_percent) in STORES {
        for level in LEVELS {
            let without = scenario(tills, cap_percent, level, false).await?;
            let with = scenario(tills, cap_percent, level, true).await?;
            for (name, o) in [("without leases", &without), ("with leases", &with)] {
                println!(
                    "leases   {tills} till(s), level {level:.2} {name:<15}: {:>5.0} sales short, {:>5.0} units short per 10,000 offline sales | web orders refused {:>4} of {WEB_ORDERS} | leased {:>5} units | {:.1} s",
                    o.short_sales as f64 * 10_000.0 / SALES as f64,
                    o.short_units as f64 * 10_000.0 / SALES as f64,
                    o.web_refused,
                    o.leased,
                    o.seconds,
                );
            }
        }
    }
    Ok(())
}

/// What one run saw.
#[derive(Debug)]
struct Outcome {
    short_sales: i64,
    short_units: i64,
    web_refused: usize,
    leased: i64,
    seconds: f64,
}

/// The demand, the same in both runs of a level: per till its history (what it sold over a
/// past outage's length) and its offline sales, and the web shop's orders.
struct Demand {
    history: Vec<BTreeMap<usize, u64>>,
    sales: Vec<Vec<Vec<(usize, u32)>>>,
    web: Vec<Vec<(usize, u32)>>,
}

/// The k-th product's share of the units sold: 1/(k+1) over the harmonic sum.
fn weights() -> Vec<f64> {
    let raw: Vec<f64> = (0..PRODUCTS).map(|k| 1.0 / (k as f64 + 1.0)).collect();
    let sum: f64 = raw.iter().sum();
    raw.into_iter().map(|w| w / sum).collect()
}

/// What the store expects to sell of each product over the outage (the forecast its stock is
/// ordered from): the tills' baskets of 1–3 units (2 on average) and the web shop's of 1–2
/// (1.5). The real demand drawn from the same distribution varies around it.
fn expected_demand() -> Vec<f64> {
    let units = SALES as f64 * 2.0 + WEB_ORDERS as f64 * 1.5;
    weights().into_iter().map(|w| w * units).collect()
}

/// A product index, the k-th with weight 1/(k+1).
fn pick(rng: &mut StdRng, cumulative: &[f64]) -> usize {
    let total = cumulative.last().copied().unwrap_or(1.0);
    let x = rng.gen_range(0.0..total);
    cumulative
        .partition_point(|c| *c <= x)
        .min(cumulative.len() - 1)
}

/// 1–`lines_max` distinct products, one unit each.
fn basket(rng: &mut StdRng, cumulative: &[f64], lines_max: usize) -> Vec<(usize, u32)> {
    let mut lines: BTreeMap<usize, u32> = BTreeMap::new();
    for _ in 0..rng.gen_range(1..=lines_max) {
        *lines.entry(pick(rng, cumulative)).or_default() += 1;
    }
    lines.into_iter().collect()
}

fn demand(tills: usize) -> Demand {
    let mut rng = StdRng::seed_from_u64(16);
    let cumulative: Vec<f64> = weights()
        .into_iter()
        .scan(0.0, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect();
    let per_till = SALES / tills;
    let mut history = Vec::new();
    let mut sales = Vec::new();
    for till in 0..tills {
        let n = if till == 0 {
            SALES - per_till * (tills - 1)
        } else {
            per_till
        };
        let mut sold: BTreeMap<usize, u64> = BTreeMap::new();
        for _ in 0..n {
            for (product, qty) in basket(&mut rng, &cumulative, 3) {
                *sold.entry(product).or_default() += u64::from(qty);
            }
        }
        history.push(sold);
        sales.push((0..n).map(|_| basket(&mut rng, &cumulative, 3)).collect());
    }
    let web = (0..WEB_ORDERS)
        .map(|_| basket(&mut rng, &cumulative, 2))
        .collect();
    Demand {
        history,
        sales,
        web,
    }
}

async fn scenario(
    tills: usize,
    cap_percent: u32,
    level: f64,
    leases: bool,
) -> anyhow::Result<Outcome> {
    let dir = std::env::temp_dir().join(format!("kassa-bench-leases-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let result = run_scenario(&dir, tills, cap_percent, level, leases).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_scenario(
    dir: &std::path::Path,
    tills: usize,
    cap_percent: u32,
    level: f64,
    leases: bool,
) -> anyhow::Result<Outcome> {
    let demand = demand(tills);
    let mut rng = StdRng::seed_from_u64(7);
    let products: Vec<ProductInput> = (0..PRODUCTS)
        .map(|n| crate::generated::product(&mut rng, n))
        .collect::<anyhow::Result<_>>()?;
    let expected = expected_demand();
    let state = shop(dir, &products, &expected, level).await?;
    let server = Server::start(state.clone()).await?;
    let base = server.base();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let manager = login(&http, &base, "manager").await?;
    let mut devices = Vec::new();
    for till in 0..tills {
        devices.push(device(&http, &base, &manager, till).await?);
    }
    let mut leased = 0;
    if leases {
        for (till, token) in devices.iter().enumerate() {
            let history = &demand.history[till];
            leased += lease(&http, &base, token, &products, history, cap_percent).await?;
        }
    }
    let web_refused = web_shop(&http, &base, &products, &demand.web).await?;
    let (mut short_sales, mut short_units) = (0, 0);
    for (till, token) in devices.iter().enumerate() {
        let (sales, units) =
            sync_till(&http, &base, token, &products, till, &demand.sales[till]).await?;
        short_sales += sales;
        short_units += units;
    }
    let seconds = started.elapsed().as_secs_f64();
    server.stop().await;
    state.db.pool().close().await;
    Ok(Outcome {
        short_sales,
        short_units,
        web_refused,
        leased,
        seconds,
    })
}

/// Central on a new SQLite database: STORE-1, a manager and a cashier, the products, each with
/// `level` × its expected demand on hand (at least 1).
async fn shop(
    dir: &std::path::Path,
    products: &[ProductInput],
    expected: &[f64],
    level: f64,
) -> anyhow::Result<AppState> {
    let config = Config {
        database_url: format!("sqlite://{}", dir.join("central.db").display()),
        login_per_ip_per_minute: 10_000,
        login_per_username_per_minute: 10_000,
        user_requests_per_second: 1_000_000,
        user_requests_burst: 1_000_000,
        ..Config::default()
    };
    let state = kassa_central::build_state(config).await?;
    for (name, role) in [("manager", Role::Manager), ("cashier", Role::Cashier)] {
        let hash = kassa_central::auth::hash_password(PASSWORD.into()).await?;
        kassa_central::store::users::insert(&state.db, &Username::parse(name)?, &hash, role)
            .await
            .map_err(|e| anyhow::anyhow!("adding {name}: {e}"))?;
    }
    let location = kassa_central::store::locations::insert(&state.db, LOCATION, "Main street")
        .await?
        .context("a new location")?;
    kassa_central::store::catalog::insert_many(&state.db, products)
        .await
        .map_err(|e| anyhow::anyhow!("importing products: {e}"))?;
    let mut tx = state.db.begin_write().await?;
    let location_id = location.id.to_string();
    for (product, demand) in products.iter().zip(expected) {
        let units = ((demand * level).round() as i64).max(1);
        let movement = kassa_central::store::stock::Movement {
            sku: product.sku.as_str(),
            location_id: &location_id,
            delta: units,
            reason: kassa_domain::api::StockReason::Receiving,
            reference: None,
            note: None,
            created_by: None,
        };
        kassa_central::store::stock::move_on_hand(&mut tx, &movement)
            .await?
            .context("receiving stock")?;
    }
    tx.commit().await?;
    Ok(state)
}

async fn login(http: &reqwest::Client, base: &str, username: &str) -> anyhow::Result<String> {
    let body: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access token")
}

/// A paired till's own device session.
async fn device(
    http: &reqwest::Client,
    base: &str,
    manager: &str,
    till: usize,
) -> anyhow::Result<String> {
    let created: Value = http
        .post(format!("{base}/v1/registers"))
        .bearer_auth(manager)
        .json(&json!({ "location": LOCATION, "name": format!("Till {}", till + 1) }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let register = json!({ "id": created["register_id"], "credential": created["credential"] });
    let body: Value = http
        .post(format!("{base}/v1/auth/device"))
        .json(&json!({ "register": register }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no device token")
}

/// The till leases what its history says it sells over the outage (the history covers the same
/// length, so the rate carries over one to one), under the default settings; returns the units
/// granted.
async fn lease(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    products: &[ProductInput],
    history: &BTreeMap<usize, u64>,
    cap_percent: u32,
) -> anyhow::Result<i64> {
    const OUTAGE_S: u64 = 3600;
    // The manager plans for a quarter longer than the outage the history covers (headroom for
    // a busier hour than usual) and caps one till's share of what is available.
    let settings = LeaseSettings {
        horizon_s: OUTAGE_S * 5 / 4,
        cap_percent,
        ..LeaseSettings::default_for(LOCATION)
    };
    let mut velocities: BTreeMap<Sku, Velocity> = BTreeMap::new();
    for (product, sold) in history {
        let sku = &products[*product].sku;
        let level: Value = http
            .get(format!("{base}/v1/stock/{sku}?location={LOCATION}"))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let available = level["available"].as_i64().context("available")?;
        velocities.insert(
            sku.clone(),
            Velocity {
                sold: *sold,
                available,
            },
        );
    }
    let lines = kassa_domain::lease::propose(&settings, OUTAGE_S, &velocities);
    let request = LeaseRequest {
        location: LOCATION.into(),
        register: None,
        lines,
        ttl_s: 4 * OUTAGE_S,
    };
    let granted: kassa_domain::lease::Lease = http
        .post(format!("{base}/v1/stock/leases"))
        .bearer_auth(token)
        .header(
            "Idempotency-Key",
            format!("bench-lease-{}", uuid::Uuid::now_v7()),
        )
        .json(&request)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(granted.lines.iter().map(|l| l.granted).sum())
}

/// The web shop's orders at Central while the tills are offline; returns how many were refused
/// for lack of stock.
async fn web_shop(
    http: &reqwest::Client,
    base: &str,
    products: &[ProductInput],
    orders: &[Vec<(usize, u32)>],
) -> anyhow::Result<usize> {
    let cashier = login(http, base, "cashier").await?;
    let mut refused = 0;
    for chunk in orders.chunks(WEB_CONCURRENCY) {
        let calls = chunk.iter().map(|order| {
            let lines: Vec<Value> = order
                .iter()
                .map(|(p, qty)| json!({ "sku": products[*p].sku, "qty": qty }))
                .collect();
            http.post(format!("{base}/v1/orders"))
                .bearer_auth(&cashier)
                .header("Idempotency-Key", format!("web-{}", uuid::Uuid::now_v7()))
                .json(&json!({ "location": LOCATION, "lines": lines }))
                .send()
        });
        for response in futures::future::join_all(calls).await {
            match response?.status().as_u16() {
                201 => {}
                409 => refused += 1,
                other => anyhow::bail!("a web order answered {other}"),
            }
        }
    }
    Ok(refused)
}

/// Syncs a till's offline sales; returns (sales with a shortfall, units short).
async fn sync_till(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    products: &[ProductInput],
    till: usize,
    sales: &[Vec<(usize, u32)>],
) -> anyhow::Result<(i64, i64)> {
    let orders = sales
        .iter()
        .enumerate()
        .map(|(i, sale)| offline_order(products, till, i, sale))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (mut short_sales, mut short_units) = (0, 0);
    for batch in orders.chunks(SYNC_BATCH_ORDERS_MAX) {
        let answer: Value = http
            .post(format!("{base}/v1/sync/orders"))
            .bearer_auth(token)
            .json(&SyncOrdersRequest {
                orders: batch.to_vec(),
            })
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        for result in answer["results"].as_array().context("results")? {
            anyhow::ensure!(
                result["outcome"] == "accepted",
                "a sale was refused: {result}"
            );
            let short: i64 = result["shortfalls"]
                .as_array()
                .context("shortfalls")?
                .iter()
                .filter_map(|s| s["shortfall"].as_i64())
                .sum();
            short_sales += i64::from(short > 0);
            short_units += short;
        }
    }
    Ok((short_sales, short_units))
}

fn offline_order(
    products: &[ProductInput],
    till: usize,
    i: usize,
    sale: &[(usize, u32)],
) -> anyhow::Result<OfflineOrder> {
    let lines: Vec<CartLine> = sale
        .iter()
        .map(|(p, qty)| CartLine {
            sku: products[*p].sku.clone(),
            name: products[*p].name.clone(),
            unit_price: products[*p].price,
            qty: *qty,
            tax_class: products[*p].tax_class,
            discount: kassa_domain::Money::zero(Currency::EUR),
        })
        .collect();
    crate::sync::cash_sale(lines, format!("STORE-1-T{}-{i:06}", till + 1))
}

/// Central serving `state` on a free port until stopped.
struct Server {
    port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(state: AppState) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(kassa_central::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Ok(Self { port, stop, task })
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
