//! The NATS JetStream sink: one stream with file storage; every event is published on
//! `<prefix>.<event type>` with `Nats-Msg-Id` = event id and awaited for the stream's ack, one
//! after another so the stream keeps the outbox's order. Durability is the server's business:
//! see `docs/events.md` (`sync_interval: always`, replicas).

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use tracing::Instrument as _;

use super::Event;
use crate::config::Config;

/// Where and how events are published.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// The stream's name (created with file storage when missing).
    pub stream: String,
    /// Subjects are `<subject_prefix>.<event type>`; the stream takes `<subject_prefix>.>`.
    pub subject_prefix: String,
    /// Copies of each message in a cluster (1 for a single server; 3 for a production cluster).
    pub replicas: usize,
    /// Re-publishes are de-duplicated by event id within this window.
    pub duplicate_window: Duration,
    /// How long a publish waits for the stream's ack.
    pub ack_timeout: Duration,
    /// Attempts per event before the step fails (and the relay backs off).
    pub publish_attempts_max: u32,
}

impl NatsSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            stream: config.nats_stream.clone(),
            subject_prefix: config.nats_subject_prefix.clone(),
            replicas: config.nats_replicas,
            duplicate_window: config.nats_duplicate_window,
            ack_timeout: config.nats_ack_timeout,
            publish_attempts_max: config.nats_publish_attempts_max.max(1),
        }
    }
}

/// What a publish of a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    pub stored: u64,
    /// Publishes the stream recognised as re-deliveries (same `Nats-Msg-Id`).
    pub duplicates: u64,
}

/// A connected JetStream context and the stream events go to.
#[derive(Debug, Clone)]
pub struct NatsSink {
    js: jetstream::Context,
    settings: NatsSettings,
}

impl NatsSink {
    /// Connects and makes sure the stream exists (an existing stream's settings are kept).
    #[tracing::instrument(skip_all, fields(stream = settings.stream))]
    pub async fn connect(url: &str, settings: NatsSettings) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name("kassa-central")
            .connection_timeout(settings.ack_timeout)
            .connect(url)
            .await
            .context("connecting to NATS (KASSA_NATS_URL)")?;
        let mut js = jetstream::new(client);
        js.set_timeout(settings.ack_timeout);
        js.get_or_create_stream(stream::Config {
            name: settings.stream.clone(),
            subjects: vec![format!("{}.>", settings.subject_prefix)],
            storage: stream::StorageType::File,
            num_replicas: settings.replicas,
            duplicate_window: settings.duplicate_window,
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating the JetStream stream {}", settings.stream))?;
        Ok(Self { js, settings })
    }

    pub fn settings(&self) -> &NatsSettings {
        &self.settings
    }

    /// Publishes `events` in order, each awaited for its ack.
    #[tracing::instrument(skip_all, fields(events = events.len()))]
    pub async fn publish(&self, events: &[Event]) -> anyhow::Result<Published> {
        let mut published = Published::default();
        for event in events {
            if self.publish_one(event).await? {
                published.duplicates += 1;
            } else {
                published.stored += 1;
            }
        }
        metrics::counter!(crate::telemetry::metrics::RELAY_NATS_DUPLICATES)
            .increment(published.duplicates);
        Ok(published)
    }

    /// Publishes one event, retrying up to `publish_attempts_max`; true when the stream already
    /// had it.
    async fn publish_one(&self, event: &Event) -> anyhow::Result<bool> {
        let span = event.span("producer", "publish");
        self.publish_traced(event).instrument(span).await
    }

    /// [`Self::publish_one`] inside the event's producer span, whose context the message carries
    /// (`traceparent` header) so the stream's consumers continue the trace.
    async fn publish_traced(&self, event: &Event) -> anyhow::Result<bool> {
        let subject = format!("{}.{}", self.settings.subject_prefix, event.event_type);
        let body = serde_json::to_vec(event).context("encoding an event")?;
        let mut headers = async_nats::HeaderMap::new();
        kassa_telemetry::inject(&mut NatsHeaders(&mut headers));
        let mut attempt = 1;
        loop {
            let message = PublishMessage::build()
                .payload(body.clone().into())
                .headers(headers.clone())
                .message_id(event.id.to_string());
            let result = async {
                let ack = self.js.send_publish(subject.clone(), message).await?;
                ack.await.map_err(anyhow::Error::from)
            }
            .await;
            match result {
                Ok(ack) => return Ok(ack.duplicate),
                Err(e) if attempt < self.settings.publish_attempts_max => {
                    tracing::debug!(error = ?e, attempt, event = %event.id, "publish failed; retrying");
                    attempt += 1;
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "publishing event {} to {subject} ({attempt} attempts)",
                        event.id
                    )))
                }
            }
        }
    }

    /// The stream's messages from stream sequence 1, at most `limit`, decoded (an operator's and
    /// the tests' view of what landed).
    #[tracing::instrument(skip_all, fields(limit))]
    pub async fn stored_events(&self, limit: u64) -> anyhow::Result<Vec<StoredEvent>> {
        let mut stream = self
            .js
            .get_stream(&self.settings.stream)
            .await
            .context("opening the stream")?;
        let state = stream
            .info()
            .await
            .context("reading stream info")?
            .state
            .clone();
        let last = state
            .last_sequence
            .min(state.first_sequence.saturating_add(limit).saturating_sub(1));
        let mut out = Vec::new();
        for sequence in state.first_sequence.max(1)..=last {
            let message = stream
                .get_raw_message(sequence)
                .await
                .with_context(|| format!("reading stream message {sequence}"))?;
            let msg_id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let traceparent = message
                .headers
                .get("traceparent")
                .map(|v| v.as_str().to_owned());
            let body: serde_json::Value =
                serde_json::from_slice(&message.payload).context("decoding a stream message")?;
            out.push(StoredEvent {
                stream_seq: message.sequence,
                subject: message.subject.to_string(),
                msg_id,
                body,
                traceparent,
            });
        }
        Ok(out)
    }

    /// The stream's configuration as the server holds it.
    #[tracing::instrument(skip_all)]
    pub async fn stream_config(&self) -> anyhow::Result<stream::Config> {
        let mut stream = self
            .js
            .get_stream(&self.settings.stream)
            .await
            .context("opening the stream")?;
        Ok(stream
            .info()
            .await
            .context("reading stream info")?
            .config
            .clone())
    }

    /// How many messages the stream holds.
    #[tracing::instrument(skip_all)]
    pub async fn message_count(&self) -> anyhow::Result<u64> {
        let mut stream = self
            .js
            .get_stream(&self.settings.stream)
            .await
            .context("opening the stream")?;
        Ok(stream
            .info()
            .await
            .context("reading stream info")?
            .state
            .messages)
    }
}

/// One message as stored in the stream.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub stream_seq: u64,
    pub subject: String,
    pub msg_id: String,
    pub body: serde_json::Value,
    /// The trace context the message carries (its `traceparent` header).
    pub traceparent: Option<String>,
}

/// NATS message headers as a trace context carrier.
struct NatsHeaders<'a>(&'a mut async_nats::HeaderMap);

impl kassa_telemetry::HeaderCarrier for NatsHeaders<'_> {
    fn get_header(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(async_nats::HeaderValue::as_str)
    }

    fn set_header(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}
