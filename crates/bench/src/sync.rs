//! `kassa-bench sync`: a register sells 10,000 sales while Central is down, then Central comes
//! back and the register's sync engine drains its outbox (`POST /v1/sync/orders`, batches of
//! 100, in order). Figures: orders/s of the drain, and what Central has afterwards (0 lost,
//! 0 doubled, checked against the register's outbox). Raw baseline in the same run: a plain
//! HTTP client posting the same number of offline orders in the same batches to a second,
//! identical Central (no register, no local store). Target: ≥ 500 orders/s.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use kassa_central::{AppState, Config};
use kassa_domain::api::{
    OfflineLine, OfflineOrder, OfflinePayment, SyncOrdersRequest, SYNC_BATCH_ORDERS_MAX,
};
use kassa_domain::{Barcode, CartLine, Currency, Role, Username};
use kassa_register::client::Timeouts;
use kassa_register::secrets::MemoryStore;
use kassa_register::sync::SyncConfig;
use kassa_register::{carts, Register, RegisterConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::net::TcpListener;

const SALES: usize = 10_000;
const PRODUCTS: usize = 200;
const LOCATION: &str = "STORE-1";
const PASSWORD: &str = "bench-password";

pub async fn run() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("kassa-bench-sync-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let result = bench(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench(dir: &std::path::Path) -> anyhow::Result<()> {
    println!("sync: {SALES} sales made offline at one register ({PRODUCTS} products, 1–3 lines each), then drained to Central (SQLite)");
    let mut rng = StdRng::seed_from_u64(11);
    let state = shop(&dir.join("central.db"), &mut rng).await?;
    let central = Server::start(state.clone(), 0).await?;
    let base = central.base();
    let port = central.port;
    let barcodes = barcodes(&state).await?;

    let mut config = RegisterConfig::new(dir.join("register.db"), &base);
    config.timeouts = Timeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_secs(30),
    };
    config.sync = SyncConfig {
        interval: Duration::from_secs(3600),
        ..SyncConfig::default()
    };
    let register = Register::open(config, Arc::new(MemoryStore::default())).await?;
    register.pair("manager", PASSWORD, LOCATION, "R1").await?;
    register.sign_in("cashier", PASSWORD).await?;
    let float = kassa_domain::CashCount::Sum {
        amount: kassa_domain::Money::zero(kassa_domain::Currency::EUR),
    };
    register.open_shift(&float).await?;
    register.sync_now().await.context("the first sync")?;

    central.stop().await;
    anyhow::ensure!(register.sync_now().await.is_err(), "Central should be down");
    let started = Instant::now();
    for _ in 0..SALES {
        for _ in 0..rng.gen_range(1..=3) {
            register
                .scan(barcodes[rng.gen_range(0..barcodes.len())].as_str())
                .await?;
        }
        let total = register.cart().await?.totals.total;
        register.pay_cash(total).await?;
    }
    let selling = started.elapsed();
    let pending = register.sync_status().pending;
    println!(
        "sync: {SALES} offline sales made in {:.1} s ({:.0} sales/s, each one durable commit); {pending} waiting",
        selling.as_secs_f64(),
        SALES as f64 / selling.as_secs_f64()
    );

    let central = Server::start(state.clone(), port).await?;
    let started = Instant::now();
    let mut rounds = 0;
    while register.sync_status().pending > 0 || rounds == 0 {
        rounds += 1;
        anyhow::ensure!(
            rounds < 1_000,
            "the outbox did not drain: {:?}",
            register.sync_status()
        );
        if let Err(err) = register.sync_now().await {
            println!("sync: round {rounds} failed: {err}");
        }
    }
    let drained = started.elapsed();
    central.stop().await;

    let sold: HashSet<String> = sqlx::query_scalar("SELECT order_id FROM outbox_orders")
        .fetch_all(register.db().reader())
        .await?
        .into_iter()
        .collect();
    let at_central: Vec<String> = sqlx::query_scalar("SELECT id FROM orders")
        .fetch_all(state.db.pool())
        .await?;
    let at_central_set: HashSet<String> = at_central.iter().cloned().collect();
    let lost = sold.difference(&at_central_set).count();
    let doubled =
        at_central.len() - at_central_set.len() + at_central_set.difference(&sold).count();
    let register_rate = SALES as f64 / drained.as_secs_f64();

    let raw_state = shop(&dir.join("raw.db"), &mut StdRng::seed_from_u64(11)).await?;
    let raw = raw_baseline(raw_state, &mut rng).await?;
    println!(
        "sync     register drain: {register_rate:>6.0} orders/s ({:.1} s, {rounds} rounds; {} sales at the register, {} orders at Central, lost {lost}, doubled {doubled}) | raw HTTP batches: {raw:>6.0} orders/s | ratio {:.2}",
        drained.as_secs_f64(),
        sold.len(),
        at_central.len(),
        register_rate / raw
    );
    register.db().close().await;
    Ok(())
}

/// Central on a new SQLite database with STORE-1, a manager, a cashier and [`PRODUCTS`]
/// products with plenty of stock.
async fn shop(path: &std::path::Path, rng: &mut StdRng) -> anyhow::Result<AppState> {
    let config = Config {
        database_url: format!("sqlite://{}", path.display()),
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
    kassa_central::store::locations::insert(&state.db, LOCATION, "Main street").await?;
    let inputs = (0..PRODUCTS)
        .map(|n| crate::generated::product(rng, n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    kassa_central::store::catalog::insert_many(&state.db, &inputs)
        .await
        .map_err(|e| anyhow::anyhow!("importing products: {e}"))?;
    let server = Server::start(state.clone(), 0).await?;
    let http = reqwest::Client::new();
    let token = login(&http, &server.base(), "manager").await?;
    for input in &inputs {
        let response = http
            .post(format!("{}/v1/stock/adjustments", server.base()))
            .bearer_auth(&token)
            .json(&json!({ "sku": input.sku, "location": LOCATION, "delta": 1_000_000, "reason": "receiving" }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "receiving: {}",
            response.status()
        );
    }
    server.stop().await;
    Ok(state)
}

/// An offline sale of `lines` at the catalog's prices, paid in exact cash.
pub fn cash_sale(lines: Vec<CartLine>, receipt_no: String) -> anyhow::Result<OfflineOrder> {
    let total = carts::totals(&lines, Currency::EUR)?.total;
    Ok(OfflineOrder {
        id: uuid::Uuid::now_v7(),
        location: LOCATION.to_owned(),
        lines: lines
            .into_iter()
            .map(|l| OfflineLine {
                sku: l.sku,
                qty: l.qty,
                unit_price: l.unit_price,
                discount: None,
                discount_approved_by: None,
                discount_approval: None,
            })
            .collect(),
        payments: vec![OfflinePayment::Cash {
            amount: total,
            tendered: total,
        }],
        cash_rounding: None,
        completed_at: chrono::Utc::now(),
        receipt_no,
    })
}

async fn barcodes(state: &AppState) -> anyhow::Result<Vec<Barcode>> {
    let products = kassa_central::store::catalog::changed_since(&state.db, 0, 10_000).await?;
    Ok(products
        .into_iter()
        .map(|p| p.barcodes[0].clone())
        .collect())
}

async fn login(http: &reqwest::Client, base: &str, username: &str) -> anyhow::Result<String> {
    let body: serde_json::Value = http
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

/// The same work without the register: [`SALES`] offline orders of 1–3 lines, made up front,
/// posted in batches of [`SYNC_BATCH_ORDERS_MAX`] by one plain HTTP client with a register's
/// session, in order. Returns orders/s.
async fn raw_baseline(state: AppState, rng: &mut StdRng) -> anyhow::Result<f64> {
    let server = Server::start(state.clone(), 0).await?;
    let http = reqwest::Client::new();
    let base = server.base();
    let manager = login(&http, &base, "manager").await?;
    let created: serde_json::Value = http
        .post(format!("{base}/v1/registers"))
        .bearer_auth(&manager)
        .json(&json!({ "location": LOCATION, "name": "RAW" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token: serde_json::Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "username": "cashier", "password": PASSWORD, "register": { "id": created["register_id"], "credential": created["credential"] } }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = token["access_token"]
        .as_str()
        .context("no token")?
        .to_owned();
    let products = kassa_central::store::catalog::changed_since(&state.db, 0, 10_000).await?;
    let orders = (0..SALES)
        .map(|i| {
            let lines: Vec<CartLine> = (0..rng.gen_range(1..=3))
                .map(|_| {
                    let p = &products[rng.gen_range(0..products.len())];
                    CartLine {
                        sku: p.sku.clone(),
                        name: p.name.clone(),
                        unit_price: p.price,
                        qty: 1,
                        tax_class: p.tax_class,
                        discount: kassa_domain::Money::zero(Currency::EUR),
                    }
                })
                .collect();
            cash_sale(lines, format!("STORE-1-RAW-{i:06}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    for batch in orders.chunks(SYNC_BATCH_ORDERS_MAX) {
        let response = http
            .post(format!("{base}/v1/sync/orders"))
            .bearer_auth(&token)
            .json(&SyncOrdersRequest {
                orders: batch.to_vec(),
            })
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "raw batch: {}",
            response.status()
        );
        response.bytes().await?;
    }
    let rate = SALES as f64 / started.elapsed().as_secs_f64();
    server.stop().await;
    Ok(rate)
}

/// Central serving `state` on `port` (0: any free port) until stopped.
struct Server {
    port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(state: AppState, port: u16) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
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
