//! Database spans from sqlx's own query events: sqlx reports every statement when it ends (target
//! `sqlx::query`, with its first words and its elapsed time) on the thread that ran it, inside
//! the caller's span. Each becomes part of a client span under that span, named by the operation
//! and carrying `db.system` and `db.operation.name`, never a statement's values (they are bound
//! parameters and are not in the event; only the operation word is kept anyway).
//!
//! What it costs, and where: on SQLite the event arrives on the connection's worker thread while
//! the writer holds SQLite's one write lock, so anything done there delays every other writer.
//! The event therefore only notes the statement (its operation word, a static string, and its
//! start and end) on the span it ran in; the spans are made when that span closes, after the
//! work (and its commit) is done. Consecutive statements with the same operation under the same
//! span make one span (`db.operation.batch.size` says how many when more than one), from the
//! first one's start to the last one's end: an order's dozen inserts and updates are a few spans,
//! not a dozen, and each still says what the database did and for how long. Savepoints make no
//! span ([`BOOKKEEPING`]).

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::Tracer;
use tracing::field::{Field, Visit};
use tracing::span::Id;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

const TARGET: &str = "sqlx::query";

/// A span that never closes (a loop's) sends its database spans once it has this many.
const MOST_PENDING: usize = 32;

/// What this layer needs: sqlx's statement events (at DEBUG) and the spans they may run in
/// (the ones the OpenTelemetry layer exports, `exported`).
pub(crate) fn wanted(meta: &Metadata<'_>, exported: fn(&Metadata<'_>) -> bool) -> bool {
    if meta.is_span() {
        exported(meta)
    } else {
        meta.target() == TARGET && *meta.level() <= tracing::Level::DEBUG
    }
}

pub(crate) struct DbSpans {
    tracer: Tracer,
    registered: crate::Registered,
}

impl DbSpans {
    pub(crate) fn new(tracer: Tracer, registered: crate::Registered) -> Self {
        Self { tracer, registered }
    }

    fn send(&self, pending: Pending) {
        for run in pending.runs {
            let mut attributes = Vec::with_capacity(4);
            attributes.extend([
                KeyValue::new("db.system", pending.system),
                KeyValue::new("db.system.name", pending.system),
                KeyValue::new("db.operation.name", run.operation),
            ]);
            if run.statements > 1 {
                attributes.push(KeyValue::new(
                    "db.operation.batch.size",
                    i64::from(run.statements),
                ));
            }
            let span = self
                .tracer
                .span_builder(run.operation)
                .with_kind(SpanKind::Client)
                .with_start_time(run.start)
                .with_attributes(attributes)
                .start_with_context(&self.tracer, &pending.parent);
            opentelemetry::trace::Span::end_with_timestamp(&mut { span }, run.end);
        }
    }
}

/// What an event says of its statement: the operation (read from its summary without copying
/// it: the event comes on SQLite's writer thread) and how long it took.
struct Query {
    operation: &'static str,
    elapsed_secs: f64,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            operation: operation(""),
            elapsed_secs: 0.0,
        }
    }
}

impl Visit for Query {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.operation = operation(value);
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

/// Savepoints around each order of a group commit: bookkeeping that does no work of its own
/// (nothing is written until the commit), so it makes no span; the statements between them do.
const BOOKKEEPING: [&str; 2] = ["SAVEPOINT", "RELEASE"];

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

/// Statements noted on a span, not yet sent (a span extension).
struct Pending {
    /// The span's OpenTelemetry context, taken when its first statement ended.
    parent: opentelemetry::Context,
    system: &'static str,
    runs: Vec<Run>,
}

/// Consecutive statements with one operation.
struct Run {
    operation: &'static str,
    start: SystemTime,
    end: SystemTime,
    statements: u32,
}

impl Pending {
    fn note(&mut self, operation: &'static str, start: SystemTime, end: SystemTime) {
        if let Some(last) = self.runs.last_mut() {
            if last.operation == operation {
                last.end = end;
                last.statements = last.statements.saturating_add(1);
                return;
            }
        }
        self.runs.push(Run {
            operation,
            start,
            end,
            statements: 1,
        });
    }
}

impl<S> Layer<S> for DbSpans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.registered.set(subscriber);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        // The span the statement ran in (sqlx's SQLite worker enters the caller's span). A
        // statement outside any traced work (a background sweep) makes no root span.
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut query = Query::default();
        event.record(&mut query);
        let end = SystemTime::now();
        let elapsed = Duration::try_from_secs_f64(query.elapsed_secs).unwrap_or_default();
        let start = end.checked_sub(elapsed).unwrap_or(end);
        let operation = query.operation;
        if BOOKKEEPING.contains(&operation) {
            return;
        }
        let mut extensions = span.extensions_mut();
        if let Some(pending) = extensions.get_mut::<Pending>() {
            pending.note(operation, start, end);
            if pending.runs.len() >= MOST_PENDING {
                let full = std::mem::take(&mut pending.runs);
                let parent = pending.parent.clone();
                let system = pending.system;
                drop(extensions);
                self.send(Pending {
                    parent,
                    system,
                    runs: full,
                });
            }
            return;
        }
        // The span's OpenTelemetry context, started now if it was not yet (contexts are not
        // activated on enter: that would cost on every poll of every future). An unsampled
        // trace (OTEL_TRACES_SAMPLER_ARG below 1) gets no database spans.
        let Some(parent) = self.registered.otel_context(&mut extensions) else {
            return;
        };
        if !parent.has_active_span() || !parent.span().span_context().is_sampled() {
            return;
        }
        let mut pending = Pending {
            parent,
            system: db_system(),
            runs: Vec::with_capacity(8),
        };
        pending.note(operation, start, end);
        extensions.insert(pending);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let pending = span.extensions_mut().remove::<Pending>();
        if let Some(pending) = pending {
            self.send(pending);
        }
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
