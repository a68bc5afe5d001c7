//! Kassa's traces and logs, shared by Central, the register and the benches: the process's
//! tracing subscriber (plain or JSON logs; JSON lines carry `trace_id` and `span_id`), OpenTelemetry
//! export over OTLP/HTTP configured by the standard `OTEL_*` variables, W3C `traceparent` in and
//! out of HTTP headers (and any other carrier), and database spans made from sqlx's query events.
//!
//! Without `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) no
//! OpenTelemetry layer is installed at all: spans stay plain `tracing` spans and cost what they
//! cost today.

mod db;
mod logs;
pub mod propagation;
#[cfg(feature = "receiver")]
pub mod receiver;

use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::dispatcher::WeakDispatch;
use tracing::Dispatch;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Registry;
use tracing_subscriber::{EnvFilter, Layer};

pub use propagation::{extract, inject, set_parent_from_headers, HeaderCarrier};

/// How a program wants its logs and traces.
#[derive(Debug, Clone)]
pub struct Options {
    /// `service.name` when `OTEL_SERVICE_NAME` is not set.
    pub service_name: &'static str,
    /// One JSON object per line (with `trace_id`/`span_id`) instead of plain text.
    pub json: bool,
    /// The log filter when `RUST_LOG` is not set.
    pub default_filter: &'static str,
    /// Where to send spans (the full `…/v1/traces` URL) instead of the `OTEL_*` endpoint
    /// variables: tests and benches that run their own receiver.
    pub otlp_traces_url: Option<String>,
}

/// Keeps the exporter alive; dropping it flushes the spans still queued.
#[derive(Debug, Default)]
#[must_use = "dropping the guard stops the exporter"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Is an exporter running (`OTEL_EXPORTER_OTLP_ENDPOINT` was set)?
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends every span ended so far (tests and benches read the receiver right after).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            if let Err(e) = provider.force_flush() {
                tracing::warn!(error = %e, "flushing spans failed");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
    }
}

/// The OTLP endpoint from the environment, if tracing is wanted.
pub fn otlp_endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// Installs the process-wide subscriber: logs, and spans exported over OTLP/HTTP (protobuf) when
/// an endpoint is configured. `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
/// `OTEL_TRACES_SAMPLER` (+ `OTEL_TRACES_SAMPLER_ARG`) and `OTEL_EXPORTER_OTLP_HEADERS` are read
/// by the OpenTelemetry SDK as the specification says. Fails if a subscriber is already set.
pub fn init(options: &Options) -> anyhow::Result<Telemetry> {
    let (telemetry, subscriber) = build(options, std::io::stdout)?;
    subscriber
        .try_init()
        .context("a tracing subscriber was already installed")?;
    Ok(telemetry)
}

/// [`init`] for tests: the first caller in a process installs the subscriber, later callers get
/// `None` (one global subscriber per process).
pub fn init_once(options: &Options) -> Option<Telemetry> {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let mut made = None;
    DONE.get_or_init(|| made = init(options).ok());
    made
}

/// The subscriber [`init`] installs: the registry with Kassa's layers (one boxed stack, so the
/// layers hear which dispatch they were registered as).
pub type Subscriber = tracing_subscriber::layer::Layered<Layers, Registry>;

/// The logs, and the database and OpenTelemetry layers when exporting.
pub type Layers = Box<dyn Layer<Registry> + Send + Sync + 'static>;

/// The dispatch the subscriber was registered as, for what needs the whole subscriber to start a
/// span's OpenTelemetry context (database spans, log lines' ids). Inside a subscriber's callback
/// `tracing::dispatcher::get_default` does not name it when the subscriber is a scoped default
/// (it answers "none" while a dispatch is under way), so the database layer keeps it here when
/// it is registered.
#[derive(Clone, Default)]
pub(crate) struct Registered(Arc<OnceLock<WeakDispatch>>);

impl Registered {
    /// The span's OpenTelemetry context, started now if it was not yet (contexts are not
    /// activated on enter: that would cost on every poll of every future). `None` for a span the
    /// OpenTelemetry layer does not follow.
    pub(crate) fn otel_context(
        &self,
        extensions: &mut tracing_subscriber::registry::ExtensionsMut<'_>,
    ) -> Option<opentelemetry::Context> {
        let dispatch = self.0.get()?.upgrade()?;
        tracing_opentelemetry::get_otel_context(extensions, &dispatch)
    }

    fn set(&self, dispatch: &Dispatch) {
        let _ = self.0.set(dispatch.downgrade());
    }

    /// Is anything traced (the database layer, installed with the exporter, was registered)?
    pub(crate) fn tracing(&self) -> bool {
        self.0.get().is_some()
    }
}

/// The subscriber and its exporter guard, not installed (for `tracing::subscriber::set_default`
/// in tests, or logs written somewhere else than stdout).
pub fn build<W>(options: &Options, writer: W) -> anyhow::Result<(Telemetry, Subscriber)>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let registered = Registered::default();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(options.default_filter));
    let fmt: Layers = if options.json {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(logs::JsonWithTrace(registered.clone()))
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_filter(filter)
            .boxed()
    };
    let Some(provider) = tracer_provider(options)? else {
        return Ok((
            Telemetry::default(),
            tracing_subscriber::registry().with(fmt),
        ));
    };
    let tracer = provider.tracer("kassa");
    // Spans at INFO and above (warnings and errors as their events), from every crate but the
    // HTTP and database internals, whose work shows as Kassa's own client spans and as the
    // database spans below. No code locations, thread names or busy/idle timings per span:
    // each costs on every span or every poll, and the span names say where they are. No context
    // activation on enter either (it would attach and detach the span's context on every poll of
    // every future): what needs a span's context starts it when it needs it (an outgoing
    // `traceparent`, the database spans, a log line's ids).
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer.clone())
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(filter_fn(exported));
    let db = db::DbSpans::new(tracer, registered.clone())
        .with_filter(filter_fn(|meta| db::wanted(meta, exported)));
    // The database layer inside the OpenTelemetry one: when a span closes, its database spans
    // are sent before it ends, so whoever sees the span also sees them.
    let layers: Layers = fmt.and_then(db).and_then(otel).boxed();
    Ok((
        Telemetry {
            provider: Some(provider),
        },
        tracing_subscriber::registry().with(layers),
    ))
}

/// Crates whose own spans and events are not exported.
const INTERNALS: [&str; 6] = ["sqlx", "hyper", "h2", "reqwest", "tantivy", "async_nats"];

/// What the OpenTelemetry layer takes: spans at INFO and above, events at WARN and above (they
/// become span events), nothing from [`INTERNALS`].
fn exported(meta: &tracing::Metadata<'_>) -> bool {
    if INTERNALS.iter().any(|t| meta.target().starts_with(t)) {
        return false;
    }
    let most = if meta.is_span() {
        tracing::Level::INFO
    } else {
        tracing::Level::WARN
    };
    *meta.level() <= most
}

fn tracer_provider(options: &Options) -> anyhow::Result<Option<SdkTracerProvider>> {
    use opentelemetry_otlp::WithExportConfig as _;
    if options.otlp_traces_url.is_none() && otlp_endpoint().is_none() {
        return Ok(None);
    }
    // The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS and _TIMEOUT itself.
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
    if let Some(url) = &options.otlp_traces_url {
        exporter = exporter.with_endpoint(url.clone());
    }
    let exporter = exporter
        .build()
        .context("building the OTLP/HTTP span exporter")?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(options.service_name);
    }
    // The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (default: parent
    // based, always on).
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}
