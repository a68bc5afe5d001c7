//! W3C trace context (`traceparent`, `tracestate`) in and out of any header-like carrier: HTTP
//! requests and responses, NATS message headers.

use opentelemetry::propagation::{Extractor, Injector};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Any carrier of string headers (NATS headers, a plain map) that trace context can travel in.
pub trait HeaderCarrier {
    fn get_header(&self, key: &str) -> Option<&str>;
    fn set_header(&mut self, key: &str, value: String);
}

impl HeaderCarrier for HeaderMap {
    fn get_header(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| v.to_str().ok())
    }

    fn set_header(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.insert(name, value);
        }
    }
}

struct Carrier<'a, C: ?Sized>(&'a mut C);

impl<C: HeaderCarrier + ?Sized> Injector for Carrier<'_, C> {
    fn set(&mut self, key: &str, value: String) {
        self.0.set_header(key, value);
    }
}

struct Reader<'a, C: ?Sized>(&'a C);

impl<C: HeaderCarrier + ?Sized> Extractor for Reader<'_, C> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get_header(key)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// Writes the current span's trace context into `carrier` (nothing when no span is traced).
pub fn inject<C: HeaderCarrier + ?Sized>(carrier: &mut C) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut Carrier(carrier));
    });
}

/// The current span's `traceparent` (`None` when nothing is traced): for work that outlives the
/// request, stored with it and continued later (an outbox event and its consumers).
pub fn traceparent() -> Option<String> {
    let mut carrier = reqwest::header::HeaderMap::new();
    inject(&mut carrier);
    carrier.get_header("traceparent").map(str::to_owned)
}

/// A carrier holding just a stored `traceparent`.
pub fn from_traceparent(traceparent: &str) -> HeaderMap {
    let mut carrier = HeaderMap::new();
    carrier.set_header("traceparent", traceparent.to_owned());
    carrier
}

/// The trace context a carrier holds (an empty context when it holds none).
pub fn extract<C: HeaderCarrier + ?Sized>(carrier: &C) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&Reader(carrier)))
}

/// Makes `span` continue the trace of an incoming `traceparent`, if there is one.
pub fn set_parent_from_headers<C: HeaderCarrier + ?Sized>(span: &tracing::Span, carrier: &C) {
    if carrier.get_header("traceparent").is_none() {
        return;
    }
    let _ = span.set_parent(extract(carrier));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_read_from_headers_is_the_one_written_back() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let mut incoming = HeaderMap::new();
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        incoming.set_header("traceparent", parent.to_owned());
        let cx = extract(&incoming);
        let mut outgoing = HeaderMap::new();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut Carrier(&mut outgoing));
        });
        assert_eq!(outgoing.get_header("traceparent"), Some(parent));
    }
}
