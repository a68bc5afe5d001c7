//! The register's logs and traces: spans of its own (a sale, a sync round, each call to Central)
//! exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, as `kassa-register` unless
//! `OTEL_SERVICE_NAME` says otherwise. Every call to Central carries `traceparent` either way.

pub use kassa_telemetry::Telemetry;

/// Installs the process's subscriber; keep the guard until exit (it flushes the last spans).
/// `None` when a subscriber was already installed.
pub fn init() -> Option<Telemetry> {
    kassa_telemetry::init(&kassa_telemetry::Options {
        service_name: "kassa-register",
        json: std::env::var("KASSA_LOG_FORMAT").is_ok_and(|v| v == "json"),
        default_filter: "info,kassa_register=info",
        otlp_traces_url: None,
    })
    .ok()
}
