//! The event relay: reads the transactional outbox (`events`, written in the transaction of every
//! state change) and delivers each event at least once to Central's in-process [`Consumer`]s and,
//! when `KASSA_NATS_URL` is set, to a NATS JetStream stream ([`nats`]).
//!
//! **No outbox gap.** On PostgreSQL `seq` is taken from a sequence at insert time, but
//! transactions commit in any order: a reader that remembers "everything up to seq 41 is done"
//! skips event 40 when 40's transaction commits after 41 was read. So the relay keeps no cursor:
//! every event carries its own `delivered_at` marker (NULL until delivered) and each step reads the
//! oldest undelivered rows (a partial index keeps that read small). An event that commits late is
//! simply undelivered when the next step looks. Events of one aggregate are written under that
//! aggregate's row lock, so their `seq` order is their commit order, and the relay hands them on in
//! `seq` order: **order is kept per aggregate**, not across aggregates.
//!
//! **At least once.** A step reads a batch, hands it to every sink (NATS first, each publish
//! awaited for the stream's ack, then each in-process consumer in one transaction), and only then
//! marks it delivered. A crash in between re-delivers the batch: the stream drops the duplicates
//! by `Nats-Msg-Id` (= event id, within its duplicate window) and each consumer's claim in
//! `consumed_events`, written in the consumer's own transaction, makes it skip what it already
//! applied.
//!
//! **Several Central instances.** One relay at a time holds the lease (`relay_leases`) and
//! delivers; the others only report the backlog. The lease is an optimisation: when a paused holder
//! overlaps its successor, the de-duplication above keeps consumers from seeing anything twice.
//! In-process consumers run in the lease holder's process; consumers that keep state per
//! instance (a search index) belong on the NATS stream.
//!
//! **When a sink fails** the step fails, nothing is marked, and the relay retries the same batch
//! after a backoff doubling up to `relay_backoff_max`: an event that cannot be delivered holds back
//! the events after it (ordering over availability), and the backlog and lag metrics show it.
//!
//! Metrics: `kassa_relay_backlog_events`, `kassa_relay_lag_seconds`,
//! `kassa_relay_delivered_events_total`, `kassa_relay_failures_total`,
//! `kassa_relay_consumed_events_total{consumer}`, `kassa_relay_duplicates_total{consumer}`.

pub mod alerts;
pub mod nats;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::config::Config;
use crate::store::{self, now_ms, Db, Tx};
use crate::telemetry::metrics as names;

/// An event as the relay hands it on; also the JSON body of each NATS message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub seq: i64,
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub payload: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The trace of the work that wrote it (NATS carries it in the message headers).
    #[serde(skip)]
    pub traceparent: Option<String>,
}

impl Event {
    /// A span for handling this event that continues the trace of the work that wrote it.
    pub fn span(&self, kind: &'static str, what: &str) -> tracing::Span {
        let span = tracing::info_span!(
            "event",
            otel.name = format!("{what} {}", self.event_type),
            otel.kind = kind,
            event.id = %self.id,
            event_type = %self.event_type,
        );
        if let Some(traceparent) = &self.traceparent {
            let carrier = kassa_telemetry::propagation::from_traceparent(traceparent);
            kassa_telemetry::set_parent_from_headers(&span, &carrier);
        }
        span
    }
}

/// What [`Consumer::apply`] returns.
pub type ApplyFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// An in-process consumer. The relay claims each event for the consumer in `consumed_events`
/// inside the transaction it passes to [`Consumer::apply`], so an event is applied once however
/// often it is delivered, provided the consumer's effects go through that transaction (effects
/// outside it, such as an in-memory cache, must themselves be idempotent).
pub trait Consumer: Send + Sync + std::fmt::Debug {
    /// The consumer's stable name: the key of its `consumed_events` rows. Never rename one.
    fn name(&self) -> &'static str;
    /// Whether it wants this event; unwanted events are neither claimed nor applied.
    fn wants(&self, event: &Event) -> bool;
    /// Applies one event inside `tx`. An error rolls back the whole batch for this consumer and
    /// the relay delivers it again later.
    fn apply<'a>(&'a self, tx: &'a mut Tx, event: &'a Event) -> ApplyFuture<'a>;
}

/// The relay's limits.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Events read, delivered and marked per step.
    pub batch_events_max: usize,
    /// The pause between steps when the outbox is drained.
    pub interval: Duration,
    /// How long a lease lasts without renewal; a step gives up after half of it.
    pub lease_ttl: Duration,
    /// The longest pause between retries of a failing step (the backoff doubles up to it).
    pub backoff_max: Duration,
}

/// Batches are capped here whatever the configuration says.
pub const BATCH_EVENTS_LIMIT: usize = 1_000;

impl RelaySettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            batch_events_max: config.relay_batch_events_max.clamp(1, BATCH_EVENTS_LIMIT),
            interval: config.relay_interval,
            lease_ttl: config.relay_lease_ttl,
            backoff_max: config.relay_backoff_max,
        }
    }
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self::from_config(&Config::default())
    }
}

/// Where a delivery step is made to fail, to test recovery from a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    None,
    /// After every sink took the batch, before it is marked delivered.
    AfterPublish,
}

/// The relay: a lease holder id, the sinks, the limits.
#[derive(Debug, Clone)]
pub struct Relay {
    db: Db,
    settings: RelaySettings,
    consumers: Vec<Arc<dyn Consumer>>,
    nats: Option<Arc<nats::NatsSink>>,
    holder: String,
}

/// Central's own consumers.
pub fn default_consumers() -> Vec<Arc<dyn Consumer>> {
    vec![Arc::new(alerts::StockAlerts)]
}

impl Relay {
    /// A relay delivering in-process only.
    pub fn new(db: Db, settings: RelaySettings, consumers: Vec<Arc<dyn Consumer>>) -> Self {
        Self {
            db,
            settings,
            consumers,
            nats: None,
            holder: Uuid::now_v7().to_string(),
        }
    }

    /// Also publishes to this JetStream stream.
    #[must_use]
    pub fn with_nats(mut self, sink: nats::NatsSink) -> Self {
        self.nats = Some(Arc::new(sink));
        self
    }

    /// The relay `serve` runs: Central's consumers, and NATS when `KASSA_NATS_URL` is set.
    pub async fn from_config(db: Db, config: &Config) -> anyhow::Result<Self> {
        let relay = Self::new(db, RelaySettings::from_config(config), default_consumers());
        match &config.nats_url {
            Some(url) => {
                let settings = nats::NatsSettings::from_config(config);
                Ok(relay.with_nats(nats::NatsSink::connect(url.expose(), settings).await?))
            }
            None => Ok(relay),
        }
    }

    pub fn settings(&self) -> &RelaySettings {
        &self.settings
    }

    /// One step as the background task runs it: when anything is undelivered, take or renew the
    /// lease, then deliver one batch. Returns how many events were delivered (0 when another
    /// relay holds the lease).
    #[tracing::instrument(skip_all)]
    pub async fn step(&self) -> anyhow::Result<usize> {
        // An idle outbox costs one indexed read per step, no write (no lease renewal, no fsync).
        if !store::relay::any_undelivered(&self.db).await? {
            return Ok(0);
        }
        let ttl_ms = i64::try_from(self.settings.lease_ttl.as_millis()).unwrap_or(i64::MAX);
        if !store::relay::acquire_lease(&self.db, &self.holder, ttl_ms).await? {
            return Ok(0);
        }
        // Stop well before the lease runs out, so a successor rarely overlaps this step.
        tokio::time::timeout(
            self.settings.lease_ttl / 2,
            self.deliver_batch(FailPoint::None),
        )
        .await
        .context("a relay step outlived half its lease")?
    }

    /// Delivers the oldest undelivered batch to every sink, then marks it delivered; no lease.
    /// Returns how many events it delivered.
    #[tracing::instrument(skip_all, fields(events))]
    pub async fn deliver_batch(&self, fail: FailPoint) -> anyhow::Result<usize> {
        let limit = i64::try_from(self.settings.batch_events_max).unwrap_or(1);
        let events = store::relay::undelivered(&self.db, limit).await?;
        tracing::Span::current().record("events", events.len());
        if events.is_empty() {
            return Ok(0);
        }
        if let Some(sink) = &self.nats {
            sink.publish(&events).await?;
        }
        for consumer in &self.consumers {
            deliver_to(&self.db, consumer.as_ref(), &events).await?;
        }
        anyhow::ensure!(
            fail != FailPoint::AfterPublish,
            "injected failure after publish"
        );
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        store::relay::mark_delivered(&self.db, &seqs).await?;
        metrics::counter!(names::RELAY_DELIVERED).increment(events.len() as u64);
        Ok(events.len())
    }

    /// Delivers batches until the outbox is empty or `batches_max` batches went; no lease.
    /// Returns how many events it delivered (for tests, benchmarks and tools).
    pub async fn drain(&self, batches_max: usize) -> anyhow::Result<usize> {
        let mut delivered = 0;
        for _ in 0..batches_max {
            let n = self.deliver_batch(FailPoint::None).await?;
            delivered += n;
            if n < self.settings.batch_events_max {
                break;
            }
        }
        Ok(delivered)
    }

    /// Publishes the backlog gauges: undelivered events and the age of the oldest.
    #[tracing::instrument(skip_all)]
    #[expect(clippy::cast_precision_loss, reason = "gauges are f64")]
    pub async fn report_backlog(&self) -> anyhow::Result<(i64, Duration)> {
        let (count, oldest) = store::relay::backlog(&self.db).await?;
        let lag_ms = oldest.map_or(0, |at| (now_ms() - at).max(0));
        let lag = Duration::from_millis(u64::try_from(lag_ms).unwrap_or(0));
        metrics::gauge!(names::RELAY_BACKLOG).set(count as f64);
        metrics::gauge!(names::RELAY_LAG).set(lag.as_secs_f64());
        Ok((count, lag))
    }

    /// Runs steps forever: right away while batches come back full, every `interval` when the
    /// outbox is drained, after a doubling backoff (up to `backoff_max`) when a step fails. The
    /// backlog gauges are refreshed at most once per `BACKLOG_REPORT_INTERVAL`.
    pub async fn run(self) {
        let (_keep, stop) = tokio::sync::watch::channel(false);
        self.run_until(stop).await;
    }

    /// [`Relay::run`] until `stop` turns true (checked between steps, never inside one).
    pub async fn run_until(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut backoff = self.settings.interval;
        let mut reported: Option<std::time::Instant> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            let pause = match self.step().await {
                Ok(n) if n >= self.settings.batch_events_max => Duration::ZERO,
                Ok(_) => {
                    backoff = self.settings.interval;
                    self.settings.interval
                }
                Err(e) => {
                    metrics::counter!(names::RELAY_FAILURES).increment(1);
                    tracing::warn!(error = ?e, retry_in_ms = backoff.as_millis(), "relay step failed");
                    let pause = backoff;
                    backoff = (backoff * 2).min(self.settings.backoff_max);
                    pause
                }
            };
            if reported.is_none_or(|at| at.elapsed() >= BACKLOG_REPORT_INTERVAL) {
                if let Err(e) = self.report_backlog().await {
                    tracing::warn!(error = ?e, "measuring the relay backlog failed");
                }
                reported = Some(std::time::Instant::now());
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// The relay `serve` runs in the background; [`RelayTask::stop`] ends it at shutdown and gives
/// its lease up, so another instance's relay takes over at its next step instead of after the
/// lease's TTL.
#[derive(Debug)]
pub struct RelayTask {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    db: Db,
    holder: String,
}

impl RelayTask {
    /// Ends the task at once (its lease then expires by itself).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Lets the current step finish (at most `bound`), then releases the lease.
    pub async fn stop(self, bound: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(bound, &mut task).await.is_err() {
            task.abort();
        }
        match store::relay::release_lease(&self.db, &self.holder).await {
            Ok(()) => tracing::info!("relay stopped, its lease released"),
            Err(e) => {
                tracing::warn!(error = ?e, "releasing the relay lease failed; it expires by itself")
            }
        }
    }
}

/// How often the background relay refreshes the backlog gauges (a count over the undelivered).
pub const BACKLOG_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the relay `serve` runs. Central serves even while NATS is unreachable: the relay keeps
/// trying to connect (backing off up to `relay_backoff_max`) and delivers nothing meanwhile, so
/// the backlog grows and shows in the metrics.
pub fn spawn(db: Db, config: &Config) -> RelayTask {
    let config = config.clone();
    let holder = Uuid::now_v7().to_string();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task_db = db.clone();
    let task_holder = holder.clone();
    let task = tokio::spawn(async move {
        let db = task_db;
        let mut backoff = config.relay_interval;
        let relay = loop {
            match Relay::from_config(db.clone(), &config).await {
                Ok(mut relay) => {
                    relay.holder = task_holder;
                    break relay;
                }
                Err(e) => {
                    metrics::counter!(names::RELAY_FAILURES).increment(1);
                    tracing::warn!(error = ?e, retry_in_ms = backoff.as_millis(), "relay cannot start");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(config.relay_backoff_max);
                }
            }
        };
        tracing::info!(
            nats = relay.nats.is_some(),
            consumers = relay.consumers.len(),
            holder = %relay.holder,
            "event relay started"
        );
        relay.run_until(stopped).await;
    });
    RelayTask {
        task,
        stop,
        db,
        holder,
    }
}

/// Applies `events` to one consumer in one transaction: each wanted event is claimed, and applied
/// only when the claim is new.
#[tracing::instrument(skip_all, fields(consumer = consumer.name()))]
async fn deliver_to(db: &Db, consumer: &dyn Consumer, events: &[Event]) -> anyhow::Result<()> {
    let wanted: Vec<&Event> = events.iter().filter(|e| consumer.wants(e)).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let name = consumer.name();
    let mut tx = db.begin_write().await?;
    let (mut applied, mut duplicates) = (0_u64, 0_u64);
    for event in wanted {
        if store::relay::claim(&mut tx, name, event.id).await? {
            consumer
                .apply(&mut tx, event)
                .instrument(event.span("consumer", name))
                .await
                .with_context(|| format!("{name} applying event {} ({})", event.id, event.seq))?;
            applied += 1;
        } else {
            duplicates += 1;
        }
    }
    tx.commit()
        .await
        .with_context(|| format!("committing {name}'s batch"))?;
    metrics::counter!(names::RELAY_CONSUMED, "consumer" => name).increment(applied);
    metrics::counter!(names::RELAY_DUPLICATES, "consumer" => name).increment(duplicates);
    Ok(())
}
