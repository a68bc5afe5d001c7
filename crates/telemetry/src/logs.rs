//! JSON log lines that name their trace: `{"timestamp", "level", "target", "fields", "span",
//! "spans", "trace_id", "span_id"}`, so a log line leads to its trace and back.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// The JSON event format with the OpenTelemetry ids of the innermost traced span.
#[derive(Clone)]
pub(crate) struct JsonWithTrace(pub(crate) crate::Registered);

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl<S, N> FormatEvent<S, N> for JsonWithTrace
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), timestamp().into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        line.insert("fields".into(), Value::Object(fields.0));
        let mut spans = Vec::new();
        let mut ids = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                if ids.is_none() {
                    ids = trace_ids(&self.0, &span);
                }
                let ext = span.extensions();
                let mut entry = match ext
                    .get::<FormattedFields<N>>()
                    .and_then(|f| serde_json::from_str::<Value>(f).ok())
                {
                    Some(Value::Object(map)) => map,
                    _ => Map::new(),
                };
                entry.insert("name".into(), span.name().into());
                spans.push(Value::Object(entry));
            }
        }
        spans.reverse();
        if let Some(current) = spans.last() {
            line.insert("span".into(), current.clone());
        }
        line.insert("spans".into(), Value::Array(spans));
        if let Some((trace_id, span_id)) = ids {
            line.insert("trace_id".into(), trace_id.to_string().into());
            line.insert("span_id".into(), span_id.to_string().into());
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// The trace and span id of a span the OpenTelemetry layer follows.
fn trace_ids<'a, R: LookupSpan<'a>>(
    registered: &crate::Registered,
    span: &SpanRef<'a, R>,
) -> Option<(opentelemetry::TraceId, opentelemetry::SpanId)> {
    use opentelemetry::trace::TraceContextExt as _;
    if !registered.tracing() {
        return None;
    }
    let cx = registered.otel_context(&mut span.extensions_mut())?;
    let span = cx.span();
    let context = span.span_context();
    context
        .is_valid()
        .then(|| (context.trace_id(), context.span_id()))
}
