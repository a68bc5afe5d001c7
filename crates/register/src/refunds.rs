//! Refunds at the till: the recent sales from the local store, and a refund of returned lines
//! through Central (`POST /v1/orders/{id}/refunds`, a manager's route) made with the approving
//! manager's access token and an Idempotency-Key derived from the approval (a retry with the
//! same approval never refunds twice). Online only: a sale must have reached Central, and an
//! approval given offline carries no token. Returned units are added to the local stock view
//! at once (Central restocks them; the next pull brings its figures).
//!
//! A refund is written down (`pending_refunds`) before Central is asked, with the id Central
//! will keep, so a refund Central made is never missing from the report: a crash or a failed
//! local write after Central answered leaves the row, and `sync::refunds` settles it from
//! `GET /v1/orders/{id}/refunds`.

use chrono::DateTime;
use kassa_domain::api::{CreateRefund, LineRequest, Refund};
use kassa_domain::{IdempotencyKey, Money, Sku};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::approval::Approvals;
use crate::carts;
use crate::error::{corrupt, Context, Error, Result};
use crate::sale::{Receipt, SaleMode};
use crate::session::Sessions;
use crate::store::{now_ms, LocalDb};
use kassa_domain::Currency;
use std::str::FromStr;

/// Sales listed at most by [`recent_sales`].
pub const RECENT_SALES_MAX: u32 = 100;

/// The last `limit` sales made at this register (at most [`RECENT_SALES_MAX`]), newest first.
pub async fn recent_sales(db: &LocalDb, limit: u32) -> Result<Vec<Receipt>> {
    let rows = sqlx::query(&format!("{SELECT_SALES} ORDER BY o.seq DESC LIMIT ?"))
        .bind(limit.min(RECENT_SALES_MAX))
        .fetch_all(db.pool())
        .await
        .context("listing recent sales")?;
    let mut receipts = Vec::with_capacity(rows.len());
    for row in &rows {
        receipts.push(receipt(db, row).await?);
    }
    Ok(receipts)
}

const SELECT_SALES: &str =
    "SELECT o.order_id, o.cart_id, o.receipt_no, o.location, o.mode, o.completed_at,
            o.currency, o.cash_rounding_minor
     FROM outbox_orders o";

/// One sale made here, by its order id or its receipt number (`STORE-1-R1-000042`, what the
/// receipt's code holds); `None` when this register made no such sale.
pub async fn sale(db: &LocalDb, order_id_or_receipt_no: &str) -> Result<Option<Receipt>> {
    let row = sqlx::query(&format!(
        "{SELECT_SALES} WHERE o.order_id = ? OR o.receipt_no IN (?, ?)"
    ))
    .bind(order_id_or_receipt_no.trim().to_lowercase())
    .bind(order_id_or_receipt_no.trim())
    .bind(order_id_or_receipt_no.trim().to_uppercase())
    .fetch_optional(db.pool())
    .await
    .context("looking up a sale")?;
    match row {
        Some(row) => Ok(Some(receipt(db, &row).await?)),
        None => Ok(None),
    }
}

/// A sale's receipt as printed: the outbox row, its payment and its (completed) cart.
async fn receipt(db: &LocalDb, row: &sqlx::sqlite::SqliteRow) -> Result<Receipt> {
    let id =
        |col: &str| Uuid::parse_str(&row.get::<String, _>(col)).map_err(|e| corrupt("sale id", e));
    let cart = carts::load(db, id("cart_id")?).await?;
    let currency: String = row.get("currency");
    let completed_at: i64 = row.get("completed_at");
    let currency = Currency::from_str(&currency).map_err(|e| corrupt("a sale's currency", e))?;
    let mut conn = db.pool().acquire().await.context("reading a sale")?;
    let payments = crate::outbox::tenders(&mut conn, id("order_id")?, currency).await?;
    let mode = match row.get::<String, _>("mode").as_str() {
        "online" => SaleMode::Online,
        _ => SaleMode::Offline,
    };
    Ok(Receipt {
        order_id: id("order_id")?,
        receipt_no: row.get("receipt_no"),
        location: row.get("location"),
        lines: cart.lines,
        totals: cart.totals,
        payments,
        cash_rounding: Some(Money::from_minor(row.get("cash_rounding_minor"), currency))
            .filter(|r| !r.is_zero()),
        completed_at: DateTime::from_timestamp_millis(completed_at)
            .ok_or_else(|| Error::Corrupt(format!("completed_at {completed_at}")))?,
        mode,
    })
}

/// Refunds returned `lines` of sale `order_id` with a manager's `approval` (used up).
///
/// The refund is written down first ([`begin`]: a pending row with its id and key), then asked
/// of Central, then settled with Central's answer ([`settle`]). Whatever happens after Central
/// answered (a crash, a failed local write), the pending row stays and the sync engine settles
/// it from Central's list of the order's refunds, so the report has it exactly once.
#[tracing::instrument(skip_all, fields(order = %order_id, %approval))]
pub async fn refund(
    db: &LocalDb,
    sessions: &Sessions,
    approvals: &Approvals,
    order_id: Uuid,
    lines: Vec<(Sku, u32)>,
    approval: Uuid,
) -> Result<Refund> {
    let location = refundable(db, sessions, order_id, &lines).await?;
    let granted = approvals.take(approval, "a refund")?;
    let Some(access) = granted.access.clone() else {
        approvals.finish(sessions, granted).await;
        return Err(Error::Invalid(
            "refunds need Central, and this approval was given offline: approve again when the \
             register is online"
                .into(),
        ));
    };
    let key = IdempotencyKey::parse(&format!("register-refund-{approval}"))
        .map_err(|e| corrupt("refund key", e))?;
    let pending = match begin(db, order_id, &location, &lines, &granted.manager, &key).await {
        Ok(pending) => pending,
        Err(err) => {
            approvals.restore(approval, granted);
            return Err(err);
        }
    };
    let answer = sessions
        .client()
        .refund(access.expose(), &key, order_id, &pending.request())
        .await;
    match answer {
        Ok(refund) => {
            approvals.finish(sessions, granted).await;
            settle(db, &pending, &refund, Restock::Now).await?;
            Ok(refund)
        }
        // Central refused it for good: nothing was refunded, nothing stays pending.
        Err(
            err @ Error::Api {
                status: 400..=499, ..
            },
        ) if !err.is_transient() => {
            forget(db, pending.id).await?;
            approvals.finish(sessions, granted).await;
            Err(err)
        }
        // Unknown: a retry with the same approval sends the same request (Central replays it);
        // otherwise the sync engine settles the row from what Central holds.
        Err(err) => {
            note_error(db, pending.id, &err.to_string()).await?;
            if err.is_transient() {
                approvals.restore(approval, granted);
            } else {
                approvals.finish(sessions, granted).await;
            }
            Err(err)
        }
    }
}

/// Checks the sale is at Central and the returned lines are in it; returns its location. A
/// sale this till did not make (another till's, an online order: returns by receipt) is
/// checked against Central's order.
async fn refundable(
    db: &LocalDb,
    sessions: &Sessions,
    order_id: Uuid,
    lines: &[(Sku, u32)],
) -> Result<String> {
    let row = sqlx::query("SELECT status, location FROM outbox_orders WHERE order_id = ?")
        .bind(order_id.to_string())
        .fetch_optional(db.pool())
        .await
        .context("reading a sale")?;
    let Some(row) = row else {
        return refundable_at_central(db, sessions, order_id, lines).await;
    };
    match row.get::<String, _>("status").as_str() {
        "done" => {}
        "rejected" => {
            return Err(Error::Invalid(
                "Central refused this sale; a manager settles it there, not with a refund".into(),
            ))
        }
        _ => {
            return Err(Error::Invalid(
                "this sale has not reached Central yet: refund it once it has synced".into(),
            ))
        }
    }
    check_lines(lines)?;
    for (sku, qty) in lines {
        let sold: Option<i64> =
            sqlx::query_scalar("SELECT SUM(qty) FROM outbox_lines WHERE order_id = ? AND sku = ?")
                .bind(order_id.to_string())
                .bind(sku.as_str())
                .fetch_one(db.pool())
                .await
                .context("reading a sale's lines")?;
        if sold.unwrap_or(0) < i64::from(*qty) {
            return Err(Error::Invalid(format!(
                "the sale has {} of {sku}, fewer than the {qty} returned",
                sold.unwrap_or(0)
            )));
        }
    }
    Ok(row.get("location"))
}

/// [`refundable`] for a sale found at Central: of this store (or online), paid, and with the
/// returned units not returned yet.
async fn refundable_at_central(
    db: &LocalDb,
    sessions: &Sessions,
    order_id: Uuid,
    lines: &[(Sku, u32)],
) -> Result<String> {
    check_lines(lines)?;
    let till = crate::identity::load(db).await?.ok_or(Error::NotPaired)?;
    let order = crate::returns::central_order(sessions, order_id).await?;
    crate::returns::check_same_store(&order, &till.location)?;
    for (sku, qty) in lines {
        let left: u32 = order
            .lines
            .iter()
            .filter(|l| &l.sku == sku)
            .map(|l| l.qty.saturating_sub(l.returned_qty))
            .sum();
        if left < *qty {
            return Err(Error::Invalid(format!(
                "the sale has {left} of {sku} left to return, fewer than the {qty} returned"
            )));
        }
    }
    Ok(order.location)
}

fn check_lines(lines: &[(Sku, u32)]) -> Result<()> {
    if lines.is_empty() || lines.iter().any(|(_, qty)| *qty == 0) {
        return Err(Error::Invalid(
            "a refund needs the returned lines, each with a quantity of at least 1".into(),
        ));
    }
    Ok(())
}

/// Refunds asked of Central whose outcome this register has not written down, at most (each
/// is one sale's return waiting for Central's answer).
pub const REFUNDS_PENDING_MAX: i64 = 20;

/// A refund written down before Central is asked: every try sends [`PendingRefund::request`]
/// under `key`, and Central keeps `id` as the refund's id.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRefund {
    pub id: Uuid,
    pub order_id: Uuid,
    pub location: String,
    pub key: IdempotencyKey,
    pub lines: Vec<LineRequest>,
    /// The approving manager.
    pub manager: String,
    /// When it was written (ms since the epoch).
    pub created_at: i64,
}

impl PendingRefund {
    /// The request, the same on every try.
    pub fn request(&self) -> CreateRefund {
        CreateRefund {
            id: Some(self.id),
            lines: self.lines.clone(),
            amount: None,
            reason: format!("returned at the till, approved by {}", self.manager),
        }
    }
}

/// Writes the refund down before Central hears of it; a retry under the same `key` (the same
/// approval) gets the row its first try wrote.
#[tracing::instrument(skip_all, fields(order = %order_id, key = %key.as_str()))]
pub async fn begin(
    db: &LocalDb,
    order_id: Uuid,
    location: &str,
    lines: &[(Sku, u32)],
    manager: &str,
    key: &IdempotencyKey,
) -> Result<PendingRefund> {
    let lines: Vec<LineRequest> = lines
        .iter()
        .map(|(sku, qty)| LineRequest {
            sku: sku.clone(),
            qty: *qty,
        })
        .collect();
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(&format!("{SELECT_PENDING} WHERE idempotency_key = ?"))
        .bind(key.as_str())
        .fetch_optional(&mut *tx)
        .await
        .context("reading a pending refund")?;
    if let Some(row) = row {
        let pending = from_row(&row)?;
        if pending.order_id != order_id || pending.lines != lines {
            return Err(Error::Invalid(
                "this approval is already used for another refund: approve again".into(),
            ));
        }
        return Ok(pending);
    }
    let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pending_refunds")
        .fetch_one(&mut *tx)
        .await
        .context("counting pending refunds")?;
    if waiting >= REFUNDS_PENDING_MAX {
        return Err(Error::Invalid(format!(
            "{waiting} refunds wait for Central's answer; refund again once they have settled"
        )));
    }
    let shift = crate::shifts::selling_on(&mut tx).await?;
    let pending = PendingRefund {
        id: Uuid::now_v7(),
        order_id,
        location: location.to_owned(),
        key: key.clone(),
        lines,
        manager: manager.to_owned(),
        created_at: now_ms(),
    };
    sqlx::query(
        "INSERT INTO pending_refunds (id, order_id, location, idempotency_key, lines,
            approved_by, created_at, updated_at, shift_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(pending.id.to_string())
    .bind(order_id.to_string())
    .bind(location)
    .bind(key.as_str())
    .bind(serde_json::to_string(&pending.lines).map_err(|e| corrupt("refund lines", e))?)
    .bind(manager)
    .bind(pending.created_at)
    .bind(pending.created_at)
    .bind(shift.to_string())
    .execute(&mut *tx)
    .await
    .context("recording a refund in progress")?;
    tx.commit()
        .await
        .context("recording a refund in progress")?;
    Ok(pending)
}

const SELECT_PENDING: &str = "SELECT id, order_id, location, idempotency_key, lines, approved_by,
    created_at FROM pending_refunds";

fn from_row(row: &SqliteRow) -> Result<PendingRefund> {
    let id = |col: &str| {
        Uuid::parse_str(&row.get::<String, _>(col)).map_err(|e| corrupt("pending refund id", e))
    };
    let lines: String = row.get("lines");
    Ok(PendingRefund {
        id: id("id")?,
        order_id: id("order_id")?,
        location: row.get("location"),
        key: IdempotencyKey::parse(&row.get::<String, _>("idempotency_key"))
            .map_err(|e| corrupt("pending refund key", e))?,
        lines: serde_json::from_str(&lines).map_err(|e| corrupt("pending refund lines", e))?,
        manager: row.get("approved_by"),
        created_at: row.get("created_at"),
    })
}

/// Every refund still waiting for Central's answer, oldest first.
pub async fn unsettled(db: &LocalDb) -> Result<Vec<PendingRefund>> {
    let rows = sqlx::query(&format!("{SELECT_PENDING} ORDER BY created_at, id"))
        .fetch_all(db.pool())
        .await
        .context("reading pending refunds")?;
    rows.iter().map(from_row).collect()
}

/// Whether settling a refund adds the returned units to the local view of Central's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restock {
    /// At the till, at once (until the next pull brings Central's figures).
    Now,
    /// Settled later by the sync engine, whose stock pull brings Central's figures, which
    /// already hold the return.
    ByPull,
}

/// Central made the refund: the pending row goes and the refund is kept for the report, in one
/// transaction. Kept once, whoever settles it (the till with Central's answer, or the sync
/// engine with Central's list), on the day Central made it.
#[tracing::instrument(skip_all, fields(refund = %pending.id))]
pub async fn settle(
    db: &LocalDb,
    pending: &PendingRefund,
    refund: &Refund,
    restock: Restock,
) -> Result<()> {
    let mut tx = db.begin_write().await?;
    // The refund belongs to the shift it was given in.
    let shift: Option<String> =
        sqlx::query_scalar("SELECT shift_id FROM pending_refunds WHERE id = ?")
            .bind(pending.id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .context("reading a refund's shift")?
            .flatten();
    sqlx::query("DELETE FROM pending_refunds WHERE id = ?")
        .bind(pending.id.to_string())
        .execute(&mut *tx)
        .await
        .context("settling a refund")?;
    // A replayed answer (the same key) names the refund already kept: kept once.
    let fresh = sqlx::query(
        "INSERT INTO refunds (id, order_id, currency, amount_minor, card_minor, cash_minor,
            approved_by, refunded_at, shift_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(refund.id.to_string())
    .bind(refund.order_id.to_string())
    .bind(refund.amount.currency().code())
    .bind(refund.amount.to_minor())
    .bind(refund.card.to_minor())
    .bind(refund.cash.to_minor())
    .bind(&pending.manager)
    .bind(refund.created_at.timestamp_millis())
    .bind(shift)
    .execute(&mut *tx)
    .await
    .context("recording a refund")?
    .rows_affected()
        == 1;
    if fresh && restock == Restock::Now {
        for line in &refund.lines {
            sqlx::query(
                "UPDATE stock_levels SET on_hand = on_hand + ?, available = available + ?
                 WHERE sku = ? AND location = ?",
            )
            .bind(line.qty)
            .bind(line.qty)
            .bind(line.sku.as_str())
            .bind(&pending.location)
            .execute(&mut *tx)
            .await
            .context("restocking returned units")?;
        }
    }
    tx.commit().await.context("recording a refund")
}

/// Central has no such refund, or refused it: nothing was given back.
pub async fn forget(db: &LocalDb, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM pending_refunds WHERE id = ?")
        .bind(id.to_string())
        .execute(db.pool())
        .await
        .context("forgetting a refund Central did not make")?;
    Ok(())
}

/// A try ended without Central's answer; the row stays.
pub async fn note_error(db: &LocalDb, id: Uuid, error: &str) -> Result<()> {
    sqlx::query("UPDATE pending_refunds SET last_error = ?, updated_at = ? WHERE id = ?")
        .bind(error)
        .bind(now_ms())
        .bind(id.to_string())
        .execute(db.pool())
        .await
        .context("noting a refund's error")?;
    Ok(())
}
