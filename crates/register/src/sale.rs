//! Checkout at the till: a cart becomes a sale, paid in cash, in ONE transaction with its
//! outbox entry (order, lines, payment), its receipt number and the cart's completion. After a
//! crash a sale is either wholly there or never happened.

use chrono::{DateTime, Utc};
use kassa_domain::{CartLine, Money, Totals};
use serde::Serialize;
use uuid::Uuid;

use crate::carts;
use crate::error::{Context, Error, Result};
use crate::identity;
use crate::store::{LocalDb, Tx};

/// How the outbox will deliver a sale: made while Central answered, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleMode {
    /// `POST /v1/orders` then the cash payment.
    Online,
    /// `POST /v1/sync/orders`.
    Offline,
}

impl SaleMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SaleMode::Online => "online",
            SaleMode::Offline => "offline",
        }
    }
}

/// What the receipt prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Receipt {
    pub order_id: Uuid,
    pub receipt_no: String,
    pub location: String,
    pub lines: Vec<CartLine>,
    pub totals: Totals,
    pub tendered: Money,
    pub change: Money,
    pub completed_at: DateTime<Utc>,
    pub mode: SaleMode,
}

/// Limits on selling.
#[derive(Debug, Clone, Copy)]
pub struct SaleLimits {
    /// Sales that may wait in the outbox before selling stops (the bounded queue).
    pub outbox_pending_max: i64,
    /// A cashier's line discount above this share of the line (percent) needs a manager's
    /// approval; a signed-in manager gives any.
    pub discount_limit_percent: u32,
}

impl Default for SaleLimits {
    fn default() -> Self {
        Self {
            outbox_pending_max: 20_000,
            discount_limit_percent: 10,
        }
    }
}

/// Completes the open cart `cart_id` as a cash sale of its total with `tendered` handed over.
#[tracing::instrument(skip_all, fields(cart = %cart_id, mode = mode.as_str()))]
pub async fn complete_cash(
    db: &LocalDb,
    cart_id: Uuid,
    tendered: Money,
    mode: SaleMode,
    limits: SaleLimits,
) -> Result<Receipt> {
    let mut tx = db.begin_write().await?;
    let receipt = write_sale(&mut tx, cart_id, tendered, mode, limits).await?;
    tx.commit().await.context("committing a sale")?;
    Ok(receipt)
}

async fn write_sale(
    tx: &mut Tx,
    cart_id: Uuid,
    tendered: Money,
    mode: SaleMode,
    limits: SaleLimits,
) -> Result<Receipt> {
    let cart = carts::load_on(tx, cart_id).await?;
    if cart.status != "open" {
        return Err(Error::Invalid(format!("cart {cart_id} is {}", cart.status)));
    }
    if cart.lines.is_empty() {
        return Err(Error::Invalid("the cart is empty".into()));
    }
    let change = change_due(&cart.totals.total, &tendered)?;
    check_outbox_room(tx, limits).await?;
    let receipt_no = identity::next_receipt_no(tx).await?;
    let location: String = sqlx::query_scalar("SELECT location FROM identity WHERE singleton = 1")
        .fetch_one(&mut **tx)
        .await
        .context("reading the register's location")?;
    let receipt = Receipt {
        order_id: Uuid::now_v7(),
        receipt_no,
        location,
        lines: cart.lines,
        totals: cart.totals,
        tendered,
        change,
        completed_at: Utc::now(),
        mode,
    };
    insert_outbox(tx, cart_id, &receipt).await?;
    carts::set_status(tx, cart_id, "completed", None).await?;
    Ok(receipt)
}

/// Change due on a cash payment; refuses too little money or the wrong currency.
pub fn change_due(total: &Money, tendered: &Money) -> Result<Money> {
    if tendered.currency() != total.currency() {
        return Err(Error::Invalid(format!(
            "tendered {tendered} is not in the cart's currency {}",
            total.currency()
        )));
    }
    let change = tendered.checked_sub(total)?;
    if change.is_negative() {
        return Err(Error::Invalid(format!(
            "tendered {tendered} is less than the total {total}"
        )));
    }
    Ok(change)
}

async fn check_outbox_room(tx: &mut Tx, limits: SaleLimits) -> Result<()> {
    let pending: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox_orders WHERE status IN ('pending', 'order_created')",
    )
    .fetch_one(&mut **tx)
    .await
    .context("counting the outbox")?;
    if pending >= limits.outbox_pending_max {
        return Err(Error::OutboxFull { pending });
    }
    Ok(())
}

async fn insert_outbox(tx: &mut Tx, cart_id: Uuid, r: &Receipt) -> Result<()> {
    let id = r.order_id.to_string();
    let totals = serde_json::to_string(&r.totals).map_err(|e| Error::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO outbox_orders (order_id, cart_id, receipt_no, location, mode, status,
            order_key, payment_key, currency, total_minor, totals, completed_at)
         VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(cart_id.to_string())
    .bind(&r.receipt_no)
    .bind(&r.location)
    .bind(r.mode.as_str())
    .bind(format!("register-order-{id}"))
    .bind(format!("register-payment-{id}"))
    .bind(r.totals.currency.code())
    .bind(r.totals.total.to_minor())
    .bind(totals)
    .bind(r.completed_at.timestamp_millis())
    .execute(&mut **tx)
    .await
    .context("writing the sale to the outbox")?;
    insert_lines(tx, &id, &r.lines).await?;
    sqlx::query(
        "INSERT INTO outbox_payments (order_id, method, amount_minor, tendered_minor, change_minor)
         VALUES (?, 'cash', ?, ?, ?)",
    )
    .bind(&id)
    .bind(r.totals.total.to_minor())
    .bind(r.tendered.to_minor())
    .bind(r.change.to_minor())
    .execute(&mut **tx)
    .await
    .context("writing the payment to the outbox")?;
    Ok(())
}

async fn insert_lines(tx: &mut Tx, id: &str, lines: &[CartLine]) -> Result<()> {
    for (no, line) in lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO outbox_lines (order_id, line_no, sku, qty, unit_price_minor, discount_minor)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(i64::try_from(no).unwrap_or(i64::MAX) + 1)
        .bind(line.sku.as_str())
        .bind(line.qty)
        .bind(line.unit_price.to_minor())
        .bind(line.discount.to_minor())
        .execute(&mut **tx)
        .await
        .context("writing a sale line to the outbox")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kassa_domain::Currency;

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::EUR).unwrap()
    }

    #[test]
    fn change_is_tendered_minus_total() {
        assert_eq!(
            change_due(&eur("12.50"), &eur("20.00")).unwrap(),
            eur("7.50")
        );
        assert_eq!(
            change_due(&eur("12.50"), &eur("12.50")).unwrap(),
            eur("0.00")
        );
    }

    #[test]
    fn too_little_cash_is_refused() {
        assert!(change_due(&eur("12.50"), &eur("10.00")).is_err());
        let usd = Money::parse("20.00", Currency::USD).unwrap();
        assert!(change_due(&eur("12.50"), &usd).is_err());
    }
}
