//! The crash story: the real `kassa-central` binary is killed with SIGKILL twice in the middle of
//! a run of checkouts whose clients retry the same idempotency keys, and restarted on the same
//! database. When the clients are done, every order a client saw acknowledged (201) exists once,
//! no key gave two orders, the reserved units are the orders' units and the ledger balances.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa_central::store::{Db, PoolLimits};
use kassa_domain::api::{Order, TokenResponse};
use serde_json::{json, Value};

use crate::catalog::{ean, product_body};
use crate::helpers::PgCluster;

const CLIENTS: usize = 6;
const CHECKOUTS_PER_CLIENT: usize = 20;
/// Kills happen when this share of the checkouts has been acknowledged: 1/3, then 2/3.
const KILLS: usize = 2;
/// The whole story must end well within this (both restarts included).
const DEADLINE: Duration = Duration::from_secs(50);
const PASSWORD: &str = "crash test password";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("central.db").display());
    a_crash_mid_checkout_loses_no_acknowledged_order_and_doubles_none(&url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres() {
    let Some(cluster) = PgCluster::shared() else {
        return;
    };
    let url = cluster.create_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    a_crash_mid_checkout_loses_no_acknowledged_order_and_doubles_none(&url, dir.path()).await;
}

/// The real binary, serving on a fixed port; killed (SIGKILL) when dropped.
struct Central {
    child: Option<Child>,
    url: String,
    port: u16,
    log: PathBuf,
}

impl Central {
    /// Beside the log, in the test's temp dir.
    fn search_dir(&self) -> PathBuf {
        self.log.with_file_name("central.search")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kassa-central"));
        cmd.args(args)
            .env("KASSA_DATABASE_URL", &self.url)
            .env("KASSA_SEARCH_DIR", self.search_dir())
            .env("KASSA_BIND", format!("127.0.0.1:{}", self.port))
            // A claim left in flight by the killed process is taken over after this.
            .env("KASSA_IDEMPOTENCY_LEASE_S", "1")
            .env("KASSA_USER_REQUESTS_PER_SECOND", "100000")
            .env("KASSA_USER_REQUESTS_BURST", "100000")
            .env("KASSA_DB_CONNECTIONS_MAX", "8")
            .env("KASSA_PASSWORD", PASSWORD)
            .env("RUST_LOG", "warn");
        cmd
    }

    fn add_admin(&self) {
        let out = self
            .command(&["user", "add", "--username", "crashadmin", "--role", "admin"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "user add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn start(&mut self, http: &reqwest::Client) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = self
            .command(&["serve"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let health = format!("{}/health", self.base());
        let started = Instant::now();
        while !http
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "Central did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown hook, no flush, in-flight requests die mid-transaction.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: String = log.lines().rev().take(40).collect::<Vec<_>>().join("\n");
            eprintln!("--- kassa-central log, last lines reversed ---\n{tail}");
        }
    }
}

/// Location STORE-1 and SKU-1 with plenty on hand; returns the admin's access token.
async fn seed(http: &reqwest::Client, base: &str) -> String {
    let login = json!({ "username": "crashadmin", "password": PASSWORD });
    let tokens: TokenResponse = http
        .post(format!("{base}/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens.access_token;
    for (path, body) in [
        ("/v1/locations", json!({ "code": "STORE-1", "name": "One" })),
        ("/v1/products", product_body("SKU-1", &ean(1), "2.50")),
        (
            "/v1/stock/adjustments",
            json!({ "sku": "SKU-1", "location": "STORE-1", "delta": 100_000, "reason": "receiving" }),
        ),
    ] {
        let response = http
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "seeding {path}");
    }
    token
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    acknowledged: AtomicUsize,
    retries: AtomicUsize,
}

/// Posts one checkout until Central acknowledges it, retrying the same key on connection
/// errors, 5xx and `idempotency_in_flight` (a claim the killed process left behind).
async fn checkout(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
    body: &Value,
    tally: &Tally,
) -> Order {
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < DEADLINE,
            "checkout {key} never acknowledged"
        );
        let sent = http
            .post(format!("{base}/v1/orders"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await;
        if let Ok(response) = sent {
            let status = response.status().as_u16();
            // The body may be cut off by the kill, too: that is a retry as well.
            if let Ok(text) = response.text().await {
                match status {
                    201 => return serde_json::from_str(&text).unwrap(),
                    409 if text.contains("idempotency_in_flight") => {}
                    500..=599 => {}
                    other => panic!("checkout {key}: unexpected {other}: {text}"),
                }
            }
        }
        tally.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One client's run: its own keys, quantities 1 to 3; returns (key, qty, acknowledged order).
async fn client_run(
    http: reqwest::Client,
    base: String,
    token: String,
    client: usize,
    tally: Arc<Tally>,
) -> Vec<(String, u32, Order)> {
    let mut seen = Vec::with_capacity(CHECKOUTS_PER_CLIENT);
    for n in 0..CHECKOUTS_PER_CLIENT {
        let key = format!("crash-{client}-{n}");
        let qty = u32::try_from(1 + (client + n) % 3).unwrap();
        let body = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": qty }] });
        let order = checkout(&http, &base, &token, &key, &body, &tally).await;
        tally.acknowledged.fetch_add(1, Ordering::Relaxed);
        seen.push((key, qty, order));
    }
    seen
}

async fn a_crash_mid_checkout_loses_no_acknowledged_order_and_doubles_none(url: &str, dir: &Path) {
    let started = Instant::now();
    let http = reqwest::Client::new();
    let mut central = Central {
        child: None,
        url: url.to_owned(),
        port: kassa_central::devtools::free_port(),
        log: dir.join("central.log"),
    };
    central.add_admin();
    central.start(&http).await;
    let base = central.base();
    let token = seed(&http, &base).await;

    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let run = client_run(http.clone(), base.clone(), token.clone(), c, tally.clone());
            tokio::spawn(run)
        })
        .collect();
    let total = CLIENTS * CHECKOUTS_PER_CLIENT;
    for kill in 1..=KILLS {
        while tally.acknowledged.load(Ordering::Relaxed) < total * kill / (KILLS + 1) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        central.kill();
        tokio::time::sleep(Duration::from_millis(200)).await;
        central.start(&http).await;
    }
    let mut seen = Vec::new();
    for client in clients {
        seen.extend(client.await.unwrap());
    }
    central.kill();
    assert!(
        tally.retries.load(Ordering::Relaxed) > 0,
        "the kills hit clients mid-run"
    );
    assert_books(url, &seen).await;
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
}

/// Reads the database the killed processes left and checks it against what clients saw.
async fn assert_books(url: &str, seen: &[(String, u32, Order)]) {
    let db = Db::connect(url, &PoolLimits::default()).await.unwrap();
    assert_eq!(seen.len(), CLIENTS * CHECKOUTS_PER_CLIENT);
    let acknowledged: BTreeSet<String> = seen.iter().map(|(_, _, o)| o.id.to_string()).collect();
    assert_eq!(
        acknowledged.len(),
        seen.len(),
        "every key got its own order"
    );
    let stored: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM orders")
        .fetch_all(db.pool())
        .await
        .unwrap();
    let stored_ids: BTreeSet<String> = stored.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        stored_ids, acknowledged,
        "every acknowledged order exists, and no other"
    );
    assert!(stored.iter().all(|(_, status)| status == "RESERVED"));
    let bodies: BTreeMap<String, Option<String>> =
        sqlx::query_as("SELECT key, response_body FROM idempotency_keys")
            .fetch_all(db.pool())
            .await
            .unwrap()
            .into_iter()
            .collect();
    for (key, _, order) in seen {
        let body = bodies[key].as_deref().expect("every key has its response");
        let kept: Order = serde_json::from_str(body).unwrap();
        assert_eq!(
            kept.id, order.id,
            "key {key} maps to the order its client saw"
        );
    }
    let units: i64 = seen.iter().map(|(_, qty, _)| i64::from(*qty)).sum();
    let (on_hand, reserved): (i64, i64) =
        sqlx::query_as("SELECT on_hand, reserved FROM stock WHERE sku = 'SKU-1'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(reserved, units, "reserved units are the orders' units");
    let location: String = sqlx::query_scalar("SELECT id FROM locations WHERE code = 'STORE-1'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let ledger = kassa_central::store::stock::ledger_sum(&db, "SKU-1", &location)
        .await
        .unwrap();
    assert_eq!((ledger, on_hand), (100_000, 100_000), "the ledger balances");
}
