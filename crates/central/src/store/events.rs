//! SQL for the event outbox: rows written in the transaction of the change they describe.

use anyhow::Context;
use serde_json::Value;
use uuid::Uuid;

use super::{now_ms, Tx};

/// Appends an event to the outbox inside `tx`.
pub async fn record(
    tx: &mut Tx,
    event_type: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    payload: &Value,
) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO events (id, type, aggregate_type, aggregate_id, payload, created_at, \
         traceparent) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.to_string())
    .bind(event_type)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(payload.to_string())
    .bind(now_ms())
    .bind(kassa_telemetry::propagation::traceparent())
    .execute(&mut **tx)
    .await
    .with_context(|| format!("recording event {event_type}"))?;
    Ok(id)
}

/// An event to append later ([`record_all`]), with the trace context it was made in.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: &'static str,
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub payload: Value,
    pub created_at: i64,
    pub traceparent: Option<String>,
}

impl NewEvent {
    /// An event made now, in the current span's trace.
    pub fn now(
        event_type: &'static str,
        aggregate_type: &'static str,
        aggregate_id: String,
        payload: Value,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type,
            aggregate_type,
            aggregate_id,
            payload,
            created_at: now_ms(),
            traceparent: kassa_telemetry::propagation::traceparent(),
        }
    }
}

/// Appends `events` in one multi-row insert inside `tx`, in the given order.
pub async fn record_all(tx: &mut Tx, events: &[NewEvent]) -> anyhow::Result<()> {
    const COLUMNS: usize = 7;
    if events.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..events.len())
        .map(|row| {
            let first = row * COLUMNS + 1;
            let params: Vec<String> = (first..first + COLUMNS).map(|p| format!("${p}")).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO events (id, type, aggregate_type, aggregate_id, payload, created_at, \
         traceparent) VALUES {}",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for e in events {
        query = query
            .bind(e.id.to_string())
            .bind(e.event_type)
            .bind(e.aggregate_type)
            .bind(e.aggregate_id.as_str())
            .bind(e.payload.to_string())
            .bind(e.created_at)
            .bind(e.traceparent.clone());
    }
    query.execute(&mut **tx).await.context("recording events")?;
    Ok(())
}
