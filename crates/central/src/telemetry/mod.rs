//! What Central tells its operators: the process's logs and traces (set up by `kassa-telemetry`
//! from `KASSA_LOG_FORMAT` and the standard `OTEL_*` variables), the HTTP server spans, and the
//! Prometheus metrics ([`metrics`]: their names, the recorder, and the gauges read at scrape time).

pub mod metrics;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Response};

/// Installs logs (JSON with `trace_id`/`span_id` when `json`) and, when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, OTLP/HTTP span export. Keep the guard until exit.
pub fn init(json: bool) -> anyhow::Result<kassa_telemetry::Telemetry> {
    kassa_telemetry::init(&kassa_telemetry::Options {
        service_name: "kassa-central",
        json,
        default_filter: "info,sqlx=warn",
        otlp_traces_url: None,
    })
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The server span of one request, named by its route template (`POST /v1/orders/{id}/payments`,
/// never the raw path) and continuing the caller's `traceparent`.
pub fn http_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{} {route}", req.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %req.method(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        request_id,
    );
    kassa_telemetry::set_parent_from_headers(&span, req.headers());
    span
}

/// Records the answer's status on the request span (5xx marks the span an error).
pub fn record_status<B>(
    response: &Response<B>,
    _latency: std::time::Duration,
    span: &tracing::Span,
) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}
