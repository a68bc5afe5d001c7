//! A manager's stock adjustments and receiving, made at the register online or not: queued,
//! counted in the local stock view at once, pushed in order, each with its own Idempotency-Key
//! (made from its id), so an attempt whose answer was lost is simply sent again and Central
//! moves the stock once. (`uncertain` remains for adjustments queued by an older register
//! version, which sent no key.)

use std::str::FromStr;

use kassa_domain::api::{StockAdjustment, StockReason};
use kassa_domain::Sku;
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use crate::error::{corrupt, Context, Error, Result};
use crate::store::{now_ms, LocalDb};

/// Adjustments pushed per round at most.
pub const ADJUSTMENTS_PER_ROUND_MAX: i64 = 100;
/// The largest single movement Central accepts.
const DELTA_ABS_MAX: i64 = 1_000_000;

/// A queued adjustment.
#[derive(Debug, Clone, Serialize)]
pub struct Queued {
    pub id: Uuid,
    pub status: String,
    pub adjustment: StockAdjustment,
    pub last_error: Option<String>,
}

impl Queued {
    /// The key every attempt of this adjustment carries.
    pub fn key(&self) -> Result<kassa_domain::IdempotencyKey> {
        kassa_domain::IdempotencyKey::parse(&format!("register-adjust-{}", self.id))
            .map_err(|e| corrupt("adjustment key", e))
    }
}

/// Queues an adjustment (checked as Central would: non-zero, bounded, receiving adds stock).
pub async fn queue(db: &LocalDb, adjustment: &StockAdjustment) -> Result<Uuid> {
    check(adjustment)?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO stock_adjustments (id, sku, location, delta, reason, note, status, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
    )
    .bind(id.to_string())
    .bind(adjustment.sku.as_str())
    .bind(&adjustment.location)
    .bind(adjustment.delta)
    .bind(adjustment.reason.as_str())
    .bind(&adjustment.note)
    .bind(now_ms())
    .bind(now_ms())
    .execute(db.pool())
    .await
    .context("queueing a stock adjustment")?;
    Ok(id)
}

fn check(a: &StockAdjustment) -> Result<()> {
    if a.delta == 0 || a.delta.abs() > DELTA_ABS_MAX {
        return Err(Error::Invalid(format!(
            "an adjustment moves 1 to {DELTA_ABS_MAX} units"
        )));
    }
    let adds_only = matches!(a.reason, StockReason::Receiving | StockReason::Return);
    if adds_only && a.delta < 0 {
        return Err(Error::Invalid("receiving and returns add stock".into()));
    }
    if matches!(
        a.reason,
        StockReason::Sale | StockReason::ReservationConversion
    ) {
        return Err(Error::Invalid("sales move stock through orders".into()));
    }
    Ok(())
}

fn reason(s: &str) -> Result<StockReason> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|e| corrupt("adjustment reason", e))
}

fn from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Queued> {
    let id: String = row.get("id");
    let sku: String = row.get("sku");
    Ok(Queued {
        id: Uuid::parse_str(&id).map_err(|e| corrupt("adjustment id", e))?,
        status: row.get("status"),
        last_error: row.get("last_error"),
        adjustment: StockAdjustment {
            sku: Sku::from_str(&sku).map_err(|e| corrupt("adjustment sku", e))?,
            location: row.get("location"),
            delta: row.get("delta"),
            reason: reason(&row.get::<String, _>("reason"))?,
            note: row.get("note"),
        },
    })
}

/// Adjustments with `status`, oldest first (at most [`ADJUSTMENTS_PER_ROUND_MAX`]).
pub async fn with_status(db: &LocalDb, status: &str) -> Result<Vec<Queued>> {
    let rows = sqlx::query(
        "SELECT id, sku, location, delta, reason, note, status, last_error FROM stock_adjustments
         WHERE status = ? ORDER BY seq LIMIT ?",
    )
    .bind(status)
    .bind(ADJUSTMENTS_PER_ROUND_MAX)
    .fetch_all(db.pool())
    .await
    .context("reading queued adjustments")?;
    rows.iter().map(from_row).collect()
}

/// The latest `limit` adjustments made here, any status, newest first.
pub async fn recent(db: &LocalDb, limit: u32) -> Result<Vec<Queued>> {
    let rows = sqlx::query(
        "SELECT id, sku, location, delta, reason, note, status, last_error FROM stock_adjustments
         ORDER BY seq DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(db.reader())
    .await
    .context("reading the adjustment queue")?;
    rows.iter().map(from_row).collect()
}

/// Moves an adjustment to `done`, `rejected` or `uncertain`.
pub async fn settle(db: &LocalDb, id: Uuid, status: &str, error: Option<&str>) -> Result<()> {
    sqlx::query(
        "UPDATE stock_adjustments SET status = ?, last_error = ?, updated_at = ? WHERE id = ?",
    )
    .bind(status)
    .bind(error)
    .bind(now_ms())
    .bind(id.to_string())
    .execute(db.pool())
    .await
    .context("settling an adjustment")?;
    Ok(())
}
