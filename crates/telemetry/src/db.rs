//! Database spans from sqlx's own query events: sqlx reports every statement when it ends (target
//! `sqlx::query`, with its first words and its elapsed time) on the thread that ran it, inside
//! the caller's span; this layer turns each into a client span under that span, named by the
//! operation and carrying `db.system` and `db.operation.name`, never a statement's values (they
//! are bound parameters and are not in the event; only the operation word is kept anyway).

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::Tracer;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

const TARGET: &str = "sqlx::query";

/// The events this layer needs: sqlx logs statements at DEBUG.
pub(crate) fn filter() -> Targets {
    Targets::new().with_target(TARGET, LevelFilter::DEBUG)
}

pub(crate) struct DbSpans {
    tracer: Tracer,
}

impl DbSpans {
    pub(crate) fn new(tracer: Tracer) -> Self {
        Self { tracer }
    }
}

#[derive(Default)]
struct Query {
    summary: String,
    elapsed_secs: f64,
}

impl Visit for Query {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            value.clone_into(&mut self.summary);
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// The operations a span may be named by; anything else is `QUERY`.
const OPERATIONS: [&str; 12] = [
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "WITH",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "PRAGMA",
    "SET",
];

/// `SELECT`, `INSERT`, `BEGIN`… : the statement's first word when it is a known operation;
/// nothing else of the statement (and no allocation: the name is a static string).
fn operation(summary: &str) -> &'static str {
    let first = summary.split_whitespace().next().unwrap_or_default();
    OPERATIONS
        .iter()
        .find(|op| op.eq_ignore_ascii_case(first))
        .copied()
        .unwrap_or("QUERY")
}

/// sqlx runs SQLite statements on its worker threads (named `sqlx-sqlite-worker-N`, entering the
/// caller's span) and PostgreSQL statements on the caller's task.
fn db_system() -> &'static str {
    let sqlite = std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("sqlx-sqlite-worker"));
    if sqlite {
        "sqlite"
    } else {
        "postgresql"
    }
}

impl<S: Subscriber> Layer<S> for DbSpans {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        // The entered span's OpenTelemetry context (tracing-opentelemetry activates it on
        // enter). A statement outside any traced work (a background sweep) makes no root span.
        // An unsampled trace (OTEL_TRACES_SAMPLER_ARG below 1) gets no database spans at all.
        let parent = opentelemetry::Context::current();
        if !parent.has_active_span() || !parent.span().span_context().is_sampled() {
            return;
        }
        let mut query = Query::default();
        event.record(&mut query);
        let op = operation(&query.summary);
        let end = SystemTime::now();
        let elapsed = Duration::try_from_secs_f64(query.elapsed_secs).unwrap_or_default();
        let system = db_system();
        let span = self
            .tracer
            .span_builder(op)
            .with_kind(SpanKind::Client)
            .with_start_time(end.checked_sub(elapsed).unwrap_or(end))
            .with_attributes([
                KeyValue::new("db.system", system),
                KeyValue::new("db.system.name", system),
                KeyValue::new("db.operation.name", op),
            ])
            .start_with_context(&self.tracer, &parent);
        opentelemetry::trace::Span::end_with_timestamp(&mut { span }, end);
    }
}

#[cfg(test)]
mod tests {
    use super::operation;

    #[test]
    fn the_operation_is_the_first_word_and_never_a_value() {
        assert_eq!(operation("select id, sku from"), "SELECT");
        assert_eq!(operation("INSERT INTO events (id, …"), "INSERT");
        assert_eq!(operation("UPDATE stock SET on_hand = 5"), "UPDATE");
        assert_eq!(operation(""), "QUERY");
    }
}
