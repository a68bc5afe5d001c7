//! Card payments at the till, the local half: the pending record that holds a cart while
//! Central and the processor decide, and what each outcome writes. The half that talks to
//! Central is `sync::cards`; the offline card policy is `sale::complete_card_offline`.
//!
//! The record is committed before Central hears of the sale, with the order id and both
//! idempotency keys, so whatever crashes, every later try is the same request: Central makes
//! at most one order and one payment of it, and the register completes the sale at most once
//! (the completion deletes the record in the sale's own transaction).

use std::str::FromStr;

use kassa_domain::api::Order;
use kassa_domain::{Currency, IdempotencyKey, Money};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::carts;
use crate::error::{corrupt, Context, Error, Result};
use crate::sale::{self, Receipt, ReceiptPayment, SaleMode, Tender};
use crate::store::{now_ms, LocalDb};

/// Card sales whose outcome is unknown at once, at most (each holds a cart).
pub const CARD_SALES_PENDING_MAX: i64 = 20;

/// A card payment in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct CardSale {
    pub order_id: Uuid,
    pub cart_id: Uuid,
    pub location: String,
    /// `pending` (the cart is held) or `cancelling` (declined: Central's order still to cancel).
    pub status: String,
    pub order_key: IdempotencyKey,
    pub payment_key: IdempotencyKey,
    /// The processor's payment-method token the terminal handed over.
    pub payment_method: String,
    pub total: Money,
}

/// Holds the open cart `cart_id` for a card payment of its total: the record every try uses.
#[tracing::instrument(skip_all, fields(cart = %cart_id))]
pub async fn begin(db: &LocalDb, cart_id: Uuid, payment_method: &str) -> Result<CardSale> {
    let mut tx = db.begin_write().await?;
    let shift = crate::shifts::selling_on(&mut tx).await?;
    let cart = sale::sellable(&mut tx, cart_id).await?;
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM card_sales WHERE status = 'pending'")
            .fetch_one(&mut *tx)
            .await
            .context("counting pending card payments")?;
    if pending >= CARD_SALES_PENDING_MAX {
        return Err(Error::Invalid(format!(
            "{pending} card payments wait for Central's answer; take cash until they settle"
        )));
    }
    let location: String = sqlx::query_scalar("SELECT location FROM identity WHERE singleton = 1")
        .fetch_one(&mut *tx)
        .await
        .context("reading the register's location")?;
    let order_id = Uuid::now_v7();
    let key = |what: &str| {
        IdempotencyKey::parse(&format!("register-{what}-{order_id}"))
            .map_err(|e| corrupt("card sale key", e))
    };
    let card = CardSale {
        order_id,
        cart_id,
        location,
        status: "pending".into(),
        order_key: key("order")?,
        payment_key: key("payment")?,
        payment_method: payment_method.to_owned(),
        total: cart.totals.total,
    };
    let now = now_ms();
    sqlx::query(
        "INSERT INTO card_sales (order_id, cart_id, location, status, order_key, payment_key,
            payment_method, currency, total_minor, created_at, updated_at, shift_id)
         VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(order_id.to_string())
    .bind(cart_id.to_string())
    .bind(&card.location)
    .bind(card.order_key.as_str())
    .bind(card.payment_key.as_str())
    .bind(payment_method)
    .bind(card.total.currency().code())
    .bind(card.total.to_minor())
    .bind(now)
    .bind(now)
    .bind(shift.to_string())
    .execute(&mut *tx)
    .await
    .context("recording a card payment")?;
    tx.commit().await.context("recording a card payment")?;
    Ok(card)
}

/// Refuses to touch a cart held by a pending card payment or by a sale being paid in parts.
pub async fn check_not_held(conn: &mut sqlx::SqliteConnection, cart_id: Uuid) -> Result<()> {
    check_no_card_pending(conn, cart_id).await?;
    crate::split::check_not_split(conn, cart_id).await
}

/// Refuses to touch a cart held by a pending card payment.
pub(crate) async fn check_no_card_pending(
    conn: &mut sqlx::SqliteConnection,
    cart_id: Uuid,
) -> Result<()> {
    let held: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM card_sales WHERE cart_id = ? AND status = 'pending')",
    )
    .bind(cart_id.to_string())
    .fetch_one(&mut *conn)
    .await
    .context("checking for a pending card payment")?;
    if held {
        return Err(Error::CardPending(
            "A card payment for this cart is waiting for the processor's answer; the sale \
             completes, or the cart comes back, as soon as Central knows."
                .into(),
        ));
    }
    Ok(())
}

/// Central has the order PAID by this card payment: the sale completes (receipt number, outbox
/// entry already `done`, cart completed) and the record goes, in one transaction.
#[tracing::instrument(skip_all, fields(order = %card.order_id))]
pub async fn complete(
    db: &LocalDb,
    card: &CardSale,
    reference: &str,
    order: &Order,
) -> Result<Receipt> {
    let mut tx = db.begin_write().await?;
    // The sale belongs to the shift its payment began in.
    let shift: Option<String> =
        sqlx::query_scalar("SELECT shift_id FROM card_sales WHERE order_id = ?")
            .bind(card.order_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .context("reading a card payment's shift")?
            .flatten();
    let shift = shift
        .map(|s| Uuid::parse_str(&s).map_err(|e| corrupt("a shift id", e)))
        .transpose()?;
    let gone = sqlx::query("DELETE FROM card_sales WHERE order_id = ? AND status = 'pending'")
        .bind(card.order_id.to_string())
        .execute(&mut *tx)
        .await
        .context("settling a card payment")?
        .rows_affected()
        == 0;
    if gone {
        return Err(Error::Invalid(format!(
            "card payment {} is no longer pending",
            card.order_id
        )));
    }
    let cart = carts::load_on(&mut tx, card.cart_id).await?;
    if cart.totals.total != card.total || !matches!(cart.status.as_str(), "open" | "parked") {
        return Err(Error::Corrupt(format!(
            "cart {} changed while a card payment held it",
            card.cart_id
        )));
    }
    let payment = vec![Tender {
        amount: card.total,
        payment: ReceiptPayment::Card {
            reference: reference.to_owned(),
            offline: false,
        },
    }];
    let receipt = sale::record(
        &mut tx,
        &cart,
        card.order_id,
        (payment, None),
        SaleMode::Online,
        Some(order),
        shift,
    )
    .await?;
    tx.commit().await.context("completing a card sale")?;
    Ok(receipt)
}

/// The card was declined (or the order refused): the cart is free again at once; Central's
/// order, if it made one, is still to cancel (`cancelling`).
pub async fn release(db: &LocalDb, order_id: Uuid, why: &str) -> Result<()> {
    sqlx::query(
        "UPDATE card_sales SET status = 'cancelling', last_error = ?, updated_at = ?
         WHERE order_id = ?",
    )
    .bind(why)
    .bind(now_ms())
    .bind(order_id.to_string())
    .execute(db.pool())
    .await
    .context("releasing a declined card payment")?;
    Ok(())
}

/// Nothing is left to do at Central for this record (no order there, or it is cancelled).
pub async fn forget(db: &LocalDb, order_id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM card_sales WHERE order_id = ?")
        .bind(order_id.to_string())
        .execute(db.pool())
        .await
        .context("forgetting a settled card payment")?;
    Ok(())
}

/// A try failed with an unknown outcome; the record stays for the next one.
pub async fn note_error(db: &LocalDb, order_id: Uuid, error: &str) -> Result<()> {
    sqlx::query("UPDATE card_sales SET last_error = ?, updated_at = ? WHERE order_id = ?")
        .bind(error)
        .bind(now_ms())
        .bind(order_id.to_string())
        .execute(db.pool())
        .await
        .context("noting a card payment's error")?;
    Ok(())
}

/// Every card payment still to settle, oldest first.
pub async fn unsettled(db: &LocalDb) -> Result<Vec<CardSale>> {
    let rows = sqlx::query(
        "SELECT order_id, cart_id, location, status, order_key, payment_key, payment_method,
                currency, total_minor
         FROM card_sales ORDER BY created_at, order_id",
    )
    .fetch_all(db.pool())
    .await
    .context("reading pending card payments")?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &SqliteRow) -> Result<CardSale> {
    let id = |col: &str| {
        Uuid::parse_str(&row.get::<String, _>(col)).map_err(|e| corrupt("card sale id", e))
    };
    let key = |col: &str| {
        IdempotencyKey::parse(&row.get::<String, _>(col)).map_err(|e| corrupt("card sale key", e))
    };
    let currency: String = row.get("currency");
    let currency = Currency::from_str(&currency).map_err(|e| corrupt("card sale currency", e))?;
    Ok(CardSale {
        order_id: id("order_id")?,
        cart_id: id("cart_id")?,
        location: row.get("location"),
        status: row.get("status"),
        order_key: key("order_key")?,
        payment_key: key("payment_key")?,
        payment_method: row.get("payment_method"),
        total: Money::from_minor(row.get("total_minor"), currency),
    })
}
