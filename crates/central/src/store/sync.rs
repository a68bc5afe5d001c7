//! SQL for offline sync: the per-register claim and stored result of each applied offline order,
//! and the payments registers took offline.

use anyhow::Context;
use sqlx::Row;
use uuid::Uuid;

use super::{now_ms, Db, Tx};

/// The key of an offline order: the register that sent it and the id the register made.
#[derive(Debug, Clone, Copy)]
pub struct OfflineKey {
    pub register_id: Uuid,
    pub order_id: Uuid,
}

/// What a claim records besides the key.
#[derive(Debug)]
pub struct ClaimInfo<'a> {
    pub request_hash: &'a str,
    pub receipt_no: &'a str,
    pub completed_at_ms: i64,
}

/// The result kept for an applied offline order.
#[derive(Debug)]
pub struct Stored {
    pub request_hash: String,
    pub result: String,
}

/// Claims `key` inside the transaction that applies the order; `false` when it was already
/// claimed. On PostgreSQL a concurrent claim of the same key waits here until the other
/// transaction ends, then does nothing if that one committed: the conflict never surfaces as an
/// error, and the loser reads the winner's result.
pub async fn claim(tx: &mut Tx, key: OfflineKey, info: &ClaimInfo<'_>) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO offline_orders (register_id, order_id, request_hash, receipt_no, completed_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (register_id, order_id) DO NOTHING",
    )
    .bind(key.register_id.to_string())
    .bind(key.order_id.to_string())
    .bind(info.request_hash)
    .bind(info.receipt_no)
    .bind(info.completed_at_ms)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("claiming offline order")?;
    Ok(done.rows_affected() == 1)
}

/// Saves the result in the claiming transaction, so both commit or neither.
pub async fn finish(tx: &mut Tx, key: OfflineKey, result: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE offline_orders SET result = $1 WHERE register_id = $2 AND order_id = $3")
        .bind(result)
        .bind(key.register_id.to_string())
        .bind(key.order_id.to_string())
        .execute(&mut **tx)
        .await
        .context("saving offline order result")?;
    Ok(())
}

/// The stored result of `key`, if it was applied.
pub async fn stored(tx: &mut Tx, key: OfflineKey) -> anyhow::Result<Option<Stored>> {
    let row = sqlx::query(
        "SELECT request_hash, result FROM offline_orders WHERE register_id = $1 AND order_id = $2",
    )
    .bind(key.register_id.to_string())
    .bind(key.order_id.to_string())
    .fetch_optional(&mut **tx)
    .await
    .context("loading offline order result")?;
    let Some(row) = row else { return Ok(None) };
    let result: Option<String> = row.try_get("result")?;
    Ok(Some(Stored {
        request_hash: row.try_get("request_hash")?,
        result: result.context("an offline order was committed without its result")?,
    }))
}

/// One payment of an offline order, as stored.
#[derive(Debug)]
pub struct PaymentRow<'a> {
    pub order_id: Uuid,
    pub seq: i64,
    pub method: &'a str,
    pub currency: &'a str,
    pub amount_minor: i64,
    pub tendered_minor: Option<i64>,
    pub change_minor: Option<i64>,
    pub reference: Option<&'a str>,
}

pub async fn insert_payment(tx: &mut Tx, p: &PaymentRow<'_>) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO offline_payments (order_id, seq, method, currency, amount_minor, tendered_minor, \
         change_minor, reference, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(p.order_id.to_string())
    .bind(p.seq)
    .bind(p.method)
    .bind(p.currency)
    .bind(p.amount_minor)
    .bind(p.tendered_minor)
    .bind(p.change_minor)
    .bind(p.reference)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("inserting offline payment")?;
    Ok(())
}

/// The location code of a register, if the register exists.
#[tracing::instrument(skip_all)]
pub async fn register_location(db: &Db, register_id: Uuid) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT l.code FROM registers r JOIN locations l ON l.id = r.location_id WHERE r.id = $1",
    )
    .bind(register_id.to_string())
    .fetch_optional(db.pool())
    .await
    .context("looking up the register's location")
}
