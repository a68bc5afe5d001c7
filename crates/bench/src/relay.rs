//! `kassa-bench relay`: 20k outbox events over 500 aggregates, relayed in batches of 256, on
//! SQLite (`synchronous=FULL`) and PostgreSQL (`fsync=on`): in-process to one consumer (claim per
//! event, one transaction per batch) and to NATS JetStream (file storage, each publish awaited).
//! Baselines: the relay with no sink at all (read + mark delivered) and raw JetStream publishes
//! of the same events without a database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use kassa_central::devtools::{Durability, NatsServer, PgCluster};
use kassa_central::events::nats::{NatsSettings, NatsSink};
use kassa_central::events::{ApplyFuture, Consumer, Event, Relay, RelaySettings};
use kassa_central::store::{self, Db, PoolLimits, Tx};

const EVENTS: usize = 20_000;
const AGGREGATES: usize = 500;
const WRITE_BATCH: usize = 500;
const RELAY_BATCH: usize = 256;

/// A consumer that applies nothing: what is measured is the relay and the claim.
#[derive(Debug)]
struct Noop;

impl Consumer for Noop {
    fn name(&self) -> &'static str {
        "bench-noop"
    }
    fn wants(&self, _event: &Event) -> bool {
        true
    }
    fn apply<'a>(&'a self, _tx: &'a mut Tx, _event: &'a Event) -> ApplyFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

pub async fn run() -> anyhow::Result<()> {
    println!("relay: {EVENTS} events over {AGGREGATES} aggregates, batches of {RELAY_BATCH}");
    let nats = NatsServer::start();
    match &nats {
        Some(server) if !server.syncs_always => {
            println!("nats-server: 2.9.x, without sync_interval: always (see docs/events.md)");
        }
        Some(_) => println!("nats-server: sync_interval: always"),
        None => println!("nats: skipped (no nats-server)"),
    }
    let nats_url = nats.as_ref().map(NatsServer::url);
    let raw_publish = match &nats_url {
        Some(url) => {
            let raw = raw_nats(url).await?;
            println!("raw JetStream publishes (no database, one awaited ack at a time): {raw:>8.0} events/s");
            Some((url.clone(), raw))
        }
        None => None,
    };
    let dir = std::env::temp_dir().join(format!("kassa-bench-relay-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).context("creating the bench dir")?;
    let url = format!("sqlite://{}", dir.join("relay.db").display());
    let result = report("sqlite", &url, raw_publish.as_ref()).await;
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    match PgCluster::start(Durability::Durable) {
        Some(cluster) => {
            let url = cluster.create_database().await?;
            report("postgres", &url, raw_publish.as_ref()).await?;
        }
        None => println!("postgres: skipped (no PostgreSQL binaries)"),
    }
    Ok(())
}

fn per_s(events: usize, took: Duration) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "figures")]
    let n = events as f64;
    n / took.as_secs_f64()
}

/// `nats`: the server's URL and the raw publish rate there.
async fn report(backend: &str, url: &str, nats: Option<&(String, f64)>) -> anyhow::Result<()> {
    let db = Db::connect(url, &PoolLimits::default()).await?;
    db.migrate().await?;
    write_events(&db).await?;
    let settings = RelaySettings {
        batch_events_max: RELAY_BATCH,
        ..RelaySettings::default()
    };
    let bare = timed(&Relay::new(db.clone(), settings.clone(), vec![])).await?;
    reset(&db).await?;
    let in_process = timed(&Relay::new(
        db.clone(),
        settings.clone(),
        vec![Arc::new(Noop)],
    ))
    .await?;
    println!(
        "{backend:<8} in-process: {in_process:>8.0} events/s | raw (read + mark, no sink): {bare:>8.0} events/s | ratio {:.2}",
        in_process / bare
    );
    if let Some((nats_url, raw)) = nats {
        reset(&db).await?;
        let sink = NatsSink::connect(nats_url, nats_settings(backend)).await?;
        let to_nats = timed(&Relay::new(db.clone(), settings, vec![]).with_nats(sink)).await?;
        println!(
            "{backend:<8} to NATS:    {to_nats:>8.0} events/s | raw publishes: {raw:>8.0} events/s | ratio {:.2}",
            to_nats / raw
        );
    }
    Ok(())
}

fn nats_settings(tag: &str) -> NatsSettings {
    NatsSettings {
        stream: format!(
            "BENCH_{}_{}",
            tag.to_uppercase(),
            uuid::Uuid::now_v7().simple()
        ),
        subject_prefix: format!("bench.{tag}"),
        replicas: 1,
        duplicate_window: Duration::from_secs(120),
        ack_timeout: Duration::from_secs(5),
        publish_attempts_max: 3,
    }
}

/// Drains the outbox; events per second.
async fn timed(relay: &Relay) -> anyhow::Result<f64> {
    let started = Instant::now();
    let delivered = relay.drain(EVENTS).await?;
    anyhow::ensure!(delivered == EVENTS, "delivered {delivered} of {EVENTS}");
    Ok(per_s(delivered, started.elapsed()))
}

async fn write_events(db: &Db) -> anyhow::Result<()> {
    for chunk in 0..EVENTS / WRITE_BATCH {
        let mut tx = db.begin_write().await?;
        for i in 0..WRITE_BATCH {
            let n = chunk * WRITE_BATCH + i;
            let payload = serde_json::json!({ "n": n, "note": "bench" });
            let aggregate = format!("agg-{}", n % AGGREGATES);
            store::events::record(&mut tx, "bench.happened", "bench", &aggregate, &payload).await?;
        }
        tx.commit().await.context("committing bench events")?;
    }
    Ok(())
}

async fn reset(db: &Db) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE events SET delivered_at = NULL")
        .execute(&mut *tx)
        .await
        .context("resetting delivered marks")?;
    tx.commit().await.context("committing the reset")?;
    Ok(())
}

/// The same number of events published straight to JetStream, one awaited ack at a time.
async fn raw_nats(url: &str) -> anyhow::Result<f64> {
    let client = async_nats::connect(url)
        .await
        .context("connecting to NATS")?;
    let js = async_nats::jetstream::new(client);
    let settings = nats_settings("raw");
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: settings.stream.clone(),
        subjects: vec![format!("{}.>", settings.subject_prefix)],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .context("creating the raw stream")?;
    let body = serde_json::to_vec(&serde_json::json!({ "n": 0, "note": "bench" }))?;
    let started = Instant::now();
    for n in 0..EVENTS {
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(body.clone().into())
            .message_id(n.to_string());
        js.send_publish(format!("{}.x", settings.subject_prefix), publish)
            .await
            .context("publishing")?
            .await
            .context("awaiting the ack")?;
    }
    Ok(per_s(EVENTS, started.elapsed()))
}
