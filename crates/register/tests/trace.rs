//! One card sale made at a register is one trace, from the till through Central and the card
//! processor and back through its webhook, as an OTLP/HTTP receiver inside the test sees it.
//!
//! A test binary of its own: the tracing subscriber is process-wide, and this one exports every
//! span of the process to the test's receiver.

#![expect(
    clippy::unwrap_used,
    reason = "a failed unwrap is a failed test, with its location"
)]

#[path = "register/helpers.rs"]
#[expect(
    dead_code,
    reason = "the shared harness; this binary uses a part of it"
)]
mod helpers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kassa_register::secrets::MemoryStore;
use kassa_telemetry::receiver::{ReceivedSpan, Receiver};

use crate::helpers::{bounded, Shop};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

/// A relay consumer that takes every event and does nothing with it.
#[derive(Debug)]
struct Everything;

impl kassa_central::events::Consumer for Everything {
    fn name(&self) -> &'static str {
        "trace-test"
    }
    fn wants(&self, _: &kassa_central::events::Event) -> bool {
        true
    }
    fn apply<'a>(
        &'a self,
        _: &'a mut kassa_central::store::Tx,
        _: &'a kassa_central::events::Event,
    ) -> kassa_central::events::ApplyFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

/// A sink on the shared test NATS server with a stream of its own; `None` when nats-server is
/// not installed (and `KASSA_REQUIRE_NATS` is not set).
async fn nats_sink() -> Option<kassa_central::events::nats::NatsSink> {
    let server = kassa_central::devtools::NatsServer::shared()?;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let settings = kassa_central::events::nats::NatsSettings {
        stream: format!("T_{tag}"),
        subject_prefix: format!("t{tag}"),
        replicas: 1,
        duplicate_window: Duration::from_secs(120),
        ack_timeout: Duration::from_secs(5),
        publish_attempts_max: 3,
    };
    Some(
        kassa_central::events::nats::NatsSink::connect(&server.url(), settings)
            .await
            .unwrap(),
    )
}

/// The spans of `trace_id`, by span id.
fn trace(receiver: &Receiver, trace_id: &str) -> HashMap<String, ReceivedSpan> {
    receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .map(|s| (s.span_id.clone(), s))
        .collect()
}

/// Is `span` below `ancestor` in `spans`?
fn under(
    spans: &HashMap<String, ReceivedSpan>,
    span: &ReceivedSpan,
    ancestor: &ReceivedSpan,
) -> bool {
    let mut at = span;
    for _ in 0..64 {
        let Some(parent) = spans.get(&at.parent_span_id) else {
            return false;
        };
        if parent.span_id == ancestor.span_id {
            return true;
        }
        at = parent;
    }
    false
}

fn one<'a>(
    spans: &'a HashMap<String, ReceivedSpan>,
    what: &str,
    pick: impl Fn(&ReceivedSpan) -> bool,
) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.values().filter(|s| pick(s)).collect();
    assert!(!found.is_empty(), "no {what} span in {:#?}", names(spans));
    found[0]
}

fn names(spans: &HashMap<String, ReceivedSpan>) -> Vec<(String, String, String)> {
    spans
        .values()
        .map(|s| (s.name.clone(), s.span_id.clone(), s.parent_span_id.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_card_sale_is_one_trace_from_the_till_through_central_and_the_processor_and_back() {
    let receiver = Receiver::start().await.unwrap();
    let telemetry = kassa_telemetry::init_once(&kassa_telemetry::Options {
        service_name: "kassa-register-and-central",
        json: false,
        default_filter: "warn",
        otlp_traces_url: Some(receiver.traces_url.clone()),
    })
    .expect("this binary's only subscriber");
    bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop
            .register_tweaked(&dir, "R1", Arc::new(MemoryStore::default()), |c| {
                c.card_payment_method = "pm_card_visa".into();
            })
            .await;
        register.sync_now().await.unwrap();
        register
            .scan(shop.products[0].barcodes[0].as_str())
            .await
            .unwrap();
        register.pay_card().await.unwrap();

        // The webhook comes after the sale's answer: wait until Central's handling of it is in.
        let mut spans = HashMap::new();
        for _ in 0..100 {
            telemetry.flush();
            let sale = receiver.spans().into_iter().find(|s| s.name == "sale");
            if let Some(sale) = sale {
                spans = trace(&receiver, &sale.trace_id);
                if spans
                    .values()
                    .any(|s| s.name == "POST /v1/webhooks/payments")
                {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let sale = one(&spans, "till sale", |s| s.name == "sale");
        assert!(
            sale.parent_span_id.is_empty(),
            "the till's sale starts the trace"
        );
        let order = one(&spans, "Central order", |s| s.name == "POST /v1/orders");
        assert_eq!(order.kind, SERVER);
        assert_eq!(order.attributes["http.route"], "/v1/orders");
        assert!(
            under(&spans, order, sale),
            "Central's span continues the till's"
        );
        // Orders are created in group commits: the order's own statements still run in its
        // request's span.
        let created = one(&spans, "order database work", |s| {
            s.attributes.get("db.system").is_some_and(|d| d == "sqlite")
                && s.attributes
                    .get("db.operation.name")
                    .is_some_and(|o| o == "INSERT")
                && under(&spans, s, order)
        });
        assert_eq!(created.kind, CLIENT);
        let pay = one(&spans, "Central payment", |s| {
            s.name == "POST /v1/orders/{id}/payments"
        });
        assert!(under(&spans, pay, sale));
        assert_eq!(pay.attributes["http.response.status_code"], "201");
        let db = one(&spans, "database", |s| {
            s.attributes.get("db.system").is_some_and(|d| d == "sqlite") && under(&spans, s, pay)
        });
        assert_eq!(db.kind, CLIENT);
        assert!(!db.attributes["db.operation.name"].is_empty());
        let call = one(&spans, "processor call", |s| {
            s.name.starts_with("processor ") && under(&spans, s, pay)
        });
        assert_eq!(call.kind, CLIENT);
        let webhook = one(&spans, "Central webhook", |s| {
            s.name == "POST /v1/webhooks/payments"
        });
        assert_eq!(webhook.kind, SERVER);
        let caused_by = &spans[&webhook.parent_span_id];
        assert!(
            caused_by.name.starts_with("processor ") && under(&spans, caused_by, pay),
            "the simulator's webhook continues the processor call that caused it: {caused_by:?}"
        );
        assert!(
            spans
                .values()
                .any(|s| s.attributes.contains_key("db.system") && under(&spans, s, webhook)),
            "the webhook's own database work is in the trace"
        );

        // The sale's events leave through the relay: each NATS message carries the sale's trace
        // and the relay's consumers continue it.
        let sale_trace = sale.trace_id.clone();
        let relay = kassa_central::events::Relay::new(
            shop.central.state().db.clone(),
            kassa_central::events::RelaySettings::default(),
            vec![Arc::new(Everything)],
        );
        let sink = nats_sink().await;
        let relay = match &sink {
            Some(sink) => relay.with_nats(sink.clone()),
            None => relay,
        };
        relay.drain(100).await.unwrap();
        telemetry.flush();
        let spans = trace(&receiver, &sale_trace);
        let consumed = one(&spans, "consumer", |s| s.name == "trace-test order.paid");
        assert_eq!(consumed.kind, CONSUMER);
        assert!(
            under(&spans, consumed, sale),
            "the consumer continues the sale's trace"
        );
        if let Some(sink) = sink {
            let published = one(&spans, "NATS publish", |s| s.name == "publish order.paid");
            assert_eq!(published.kind, PRODUCER);
            assert!(under(&spans, published, sale));
            let stored = sink.stored_events(1000).await.unwrap();
            let paid = stored
                .iter()
                .find(|m| m.body["type"] == "order.paid")
                .expect("order.paid in the stream");
            assert_eq!(
                paid.traceparent.as_deref(),
                Some(format!("00-{sale_trace}-{}-01", published.span_id).as_str()),
                "the message carries the publish span's context"
            );
        }

        // A sync round is a trace of its own, with Central's answers in it.
        let round = receiver
            .spans()
            .into_iter()
            .find(|s| s.name == "sync round")
            .expect("a sync round span");
        let round_spans = trace(&receiver, &round.trace_id);
        let pull = one(&round_spans, "catalog pull at Central", |s| {
            s.name == "GET /v1/products"
        });
        assert!(under(&round_spans, pull, &round_spans[&round.span_id]));
    })
    .await;
}
