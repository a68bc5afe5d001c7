//! Instances leave while 8 clients place orders through HAProxy (`deploy/haproxy.cfg`): SIGTERM
//! loses no request; `kill -9` loses none the clients cannot retry with their Idempotency-Keys,
//! and every acknowledged order exists exactly once, with no oversell; the relay lease moves to
//! a living instance and every event reaches the NATS stream once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kassa_central::devtools::cluster::{CentralProcess, HaProxy};
use kassa_central::devtools::NatsServer;
use kassa_central::events::nats::{NatsSettings, NatsSink};

use crate::harness::{self, balancer, client, env_with, login};

/// The scarce SKUs every client orders from, at STORE-1 (40 units each in the demo store, fewer
/// after its order history: they run out midway through a story).
const SCARCE: [&str; 8] = [
    "DEMO-0001",
    "DEMO-0002",
    "DEMO-0003",
    "DEMO-0004",
    "DEMO-0005",
    "DEMO-0006",
    "DEMO-0007",
    "DEMO-0008",
];
const CLIENTS: usize = 8;
/// Bound on one order's retries (a retry waits 100 ms).
const ATTEMPTS_MAX: usize = 100;

/// What one client saw.
#[derive(Debug, Default)]
struct Seen {
    /// Order ids acknowledged (201 or its replay), one per key.
    orders: Vec<String>,
    /// Keys refused for lack of stock (409 insufficient_stock).
    refused: usize,
    /// Reads answered 200.
    reads: usize,
    /// Every answer that was not a success, with what was asked (the SIGTERM story wants none).
    failures: Vec<String>,
}

/// Orders one unit of `sku` with `key`, retrying (same key) on a failure when `retry`; `Ok(Some(id))`
/// acknowledged, `Ok(None)` refused for stock, `Err` the failure that was not retried.
async fn place_order(
    c: &reqwest::Client,
    lb: &str,
    token: &str,
    key: &str,
    sku: &str,
    retry: bool,
) -> Result<Option<String>, String> {
    let body = serde_json::json!({"location": "STORE-1", "lines": [{"sku": sku, "qty": 1}]});
    let mut last = String::new();
    for _ in 0..ATTEMPTS_MAX {
        let sent = c
            .post(format!("{lb}/v1/orders"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                match status {
                    201 => {
                        let order: serde_json::Value = serde_json::from_str(&text).unwrap();
                        return Ok(Some(order["id"].as_str().unwrap().to_owned()));
                    }
                    409 if text.contains("insufficient_stock") => return Ok(None),
                    _ => last = format!("{key}: {status} {text}"),
                }
            }
            Err(e) => last = format!("{key}: {e}"),
        }
        if !retry {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{last} (after {ATTEMPTS_MAX} attempts)"))
}

/// One client: an order then a catalog read, again and again until `stop`.
async fn shop(
    lb: String,
    token: String,
    client_no: usize,
    stop: Arc<AtomicBool>,
    retry: bool,
) -> Seen {
    let c = client();
    let mut seen = Seen::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("lb-{client_no}-{n}");
        let sku = SCARCE[(client_no + n) % SCARCE.len()];
        match place_order(&c, &lb, &token, &key, sku, retry).await {
            Ok(Some(id)) => seen.orders.push(id),
            Ok(None) => seen.refused += 1,
            Err(failure) => seen.failures.push(failure),
        }
        match c
            .get(format!("{lb}/v1/products?limit=5"))
            .bearer_auth(&token)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => seen.reads += 1,
            Ok(r) => seen.failures.push(format!("read: {}", r.status())),
            Err(e) => seen.failures.push(format!("read: {e}")),
        }
        n += 1;
    }
    seen
}

/// Runs the clients for `run`, calling `disturb` after `at`; what each saw.
async fn under_load(
    lb: &str,
    token: &str,
    retry: bool,
    run: Duration,
    at: Duration,
    disturb: impl FnOnce(),
) -> Vec<Seen> {
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(shop(
                lb.to_owned(),
                token.to_owned(),
                i,
                stop.clone(),
                retry,
            ))
        })
        .collect();
    tokio::time::sleep(at).await;
    disturb();
    tokio::time::sleep(run.saturating_sub(at)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for client in clients {
        seen.push(client.await.unwrap());
    }
    seen
}

/// Every acknowledged order is in the database once, and nothing else was ordered; no SKU is
/// oversold.
async fn assert_exactly_once_and_no_oversell(database_url: &str, seen: &[Seen]) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let acknowledged: Vec<&String> = seen.iter().flat_map(|s| s.orders.iter()).collect();
    let distinct: std::collections::HashSet<&String> = acknowledged.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        acknowledged.len(),
        "one order id acknowledged twice"
    );
    let mut conn = sqlx::AnyConnection::connect(database_url).await.unwrap();
    let lines: Vec<(String, i64)> = sqlx::query_as(
        "SELECT o.id, l.qty FROM orders o JOIN order_lines l ON l.order_id = o.id \
         WHERE o.location_id = (SELECT id FROM locations WHERE code = 'STORE-1') \
         AND l.sku BETWEEN 'DEMO-0001' AND 'DEMO-0008' \
         AND o.status = 'RESERVED'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let in_db: std::collections::HashSet<&String> = lines.iter().map(|(id, _)| id).collect();
    assert_eq!(in_db.len(), lines.len(), "an order with two lines");
    assert_eq!(
        in_db, distinct,
        "the orders in the database are not exactly the acknowledged ones"
    );
    for sku in SCARCE {
        let (on_hand, reserved): (i64, i64) = sqlx::query_as(
            "SELECT on_hand, reserved FROM stock WHERE sku = $1 \
             AND location_id = (SELECT id FROM locations WHERE code = 'STORE-1')",
        )
        .bind(sku)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(
            reserved <= on_hand,
            "{sku} oversold: {reserved} of {on_hand}"
        );
    }
    let reserved: i64 = lines.iter().map(|(_, qty)| qty).sum();
    assert_eq!(
        usize::try_from(reserved).unwrap(),
        acknowledged.len(),
        "one unit reserved per acknowledged order"
    );
}

/// A cluster of three with the demo store, HAProxy in front, and the cashier's token; with
/// `extra` settings.
async fn three_behind_haproxy(
    extra: &[(&'static str, String)],
) -> Option<(String, Vec<CentralProcess>, HaProxy, String)> {
    let url = harness::postgres_database().await?;
    harness::load_demo(&url);
    let mut env = env_with(
        &url,
        &[
            ("KASSA_SHUTDOWN_DRAIN_MS", "1500".into()),
            ("KASSA_SHUTDOWN_GRACE_MS", "10000".into()),
            // A key whose instance died mid-request is "in flight" (409) until this passes;
            // then the client's retry does the work (short, so the story's retries see it).
            ("KASSA_IDEMPOTENCY_LEASE_S", "3".into()),
        ],
    );
    env.extend_from_slice(extra);
    let instances = harness::start_instances(3, &env).await;
    let lb = balancer(&instances)?;
    // Wait for HAProxy's health checks to see all three up.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let tokens = login(&client(), &lb.url(), "cashier", "cashier-pass-1").await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    Some((url, instances, lb, token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_of_one_instance_under_load_through_haproxy_fails_no_request() {
    let Some((url, mut instances, lb, token)) = three_behind_haproxy(&[]).await else {
        return;
    };
    let pid = instances[1].pid();
    let seen = under_load(
        &lb.url(),
        &token,
        false,
        Duration::from_secs(7),
        Duration::from_secs(2),
        || {
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap();
        },
    )
    .await;
    let failures: Vec<&String> = seen.iter().flat_map(|s| s.failures.iter()).collect();
    let orders: usize = seen.iter().map(|s| s.orders.len()).sum();
    let reads: usize = seen.iter().map(|s| s.reads).sum();
    eprintln!(
        "SIGTERM under load: {orders} orders, {reads} reads, {} failures",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} requests failed during a SIGTERM (of {orders} orders, {reads} reads): {failures:?}",
        failures.len()
    );
    assert!(
        orders > 20 && reads > 20,
        "too little load: {orders} orders, {reads} reads"
    );
    let status = instances[1]
        .wait_exit(Duration::from_secs(15))
        .await
        .unwrap();
    assert!(status.success(), "the instance exited with {status}");
    let log = instances[1].log();
    assert!(log.contains("/ready answers 503"), "{log}");
    assert!(log.contains("relay stopped, its lease released"), "{log}");
    assert_exactly_once_and_no_oversell(&url, &seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_one_instance_under_load_loses_no_acknowledged_order_and_oversells_nothing() {
    let Some(nats) = NatsServer::shared() else {
        return;
    };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let settings = NatsSettings {
        stream: format!("T_{tag}"),
        subject_prefix: format!("t{tag}"),
        replicas: 1,
        duplicate_window: Duration::from_secs(120),
        ack_timeout: Duration::from_secs(5),
        publish_attempts_max: 3,
    };
    let relay_env = [
        ("KASSA_NATS_URL", nats.url()),
        ("KASSA_NATS_STREAM", settings.stream.clone()),
        ("KASSA_NATS_SUBJECT_PREFIX", settings.subject_prefix.clone()),
        ("KASSA_RELAY_LEASE_TTL_MS", "2000".into()),
    ];
    let Some((url, instances, lb, token)) = three_behind_haproxy(&relay_env).await else {
        return;
    };
    // The victim is the instance whose relay holds the lease once events flow.
    let c = client();
    place_order(&c, &lb.url(), &token, "warm-up", "DEMO-0100", true)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let victim = loop {
        let holder = lease_holder(&url).await;
        if let Some(i) = (!holder.is_empty())
            .then(|| instances.iter().position(|i| i.log().contains(&holder)))
            .flatten()
        {
            break i;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no relay took the lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first_holder = lease_holder(&url).await;
    let pid = instances[victim].pid();
    let seen = under_load(
        &lb.url(),
        &token,
        true,
        Duration::from_secs(7),
        Duration::from_secs(2),
        || {
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
        },
    )
    .await;
    let failures: Vec<&String> = seen.iter().flat_map(|s| s.failures.iter()).collect();
    let orders: usize = seen.iter().map(|s| s.orders.len()).sum();
    let refused: usize = seen.iter().map(|s| s.refused).sum();
    eprintln!(
        "kill -9 under load: {orders} orders acknowledged, {refused} refused for stock, {} reads failed",
        failures.len()
    );
    // Reads are not retried: a few may fail in the kill's window; orders never.
    assert!(
        failures.iter().all(|f| f.starts_with("read: ")),
        "orders failed even with retries: {failures:?}"
    );
    assert!(
        orders > 20,
        "too little load: {orders} orders ({refused} refused)"
    );
    assert_exactly_once_and_no_oversell(&url, &seen).await;

    // The lease moved to a living instance, which delivered the rest: every event is in the
    // stream once. (The scarce stock may have run out before the kill: one more order makes
    // sure there is something to deliver after it.)
    place_order(&c, &lb.url(), &token, "after-the-kill", "DEMO-0101", true)
        .await
        .unwrap();
    let mut conn = connect(&url).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let undelivered: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE delivered_at IS NULL")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        if undelivered == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{undelivered} events never delivered after the kill"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let holder = lease_holder(&url).await;
    assert_ne!(holder, first_holder, "the relay lease did not move");
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let sink = NatsSink::connect(&nats.url(), settings).await.unwrap();
    let stored = sink.stored_events(1_000_000).await.unwrap();
    let ids: std::collections::HashSet<&str> = stored.iter().map(|m| m.msg_id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "an event is in the stream twice");
    assert_eq!(
        i64::try_from(stored.len()).unwrap(),
        events,
        "the stream does not hold every event once"
    );
    eprintln!("relay: {events} events, each once in the stream; the lease moved");
}

async fn connect(url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url).await.unwrap()
}

/// Who holds the relay lease (an instance's relay id, in its log).
async fn lease_holder(url: &str) -> String {
    let mut conn = connect(url).await;
    sqlx::query_scalar("SELECT holder FROM relay_leases WHERE name = 'outbox'")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}
