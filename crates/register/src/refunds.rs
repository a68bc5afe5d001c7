//! Refunds at the till: the recent sales from the local store, and a refund of returned lines
//! through Central (`POST /v1/orders/{id}/refunds`, a manager's route) made with the approving
//! manager's access token and an Idempotency-Key derived from the approval (a retry with the
//! same approval never refunds twice). Online only: a sale must have reached Central, and an
//! approval given offline carries no token. Returned units are added to the local stock view
//! at once (Central restocks them; the next pull brings its figures).

use chrono::DateTime;
use kassa_domain::api::{CreateRefund, LineRequest, Refund};
use kassa_domain::{IdempotencyKey, Sku};
use sqlx::Row;
use uuid::Uuid;

use crate::approval::Approvals;
use crate::carts;
use crate::error::{corrupt, Context, Error, Result};
use crate::sale::{Receipt, SaleMode};
use crate::session::Sessions;
use crate::store::{money, now_ms, LocalDb};
use kassa_domain::ReceiptPayment;

/// Sales listed at most by [`recent_sales`].
pub const RECENT_SALES_MAX: u32 = 100;

/// The last `limit` sales made at this register (at most [`RECENT_SALES_MAX`]), newest first.
pub async fn recent_sales(db: &LocalDb, limit: u32) -> Result<Vec<Receipt>> {
    let rows = sqlx::query(
        "SELECT o.order_id, o.cart_id, o.receipt_no, o.location, o.mode, o.completed_at,
                o.currency, p.method, p.tendered_minor, p.change_minor, p.reference
         FROM outbox_orders o JOIN outbox_payments p ON p.order_id = o.order_id
         ORDER BY o.seq DESC LIMIT ?",
    )
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

/// A sale's receipt as printed: the outbox row, its payment and its (completed) cart.
async fn receipt(db: &LocalDb, row: &sqlx::sqlite::SqliteRow) -> Result<Receipt> {
    let id =
        |col: &str| Uuid::parse_str(&row.get::<String, _>(col)).map_err(|e| corrupt("sale id", e));
    let cart = carts::load(db, id("cart_id")?).await?;
    let currency: String = row.get("currency");
    let completed_at: i64 = row.get("completed_at");
    let payment = match (
        row.get::<String, _>("method").as_str(),
        row.get::<Option<i64>, _>("tendered_minor"),
        row.get::<Option<i64>, _>("change_minor"),
        row.get::<Option<String>, _>("reference"),
    ) {
        ("cash", Some(tendered), Some(change), _) => ReceiptPayment::Cash {
            tendered: money(tendered, &currency)?,
            change: money(change, &currency)?,
        },
        (method @ ("card" | "card_offline"), _, _, Some(reference)) => ReceiptPayment::Card {
            reference,
            offline: method == "card_offline",
        },
        (method, ..) => return Err(Error::Corrupt(format!("a sale paid by {method}"))),
    };
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
        payment,
        completed_at: DateTime::from_timestamp_millis(completed_at)
            .ok_or_else(|| Error::Corrupt(format!("completed_at {completed_at}")))?,
        mode,
    })
}

/// Refunds returned `lines` of sale `order_id` with a manager's `approval` (used up).
#[tracing::instrument(skip_all, fields(order = %order_id, %approval))]
pub async fn refund(
    db: &LocalDb,
    sessions: &Sessions,
    approvals: &Approvals,
    order_id: Uuid,
    lines: Vec<(Sku, u32)>,
    approval: Uuid,
) -> Result<Refund> {
    let location = refundable(db, order_id, &lines).await?;
    let granted = approvals.take(approval, "a refund")?;
    let Some(access) = granted.access.clone() else {
        approvals.finish(sessions, granted).await;
        return Err(Error::Invalid(
            "refunds need Central, and this approval was given offline: approve again when the \
             register is online"
                .into(),
        ));
    };
    let body = CreateRefund {
        lines: lines
            .iter()
            .map(|(sku, qty)| LineRequest {
                sku: sku.clone(),
                qty: *qty,
            })
            .collect(),
        amount: None,
        reason: format!("returned at the till, approved by {}", granted.manager),
    };
    let key = IdempotencyKey::parse(&format!("register-refund-{approval}"))
        .map_err(|e| corrupt("refund key", e))?;
    let answer = sessions
        .client()
        .refund(access.expose(), &key, order_id, &body)
        .await;
    match answer {
        Ok(refund) => {
            record(db, &location, &lines, &refund, &granted.manager).await?;
            approvals.finish(sessions, granted).await;
            Ok(refund)
        }
        // Nothing was refunded, or a retry with the same key replays it: the approval stays.
        Err(err) if err.is_transient() => {
            approvals.restore(approval, granted);
            Err(err)
        }
        Err(err) => {
            approvals.finish(sessions, granted).await;
            Err(err)
        }
    }
}

/// Checks the sale is at Central and the returned lines are in it; returns its location.
async fn refundable(db: &LocalDb, order_id: Uuid, lines: &[(Sku, u32)]) -> Result<String> {
    let row = sqlx::query("SELECT status, location FROM outbox_orders WHERE order_id = ?")
        .bind(order_id.to_string())
        .fetch_optional(db.pool())
        .await
        .context("reading a sale")?
        .ok_or_else(|| Error::NotFound(format!("no sale {order_id} at this register")))?;
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
    if lines.is_empty() || lines.iter().any(|(_, qty)| *qty == 0) {
        return Err(Error::Invalid(
            "a refund needs the returned lines, each with a quantity of at least 1".into(),
        ));
    }
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

/// Keeps the refund Central made (for the sales report) and adds the returned units to the
/// local view of Central's stock until the next pull, in one transaction.
async fn record(
    db: &LocalDb,
    location: &str,
    lines: &[(Sku, u32)],
    refund: &Refund,
    manager: &str,
) -> Result<()> {
    let mut tx = db.begin_write().await?;
    // A replayed answer (the same key) names the refund already kept: kept once.
    let fresh = sqlx::query(
        "INSERT INTO refunds (id, order_id, currency, amount_minor, card_minor, cash_minor,
            approved_by, refunded_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(refund.id.to_string())
    .bind(refund.order_id.to_string())
    .bind(refund.amount.currency().code())
    .bind(refund.amount.to_minor())
    .bind(refund.card.to_minor())
    .bind(refund.cash.to_minor())
    .bind(manager)
    .bind(now_ms())
    .execute(&mut *tx)
    .await
    .context("recording a refund")?
    .rows_affected()
        == 1;
    if !fresh {
        return tx.commit().await.context("recording a refund");
    }
    for (sku, qty) in lines {
        sqlx::query(
            "UPDATE stock_levels SET on_hand = on_hand + ?, available = available + ?
             WHERE sku = ? AND location = ?",
        )
        .bind(qty)
        .bind(qty)
        .bind(sku.as_str())
        .bind(location)
        .execute(&mut *tx)
        .await
        .context("restocking returned units")?;
    }
    tx.commit().await.context("recording a refund")
}
