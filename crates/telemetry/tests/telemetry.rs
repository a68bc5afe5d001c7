//! The subscriber end to end: spans continue an incoming traceparent, reach an OTLP/HTTP
//! receiver as protobuf, database events become `db.system` spans, and JSON logs name the trace.

#![expect(
    clippy::unwrap_used,
    reason = "a failed unwrap is a failed test, with its location"
)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use kassa_telemetry::receiver::Receiver;
use kassa_telemetry::{Options, Telemetry};
use reqwest::header::HeaderMap;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn options(url: Option<String>) -> Options {
    Options {
        service_name: "kassa-test",
        json: true,
        default_filter: "info",
        otlp_traces_url: url,
    }
}

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn traced_work(telemetry: &Telemetry) -> HeaderMap {
    let mut incoming = HeaderMap::new();
    incoming.insert("traceparent", PARENT.parse().unwrap());
    let span = tracing::info_span!("checkout", otel.kind = "server");
    kassa_telemetry::set_parent_from_headers(&span, &incoming);
    let mut outgoing = HeaderMap::new();
    span.in_scope(|| {
        tracing::debug!(target: "sqlx::query", summary = "insert into orders …", elapsed_secs = 0.002);
        tracing::info!(order = "o-1", "order created");
        kassa_telemetry::inject(&mut outgoing);
    });
    drop(span);
    telemetry.flush();
    outgoing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_continue_the_caller_trace_reach_the_receiver_and_logs_name_them() {
    let receiver = Receiver::start().await.unwrap();
    let lines = Lines::default();
    let out = lines.clone();
    let (telemetry, subscriber) =
        kassa_telemetry::build(&options(Some(receiver.traces_url.clone())), move || {
            out.clone()
        })
        .unwrap();
    assert!(telemetry.exporting());
    let outgoing = tracing::subscriber::with_default(subscriber, || traced_work(&telemetry));

    let spans = receiver.spans();
    let checkout = spans
        .iter()
        .find(|s| s.name == "checkout")
        .expect("the checkout span");
    assert_eq!(checkout.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        checkout.parent_span_id, "00f067aa0ba902b7",
        "continues the caller's span"
    );
    assert_eq!(checkout.kind, 2, "a server span");
    assert_eq!(checkout.service, "kassa-test");
    let db = spans
        .iter()
        .find(|s| s.name == "INSERT")
        .expect("a database span");
    assert_eq!(db.parent_span_id, checkout.span_id);
    assert_eq!(db.attributes["db.operation.name"], "INSERT");
    assert!(db.attributes.contains_key("db.system"));
    assert!(
        !db.attributes.values().any(|v| v.contains("orders")),
        "no statement text"
    );
    let sent = outgoing["traceparent"].to_str().unwrap();
    assert_eq!(
        sent,
        format!("00-{}-{}-01", checkout.trace_id, checkout.span_id)
    );

    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let log: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["fields"]["message"] == "order created")
        .expect("the log line");
    assert_eq!(log["trace_id"], checkout.trace_id.as_str());
    assert_eq!(log["span_id"], checkout.span_id.as_str());
    assert_eq!(log["span"]["name"], "checkout");
    assert_eq!(log["fields"]["order"], "o-1");
}

#[tokio::test]
async fn without_an_endpoint_nothing_exports_and_logs_carry_no_trace() {
    let lines = Lines::default();
    let out = lines.clone();
    let (telemetry, subscriber) =
        kassa_telemetry::build(&options(None), move || out.clone()).unwrap();
    assert!(!telemetry.exporting());
    let outgoing = tracing::subscriber::with_default(subscriber, || traced_work(&telemetry));
    assert!(
        outgoing.get("traceparent").is_none(),
        "nothing to propagate"
    );
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let log: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(log["fields"]["message"], "order created");
    assert!(log.get("trace_id").is_none());
}

/// A statement as sqlx reports it when it ends (on SQLite, on the connection's worker thread).
fn statement(summary: &str) {
    tracing::debug!(target: "sqlx::query", summary, elapsed_secs = 0.001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_spans_are_made_when_their_span_closes_one_per_run_of_an_operation_and_none_for_savepoints(
) {
    let receiver = Receiver::start().await.unwrap();
    let (telemetry, subscriber) =
        kassa_telemetry::build(&options(Some(receiver.traces_url.clone())), std::io::sink).unwrap();
    let database = |spans: &[kassa_telemetry::receiver::ReceivedSpan]| {
        spans
            .iter()
            .filter(|s| s.attributes.contains_key("db.system"))
            .map(|s| {
                (
                    s.name.clone(),
                    s.attributes
                        .get("db.operation.batch.size")
                        .cloned()
                        .unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
    };
    tracing::subscriber::with_default(subscriber, || {
        let order = tracing::info_span!("create order");
        order.in_scope(|| {
            statement("SAVEPOINT order_1");
            statement("select id from orders where id = $1");
            for _ in 0..3 {
                statement("INSERT INTO order_lines (order_id, sku) VALUES …");
            }
            statement("UPDATE stock SET reserved = reserved + $1 …");
            statement("insert into events (id, type) VALUES …");
            statement("RELEASE SAVEPOINT order_1");
        });
        telemetry.flush();
        assert_eq!(
            database(&receiver.spans()),
            Vec::<(String, String)>::new(),
            "nothing is made while the work (and its write lock) is still going"
        );
        drop(order);
        telemetry.flush();
        let spans = receiver.spans();
        let order = spans.iter().find(|s| s.name == "create order").unwrap();
        assert!(spans
            .iter()
            .filter(|s| s.attributes.contains_key("db.system"))
            .all(|s| s.parent_span_id == order.span_id && s.trace_id == order.trace_id));
        let mut made = database(&spans);
        made.sort();
        let mut expected: Vec<(String, String)> = [
            ("SELECT", ""),
            ("INSERT", "3"),
            ("UPDATE", ""),
            ("INSERT", ""),
        ]
        .iter()
        .map(|(n, b)| ((*n).to_owned(), (*b).to_owned()))
        .collect();
        expected.sort();
        assert_eq!(made, expected);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_that_stays_open_still_sends_its_database_spans() {
    let receiver = Receiver::start().await.unwrap();
    let (telemetry, subscriber) =
        kassa_telemetry::build(&options(Some(receiver.traces_url.clone())), std::io::sink).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let sweep = tracing::info_span!("sweep loop");
        sweep.in_scope(|| {
            for _ in 0..100 {
                statement("SELECT 1");
                statement("DELETE FROM sessions WHERE …");
            }
        });
        telemetry.flush();
        let sent = receiver
            .spans()
            .iter()
            .filter(|s| s.attributes.contains_key("db.system"))
            .count();
        assert!(
            (32..200).contains(&sent),
            "{sent} database spans sent while the span is open"
        );
        drop(sweep);
        telemetry.flush();
        let all = receiver
            .spans()
            .iter()
            .filter(|s| s.attributes.contains_key("db.system"))
            .count();
        assert_eq!(all, 200, "one span per statement when operations alternate");
    });
}
