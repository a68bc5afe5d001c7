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
