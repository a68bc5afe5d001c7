//! SQL for the event relay: undelivered events, the delivered marker, the relay lease, the
//! consumers' de-duplication claims and the stock alerts the stock-alerts consumer raises.

use anyhow::Context;
use sqlx::Row;
use uuid::Uuid;

use super::{from_ms, now_ms, Db, Tx};
use crate::events::Event;

/// The single lease row the relays compete for.
const LEASE: &str = "outbox";

fn decode(row: &sqlx::any::AnyRow) -> anyhow::Result<Event> {
    let id: String = row.try_get("id")?;
    let payload: String = row.try_get("payload")?;
    Ok(Event {
        seq: row.try_get("seq")?,
        id: id.parse().context("stored event id")?,
        event_type: row.try_get("type")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        payload: serde_json::from_str(&payload).context("stored event payload")?,
        created_at: from_ms(row.try_get("created_at")?),
        traceparent: row.try_get("traceparent")?,
    })
}

/// The oldest undelivered events, in `seq` order, at most `limit`. A late-committing event with a
/// smaller `seq` than one already delivered shows up here on the next read: nothing is skipped.
#[tracing::instrument(skip_all, fields(limit))]
pub async fn undelivered(db: &Db, limit: i64) -> anyhow::Result<Vec<Event>> {
    let rows = sqlx::query(
        "SELECT seq, id, type, aggregate_type, aggregate_id, payload, created_at, traceparent \
         FROM events WHERE delivered_at IS NULL ORDER BY seq LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .context("reading undelivered events")?;
    rows.iter().map(decode).collect()
}

/// Whether any event waits for delivery (the partial index answers it).
#[tracing::instrument(skip_all)]
pub async fn any_undelivered(db: &Db) -> anyhow::Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM events WHERE delivered_at IS NULL LIMIT 1")
            .fetch_optional(db.pool())
            .await
            .context("looking for undelivered events")?;
    Ok(found.is_some())
}

/// Marks `seqs` delivered (every sink has them). Returns how many were still unmarked.
#[tracing::instrument(skip_all, fields(events = seqs.len()))]
pub async fn mark_delivered(db: &Db, seqs: &[i64]) -> anyhow::Result<u64> {
    if seqs.is_empty() {
        return Ok(0);
    }
    let placeholders: Vec<String> = (2..=seqs.len() + 1).map(|i| format!("${i}")).collect();
    let sql = format!(
        "UPDATE events SET delivered_at = $1 WHERE delivered_at IS NULL AND seq IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(now_ms());
    for seq in seqs {
        query = query.bind(seq);
    }
    let mut tx = db.begin_write().await?;
    let done = query
        .execute(&mut *tx)
        .await
        .context("marking events delivered")?;
    tx.commit().await.context("committing delivered marks")?;
    Ok(done.rows_affected())
}

/// Backlog: how many events are undelivered, and when the oldest of them was written.
#[tracing::instrument(skip_all)]
pub async fn backlog(db: &Db) -> anyhow::Result<(i64, Option<i64>)> {
    let row = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN(created_at) AS oldest FROM events \
         WHERE delivered_at IS NULL",
    )
    .fetch_one(db.pool())
    .await
    .context("measuring the relay backlog")?;
    Ok((row.try_get("n")?, row.try_get("oldest")?))
}

/// Takes or renews the relay lease for `holder` until `now + ttl_ms`; true when `holder` has it.
#[tracing::instrument(skip_all, fields(holder))]
pub async fn acquire_lease(db: &Db, holder: &str, ttl_ms: i64) -> anyhow::Result<bool> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE relay_leases SET holder = $1, expires_at = $2 \
         WHERE name = $3 AND (holder = $1 OR expires_at < $4)",
    )
    .bind(holder)
    .bind(now + ttl_ms)
    .bind(LEASE)
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("taking the relay lease")?;
    tx.commit().await.context("committing the relay lease")?;
    Ok(done.rows_affected() == 1)
}

/// Gives the lease up (on shutdown), so another relay takes over without waiting for expiry.
#[tracing::instrument(skip_all, fields(holder))]
pub async fn release_lease(db: &Db, holder: &str) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE relay_leases SET expires_at = 0 WHERE name = $1 AND holder = $2")
        .bind(LEASE)
        .bind(holder)
        .execute(&mut *tx)
        .await
        .context("releasing the relay lease")?;
    tx.commit().await.context("committing the lease release")?;
    Ok(())
}

/// Claims `event_id` for `consumer` inside the consumer's transaction; false when it already
/// consumed it (a re-delivery). On PostgreSQL a concurrent claim of the same event waits for the
/// first transaction and then sees the conflict.
#[tracing::instrument(skip_all, fields(consumer, %event_id))]
pub async fn claim(tx: &mut Tx, consumer: &str, event_id: Uuid) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO consumed_events (consumer, event_id, consumed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id.to_string())
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .with_context(|| format!("claiming event {event_id} for {consumer}"))?;
    Ok(done.rows_affected() == 1)
}

/// How many events `consumer` has applied.
#[tracing::instrument(skip_all, fields(consumer))]
pub async fn consumed_count(db: &Db, consumer: &str) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM consumed_events WHERE consumer = $1")
        .bind(consumer)
        .fetch_one(db.pool())
        .await
        .context("counting consumed events")
}

/// A low-stock alert raised from a `stock.low` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockAlert {
    pub event_id: Uuid,
    pub sku: String,
    pub location_id: String,
    pub available: i64,
    pub threshold: i64,
}

/// Records an alert inside the consumer's transaction.
#[tracing::instrument(skip_all, fields(sku = alert.sku))]
pub async fn insert_alert(tx: &mut Tx, alert: &StockAlert) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO stock_alerts (event_id, sku, location_id, available, threshold, raised_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(alert.event_id.to_string())
    .bind(&alert.sku)
    .bind(&alert.location_id)
    .bind(alert.available)
    .bind(alert.threshold)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("recording a stock alert")?;
    Ok(())
}

/// Every alert for `sku`, oldest first.
#[tracing::instrument(skip_all, fields(sku))]
pub async fn alerts_for(db: &Db, sku: &str) -> anyhow::Result<Vec<StockAlert>> {
    let rows = sqlx::query(
        "SELECT event_id, sku, location_id, available, threshold FROM stock_alerts \
         WHERE sku = $1 ORDER BY raised_at, event_id",
    )
    .bind(sku)
    .fetch_all(db.pool())
    .await
    .context("reading stock alerts")?;
    rows.iter()
        .map(|row| {
            let event_id: String = row.try_get("event_id")?;
            Ok(StockAlert {
                event_id: event_id.parse().context("stored event id")?,
                sku: row.try_get("sku")?,
                location_id: row.try_get("location_id")?,
                available: row.try_get("available")?,
                threshold: row.try_get("threshold")?,
            })
        })
        .collect()
}
