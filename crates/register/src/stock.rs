//! Stock levels per SKU and location: Central's view as last pulled, and the register's view,
//! which also subtracts the sales still waiting in the outbox and adds the queued adjustments.

use kassa_domain::api::StockLevel;

use crate::error::{Context, Result};
use crate::store::{now_ms, LocalDb, Tx};

/// Stores a level pulled from Central.
pub async fn save(tx: &mut Tx, level: &StockLevel) -> Result<()> {
    sqlx::query(
        "INSERT INTO stock_levels (sku, location, on_hand, reserved, available, pulled_at)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (sku, location) DO UPDATE SET on_hand = excluded.on_hand,
            reserved = excluded.reserved, available = excluded.available, pulled_at = excluded.pulled_at",
    )
    .bind(level.sku.as_str())
    .bind(&level.location)
    .bind(level.on_hand)
    .bind(level.reserved)
    .bind(level.available)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("storing a stock level")?;
    Ok(())
}

/// What the register believes is available: Central's last `available` plus what the till's
/// own stock lease holds there (reserved for this till alone), minus the quantities of sales
/// not yet at Central, plus adjustments not yet at Central (`None` when the SKU's level was
/// never pulled).
pub async fn available(db: &LocalDb, sku: &str, location: &str) -> Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT s.available + COALESCE((
             SELECT ll.held FROM lease_lines ll JOIN leases le ON le.id = ll.lease_id
             WHERE ll.sku = s.sku AND le.location = s.location AND le.status = 'active'), 0)
           - COALESCE((
             SELECT SUM(l.qty) FROM outbox_lines l JOIN outbox_orders o ON o.order_id = l.order_id
             WHERE l.sku = s.sku AND o.location = s.location AND o.status = 'pending'), 0)
           + COALESCE((SELECT SUM(a.delta) FROM stock_adjustments a
             WHERE a.sku = s.sku AND a.location = s.location AND a.status = 'pending'), 0)
         FROM stock_levels s WHERE s.sku = ? AND s.location = ?",
    )
    .bind(sku)
    .bind(location)
    .fetch_optional(db.reader())
    .await
    .context("reading a stock level")
}
