//! Webhook events and their delivery: each event is signed with `kassa_payments::sign_payload`
//! and POSTed as JSON to the configured URL, retried with backoff on anything but a 2xx, in the
//! order, multiplicity and delay the intent's [`WebhookMode`] asks for.

use std::time::Duration;

use serde_json::{json, Value};

use crate::SimState;

/// Attempts per event delivery (the first and its retries).
pub const DELIVERY_ATTEMPTS_MAX: u32 = 4;
/// Backoff before the first retry; doubled for each retry after it.
const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(200);
/// How long the receiver has to answer one delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// `late` delivery's default delay (`metadata[sim_delay_ms]` overrides it).
pub const LATE_DELAY_DEFAULT: Duration = Duration::from_millis(2000);
pub const LATE_DELAY_MAX_MS: u64 = 60_000;

/// How an intent's events reach the webhook URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookMode {
    /// Each event once, in order, right away.
    #[default]
    Normal,
    /// Each event twice, with the same event id.
    Twice,
    /// Each batch after the plan's delay.
    Late,
    /// Each request's events newest first (e.g. `succeeded` before `created`).
    OutOfOrder,
    /// Nothing is delivered (the events still exist: see `SimHandle::emitted_events`).
    None,
}

impl WebhookMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "normal" => Self::Normal,
            "twice" => Self::Twice,
            "late" => Self::Late,
            "out_of_order" => Self::OutOfOrder,
            "none" => Self::None,
            _ => return None,
        })
    }
}

/// An intent's delivery mode and, for `late`, its delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookPlan {
    pub mode: WebhookMode,
    pub delay: Duration,
}

impl Default for WebhookPlan {
    fn default() -> Self {
        Self {
            mode: WebhookMode::Normal,
            delay: LATE_DELAY_DEFAULT,
        }
    }
}

/// A Stripe event envelope around `object` as it is now, with a fresh `evt_` id.
pub fn new_event(kind: &str, now: i64, object: Value) -> Value {
    json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "livemode": false,
        "pending_webhooks": 1,
        "type": kind,
        "data": { "object": object },
    })
}

/// One POST of one event to the webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first try of this copy of the event.
    pub attempt: u32,
    /// The receiver's HTTP status, `None` when it could not be reached.
    pub status: Option<u16>,
}

/// The W3C trace context (`traceparent`, `tracestate`) of the request that caused some events:
/// their webhooks carry it on, so the merchant's webhook handling joins the trace of the
/// payment that caused it (as processors that propagate trace context do).
#[derive(Debug, Clone, Default)]
pub struct TraceContext(Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>);

impl TraceContext {
    /// The trace context headers of an incoming request (none: an empty context).
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Self {
        let carried = ["traceparent", "tracestate"]
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?.clone();
                Some((reqwest::header::HeaderName::from_static(name), value))
            })
            .collect();
        Self(carried)
    }
}

/// Delivers one request's events according to `plan`, in the background of the caller.
pub async fn deliver_batch(
    sim: SimState,
    mut events: Vec<Value>,
    plan: WebhookPlan,
    trace: TraceContext,
) {
    let copies = match plan.mode {
        WebhookMode::None => return,
        WebhookMode::Twice => 2,
        WebhookMode::Late => {
            tokio::time::sleep(plan.delay).await;
            1
        }
        WebhookMode::OutOfOrder => {
            events.reverse();
            1
        }
        WebhookMode::Normal => 1,
    };
    for event in &events {
        for _ in 0..copies {
            deliver_one(&sim, event, &trace).await;
        }
    }
}

/// POSTs `event`, signed afresh for each attempt, until a 2xx or the attempts run out.
#[tracing::instrument(skip_all, fields(event_id, event_type))]
async fn deliver_one(sim: &SimState, event: &Value, trace: &TraceContext) {
    let event_id = event["id"].as_str().unwrap_or_default().to_owned();
    let event_type = event["type"].as_str().unwrap_or_default().to_owned();
    tracing::Span::current()
        .record("event_id", event_id.as_str())
        .record("event_type", event_type.as_str());
    let body = event.to_string();
    let mut backoff = RETRY_BACKOFF_FIRST;
    for attempt in 1..=DELIVERY_ATTEMPTS_MAX {
        if sim.is_shut_down() {
            return;
        }
        let Some(url) = sim.webhook_url() else {
            tracing::debug!("no webhook url configured; event not delivered");
            return;
        };
        let signature = kassa_payments::sign_payload(
            sim.webhook_secret(),
            chrono::Utc::now().timestamp(),
            body.as_bytes(),
        );
        let mut request = sim.http().post(&url);
        for (name, value) in &trace.0 {
            request = request.header(name, value);
        }
        let result = request
            .timeout(DELIVERY_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(kassa_payments::webhook::SIGNATURE_HEADER, signature)
            .body(body.clone())
            .send()
            .await;
        let status = result.as_ref().ok().map(|r| r.status().as_u16());
        sim.record_attempt(DeliveryAttempt {
            event_id: event_id.clone(),
            event_type: event_type.clone(),
            attempt,
            status,
        });
        match result {
            Ok(response) if response.status().is_success() => {
                sim.record_delivered(event.clone());
                return;
            }
            Ok(response) => tracing::warn!(status = %response.status(), attempt, "webhook refused"),
            Err(e) => tracing::warn!(error = %e.without_url(), attempt, "webhook not delivered"),
        }
        if attempt < DELIVERY_ATTEMPTS_MAX {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    tracing::error!("webhook given up after {DELIVERY_ATTEMPTS_MAX} attempts");
}
