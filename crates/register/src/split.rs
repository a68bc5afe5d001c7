//! Split tender: one sale paid by several methods (cash and card, two cards), part by part,
//! with the remaining due after each. The parts taken are in the register's store
//! (`split_sales`, `split_parts`) and hold the cart (no edit, no other tender), so a crash or
//! a restart mid-way loses none: the payment screen comes back with them. The sale is written
//! (one outbox entry with every part) in the transaction that takes the part that brings the
//! due to zero; only cash gives change, so only a cash part may be more than the due.
//!
//! A sale abandoned half-paid is voided: its cash parts are handed back and its offline card
//! parts voided on the terminal (no money reached Central), and a card part that went through
//! Central is refunded by cancelling the order there (`sync::split`), before the cart is free.
//! Card parts through Central fix the sale to the online path (the order is at Central); card
//! parts under the offline card policy fix it to the offline path: the two never mix in one
//! sale.

use std::str::FromStr;

use kassa_domain::api::Order;
use kassa_domain::{
    CashRounding, Currency, IdempotencyKey, Money, ReceiptPayment, RoundedCash, Tender,
};
use sqlx::Row;
use uuid::Uuid;

use crate::carts::{self, CartView};
use crate::error::{corrupt, Context, Error, Result};
use crate::sale::{self, SaleLimits, SaleMode};
use crate::store::{now_ms, LocalDb, Tx};
use crate::{card, shifts};

/// Parts one sale may be paid in, at most (Central takes up to 20 payments per offline sale).
pub const SPLIT_PARTS_MAX: usize = 10;

pub use kassa_domain::{SplitPart, SplitStep as Step, SplitView};

/// An online card part written down before Central hears of it.
#[derive(Debug, Clone, PartialEq)]
pub struct CardPart {
    pub order_id: Uuid,
    pub cart_id: Uuid,
    pub location: String,
    pub part_no: i64,
    pub amount: Money,
    /// The sale's total (Central's order must have the same).
    pub total: Money,
    pub order_key: IdempotencyKey,
    pub payment_key: IdempotencyKey,
    pub payment_method: String,
}

/// The split sale holding cart `cart_id`, if one does.
pub async fn view(db: &LocalDb, cart_id: Uuid) -> Result<Option<SplitView>> {
    let mut conn = db.pool().acquire().await.context("reading a split sale")?;
    view_on(&mut conn, cart_id).await
}

/// Every split sale with a card part still waiting for Central's answer.
pub async fn with_pending_parts(db: &LocalDb) -> Result<Vec<Uuid>> {
    let carts: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT s.cart_id FROM split_sales s JOIN split_parts p ON p.order_id = s.order_id
         WHERE p.status = 'pending' ORDER BY s.created_at",
    )
    .fetch_all(db.pool())
    .await
    .context("reading pending split parts")?;
    carts
        .iter()
        .map(|c| Uuid::parse_str(c).map_err(|e| corrupt("a cart id", e)))
        .collect()
}

async fn view_on(conn: &mut sqlx::SqliteConnection, cart_id: Uuid) -> Result<Option<SplitView>> {
    let head =
        sqlx::query("SELECT order_id, currency, total_minor, cash_rounding_minor FROM split_sales WHERE cart_id = ?")
            .bind(cart_id.to_string())
            .fetch_optional(&mut *conn)
            .await
            .context("reading a split sale")?;
    let Some(head) = head else { return Ok(None) };
    let currency: String = head.get("currency");
    let currency = Currency::from_str(&currency).map_err(|e| corrupt("a split's currency", e))?;
    let order_id: String = head.get("order_id");
    let rows = sqlx::query(
        "SELECT part_no, status, method, amount_minor, tendered_minor, change_minor,
                COALESCE(reference, '') AS reference
         FROM split_parts WHERE order_id = ? ORDER BY part_no",
    )
    .bind(&order_id)
    .fetch_all(&mut *conn)
    .await
    .context("reading a split sale's parts")?;
    let mut parts = Vec::with_capacity(rows.len());
    let mut paid = Money::zero(currency);
    for row in &rows {
        let tender = crate::outbox::tender_from_row(row, currency)?;
        paid = paid.checked_add(&tender.amount)?;
        parts.push(SplitPart {
            part_no: row.get("part_no"),
            status: row.get("status"),
            tender,
        });
    }
    let total = Money::from_minor(head.get("total_minor"), currency);
    // Once the final cash part is taken, the sale owes its total with that part's rounding.
    let taken_rounding = Money::from_minor(head.get("cash_rounding_minor"), currency);
    let due = total.checked_add(&taken_rounding)?.checked_sub(&paid)?;
    let rule = crate::settings::cash_rounding_on(conn).await?;
    let in_cash = cash_rest(rule, total, &parts)?;
    Ok(Some(SplitView {
        order_id: Uuid::parse_str(&order_id).map_err(|e| corrupt("a split's order id", e))?,
        cart_id,
        total,
        paid,
        due,
        due_in_cash: Some(in_cash.due),
        cash_rounding: Some(in_cash.difference).filter(|r| !r.is_zero()),
        parts,
    }))
}

/// The final cash part of a split sale of `total` with `parts` taken (card parts exact, cash
/// parts exact) under the store's `rule`: the sale's cash is rounded as one, so this part pays
/// the rounded cash rest less the cash taken already (see [`kassa_domain::final_cash_part`]).
fn cash_rest(rule: CashRounding, total: Money, parts: &[SplitPart]) -> Result<RoundedCash> {
    let currency = total.currency();
    let (mut card, mut cash) = (Money::zero(currency), Money::zero(currency));
    for part in parts {
        let sum = match part.tender.payment {
            ReceiptPayment::Cash { .. } => &mut cash,
            ReceiptPayment::Card { .. } => &mut card,
        };
        *sum = sum.checked_add(&part.tender.amount)?;
    }
    Ok(kassa_domain::final_cash_part(rule, total, card, cash)?)
}

/// Refuses to touch a cart a split sale holds (called wherever a cart is edited or tendered).
pub(crate) async fn check_not_split(
    conn: &mut sqlx::SqliteConnection,
    cart_id: Uuid,
) -> Result<()> {
    if let Some(split) = view_on(conn, cart_id).await? {
        return Err(Error::Invalid(format!(
            "this sale is being paid in parts ({} paid, {} due): take the rest, or void the \
             split to give the parts back",
            split.paid, split.due
        )));
    }
    Ok(())
}

/// The split sale of `cart_id`, made now if there is none (the cart checked for checkout).
async fn open_on(tx: &mut Tx, cart_id: Uuid) -> Result<(SplitView, CartView)> {
    let cart = carts::load_on(tx, cart_id).await?;
    if cart.status != "open" {
        return Err(Error::Invalid(format!("cart {cart_id} is {}", cart.status)));
    }
    card::check_no_card_pending(tx, cart_id).await?;
    if let Some(split) = view_on(tx, cart_id).await? {
        if split.total != cart.totals.total {
            return Err(Error::Corrupt(format!(
                "cart {cart_id} changed while a split sale held it"
            )));
        }
        return Ok((split, cart));
    }
    if cart.lines.is_empty() {
        return Err(Error::Invalid("the cart is empty".into()));
    }
    if !cart.totals.total.amount().is_sign_positive() || cart.totals.total.is_zero() {
        return Err(Error::Invalid(
            "a sale of 0.00 takes no payment: complete it with cash".into(),
        ));
    }
    let shift = shifts::selling_on(tx).await?;
    let location: String = sqlx::query_scalar("SELECT location FROM identity WHERE singleton = 1")
        .fetch_one(&mut **tx)
        .await
        .context("reading the register's location")?;
    let order_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO split_sales (order_id, cart_id, location, shift_id, currency, total_minor,
            created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(order_id.to_string())
    .bind(cart_id.to_string())
    .bind(location)
    .bind(shift.to_string())
    .bind(cart.totals.currency.code())
    .bind(cart.totals.total.to_minor())
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("starting a split sale")?;
    let split = view_on(tx, cart_id)
        .await?
        .ok_or_else(|| Error::Corrupt("a split sale vanished".into()))?;
    Ok((split, cart))
}

/// Checks a part of `amount` may be taken now: no part waiting for an answer, room for one
/// more, more than zero and in the sale's currency.
fn check_part(split: &SplitView, amount: &Money) -> Result<()> {
    if split.pending() {
        return Err(Error::CardPending(
            "a card part is waiting for the processor's answer: wait for it before the next part"
                .into(),
        ));
    }
    if split.parts.len() >= SPLIT_PARTS_MAX {
        return Err(Error::Invalid(format!(
            "a sale is paid in at most {SPLIT_PARTS_MAX} parts: take the rest in one"
        )));
    }
    if amount.currency() != split.total.currency() {
        return Err(Error::Invalid(format!(
            "{amount} is not in the sale's currency {}",
            split.total.currency()
        )));
    }
    if amount.is_negative() || amount.is_zero() {
        return Err(Error::Invalid(format!(
            "a part is more than zero, not {amount}"
        )));
    }
    Ok(())
}

/// Checks a card part of `amount` fits the due: card money is exact, it never gives change.
fn check_card_amount(split: &SplitView, amount: &Money) -> Result<()> {
    check_part(split, amount)?;
    if amount.checked_cmp(&split.due)?.is_gt() {
        return Err(Error::Invalid(format!(
            "a card part is at most the {} due (only cash gives change), not {amount}",
            split.due
        )));
    }
    Ok(())
}

#[expect(clippy::too_many_arguments, reason = "one row's columns")]
async fn insert_part(
    tx: &mut Tx,
    order_id: Uuid,
    part_no: i64,
    status: &str,
    tender: &Tender,
    payment_key: Option<&str>,
    payment_method: Option<&str>,
    reference: Option<&str>,
) -> Result<()> {
    let (tendered, change) = match &tender.payment {
        ReceiptPayment::Cash { tendered, change } => {
            (Some(tendered.to_minor()), Some(change.to_minor()))
        }
        ReceiptPayment::Card { .. } => (None, None),
    };
    sqlx::query(
        "INSERT INTO split_parts (order_id, part_no, status, method, amount_minor, tendered_minor,
            change_minor, reference, payment_key, payment_method, taken_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(order_id.to_string())
    .bind(part_no)
    .bind(status)
    .bind(tender.payment.method())
    .bind(tender.amount.to_minor())
    .bind(tendered)
    .bind(change)
    .bind(reference)
    .bind(payment_key)
    .bind(payment_method)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("recording a part of a split sale")?;
    Ok(())
}

fn next_part_no(split: &SplitView) -> i64 {
    split.parts.iter().map(|p| p.part_no).max().unwrap_or(0) + 1
}

/// Takes `tendered` in cash towards the sale of cart `cart_id`: all of it when it is less than
/// the due in cash, else the due in cash (the due rounded by the store's rule: only this final
/// cash part is rounded) with the rest as change, and the sale completes. `mode` is how the
/// sale reaches Central when no card part decided it already.
#[tracing::instrument(skip_all, fields(cart = %cart_id))]
pub async fn pay_cash(
    db: &LocalDb,
    cart_id: Uuid,
    tendered: Money,
    mode: SaleMode,
    limits: SaleLimits,
) -> Result<Step> {
    let mut tx = db.begin_write().await?;
    let (split, cart) = open_on(&mut tx, cart_id).await?;
    check_part(&split, &tendered)?;
    let rule = crate::settings::cash_rounding_on(&mut tx).await?;
    let cash = cash_rest(rule, split.total, &split.parts)?;
    let (amount, change) = if tendered.checked_cmp(&cash.due)?.is_ge() {
        if !cash.difference.is_zero() {
            sqlx::query("UPDATE split_sales SET cash_rounding_minor = ? WHERE order_id = ?")
                .bind(cash.difference.to_minor())
                .bind(split.order_id.to_string())
                .execute(&mut *tx)
                .await
                .context("recording a split sale's cash rounding")?;
        }
        (cash.due, tendered.checked_sub(&cash.due)?)
    } else {
        (tendered, Money::zero(tendered.currency()))
    };
    let tender = Tender {
        amount,
        payment: ReceiptPayment::Cash { tendered, change },
    };
    let part_no = next_part_no(&split);
    insert_part(
        &mut tx,
        split.order_id,
        part_no,
        "paid",
        &tender,
        None,
        None,
        None,
    )
    .await?;
    let step = finish_on(&mut tx, &cart, mode, None, limits).await?;
    tx.commit().await.context("taking a cash part")?;
    Ok(step)
}

/// Takes `amount` by card under the offline card policy (Central is out of reach): refused
/// when the policy is off, when the sale's offline card parts would pass its limit, or when a
/// card part of this sale went through Central already.
#[tracing::instrument(skip_all, fields(cart = %cart_id))]
pub async fn pay_card_offline(
    db: &LocalDb,
    cart_id: Uuid,
    amount: Money,
    limits: SaleLimits,
) -> Result<Step> {
    let mut tx = db.begin_write().await?;
    let (split, cart) = open_on(&mut tx, cart_id).await?;
    check_card_amount(&split, &amount)?;
    if split.online() {
        return Err(Error::CardUnavailable(
            "a card part of this sale went through Central, which is out of reach now: take \
             the rest in cash, or wait for the link"
                .into(),
        ));
    }
    let mut offline_sum = amount;
    for part in &split.parts {
        if matches!(
            part.tender.payment,
            ReceiptPayment::Card { offline: true, .. }
        ) {
            offline_sum = offline_sum.checked_add(&part.tender.amount)?;
        }
    }
    sale::check_offline_card(&offline_sum, limits.offline_card_limit)?;
    let part_no = next_part_no(&split);
    let reference = format!("offline-card-{}-{part_no}", split.order_id.simple());
    let tender = Tender {
        amount,
        payment: ReceiptPayment::Card {
            reference: reference.clone(),
            offline: true,
        },
    };
    let id = split.order_id;
    insert_part(
        &mut tx,
        id,
        part_no,
        "paid",
        &tender,
        None,
        None,
        Some(&reference),
    )
    .await?;
    let step = finish_on(&mut tx, &cart, SaleMode::Offline, None, limits).await?;
    tx.commit().await.context("taking an offline card part")?;
    Ok(step)
}

/// Writes down an online card part of `amount` as `pending` before Central hears of it, with
/// its own payment key, so every try is the same request.
#[tracing::instrument(skip_all, fields(cart = %cart_id))]
pub async fn begin_card_part(
    db: &LocalDb,
    cart_id: Uuid,
    amount: Money,
    payment_method: &str,
) -> Result<CardPart> {
    let mut tx = db.begin_write().await?;
    let (split, _) = open_on(&mut tx, cart_id).await?;
    check_card_amount(&split, &amount)?;
    if split.offline_card() {
        return Err(Error::Invalid(
            "a card part of this sale was taken offline, so its other card parts are too: \
             the sale goes to Central as an offline sale"
                .into(),
        ));
    }
    let part_no = next_part_no(&split);
    let key = |what: &str| {
        IdempotencyKey::parse(&format!("register-{what}"))
            .map_err(|e| corrupt("a split part's key", e))
    };
    let order_key = key(&format!("order-{}", split.order_id))?;
    let payment_key = key(&format!("payment-{}-part-{part_no}", split.order_id))?;
    let tender = Tender {
        amount,
        payment: ReceiptPayment::Card {
            reference: String::new(),
            offline: false,
        },
    };
    let id = split.order_id;
    let (key_str, method) = (payment_key.as_str(), Some(payment_method));
    insert_part(
        &mut tx,
        id,
        part_no,
        "pending",
        &tender,
        Some(key_str),
        method,
        None,
    )
    .await?;
    let location: String =
        sqlx::query_scalar("SELECT location FROM split_sales WHERE order_id = ?")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await
            .context("reading a split sale's location")?;
    tx.commit().await.context("recording a card part")?;
    Ok(CardPart {
        order_id: id,
        cart_id,
        location,
        part_no,
        amount,
        total: split.total,
        order_key,
        payment_key,
        payment_method: payment_method.to_owned(),
    })
}

/// The pending online card parts of cart `cart_id`, to settle after a crash or a silent
/// processor.
pub async fn pending_card_parts(db: &LocalDb, cart_id: Uuid) -> Result<Vec<CardPart>> {
    let rows = sqlx::query(
        "SELECT s.order_id, s.location, s.currency, s.total_minor, p.part_no, p.amount_minor,
                p.payment_key, p.payment_method
         FROM split_sales s JOIN split_parts p ON p.order_id = s.order_id
         WHERE s.cart_id = ? AND p.status = 'pending' ORDER BY p.part_no",
    )
    .bind(cart_id.to_string())
    .fetch_all(db.pool())
    .await
    .context("reading pending card parts")?;
    rows.iter()
        .map(|row| {
            let currency: String = row.get("currency");
            let currency =
                Currency::from_str(&currency).map_err(|e| corrupt("a split's currency", e))?;
            let order_id: String = row.get("order_id");
            let key =
                |k: String| IdempotencyKey::parse(&k).map_err(|e| corrupt("a split part's key", e));
            Ok(CardPart {
                order_id: Uuid::parse_str(&order_id).map_err(|e| corrupt("an order id", e))?,
                cart_id,
                location: row.get("location"),
                part_no: row.get("part_no"),
                amount: Money::from_minor(row.get("amount_minor"), currency),
                total: Money::from_minor(row.get("total_minor"), currency),
                order_key: key(format!("register-order-{order_id}"))?,
                payment_key: key(row
                    .get::<Option<String>, _>("payment_key")
                    .unwrap_or_default())?,
                payment_method: row
                    .get::<Option<String>, _>("payment_method")
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The processor took the online card part: it is paid with the processor's `reference`; the
/// sale completes when that brings the due to zero (`central`: Central's order, PAID when the
/// card parts paid it all).
pub async fn card_part_paid(
    db: &LocalDb,
    part: &CardPart,
    reference: &str,
    central: Option<&Order>,
) -> Result<Step> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE split_parts SET status = 'paid', reference = ?, last_error = NULL
         WHERE order_id = ? AND part_no = ? AND status = 'pending'",
    )
    .bind(reference)
    .bind(part.order_id.to_string())
    .bind(part.part_no)
    .execute(&mut *tx)
    .await
    .context("recording a paid card part")?
    .rows_affected();
    if done == 0 {
        return Err(Error::Invalid(format!(
            "card part {} of sale {} is no longer pending",
            part.part_no, part.order_id
        )));
    }
    let cart = carts::load_on(&mut tx, part.cart_id).await?;
    let central = central.filter(|o| {
        matches!(
            o.status,
            kassa_domain::OrderStatus::Paid | kassa_domain::OrderStatus::Fulfilled
        )
    });
    // An online sale: its outbox entry needs no room check (Central has the order).
    let limits = SaleLimits::default();
    let step = finish_on(&mut tx, &cart, SaleMode::Online, central, limits).await?;
    tx.commit().await.context("recording a paid card part")?;
    Ok(step)
}

/// The online card part was declined, or never reached Central: it goes, no money moved.
pub async fn drop_card_part(db: &LocalDb, part: &CardPart) -> Result<()> {
    sqlx::query(
        "DELETE FROM split_parts WHERE order_id = ? AND part_no = ? AND status = 'pending'",
    )
    .bind(part.order_id.to_string())
    .bind(part.part_no)
    .execute(db.pool())
    .await
    .context("dropping a card part")?;
    drop_if_empty(db, part.order_id).await
}

/// A try failed with an unknown outcome; the part stays pending for the next one.
pub async fn note_part_error(db: &LocalDb, part: &CardPart, error: &str) -> Result<()> {
    sqlx::query("UPDATE split_parts SET last_error = ? WHERE order_id = ? AND part_no = ?")
        .bind(error)
        .bind(part.order_id.to_string())
        .bind(part.part_no)
        .execute(db.pool())
        .await
        .context("noting a card part's error")?;
    Ok(())
}

/// A split with no part left holds nothing: the cart is free again.
async fn drop_if_empty(db: &LocalDb, order_id: Uuid) -> Result<()> {
    sqlx::query(
        "DELETE FROM split_sales WHERE order_id = ?
            AND NOT EXISTS (SELECT 1 FROM split_parts WHERE order_id = ?)",
    )
    .bind(order_id.to_string())
    .bind(order_id.to_string())
    .execute(db.pool())
    .await
    .context("dropping an empty split sale")?;
    Ok(())
}

/// Voids the split sale of `cart_id`: every part is given back (cash from the drawer, offline
/// card parts voided on the terminal) and the cart is free again. A card part that went through
/// Central is refunded by cancelling its order there first (`sync::split`); this refuses while
/// one is in the split.
pub async fn void(db: &LocalDb, cart_id: Uuid) -> Result<SplitView> {
    let mut tx = db.begin_write().await?;
    let split = view_on(&mut tx, cart_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no split payment holds cart {cart_id}")))?;
    if split.online() {
        return Err(Error::Invalid(
            "a card part of this sale went through Central: it is refunded there first".into(),
        ));
    }
    forget_on(&mut tx, split.order_id).await?;
    tx.commit().await.context("voiding a split sale")?;
    Ok(split)
}

/// Forgets the split sale `order_id` and its parts (voided; Central refunded any card part).
pub async fn forget(db: &LocalDb, order_id: Uuid) -> Result<()> {
    let mut tx = db.begin_write().await?;
    forget_on(&mut tx, order_id).await?;
    tx.commit().await.context("forgetting a split sale")
}

async fn forget_on(tx: &mut Tx, order_id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM split_sales WHERE order_id = ?")
        .bind(order_id.to_string())
        .execute(&mut **tx)
        .await
        .context("forgetting a split sale")?;
    Ok(())
}

/// Completes the sale when its paid parts cover the total: the outbox entry with every part,
/// in the transaction that took the last part; the split's rows go. Otherwise the remaining
/// due.
async fn finish_on(
    tx: &mut Tx,
    cart: &CartView,
    mode: SaleMode,
    central: Option<&Order>,
    limits: SaleLimits,
) -> Result<Step> {
    let split = view_on(tx, cart.id)
        .await?
        .ok_or_else(|| Error::Corrupt("a split sale vanished".into()))?;
    if !split.due.is_zero() || split.pending() {
        return Ok(Step::Due(split));
    }
    let shift: Option<String> =
        sqlx::query_scalar("SELECT shift_id FROM split_sales WHERE order_id = ?")
            .bind(split.order_id.to_string())
            .fetch_one(&mut **tx)
            .await
            .context("reading a split sale's shift")?;
    let shift = shift
        .map(|s| Uuid::parse_str(&s).map_err(|e| corrupt("a shift id", e)))
        .transpose()?;
    // The card parts decide the path: through Central (its order holds them) or offline.
    let mode = if split.online() {
        SaleMode::Online
    } else if split.offline_card() {
        SaleMode::Offline
    } else {
        mode
    };
    if mode == SaleMode::Offline && central.is_none() {
        check_outbox_room(tx, limits).await?;
    }
    let payments = split.parts.iter().map(|p| p.tender.clone()).collect();
    let rounding: i64 =
        sqlx::query_scalar("SELECT cash_rounding_minor FROM split_sales WHERE order_id = ?")
            .bind(split.order_id.to_string())
            .fetch_one(&mut **tx)
            .await
            .context("reading a split sale's cash rounding")?;
    let rounding =
        Some(Money::from_minor(rounding, split.total.currency())).filter(|r| !r.is_zero());
    forget_on(tx, split.order_id).await?;
    let paid = (payments, rounding);
    let receipt = sale::record(tx, cart, split.order_id, paid, mode, central, shift).await?;
    Ok(Step::Done(Box::new(receipt)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::EUR).unwrap()
    }

    fn split(total: &str, parts: &[(&str, &str)]) -> SplitView {
        let parts: Vec<SplitPart> = parts
            .iter()
            .enumerate()
            .map(|(i, (status, amount))| SplitPart {
                part_no: i64::try_from(i).unwrap() + 1,
                status: (*status).into(),
                tender: Tender {
                    amount: eur(amount),
                    payment: ReceiptPayment::Card {
                        reference: "pi_1".into(),
                        offline: false,
                    },
                },
            })
            .collect();
        let paid = parts
            .iter()
            .try_fold(eur("0"), |s, p| s.checked_add(&p.tender.amount))
            .unwrap();
        SplitView {
            order_id: Uuid::now_v7(),
            cart_id: Uuid::now_v7(),
            total: eur(total),
            paid,
            due: eur(total).checked_sub(&paid).unwrap(),
            due_in_cash: None,
            cash_rounding: None,
            parts,
        }
    }

    #[test]
    fn a_card_part_is_at_most_the_due_and_more_than_zero() {
        let s = split("10.00", &[("paid", "4.00")]);
        assert!(check_card_amount(&s, &eur("6.00")).is_ok());
        assert!(check_card_amount(&s, &eur("0.01")).is_ok());
        let over = check_card_amount(&s, &eur("6.01")).unwrap_err();
        assert!(over.to_string().contains("6.00 EUR due"), "{over}");
        assert!(check_card_amount(&s, &eur("0.00")).is_err());
        assert!(check_card_amount(&s, &eur("-1.00")).is_err());
        let usd = Money::parse("1.00", Currency::USD).unwrap();
        assert!(check_card_amount(&s, &usd).is_err());
    }

    #[test]
    fn no_part_is_taken_while_one_waits_for_the_processor() {
        let s = split("10.00", &[("pending", "4.00")]);
        assert!(matches!(
            check_part(&s, &eur("1.00")),
            Err(Error::CardPending(_))
        ));
    }

    #[test]
    fn a_sale_is_paid_in_at_most_the_limit_of_parts() {
        let parts: Vec<(&str, &str)> = (0..SPLIT_PARTS_MAX).map(|_| ("paid", "0.01")).collect();
        let s = split("10.00", &parts);
        assert!(check_part(&s, &eur("1.00")).is_err());
    }
}
