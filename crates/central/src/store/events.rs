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

/// One event of [`record_many`]: type, aggregate type, aggregate id, payload.
pub type NewEvent<'a> = (&'a str, &'a str, &'a str, &'a Value);

/// Appends several events in one multi-row insert inside `tx`, their ids in the given order.
pub async fn record_many(tx: &mut Tx, events: &[NewEvent<'_>]) -> anyhow::Result<Vec<Uuid>> {
    const COLUMNS: usize = 7;
    if events.is_empty() {
        return Ok(Vec::new());
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
    let (now, traceparent) = (now_ms(), kassa_telemetry::propagation::traceparent());
    let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
    let mut query = sqlx::query(&sql);
    for (id, (event_type, aggregate_type, aggregate_id, payload)) in ids.iter().zip(events) {
        query = query
            .bind(id.to_string())
            .bind(*event_type)
            .bind(*aggregate_type)
            .bind(*aggregate_id)
            .bind(payload.to_string())
            .bind(now)
            .bind(traceparent.clone());
    }
    query.execute(&mut **tx).await.context("recording events")?;
    Ok(ids)
}
