//! Event relay stories: every committed event is delivered, in order per aggregate, while writers
//! commit out of order; a crash between publish and mark-delivered re-delivers and consumers
//! ignore the duplicate; two racing relays give each event to a consumer once; with a real NATS
//! server every event lands in the stream once, in order per aggregate; the backlog shows at
//! /metrics; catalog writes record product events.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kassa_central::devtools::NatsServer;
use kassa_central::events::nats::{NatsSettings, NatsSink};
use kassa_central::events::{
    alerts, ApplyFuture, Consumer, Event, FailPoint, Relay, RelaySettings,
};
use kassa_central::store::{self, Tx};
use kassa_domain::api::Product;
use serde_json::json;
use uuid::Uuid;

use crate::catalog::{create, ean, product_body};
use crate::checkout::{count, receive, seed};
use crate::helpers::TestApp;
use crate::story;

story!(
    every_committed_event_is_delivered_once_in_order_per_aggregate,
    a_crash_between_publish_and_mark_delivered_redelivers_and_consumers_ignore_the_duplicate,
    two_relays_racing_deliver_each_event_to_a_consumer_once,
    a_late_commit_with_a_smaller_seq_is_still_delivered,
    only_the_lease_holder_delivers,
    the_background_relay_drains_the_outbox_and_raises_stock_alerts,
    catalog_writes_record_product_events,
    the_relay_backlog_and_lag_appear_at_metrics,
    with_nats_every_event_lands_in_the_stream_once_in_order_per_aggregate,
);

/// Records what the relay offered and what it applied.
#[derive(Debug, Default)]
struct Recorder {
    offered: AtomicUsize,
    applied: Mutex<Vec<Event>>,
}

impl Consumer for Recorder {
    fn name(&self) -> &'static str {
        "test-recorder"
    }
    fn wants(&self, _event: &Event) -> bool {
        self.offered.fetch_add(1, Ordering::SeqCst);
        true
    }
    fn apply<'a>(&'a self, _tx: &'a mut Tx, event: &'a Event) -> ApplyFuture<'a> {
        self.applied.lock().unwrap().push(event.clone());
        Box::pin(async { Ok(()) })
    }
}

impl Recorder {
    fn applied(&self) -> Vec<Event> {
        self.applied.lock().unwrap().clone()
    }
}

fn settings(batch_events_max: usize) -> RelaySettings {
    RelaySettings {
        batch_events_max,
        ..RelaySettings::default()
    }
}

/// A relay on `db` with the recorder and the stock-alerts consumer.
fn relay(db: store::Db, batch: usize, recorder: &Arc<Recorder>) -> Relay {
    Relay::new(
        db,
        settings(batch),
        vec![recorder.clone(), Arc::new(alerts::StockAlerts)],
    )
}

async fn all_events(app: &TestApp) -> Vec<(i64, Uuid, String)> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT seq, id, aggregate_type || ':' || aggregate_id FROM events ORDER BY seq",
    )
    .fetch_all(app.state.db.pool())
    .await
    .unwrap();
    rows.into_iter()
        .map(|(seq, id, aggregate)| (seq, id.parse().unwrap(), aggregate))
        .collect()
}

async fn put_product(app: &TestApp, token: &str, product: &Product, name: &str) -> Product {
    let mut body = product_body(product.sku.as_ref(), &ean(9_000), "1.00");
    body["barcodes"] = json!(product.barcodes);
    body["name"] = json!(name);
    let response = app
        .client
        .put(app.url(&format!("/v1/products/{}", product.id)))
        .bearer_auth(token)
        .header("if-match", format!("\"{}\"", product.version))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// A shop busy with 8 concurrent writers (products created and edited twice, stock moved), and
/// `SKU-1` falling below its threshold once. Returns the admin's token.
async fn busy_shop(app: &TestApp) -> String {
    let token = seed(app, 10).await;
    let threshold = json!({ "location": "STORE-1", "threshold": 5 });
    let set = app
        .client
        .put(app.url("/v1/stock/SKU-1/threshold"))
        .bearer_auth(&token)
        .json(&threshold)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let writers = (0..8_u64).map(|w| {
        let token = token.clone();
        async move {
            let sku = format!("EV-{w}");
            let product = create(app, &token, &product_body(&sku, &ean(100 + w), "3.00")).await;
            let product = put_product(app, &token, &product, "Edited once").await;
            put_product(app, &token, &product, "Edited twice").await;
            receive(app, &token, &sku, 5).await;
            let body = json!({ "sku": "SKU-1", "location": "STORE-1", "delta": -1, "reason": "adjustment" });
            let response = app.post("/v1/stock/adjustments", &token, &body).await;
            assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        }
    });
    futures::future::join_all(writers).await;
    token
}

/// Runs `relay.deliver_batch` in a loop until `stop`, like a relay racing the writers.
fn relay_while(relay: Relay, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            // Failures (a busy database) are retried, as the background task does.
            let _ = relay.deliver_batch(FailPoint::None).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// Drains like the background task: a failed step is retried, a bounded number of times.
async fn drain(relay: &Relay) {
    for _ in 0..50 {
        match relay.drain(10_000).await {
            Ok(_) => return,
            Err(e) => eprintln!("relay step failed, retrying: {e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the relay did not drain");
}

/// Each event applied once, all of them, and per aggregate in `seq` order.
fn assert_once_in_order(applied: &[Event], committed: &[(i64, Uuid, String)]) {
    let ids: Vec<Uuid> = applied.iter().map(|e| e.id).collect();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event was applied twice");
    let expected: HashSet<Uuid> = committed.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(
        unique, expected,
        "applied events differ from the committed ones"
    );
    let mut last: HashMap<String, i64> = HashMap::new();
    for event in applied {
        let aggregate = format!("{}:{}", event.aggregate_type, event.aggregate_id);
        if let Some(before) = last.insert(aggregate.clone(), event.seq) {
            assert!(
                before < event.seq,
                "{aggregate}: event {} came after {before}",
                event.seq
            );
        }
    }
}

async fn every_committed_event_is_delivered_once_in_order_per_aggregate(app: TestApp) {
    let recorder = Arc::new(Recorder::default());
    let racing = relay(app.state.db.clone(), 7, &recorder);
    let stop = Arc::new(AtomicBool::new(false));
    let task = relay_while(racing.clone(), stop.clone());
    busy_shop(&app).await;
    stop.store(true, Ordering::SeqCst);
    task.await.unwrap();
    drain(&racing).await;
    let committed = all_events(&app).await;
    assert!(committed.len() > 40, "the workload writes events");
    assert_once_in_order(&recorder.applied(), &committed);
    let (backlog, _) = racing.report_backlog().await.unwrap();
    assert_eq!(backlog, 0);
    let lows = count(&app, "SELECT COUNT(*) FROM events WHERE type = 'stock.low'").await;
    assert_eq!(lows, 1, "SKU-1 went below 5 once");
    let alerts = store::relay::alerts_for(&app.state.db, "SKU-1")
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!((alerts[0].available, alerts[0].threshold), (4, 5));
}

async fn a_crash_between_publish_and_mark_delivered_redelivers_and_consumers_ignore_the_duplicate(
    app: TestApp,
) {
    busy_shop(&app).await;
    let committed = all_events(&app).await;
    let recorder = Arc::new(Recorder::default());
    let relay = relay(app.state.db.clone(), 1_000, &recorder);
    let crashed = relay.deliver_batch(FailPoint::AfterPublish).await;
    assert!(crashed.is_err(), "the injected failure fails the step");
    assert_eq!(recorder.applied().len(), committed.len());
    let (backlog, _) = relay.report_backlog().await.unwrap();
    assert_eq!(
        backlog,
        i64::try_from(committed.len()).unwrap(),
        "nothing was marked delivered"
    );

    let delivered = relay.deliver_batch(FailPoint::None).await.unwrap();
    assert_eq!(delivered, committed.len(), "the batch is delivered again");
    assert_eq!(
        recorder.offered.load(Ordering::SeqCst),
        2 * committed.len(),
        "every event was offered twice"
    );
    assert_once_in_order(&recorder.applied(), &committed);
    assert_eq!(
        store::relay::alerts_for(&app.state.db, "SKU-1")
            .await
            .unwrap()
            .len(),
        1,
        "the alert is raised once"
    );
    assert_eq!(relay.drain(10).await.unwrap(), 0, "nothing is left");
}

async fn two_relays_racing_deliver_each_event_to_a_consumer_once(app: TestApp) {
    busy_shop(&app).await;
    let committed = all_events(&app).await;
    let recorder = Arc::new(Recorder::default());
    // The second relay has its own pool, as another Central instance would.
    let other_db = store::Db::connect(
        &app.state.config.database_url,
        &store::PoolLimits::default(),
    )
    .await
    .unwrap();
    let one = relay(app.state.db.clone(), 5, &recorder);
    let two = relay(other_db, 5, &recorder);
    tokio::join!(drain(&one), drain(&two));
    drain(&one).await;
    assert_once_in_order(&recorder.applied(), &committed);
    assert_eq!(
        store::relay::consumed_count(&app.state.db, alerts::NAME)
            .await
            .unwrap(),
        1
    );
}

/// The outbox gap, made on purpose: event A takes its `seq` first but commits after event B.
/// (SQLite has one writer at a time, so there the gap cannot happen and the story is trivial.)
async fn record(tx: &mut Tx, name: &str) -> Uuid {
    let payload = json!({ "name": name });
    store::events::record(tx, "test.happened", "test", name, &payload)
        .await
        .unwrap()
}

async fn a_late_commit_with_a_smaller_seq_is_still_delivered(app: TestApp) {
    let recorder = Arc::new(Recorder::default());
    let relay = relay(app.state.db.clone(), 100, &recorder);
    if app.state.db.backend() == store::Backend::Sqlite {
        let mut tx = app.state.db.begin_write().await.unwrap();
        record(&mut tx, "only").await;
        tx.commit().await.unwrap();
        assert_eq!(relay.drain(10).await.unwrap(), 1);
        return;
    }
    let mut late = app.state.db.begin_write().await.unwrap();
    let late_id = record(&mut late, "late").await;
    let mut early = app.state.db.begin_write().await.unwrap();
    let early_id = record(&mut early, "early").await;
    early.commit().await.unwrap();
    assert_eq!(relay.drain(10).await.unwrap(), 1, "only the committed one");
    late.commit().await.unwrap();
    assert_eq!(
        relay.drain(10).await.unwrap(),
        1,
        "the late one is not skipped"
    );
    let applied: Vec<(Uuid, i64)> = recorder.applied().iter().map(|e| (e.id, e.seq)).collect();
    assert_eq!(applied.len(), 2);
    assert_eq!((applied[0].0, applied[1].0), (early_id, late_id));
    assert!(
        applied[1].1 < applied[0].1,
        "the late event has the smaller seq"
    );
}

async fn only_the_lease_holder_delivers(app: TestApp) {
    seed(&app, 3).await;
    let recorder = Arc::new(Recorder::default());
    let one = relay(app.state.db.clone(), 1_000, &recorder);
    let two = relay(app.state.db.clone(), 1_000, &recorder);
    assert!(
        one.step().await.unwrap() > 0,
        "the first relay takes the lease"
    );
    receive_more(&app).await;
    assert_eq!(
        two.step().await.unwrap(),
        0,
        "the second waits for the lease"
    );
    assert!(
        one.step().await.unwrap() > 0,
        "the holder renews and goes on"
    );
    assert_eq!(one.drain(10).await.unwrap(), 0);
}

async fn the_background_relay_drains_the_outbox_and_raises_stock_alerts(app: TestApp) {
    let relay = kassa_central::events::spawn(app.state.db.clone(), &app.state.config);
    busy_shop(&app).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let check = Relay::new(app.state.db.clone(), settings(1), vec![]);
    loop {
        let (backlog, _) = check.report_backlog().await.unwrap();
        if backlog == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{backlog} events still undelivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.abort();
    let alerts = store::relay::alerts_for(&app.state.db, "SKU-1")
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1, "one stock.low, one alert");
}

async fn receive_more(app: &TestApp) {
    let admin = app.user(kassa_domain::Role::Admin).await;
    receive(app, admin.token(), "SKU-1", 1).await;
}

async fn catalog_writes_record_product_events(app: TestApp) {
    let admin = app.user(kassa_domain::Role::Admin).await;
    let product = create(
        &app,
        admin.token(),
        &product_body("CAT-1", &ean(77), "1.00"),
    )
    .await;
    let edited = put_product(&app, admin.token(), &product, "Renamed").await;
    let events = store::relay::undelivered(&app.state.db, 100).await.unwrap();
    let of_product: Vec<&Event> = events
        .iter()
        .filter(|e| e.aggregate_type == "product" && e.aggregate_id == product.id.to_string())
        .collect();
    let types: Vec<&str> = of_product.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["product.created", "product.updated"]);
    let payload = &of_product[1].payload;
    assert_eq!(payload["id"], json!(product.id));
    assert_eq!(payload["sku"], "CAT-1");
    assert_eq!(payload["version"], edited.version);
    assert_eq!(payload["change_seq"], edited.change_seq);
}

async fn the_relay_backlog_and_lag_appear_at_metrics(app: TestApp) {
    seed(&app, 1).await;
    let relay = Relay::new(app.state.db.clone(), settings(100), vec![]);
    let (backlog, _) = relay.report_backlog().await.unwrap();
    assert!(backlog > 0);
    relay.drain(10).await.unwrap();
    let body = app.client.get(app.url("/metrics")).send().await.unwrap();
    let text = body.text().await.unwrap();
    for name in [
        "kassa_relay_backlog_events",
        "kassa_relay_lag_seconds",
        "kassa_relay_delivered_events_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
}

/// A sink on the shared test server with a stream of its own; `None` when NATS is not installed.
async fn nats_sink() -> Option<NatsSink> {
    let server = NatsServer::shared()?;
    let tag = Uuid::new_v4().simple().to_string();
    let settings = NatsSettings {
        stream: format!("T_{tag}"),
        subject_prefix: format!("t{tag}"),
        replicas: 1,
        duplicate_window: Duration::from_secs(120),
        ack_timeout: Duration::from_secs(5),
        publish_attempts_max: 3,
    };
    Some(NatsSink::connect(&server.url(), settings).await.unwrap())
}

async fn with_nats_every_event_lands_in_the_stream_once_in_order_per_aggregate(app: TestApp) {
    let Some(sink) = nats_sink().await else {
        return;
    };
    let reader = sink.clone();
    let recorder = Arc::new(Recorder::default());
    let one = relay(app.state.db.clone(), 7, &recorder).with_nats(sink.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let task = relay_while(one.clone(), stop.clone());
    busy_shop(&app).await;
    stop.store(true, Ordering::SeqCst);
    task.await.unwrap();
    // More events, a crash after publishing them, then two relays racing over the rest.
    receive_more(&app).await;
    receive_more(&app).await;
    assert!(one.deliver_batch(FailPoint::AfterPublish).await.is_err());
    let other_db = store::Db::connect(
        &app.state.config.database_url,
        &store::PoolLimits::default(),
    )
    .await
    .unwrap();
    let two = relay(other_db, 3, &recorder).with_nats(sink);
    tokio::join!(drain(&one), drain(&two));

    let committed = all_events(&app).await;
    assert_once_in_order(&recorder.applied(), &committed);
    let config = reader.stream_config().await.unwrap();
    assert_eq!(
        config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert_eq!(config.duplicate_window, Duration::from_secs(120));
    let stored = reader.stored_events(100_000).await.unwrap();
    assert_eq!(
        reader.message_count().await.unwrap(),
        u64::try_from(committed.len()).unwrap()
    );
    let in_stream: Vec<Event> = stored
        .iter()
        .map(|m| {
            assert_eq!(
                m.msg_id,
                m.body["id"].as_str().unwrap(),
                "Nats-Msg-Id = event id"
            );
            assert!(m.subject.ends_with(m.body["type"].as_str().unwrap()));
            Event {
                seq: m.body["seq"].as_i64().unwrap(),
                id: m.body["id"].as_str().unwrap().parse().unwrap(),
                event_type: m.body["type"].as_str().unwrap().to_owned(),
                aggregate_type: m.body["aggregate_type"].as_str().unwrap().to_owned(),
                aggregate_id: m.body["aggregate_id"].as_str().unwrap().to_owned(),
                payload: m.body["payload"].clone(),
                created_at: chrono::Utc::now(),
                traceparent: m.traceparent.clone(),
            }
        })
        .collect();
    assert_once_in_order(&in_stream, &committed);
}
