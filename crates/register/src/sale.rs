//! Checkout at the till: a cart becomes a sale in ONE transaction with its outbox entry (order,
//! lines, payment), its receipt number and the cart's completion. After a crash a sale is
//! either wholly there or never happened. Cash and offline card sales are written here; an
//! online card sale is written here too, once Central has it paid (see [`crate::card`]).

use chrono::Utc;
use kassa_domain::api::Order;
use kassa_domain::{CartLine, CashRounding, Money, RoundedCash};
pub use kassa_domain::{Receipt, ReceiptPayment, SaleMode, Tender};
use uuid::Uuid;

use crate::carts::{self, CartView, DiscountApproval};
use crate::error::{corrupt, Context, Error, Result};
use crate::store::{now_ms, LocalDb, Tx};
use crate::{card, identity, shifts};

/// Limits on selling.
#[derive(Debug, Clone, Copy)]
pub struct SaleLimits {
    /// Sales that may wait in the outbox before selling stops (the bounded queue).
    pub outbox_pending_max: i64,
    /// The offline card policy: with Central out of reach, a card sale up to this total is
    /// recorded with a reference the register makes and synced later (the shop carries the
    /// risk). `None` (the default): card needs Central.
    pub offline_card_limit: Option<Money>,
    /// A cashier's line discount above this share of the line (percent) needs a manager's
    /// approval; a signed-in manager gives any. Central's setting replaces it from the first
    /// sync round on (see [`crate::settings`]).
    pub discount_limit_percent: u32,
}

impl Default for SaleLimits {
    fn default() -> Self {
        Self {
            outbox_pending_max: 20_000,
            offline_card_limit: None,
            discount_limit_percent: 10,
        }
    }
}

/// Completes the open cart `cart_id` as a cash sale of its total with `tendered` handed over.
/// Where the store rounds cash, the customer pays the total rounded by its rule and the change
/// comes from that; the rounding is kept on the sale.
#[tracing::instrument(skip_all, fields(cart = %cart_id, mode = mode.as_str()))]
pub async fn complete_cash(
    db: &LocalDb,
    cart_id: Uuid,
    tendered: Money,
    mode: SaleMode,
    limits: SaleLimits,
) -> Result<Receipt> {
    let mut tx = db.begin_write().await?;
    let shift = shifts::selling_on(&mut tx).await?;
    let cart = sellable(&mut tx, cart_id).await?;
    let rule = crate::settings::cash_rounding_on(&mut tx).await?;
    let cash = cash_due(rule, cart.totals.total)?;
    let change = change_due(&cash.due, &tendered)?;
    check_outbox_room(&mut tx, limits).await?;
    let payment = vec![Tender {
        amount: cash.due,
        payment: ReceiptPayment::Cash { tendered, change },
    }];
    let order_id = Uuid::now_v7();
    let rounding = Some(cash.difference).filter(|r| !r.is_zero());
    let receipt = record(
        &mut tx,
        &cart,
        order_id,
        (payment, rounding),
        mode,
        None,
        Some(shift),
    )
    .await?;
    tx.commit().await.context("committing a sale")?;
    Ok(receipt)
}

/// Completes the open cart as a card sale under the offline card policy (Central is out of
/// reach): refused with [`Error::CardUnavailable`] when the policy is off or the total is above
/// its limit, and then nothing is written.
#[tracing::instrument(skip_all, fields(cart = %cart_id))]
pub async fn complete_card_offline(
    db: &LocalDb,
    cart_id: Uuid,
    limits: SaleLimits,
) -> Result<Receipt> {
    let mut tx = db.begin_write().await?;
    let shift = shifts::selling_on(&mut tx).await?;
    let cart = sellable(&mut tx, cart_id).await?;
    check_offline_card(&cart.totals.total, limits.offline_card_limit)?;
    check_outbox_room(&mut tx, limits).await?;
    let order_id = Uuid::now_v7();
    let payment = vec![Tender {
        amount: cart.totals.total,
        payment: ReceiptPayment::Card {
            reference: format!("offline-card-{}", order_id.simple()),
            offline: true,
        },
    }];
    let mode = SaleMode::Offline;
    let receipt = record(
        &mut tx,
        &cart,
        order_id,
        (payment, None),
        mode,
        None,
        Some(shift),
    )
    .await?;
    tx.commit()
        .await
        .context("committing an offline card sale")?;
    Ok(receipt)
}

/// The cash the customer owes for an exact due of `exact` under the store's `rule`: rounded,
/// except when that would round a due of more than zero to nothing (the cash is then taken
/// exact: a sale is never completed by its rounding alone).
pub fn cash_due(rule: CashRounding, exact: Money) -> Result<RoundedCash> {
    let zero = Money::zero(exact.currency());
    Ok(kassa_domain::final_cash_part(rule, exact, zero, zero)?)
}

/// The offline card policy's decision for a sale of `total`.
pub fn check_offline_card(total: &Money, limit: Option<Money>) -> Result<()> {
    let Some(limit) = limit else {
        return Err(Error::CardUnavailable(
            "Card payments need Kassa Central, which is out of reach, and this register takes no \
             card offline: take cash, or wait for the link."
                .into(),
        ));
    };
    if total.currency() != limit.currency() || total.checked_cmp(&limit)?.is_gt() {
        return Err(Error::CardUnavailable(format!(
            "Card payments need Kassa Central, which is out of reach; offline this register takes \
             card only up to {limit} and this sale is {total}: take cash."
        )));
    }
    Ok(())
}

/// The cart `cart_id`, checked for checkout: open, not empty, no card payment pending on it.
pub(crate) async fn sellable(tx: &mut Tx, cart_id: Uuid) -> Result<CartView> {
    let cart = carts::load_on(tx, cart_id).await?;
    if cart.status != "open" {
        return Err(Error::Invalid(format!("cart {cart_id} is {}", cart.status)));
    }
    if cart.lines.is_empty() {
        return Err(Error::Invalid("the cart is empty".into()));
    }
    card::check_not_held(tx, cart_id).await?;
    Ok(cart)
}

/// Writes the sale of `cart` paid by `payments` (one per part, in the order taken) with the
/// rounding of its final cash part: its receipt number, its outbox entry (waiting for Central,
/// or already `done` when `central` holds Central's paid order), the shift it belongs to and
/// the cart's completion.
pub(crate) async fn record(
    tx: &mut Tx,
    cart: &CartView,
    order_id: Uuid,
    (payments, cash_rounding): (Vec<Tender>, Option<Money>),
    mode: SaleMode,
    central: Option<&Order>,
    shift: Option<Uuid>,
) -> Result<Receipt> {
    let receipt_no = identity::next_receipt_no(tx).await?;
    let location: String = sqlx::query_scalar("SELECT location FROM identity WHERE singleton = 1")
        .fetch_one(&mut **tx)
        .await
        .context("reading the register's location")?;
    let receipt = Receipt {
        order_id,
        receipt_no,
        location,
        lines: cart.lines.clone(),
        totals: cart.totals.clone(),
        payments,
        cash_rounding,
        completed_at: Utc::now(),
        mode,
    };
    insert_outbox(tx, cart, &receipt, central, shift).await?;
    // What the till may still sell without a shortfall drops with the sale, at once: offline
    // or online, Central takes a sale made here from this till's lease first.
    for line in &receipt.lines {
        crate::leases::take(tx, line.sku.as_str(), i64::from(line.qty)).await?;
    }
    carts::set_status(tx, cart.id, "completed", None).await?;
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

async fn insert_outbox(
    tx: &mut Tx,
    cart: &CartView,
    r: &Receipt,
    central: Option<&Order>,
    shift: Option<Uuid>,
) -> Result<()> {
    let id = r.order_id.to_string();
    let totals = serde_json::to_string(&r.totals).map_err(|e| Error::Corrupt(e.to_string()))?;
    let central = central
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| corrupt("order", e))?;
    // A split sale whose card part went through Central has its order there already (RESERVED,
    // part paid): the outbox finishes it from there, never creating it again.
    let at_central = r
        .payments
        .iter()
        .any(|t| matches!(t.payment, ReceiptPayment::Card { offline: false, .. }));
    let status = match (&central, at_central) {
        (Some(_), _) => "done",
        (None, true) => "order_created",
        (None, false) => "pending",
    };
    let synced_at = central.as_ref().map(|_| now_ms());
    sqlx::query(
        "INSERT INTO outbox_orders (order_id, cart_id, receipt_no, location, mode, status,
            order_key, payment_key, currency, total_minor, totals, completed_at, central_order,
            shortfalls, synced_at, shift_id, cash_rounding_minor)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ? IS NULL THEN NULL ELSE '[]' END, ?,
            ?, ?)",
    )
    .bind(&id)
    .bind(cart.id.to_string())
    .bind(&r.receipt_no)
    .bind(&r.location)
    .bind(r.mode.as_str())
    .bind(status)
    .bind(format!("register-order-{id}"))
    .bind(format!("register-payment-{id}"))
    .bind(r.totals.currency.code())
    .bind(r.totals.total.to_minor())
    .bind(totals)
    .bind(r.completed_at.timestamp_millis())
    .bind(&central)
    .bind(&central)
    .bind(synced_at)
    .bind(shift.map(|s| s.to_string()))
    .bind(r.cash_rounding.map_or(0, |m| m.to_minor()))
    .execute(&mut **tx)
    .await
    .context("writing the sale to the outbox")?;
    insert_lines(tx, &id, &r.lines, &cart.discount_approvals).await?;
    insert_payment(tx, &id, r).await
}

async fn insert_payment(tx: &mut Tx, id: &str, r: &Receipt) -> Result<()> {
    check_tenders(&r.totals.total, r.cash_rounding, &r.payments)?;
    for (no, t) in r.payments.iter().enumerate() {
        let (tendered, change, reference) = match &t.payment {
            ReceiptPayment::Cash { tendered, change } => {
                (Some(tendered.to_minor()), Some(change.to_minor()), None)
            }
            ReceiptPayment::Card { reference, .. } => (None, None, Some(reference.as_str())),
        };
        sqlx::query(
            "INSERT INTO outbox_payments (order_id, part_no, method, amount_minor, tendered_minor,
                change_minor, reference)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(i64::try_from(no).unwrap_or(i64::MAX) + 1)
        .bind(t.payment.method())
        .bind(t.amount.to_minor())
        .bind(tendered)
        .bind(change)
        .bind(reference)
        .execute(&mut **tx)
        .await
        .context("writing a payment to the outbox")?;
    }
    Ok(())
}

/// The invariant every written sale keeps: at least one payment, the payments add up to the
/// total plus the cash rounding (which only a final cash part carries), and change comes only
/// from cash (tendered − change = the cash part).
pub fn check_tenders(
    total: &Money,
    cash_rounding: Option<Money>,
    payments: &[Tender],
) -> Result<()> {
    if payments.is_empty() {
        return Err(Error::Corrupt("a sale without a payment".into()));
    }
    let rounding = cash_rounding.unwrap_or_else(|| Money::zero(total.currency()));
    let last_is_cash = matches!(
        payments.last().map(|t| &t.payment),
        Some(ReceiptPayment::Cash { .. })
    );
    if !rounding.is_zero() && !last_is_cash {
        return Err(Error::Corrupt(
            "a cash rounding on a sale whose last part is not cash".into(),
        ));
    }
    let total = &total.checked_add(&rounding)?;
    let mut paid = Money::zero(total.currency());
    for t in payments {
        if let ReceiptPayment::Cash { tendered, change } = &t.payment {
            if tendered.checked_sub(change)? != t.amount {
                return Err(Error::Corrupt(format!(
                    "a cash part of {} with {tendered} tendered and {change} change",
                    t.amount
                )));
            }
        }
        paid = paid.checked_add(&t.amount)?;
    }
    if paid != *total {
        return Err(Error::Corrupt(format!(
            "the payments add up to {paid}, the sale's total is {total}"
        )));
    }
    Ok(())
}

/// The sale's lines, each with its discount's approver and approval from the cart.
async fn insert_lines(
    tx: &mut Tx,
    id: &str,
    lines: &[CartLine],
    approvals: &[DiscountApproval],
) -> Result<()> {
    for (no, line) in lines.iter().enumerate() {
        let approved = approvals.iter().find(|a| a.sku == line.sku);
        let approval = approved
            .and_then(DiscountApproval::approval)
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| corrupt("an approval", e))?;
        sqlx::query(
            "INSERT INTO outbox_lines (order_id, line_no, sku, qty, unit_price_minor, discount_minor,
                discount_approved_by, discount_approval)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(i64::try_from(no).unwrap_or(i64::MAX) + 1)
        .bind(line.sku.as_str())
        .bind(line.qty)
        .bind(line.unit_price.to_minor())
        .bind(line.discount.to_minor())
        .bind(approved.map(|a| a.manager.as_str()))
        .bind(approval)
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
    fn the_offline_card_policy_takes_up_to_its_limit_and_names_it() {
        assert!(check_offline_card(&eur("50.00"), Some(eur("50.00"))).is_ok());
        assert!(check_offline_card(&eur("0.01"), Some(eur("50.00"))).is_ok());
        let above = check_offline_card(&eur("50.01"), Some(eur("50.00"))).unwrap_err();
        assert!(matches!(above, Error::CardUnavailable(_)));
        assert!(above.to_string().contains("50.00"), "{above}");
        let off = check_offline_card(&eur("0.01"), None).unwrap_err();
        assert!(matches!(off, Error::CardUnavailable(_)), "{off}");
        let usd = Money::parse("1.00", Currency::USD).unwrap();
        assert!(check_offline_card(&usd, Some(eur("50.00"))).is_err());
    }

    #[test]
    fn the_cash_due_is_rounded_but_never_to_nothing() {
        let nickel = CashRounding::new(5).unwrap();
        let due = cash_due(nickel, eur("3.02")).unwrap();
        assert_eq!((due.due, due.difference), (eur("3.00"), eur("-0.02")));
        let due = cash_due(nickel, eur("0.02")).unwrap();
        assert_eq!((due.due, due.difference), (eur("0.02"), eur("0.00")));
        let due = cash_due(CashRounding::NONE, eur("3.02")).unwrap();
        assert_eq!((due.due, due.difference), (eur("3.02"), eur("0.00")));
    }

    #[test]
    fn tenders_add_up_to_the_total_with_the_rounding_of_a_final_cash_part() {
        let cash = |amount: &str, tendered: &str, change: &str| Tender {
            amount: eur(amount),
            payment: ReceiptPayment::Cash {
                tendered: eur(tendered),
                change: eur(change),
            },
        };
        let card = |amount: &str| Tender {
            amount: eur(amount),
            payment: ReceiptPayment::Card {
                reference: "pi_1".into(),
                offline: false,
            },
        };
        let rounding = Some(eur("-0.02"));
        assert!(check_tenders(&eur("3.02"), rounding, &[cash("3.00", "5.00", "2.00")]).is_ok());
        assert!(check_tenders(&eur("3.02"), None, &[cash("3.00", "5.00", "2.00")]).is_err());
        let split = [card("10.00"), cash("3.00", "3.00", "0.00")];
        assert!(check_tenders(&eur("13.02"), rounding, &split).is_ok());
        let card_last = [cash("3.00", "3.00", "0.00"), card("10.00")];
        assert!(check_tenders(&eur("13.02"), rounding, &card_last).is_err());
    }

    #[test]
    fn too_little_cash_is_refused() {
        assert!(change_due(&eur("12.50"), &eur("10.00")).is_err());
        let usd = Money::parse("20.00", Currency::USD).unwrap();
        assert!(change_due(&eur("12.50"), &usd).is_err());
    }
}
