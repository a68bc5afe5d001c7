//! The till's stock lease: stock Central reserves for this register, which its offline sales
//! consume with no shortfall (issue 16). The sync engine proposes the lease from the till's own
//! sales velocity and Central's lease settings for the location
//! ([`kassa_domain::lease::propose`]), takes or resizes it every round while online, and keeps
//! what Central answered here; [`crate::Register::return_lease`] gives it back at shift close
//! or a clean shutdown.
//!
//! Offline, [`left`] says how many units of a SKU the till may still sell without a shortfall
//! ("3 left at this till"): what Central said the lease holds, less the offline sales made
//! since (each takes its units in its own transaction, [`take`]).

use std::collections::BTreeMap;

use kassa_domain::lease::{Lease, LeaseSettings, Velocity};
use kassa_domain::Sku;
use sqlx::Row;

use crate::error::{corrupt, Context, Result};
use crate::store::{now_ms, LocalDb, Tx};

/// The lease this register holds, as last heard from Central.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TillLease {
    pub id: uuid::Uuid,
    pub status: String,
    pub expires_at_ms: i64,
    /// Per SKU: what the till may still sell without a shortfall.
    pub left: BTreeMap<String, i64>,
}

/// The active lease, if the till holds one.
pub async fn current(db: &LocalDb) -> Result<Option<TillLease>> {
    let row = sqlx::query(
        "SELECT id, status, expires_at FROM leases WHERE status = 'active' ORDER BY pulled_at DESC LIMIT 1",
    )
    .fetch_optional(db.reader())
    .await
    .context("reading the till's lease")?;
    let Some(row) = row else { return Ok(None) };
    let id: String = row.get("id");
    let lines = sqlx::query("SELECT sku, left FROM lease_lines WHERE lease_id = ? ORDER BY sku")
        .bind(&id)
        .fetch_all(db.reader())
        .await
        .context("reading the till's lease lines")?;
    Ok(Some(TillLease {
        id: id.parse().map_err(|e| corrupt("lease id", e))?,
        status: row.get("status"),
        expires_at_ms: row.get("expires_at"),
        left: lines
            .iter()
            .map(|l| (l.get("sku"), l.get("left")))
            .collect(),
    }))
}

/// Units of `sku` the till may still sell without a shortfall: `None` when it holds no lease
/// line for it (or the lease has run out).
pub async fn left(db: &LocalDb, sku: &str) -> Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT l.left FROM lease_lines l JOIN leases s ON s.id = l.lease_id \
         WHERE s.status = 'active' AND s.expires_at > ? AND l.sku = ?",
    )
    .bind(now_ms())
    .bind(sku)
    .fetch_optional(db.reader())
    .await
    .context("reading what is left at this till")
}

/// The lines of `lines` (SKU, units) that go past what is left at this till, said as the
/// cashier reads it ("SKU-1: 3, 1 left at this till").
pub async fn past(db: &LocalDb, lines: &[(String, i64)]) -> Result<Vec<String>> {
    let mut past = Vec::new();
    for (sku, qty) in lines {
        let at_till = left(db, sku).await?.unwrap_or(0);
        if *qty > at_till {
            past.push(format!("{sku}: {qty}, {at_till} left at this till"));
        }
    }
    Ok(past)
}

/// What Central's last answer said the lease holds of `sku` (0 without a lease): the units of
/// Central's `reserved` that are this till's own to sell.
pub async fn held(db: &LocalDb, sku: &str) -> Result<i64> {
    let held: Option<i64> = sqlx::query_scalar(
        "SELECT l.held FROM lease_lines l JOIN leases s ON s.id = l.lease_id \
         WHERE s.status = 'active' AND l.sku = ?",
    )
    .bind(sku)
    .fetch_optional(db.reader())
    .await
    .context("reading the till's leased units")?;
    Ok(held.unwrap_or(0))
}

/// An offline sale takes its units from what is left, in the sale's own transaction (never
/// below zero: past the lease the sale stands and Central records the shortfall).
pub(crate) async fn take(tx: &mut Tx, sku: &str, qty: i64) -> Result<()> {
    sqlx::query(
        "UPDATE lease_lines SET left = MAX(left - ?, 0) \
         WHERE sku = ? AND lease_id IN (SELECT id FROM leases WHERE status = 'active')",
    )
    .bind(qty)
    .bind(sku)
    .execute(&mut **tx)
    .await
    .context("taking a sale from the till's lease")?;
    Ok(())
}

/// Keeps Central's answer about the lease. What is left per SKU is what Central says the lease
/// holds less the sales still waiting in the outbox, offline or online (Central has not
/// counted them yet; it takes both from this till's lease first).
/// The engine calls this after pushing the outbox in the same round, so no sale reaches Central
/// between Central's answer and this write.
pub async fn save(db: &LocalDb, lease: &Lease) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let id = lease.id.to_string();
    sqlx::query("DELETE FROM leases WHERE id <> ? OR status <> 'active'")
        .bind(&id)
        .execute(&mut *tx)
        .await
        .context("dropping old leases")?;
    sqlx::query(
        "INSERT INTO leases (id, location, status, expires_at, pulled_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status,
            expires_at = excluded.expires_at, pulled_at = excluded.pulled_at",
    )
    .bind(&id)
    .bind(&lease.location)
    .bind(&lease.status)
    .bind(lease.expires_at.timestamp_millis())
    .bind(now_ms())
    .execute(&mut *tx)
    .await
    .context("keeping the till's lease")?;
    sqlx::query("DELETE FROM lease_lines WHERE lease_id = ?")
        .bind(&id)
        .execute(&mut *tx)
        .await
        .context("replacing the till's lease lines")?;
    for line in lease.lines.iter().filter(|l| l.remaining > 0) {
        sqlx::query(
            "INSERT INTO lease_lines (lease_id, sku, held, left)
             VALUES (?, ?, ?, MAX(? - COALESCE((
                 SELECT SUM(ol.qty) FROM outbox_lines ol JOIN outbox_orders o ON o.order_id = ol.order_id
                 WHERE ol.sku = ? AND o.status = 'pending'), 0), 0))",
        )
        .bind(&id)
        .bind(line.sku.as_str())
        .bind(line.remaining)
        .bind(line.remaining)
        .bind(line.sku.as_str())
        .execute(&mut *tx)
        .await
        .context("keeping a lease line")?;
    }
    tx.commit().await.context("keeping the till's lease")?;
    Ok(())
}

/// Forgets the lease (it was returned, or Central no longer has it).
pub async fn forget(db: &LocalDb) -> Result<()> {
    sqlx::query("DELETE FROM leases")
        .execute(db.pool())
        .await
        .context("forgetting the till's lease")?;
    Ok(())
}

/// The inputs of a proposal: units of each SKU this till sold since `since_ms` (every sale
/// made here, synced or not), with what it may count on at the location (Central's last
/// `available` plus what its own lease holds).
pub async fn velocities(
    db: &LocalDb,
    location: &str,
    since_ms: i64,
) -> Result<BTreeMap<Sku, Velocity>> {
    let rows = sqlx::query(
        "SELECT ol.sku AS sku, SUM(ol.qty) AS sold,
                COALESCE((SELECT s.available FROM stock_levels s WHERE s.sku = ol.sku AND s.location = ?), 0)
                  + COALESCE((SELECT ll.held FROM lease_lines ll JOIN leases le ON le.id = ll.lease_id
                              WHERE le.status = 'active' AND ll.sku = ol.sku), 0) AS available
         FROM outbox_lines ol JOIN outbox_orders o ON o.order_id = ol.order_id
         WHERE o.completed_at >= ? AND o.status <> 'rejected'
         GROUP BY ol.sku",
    )
    .bind(location)
    .bind(since_ms)
    .fetch_all(db.reader())
    .await
    .context("reading the till's sales velocity")?;
    let mut out = BTreeMap::new();
    for row in rows {
        let sku: String = row.get("sku");
        let sold: i64 = row.get("sold");
        out.insert(
            Sku::parse(&sku).map_err(|e| corrupt("a sold SKU", e))?,
            Velocity {
                sold: u64::try_from(sold).unwrap_or(0),
                available: row.get("available"),
            },
        );
    }
    Ok(out)
}

const LEASE_SETTINGS: &str = "leases";

/// Central's lease settings for this till's location, as last pulled.
pub async fn settings(db: &LocalDb) -> Result<Option<LeaseSettings>> {
    let value: Option<String> =
        sqlx::query_scalar("SELECT value FROM central_settings WHERE name = ?")
            .bind(LEASE_SETTINGS)
            .fetch_optional(db.reader())
            .await
            .context("reading Central's lease settings")?;
    value
        .map(|v| serde_json::from_str(&v).map_err(|e| corrupt("stored lease settings", e)))
        .transpose()
}

pub async fn save_settings(db: &LocalDb, settings: &LeaseSettings) -> Result<()> {
    let value = serde_json::to_string(settings).map_err(|e| corrupt("lease settings", e))?;
    sqlx::query(
        "INSERT INTO central_settings (name, value, pulled_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, pulled_at = excluded.pulled_at",
    )
    .bind(LEASE_SETTINGS)
    .bind(value)
    .bind(now_ms())
    .execute(db.pool())
    .await
    .context("keeping Central's lease settings")?;
    Ok(())
}
