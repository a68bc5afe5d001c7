//! The outbox of completed sales: read in order by the sync engine and moved along
//! pending → (online only) order_created → done, or rejected when Central refuses one for good.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use kassa_domain::api::{
    CreateOrder, OfflineLine, OfflineOrder, OfflinePayment, Order, OrderLineRequest, Shortfall,
};
use kassa_domain::{Currency, IdempotencyKey, Money, ReceiptPayment, Sku, Tender};
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::error::{corrupt, Context, Error, Result};
use crate::store::{money, now_ms, LocalDb, Tx};

/// One sale waiting for Central.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: i64,
    pub order_id: Uuid,
    pub receipt_no: String,
    pub location: String,
    /// `online` or `offline`.
    pub mode: String,
    /// `pending` or `order_created`.
    pub status: String,
    pub order_key: IdempotencyKey,
    pub payment_key: IdempotencyKey,
    pub total: Money,
    /// Every payment of the sale in the order taken: cash (tendered, change), card through
    /// Central, or card under the offline card policy; several for a split sale.
    pub payments: Vec<Tender>,
    /// The rounding of the sale's final cash part (rounded − exact), when it had one.
    pub cash_rounding: Option<Money>,
    pub completed_at: DateTime<Utc>,
    pub lines: Vec<OfflineLine>,
}

impl Entry {
    /// The body of `POST /v1/orders` (Central prices it from its catalog).
    pub fn create_order(&self) -> CreateOrder {
        CreateOrder {
            id: Some(self.order_id),
            location: self.location.clone(),
            lines: self
                .lines
                .iter()
                .map(|l| OrderLineRequest {
                    sku: l.sku.clone(),
                    qty: l.qty,
                    discount: l.discount,
                    discount_approved_by: l.discount_approved_by.clone(),
                    discount_approval: l.discount_approval.clone(),
                })
                .collect(),
        }
    }

    /// The order as `POST /v1/sync/orders` carries it, at the prices the register charged. A
    /// sale of 0.00 (a free item, a 100 % discount) carries no payment: nothing was paid, and
    /// Central takes only payments of more than zero that add up to the total.
    pub fn offline_order(&self) -> OfflineOrder {
        let payments = self
            .payments
            .iter()
            .filter(|t| !t.amount.is_zero())
            .map(|t| match &t.payment {
                // What the customer handed over for this part (change = tendered − amount).
                ReceiptPayment::Cash { tendered, .. } => OfflinePayment::Cash {
                    amount: t.amount,
                    tendered: *tendered,
                },
                ReceiptPayment::Card { reference, .. } => OfflinePayment::CardOffline {
                    amount: t.amount,
                    reference: reference.clone(),
                },
            })
            .collect();
        OfflineOrder {
            id: self.order_id,
            location: self.location.clone(),
            lines: self.lines.clone(),
            payments,
            cash_rounding: self.cash_rounding,
            completed_at: self.completed_at,
            receipt_no: self.receipt_no.clone(),
        }
    }
}

/// Outbox counts for the status line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pending: i64,
    pub done: i64,
    pub rejected: i64,
}

/// The oldest undelivered sales, in the order they were made.
pub async fn next(db: &LocalDb, limit: usize) -> Result<Vec<Entry>> {
    let rows = sqlx::query(
        "SELECT o.seq, o.order_id, o.receipt_no, o.location, o.mode, o.status, o.order_key,
                o.payment_key, o.currency, o.total_minor, o.completed_at, o.cash_rounding_minor
         FROM outbox_orders o
         WHERE o.status IN ('pending', 'order_created') ORDER BY o.seq LIMIT ?",
    )
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(db.pool())
    .await
    .context("reading the outbox")?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut entry = entry_from_row(row)?;
        entry.lines = lines(db, entry.order_id, entry.total.currency()).await?;
        let mut conn = db.pool().acquire().await.context("reading the outbox")?;
        entry.payments = tenders(&mut conn, entry.order_id, entry.total.currency()).await?;
        entries.push(entry);
    }
    Ok(entries)
}

fn entry_from_row(row: &SqliteRow) -> Result<Entry> {
    let currency: String = row.get("currency");
    let key = |col: &str| {
        IdempotencyKey::parse(&row.get::<String, _>(col)).map_err(|e| corrupt("outbox key", e))
    };
    let order_id: String = row.get("order_id");
    let completed_at: i64 = row.get("completed_at");
    Ok(Entry {
        seq: row.get("seq"),
        order_id: Uuid::parse_str(&order_id).map_err(|e| corrupt("outbox order id", e))?,
        receipt_no: row.get("receipt_no"),
        location: row.get("location"),
        mode: row.get("mode"),
        status: row.get("status"),
        order_key: key("order_key")?,
        payment_key: key("payment_key")?,
        total: money(row.get("total_minor"), &currency)?,
        payments: Vec::new(),
        cash_rounding: Some(money(row.get("cash_rounding_minor"), &currency)?)
            .filter(|r| !r.is_zero()),
        completed_at: DateTime::from_timestamp_millis(completed_at)
            .ok_or_else(|| Error::Corrupt(format!("completed_at {completed_at}")))?,
        lines: Vec::new(),
    })
}

/// The payments of sale `order_id`, in the order they were taken.
pub(crate) async fn tenders(
    conn: &mut sqlx::SqliteConnection,
    order_id: Uuid,
    currency: Currency,
) -> Result<Vec<Tender>> {
    let rows = sqlx::query(
        "SELECT method, amount_minor, tendered_minor, change_minor, reference
         FROM outbox_payments WHERE order_id = ? ORDER BY part_no",
    )
    .bind(order_id.to_string())
    .fetch_all(&mut *conn)
    .await
    .context("reading a sale's payments")?;
    rows.iter()
        .map(|row| tender_from_row(row, currency))
        .collect()
}

/// A payment row (`method`, `amount_minor`, `tendered_minor`, `change_minor`, `reference`).
pub(crate) fn tender_from_row(row: &SqliteRow, currency: Currency) -> Result<Tender> {
    let method: String = row.get("method");
    let minor = |col: &str| -> Result<Money> {
        let value: Option<i64> = row.get(col);
        let value = value.ok_or_else(|| corrupt("a payment", format!("{col} missing")))?;
        Ok(Money::from_minor(value, currency))
    };
    let payment = match method.as_str() {
        "cash" => ReceiptPayment::Cash {
            tendered: minor("tendered_minor")?,
            change: minor("change_minor")?,
        },
        "card" | "card_offline" => ReceiptPayment::Card {
            reference: row
                .get::<Option<String>, _>("reference")
                .ok_or_else(|| corrupt("a payment", "card without its reference"))?,
            offline: method == "card_offline",
        },
        other => return Err(corrupt("payment method", other)),
    };
    Ok(Tender {
        amount: minor("amount_minor")?,
        payment,
    })
}

async fn lines(db: &LocalDb, order_id: Uuid, currency: Currency) -> Result<Vec<OfflineLine>> {
    let rows = sqlx::query(
        "SELECT sku, qty, unit_price_minor, discount_minor, discount_approved_by, discount_approval
         FROM outbox_lines WHERE order_id = ? ORDER BY line_no",
    )
    .bind(order_id.to_string())
    .fetch_all(db.pool())
    .await
    .context("reading outbox lines")?;
    rows.iter()
        .map(|row| {
            let sku: String = row.get("sku");
            let qty: i64 = row.get("qty");
            let discount = Money::from_minor(row.get("discount_minor"), currency);
            let approval: Option<String> = row.get("discount_approval");
            Ok(OfflineLine {
                sku: Sku::from_str(&sku).map_err(|e| corrupt("outbox sku", e))?,
                qty: u32::try_from(qty).map_err(|e| corrupt("outbox qty", e))?,
                unit_price: Money::from_minor(row.get("unit_price_minor"), currency),
                discount: (!discount.is_zero()).then_some(discount),
                discount_approved_by: row.get("discount_approved_by"),
                discount_approval: approval
                    .map(|a| serde_json::from_str(&a).map_err(|e| corrupt("a line's approval", e)))
                    .transpose()?,
            })
        })
        .collect()
}

/// The online path's first step is done: Central holds the order (RESERVED).
pub async fn mark_order_created(db: &LocalDb, order_id: Uuid) -> Result<()> {
    set_status(db.pool(), order_id, "order_created", None).await
}

/// Central has the sale for good (PAID, or accepted through sync).
pub async fn mark_done(
    db: &LocalDb,
    order_id: Uuid,
    order: &Order,
    shortfalls: &[Shortfall],
) -> Result<()> {
    write_done(db.pool(), order_id, order, shortfalls).await
}

/// [`mark_done`] inside `tx` (a batch's answers settle in one transaction).
pub async fn mark_done_in(
    tx: &mut Tx,
    order_id: Uuid,
    order: &Order,
    shortfalls: &[Shortfall],
) -> Result<()> {
    write_done(&mut **tx, order_id, order, shortfalls).await
}

async fn write_done(
    exec: impl sqlx::SqliteExecutor<'_>,
    order_id: Uuid,
    order: &Order,
    shortfalls: &[Shortfall],
) -> Result<()> {
    let order = serde_json::to_string(order).map_err(|e| corrupt("order", e))?;
    let shortfalls = serde_json::to_string(shortfalls).map_err(|e| corrupt("shortfalls", e))?;
    sqlx::query(
        "UPDATE outbox_orders SET status = 'done', central_order = ?, shortfalls = ?,
            synced_at = ?, last_error = NULL WHERE order_id = ?",
    )
    .bind(order)
    .bind(shortfalls)
    .bind(now_ms())
    .bind(order_id.to_string())
    .execute(exec)
    .await
    .context("marking a sale synced")?;
    Ok(())
}

/// Central refused the sale for good; it stays in the outbox with the reason for a manager.
pub async fn mark_rejected(db: &LocalDb, order_id: Uuid, error: &str) -> Result<()> {
    set_status(db.pool(), order_id, "rejected", Some(error)).await
}

/// [`mark_rejected`] inside `tx`.
pub async fn mark_rejected_in(tx: &mut Tx, order_id: Uuid, error: &str) -> Result<()> {
    set_status(&mut **tx, order_id, "rejected", Some(error)).await
}

/// The online path cannot finish (Central refused the order it would reserve): deliver the
/// sale as an offline one instead, which Central accepts with a shortfall record.
pub async fn switch_to_offline(db: &LocalDb, order_id: Uuid, why: &str) -> Result<()> {
    sqlx::query(
        "UPDATE outbox_orders SET mode = 'offline', status = 'pending', last_error = ?
         WHERE order_id = ?",
    )
    .bind(why)
    .bind(order_id.to_string())
    .execute(db.pool())
    .await
    .context("switching a sale to the offline path")?;
    Ok(())
}

/// A delivery attempt failed and will be retried.
pub async fn note_failure(db: &LocalDb, order_id: Uuid, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE outbox_orders SET attempts = attempts + 1, last_error = ? WHERE order_id = ?",
    )
    .bind(error)
    .bind(order_id.to_string())
    .execute(db.pool())
    .await
    .context("noting a failed delivery")?;
    Ok(())
}

async fn set_status(
    exec: impl sqlx::SqliteExecutor<'_>,
    order_id: Uuid,
    status: &str,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE outbox_orders SET status = ?, last_error = ? WHERE order_id = ?")
        .bind(status)
        .bind(error)
        .bind(order_id.to_string())
        .execute(exec)
        .await
        .context("moving an outbox entry")?;
    Ok(())
}

/// Sales waiting for Central, and when the oldest of them was made.
pub async fn backlog(db: &LocalDb) -> Result<(i64, Option<DateTime<Utc>>)> {
    let (pending, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(completed_at) FROM outbox_orders
         WHERE status IN ('pending', 'order_created')",
    )
    .fetch_one(db.pool())
    .await
    .context("reading the outbox backlog")?;
    Ok((pending, oldest.and_then(DateTime::from_timestamp_millis)))
}

pub async fn counts(db: &LocalDb) -> Result<Counts> {
    let (pending, done, rejected): (i64, i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(status IN ('pending', 'order_created')), 0),
                COALESCE(SUM(status = 'done'), 0), COALESCE(SUM(status = 'rejected'), 0)
         FROM outbox_orders",
    )
    .fetch_one(db.pool())
    .await
    .context("counting the outbox")?;
    Ok(Counts {
        pending,
        done,
        rejected,
    })
}
