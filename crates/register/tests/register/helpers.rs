//! Test harness: a real Central on a SQLite file that can be stopped and restarted on the same
//! port, a chaos proxy in front of it, a seeded shop, and registers paired with it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kassa_central::{AppState, Config};
use kassa_domain::api::{Order, Product, ProductInput};
use kassa_domain::{Barcode, Currency, Money, Role, Sku, TaxClass, Username};
use kassa_register::client::Timeouts;
use kassa_register::secrets::MemoryStore;
use kassa_register::sync::SyncConfig;
use kassa_register::{Register, RegisterConfig};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub const PASSWORD: &str = "correct horse battery";
pub const LOCATION: &str = "STORE-1";
/// Units received for every seeded product.
pub const STOCK: i64 = 50;

/// A running (or stopped) Central with its own SQLite file.
pub struct Central {
    _dir: tempfile::TempDir,
    url: String,
    port: u16,
    running: Option<Running>,
    /// The running Central's state (`None` while stopped).
    state: Option<AppState>,
    /// The card processor Central talks to (the simulator; it outlives Central's restarts).
    sim: kassa_processor_sim::SimHandle,
    /// Central's default per-user request limits instead of the tests' generous ones.
    rate_limited: bool,
}

struct Running {
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// How long Central waits for the processor here: the simulator's `pm_sim_timeout` holds its
/// answer for 30 s, so Central answers 502 `processor_unavailable` after this.
pub const PROCESSOR_TIMEOUT: Duration = Duration::from_secs(1);

fn config(database_url: String, processor_url: &str, rate_limited: bool) -> Config {
    let defaults = Config::default();
    let (user_requests_per_second, user_requests_burst) = if rate_limited {
        (
            defaults.user_requests_per_second,
            defaults.user_requests_burst,
        )
    } else {
        (100_000, 100_000)
    };
    Config {
        database_url,
        user_requests_per_second,
        user_requests_burst,
        processor_url: Some(processor_url.to_owned()),
        webhook_secret: Some(kassa_central::config::Secret::new("whsec_demo")),
        processor_timeout: PROCESSOR_TIMEOUT,
        login_per_ip_per_minute: 10_000,
        login_per_username_per_minute: 10_000,
        db_connections_max: 8,
        // A request cut off mid-way leaves its Idempotency-Key in flight until the lease ends
        // (60 s by default); the register retries until then. Short here to keep tests short.
        idempotency_lease: Duration::from_secs(2),
        ..Config::default()
    }
}

impl Central {
    pub async fn start() -> Central {
        Self::start_with(false).await
    }

    /// A Central with its default per-user request limits (50/s, burst 200).
    pub async fn start_rate_limited() -> Central {
        Self::start_with(true).await
    }

    async fn start_with(rate_limited: bool) -> Central {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("central.db").display());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sim = kassa_processor_sim::spawn(kassa_processor_sim::SimConfig::default())
            .await
            .unwrap();
        sim.set_webhook_url(Some(format!(
            "http://127.0.0.1:{port}/v1/webhooks/payments"
        )));
        let state = kassa_central::build_state(config(url.clone(), &sim.base_url, rate_limited))
            .await
            .unwrap();
        let running = serve(listener, state.clone());
        Central {
            _dir: dir,
            url,
            port,
            running: Some(running),
            state: Some(state),
            sim,
            rate_limited,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The processor simulator Central talks to.
    pub fn sim(&self) -> &kassa_processor_sim::SimHandle {
        &self.sim
    }

    pub fn state(&self) -> &AppState {
        self.state.as_ref().expect("Central is running")
    }

    /// Stops serving: requests in flight finish, new connections are refused.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
            let mut task = running.task;
            if tokio::time::timeout(Duration::from_secs(10), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        // Like a process exit: every connection closes, every lock is released.
        if let Some(state) = self.state.take() {
            state.db.pool().close().await;
        }
    }

    /// Starts again on the same database and port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let state = start_state(&self.url, &self.sim.base_url, self.rate_limited).await;
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(e) if tries < 50 => {
                    tries += 1;
                    tracing::debug!(%e, "port busy, retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rebinding port {}: {e}", self.port),
            }
        };
        self.running = Some(serve(listener, state.clone()));
        self.state = Some(state);
    }

    /// Counts rows at Central with a scalar SQL query.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(self.state().db.pool())
            .await
            .unwrap()
    }
}

/// Builds Central's state on an existing database; a lock left by the stopped instance's
/// dropped connections may take a moment to go (bounded retries).
async fn start_state(url: &str, processor_url: &str, rate_limited: bool) -> AppState {
    let mut last = None;
    for _ in 0..5 {
        match kassa_central::build_state(config(url.to_owned(), processor_url, rate_limited)).await
        {
            Ok(state) => return state,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("restarting Central: {last:?}")
}

fn serve(listener: TcpListener, state: AppState) -> Running {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        kassa_central::serve(listener, state, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running { shutdown: tx, task }
}

/// A TCP proxy between the register and Central that can cut every connection at once (a
/// broken link, or Central dying mid-request as far as the register can tell).
pub struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<JoinSet<()>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn(accept_loop(listener, upstream, up.clone(), conns.clone()));
        Proxy {
            port,
            up,
            conns,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.conns.lock().unwrap().abort_all();
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.conns.lock().unwrap().abort_all();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<JoinSet<()>>>,
) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        if !up.load(Ordering::SeqCst) {
            continue;
        }
        let mut set = conns.lock().unwrap();
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// A Central with a store, staff and products, and a proxy in front of it.
pub struct Shop {
    pub central: Central,
    pub proxy: Proxy,
    pub http: reqwest::Client,
    pub manager_token: String,
    pub products: Vec<Product>,
}

pub fn eur(amount: &str) -> Money {
    Money::parse(amount, Currency::EUR).unwrap()
}

pub fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

/// An EAN-13 for product `n`.
pub fn barcode(n: u32) -> Barcode {
    Barcode::ean13_from_body(&format!("40{n:010}")).unwrap()
}

/// SKU-1 … SKU-n with prices 1.10, 2.20, …; odd ones at the reduced tax rate.
pub fn product_input(n: u32) -> ProductInput {
    ProductInput {
        sku: sku(&format!("SKU-{n}")),
        barcodes: vec![barcode(n)],
        name: format!("Product {n} mug"),
        description: String::new(),
        category: "kitchen".into(),
        brand: "Acme".into(),
        price: Money::from_minor(110 * i64::from(n), Currency::EUR),
        tax_class: if n % 2 == 1 {
            TaxClass::Reduced
        } else {
            TaxClass::Standard
        },
        attributes: BTreeMap::new(),
        archived: false,
    }
}

/// Logs to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=kassa_central=debug`).
fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

impl Shop {
    /// Central with STORE-1, an admin, `manager` and `cashier`, `products` products with
    /// [`STOCK`] units each.
    pub async fn open(products: u32) -> Shop {
        let mut shop = Shop::staffed(Central::start().await).await;
        for n in 1..=products {
            let product = shop.create_product(&product_input(n)).await;
            shop.receive(&product.sku, STOCK).await;
            shop.products.push(product);
        }
        shop
    }

    /// A Central with its default per-user rate limits and `products` products written straight
    /// to its store (no stock received, `products` left empty): a big catalog, quickly.
    pub async fn open_big(products: u32) -> Shop {
        let shop = Shop::staffed(Central::start_rate_limited().await).await;
        let inputs: Vec<ProductInput> = (1..=products).map(product_input).collect();
        kassa_central::store::catalog::insert_many(&shop.central.state().db, &inputs)
            .await
            .unwrap();
        shop
    }

    /// STORE-1, an admin, `manager` and `cashier` on `central`, the manager signed in.
    async fn staffed(central: Central) -> Shop {
        init_logs();
        let proxy = Proxy::start(central.port()).await;
        let http = reqwest::Client::new();
        for (name, role) in [
            ("admin", Role::Admin),
            ("manager", Role::Manager),
            ("cashier", Role::Cashier),
        ] {
            let hash = kassa_central::auth::hash_password(PASSWORD.into())
                .await
                .unwrap();
            kassa_central::store::users::insert(
                &central.state().db,
                &Username::parse(name).unwrap(),
                &hash,
                role,
            )
            .await
            .unwrap();
        }
        kassa_central::store::locations::insert(&central.state().db, LOCATION, "Main street")
            .await
            .unwrap();
        let mut shop = Shop {
            manager_token: String::new(),
            central,
            proxy,
            http,
            products: Vec::new(),
        };
        shop.manager_token = shop.login("manager").await;
        shop
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.central.base(), path)
    }

    pub async fn login(&self, username: &str) -> String {
        let response = self
            .http
            .post(self.url("/v1/auth/login"))
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn create_product(&self, input: &ProductInput) -> Product {
        let response = self
            .http
            .post(self.url("/v1/products"))
            .bearer_auth(&self.manager_token)
            .json(input)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// A change made at Central directly (another manager, the back office).
    pub async fn update_product(&self, product: &Product, input: &ProductInput) -> Product {
        let response = self
            .http
            .put(self.url(&format!("/v1/products/{}", product.id)))
            .bearer_auth(&self.manager_token)
            .header("If-Match", format!("\"{}\"", product.version))
            .json(input)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    pub async fn receive(&self, sku: &Sku, qty: i64) {
        let response = self
            .http
            .post(self.url("/v1/stock/adjustments"))
            .bearer_auth(&self.manager_token)
            .json(&json!({ "sku": sku, "location": LOCATION, "delta": qty, "reason": "receiving" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }

    /// What Central answers a manager's `GET path`.
    pub async fn manager_get(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.manager_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Central's stock of a SKU at STORE-1: (on_hand, available).
    pub async fn stock(&self, sku: &Sku) -> (i64, i64) {
        let level = self
            .manager_get(&format!("/v1/stock/{sku}?location={LOCATION}"))
            .await;
        (
            level["on_hand"].as_i64().unwrap(),
            level["available"].as_i64().unwrap(),
        )
    }

    pub async fn order(&self, id: uuid::Uuid) -> Option<Order> {
        let response = self
            .http
            .get(self.url(&format!("/v1/orders/{id}")))
            .bearer_auth(&self.manager_token)
            .send()
            .await
            .unwrap();
        if response.status() == 404 {
            return None;
        }
        Some(response.json().await.unwrap())
    }

    /// A new register at STORE-1 (code `code`), paired, with the cashier signed in.
    pub async fn register(&self, dir: &tempfile::TempDir, code: &str) -> Register {
        self.register_with(dir, code, Arc::new(MemoryStore::default()))
            .await
    }

    /// [`Shop::register`] keeping its secrets in `secrets` (to reopen it later).
    pub async fn register_with(
        &self,
        dir: &tempfile::TempDir,
        code: &str,
        secrets: Arc<dyn kassa_register::secrets::SecretStore>,
    ) -> Register {
        let register = open_register(dir, &self.proxy.url(), secrets).await;
        register
            .pair("manager", PASSWORD, LOCATION, code)
            .await
            .unwrap();
        register.sign_in("cashier", PASSWORD).await.unwrap();
        open_shift(&register).await;
        register
    }

    /// [`Shop::register`] with no shift open yet.
    pub async fn register_without_shift(&self, dir: &tempfile::TempDir, code: &str) -> Register {
        let secrets = Arc::new(MemoryStore::default());
        let register = open_register(dir, &self.proxy.url(), secrets).await;
        register
            .pair("manager", PASSWORD, LOCATION, code)
            .await
            .unwrap();
        register.sign_in("cashier", PASSWORD).await.unwrap();
        register
    }

    /// [`Shop::register`] with its configuration changed by `tweak` (card terminal, limits).
    pub async fn register_tweaked(
        &self,
        dir: &tempfile::TempDir,
        code: &str,
        secrets: Arc<dyn kassa_register::secrets::SecretStore>,
        tweak: impl FnOnce(&mut RegisterConfig),
    ) -> Register {
        let register = open_register_with(dir, &self.proxy.url(), secrets, tweak).await;
        register
            .pair("manager", PASSWORD, LOCATION, code)
            .await
            .unwrap();
        register.sign_in("cashier", PASSWORD).await.unwrap();
        open_shift(&register).await;
        register
    }

    /// Stops Central as the register sees it: connections cut, then the server stopped.
    pub async fn go_offline(&mut self) {
        self.proxy.cut();
        self.central.stop().await;
    }

    /// [`Shop::go_offline`], and the register has noticed (its sales are offline sales).
    pub async fn go_offline_for(&mut self, register: &Register) {
        self.go_offline().await;
        assert!(register.sync_now().await.is_err());
        assert!(!register.sync_status().online);
    }

    pub async fn go_online(&mut self) {
        self.central.restart().await;
        self.proxy.restore();
    }
}

pub async fn open_register(
    dir: &tempfile::TempDir,
    central: &str,
    secrets: Arc<dyn kassa_register::secrets::SecretStore>,
) -> Register {
    open_register_with(dir, central, secrets, |_| {}).await
}

/// [`open_register`] with its configuration changed by `tweak`.
pub async fn open_register_with(
    dir: &tempfile::TempDir,
    central: &str,
    secrets: Arc<dyn kassa_register::secrets::SecretStore>,
    tweak: impl FnOnce(&mut RegisterConfig),
) -> Register {
    let mut config = RegisterConfig::new(dir.path().join("register.db"), central);
    config.timeouts = Timeouts {
        connect: Duration::from_secs(1),
        request: Duration::from_secs(5),
    };
    config.sync = SyncConfig {
        interval: Duration::from_millis(200),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(300),
        stock_skus_per_round: 200,
        lease_window: None,
    };
    tweak(&mut config);
    Register::open(config, secrets).await.unwrap()
}

/// Opens a shift with a float of 100.00 (selling needs one).
pub async fn open_shift(register: &Register) {
    let float = kassa_domain::CashCount::Sum {
        amount: eur("100.00"),
    };
    register.open_shift(&float).await.unwrap();
}

/// Runs sync rounds until one succeeds with nothing pending (bounded: 20 s).
pub async fn sync_until_drained(register: &Register) {
    for _ in 0..400 {
        if register.sync_now().await.is_ok() && register.sync_status().pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the outbox did not drain: {:?}", register.sync_status());
}

/// Scans `codes` into the open cart and pays cash with `tendered`.
pub async fn sell(
    register: &Register,
    products: &[&Product],
    tendered: &str,
) -> kassa_register::sale::Receipt {
    for product in products {
        register.scan(product.barcodes[0].as_str()).await.unwrap();
    }
    register.pay_cash(eur(tendered)).await.unwrap()
}

/// Asserts that the core refused a cashier a manager's action, naming the role.
pub fn assert_refused_to_a_cashier(refusal: Option<kassa_register::Error>) {
    match refusal {
        Some(kassa_register::Error::Forbidden(message)) => {
            assert!(message.contains("only a manager may"), "{message}");
            assert!(message.contains("cashier"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Every test here finishes in well under this, or fails with a clear message (never hangs CI).
const TEST_TIME_MAX: Duration = Duration::from_secs(120);

/// Runs a test body with [`TEST_TIME_MAX`] as its bound.
pub async fn bounded(body: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(TEST_TIME_MAX, body).await.is_err() {
        panic!("the test took more than {TEST_TIME_MAX:?}");
    }
}
