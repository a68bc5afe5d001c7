//! SQL for payments, refunds and applied processor webhook events.

use anyhow::Context;
use kassa_domain::api::{LineRequest, PaymentMethod, PaymentStatus};
use kassa_domain::{Currency, Money};
use sqlx::Row;
use uuid::Uuid;

use super::{from_ms, now_ms, Tx};

/// A payment row as stored.
#[derive(Debug, Clone)]
pub struct PaymentRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    pub amount: Money,
    pub tendered: Option<Money>,
    pub change: Option<Money>,
    pub processor_key: Option<String>,
    pub processor_ref: Option<String>,
    pub failure_code: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

fn parse_status(s: &str) -> anyhow::Result<PaymentStatus> {
    match s {
        "pending" => Ok(PaymentStatus::Pending),
        "succeeded" => Ok(PaymentStatus::Succeeded),
        "failed" => Ok(PaymentStatus::Failed),
        other => anyhow::bail!("stored payment status {other:?}"),
    }
}

fn method_str(m: PaymentMethod) -> &'static str {
    match m {
        PaymentMethod::Cash => "cash",
        PaymentMethod::Card => "card",
    }
}

fn decode(row: &sqlx::any::AnyRow) -> anyhow::Result<PaymentRow> {
    let currency: String = row.try_get("currency")?;
    let currency: Currency = currency
        .parse()
        .map_err(|e| anyhow::anyhow!("stored currency: {e}"))?;
    let money = |minor: Option<i64>| minor.map(|m| Money::from_minor(m, currency));
    let id: String = row.try_get("id")?;
    let order_id: String = row.try_get("order_id")?;
    let method: String = row.try_get("method")?;
    let status: String = row.try_get("status")?;
    Ok(PaymentRow {
        id: id.parse()?,
        order_id: order_id.parse()?,
        method: if method == "card" {
            PaymentMethod::Card
        } else {
            PaymentMethod::Cash
        },
        status: parse_status(&status)?,
        amount: Money::from_minor(row.try_get("amount_minor")?, currency),
        tendered: money(row.try_get("tendered_minor")?),
        change: money(row.try_get("change_minor")?),
        processor_key: row.try_get("processor_key")?,
        processor_ref: row.try_get("processor_ref")?,
        failure_code: row.try_get("failure_code")?,
        created_at: from_ms(row.try_get("created_at")?),
    })
}

/// Inserts a payment; a card payment whose `processor_key` exists already is left as it is
/// (a retry). Returns the stored row for that key.
pub async fn insert(tx: &mut Tx, p: &PaymentRow) -> anyhow::Result<PaymentRow> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO payments (id, order_id, method, status, currency, amount_minor, \
         tendered_minor, change_minor, processor_key, processor_ref, failure_code, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
         ON CONFLICT (processor_key) DO NOTHING",
    )
    .bind(p.id.to_string())
    .bind(p.order_id.to_string())
    .bind(method_str(p.method))
    .bind(p.status.as_str())
    .bind(p.amount.currency().code())
    .bind(p.amount.to_minor())
    .bind(p.tendered.map(|m| m.to_minor()))
    .bind(p.change.map(|m| m.to_minor()))
    .bind(p.processor_key.as_deref())
    .bind(p.processor_ref.as_deref())
    .bind(p.failure_code.as_deref())
    .bind(now)
    .execute(&mut **tx)
    .await
    .context("inserting payment")?;
    let stored = match &p.processor_key {
        Some(key) => by_processor_key(tx, key).await?,
        None => by_id(tx, p.id).await?,
    };
    stored.ok_or_else(|| anyhow::anyhow!("payment vanished after insert"))
}

async fn one(tx: &mut Tx, sql: &str, value: &str) -> anyhow::Result<Option<PaymentRow>> {
    sqlx::query(sql)
        .bind(value)
        .fetch_optional(&mut **tx)
        .await
        .context("loading payment")?
        .as_ref()
        .map(decode)
        .transpose()
}

pub async fn by_id(tx: &mut Tx, id: Uuid) -> anyhow::Result<Option<PaymentRow>> {
    one(tx, "SELECT * FROM payments WHERE id = $1", &id.to_string()).await
}

pub async fn by_processor_key(tx: &mut Tx, key: &str) -> anyhow::Result<Option<PaymentRow>> {
    one(tx, "SELECT * FROM payments WHERE processor_key = $1", key).await
}

/// The card payment a processor intent belongs to: by its reference, or (when the webhook
/// arrives before the processor's answer to our own call) the oldest pending card payment of
/// that order and amount that has no reference yet.
pub async fn for_intent(
    tx: &mut Tx,
    intent_id: &str,
    payment_id: Option<Uuid>,
    order_id: Option<Uuid>,
    amount_minor: i64,
) -> anyhow::Result<Option<PaymentRow>> {
    if let Some(p) = one(
        tx,
        "SELECT * FROM payments WHERE processor_ref = $1",
        intent_id,
    )
    .await?
    {
        return Ok(Some(p));
    }
    // The intent names its payment: that one or none. Guessing by order and amount here would
    // let a late event for a declined intent settle the next card payment of the same amount.
    if let Some(payment_id) = payment_id {
        return Ok(one(
            tx,
            "SELECT * FROM payments WHERE id = $1 AND method = 'card' AND processor_ref IS NULL",
            &payment_id.to_string(),
        )
        .await?
        .filter(|p| order_id.is_none_or(|o| o == p.order_id)));
    }
    let Some(order_id) = order_id else {
        return Ok(None);
    };
    sqlx::query(
        "SELECT * FROM payments WHERE order_id = $1 AND method = 'card' AND status = 'pending' \
         AND processor_ref IS NULL AND amount_minor = $2 ORDER BY created_at, id LIMIT 1",
    )
    .bind(order_id.to_string())
    .bind(amount_minor)
    .fetch_optional(&mut **tx)
    .await
    .context("matching payment to intent")?
    .as_ref()
    .map(decode)
    .transpose()
}

/// Settles a pending payment: `true` only for the call that moved it out of `pending`, so
/// whoever sees `true` applies its effect (the order's payment) and nobody else does.
pub async fn settle(
    tx: &mut Tx,
    id: Uuid,
    to: PaymentStatus,
    processor_ref: Option<&str>,
    failure_code: Option<&str>,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE payments SET status = $1, processor_ref = COALESCE($2, processor_ref), \
         failure_code = $3, updated_at = $4 WHERE id = $5 AND status = 'pending'",
    )
    .bind(to.as_str())
    .bind(processor_ref)
    .bind(failure_code)
    .bind(now_ms())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .context("settling payment")?;
    Ok(done.rows_affected() == 1)
}

/// Notes the processor's reference on a payment still waiting for its outcome.
pub async fn set_ref(tx: &mut Tx, id: Uuid, processor_ref: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE payments SET processor_ref = $1 WHERE id = $2 AND processor_ref IS NULL")
        .bind(processor_ref)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .context("noting processor reference")?;
    Ok(())
}

/// Every payment of an order, oldest first.
pub async fn of_order(tx: &mut Tx, order_id: Uuid) -> anyhow::Result<Vec<PaymentRow>> {
    sqlx::query("SELECT * FROM payments WHERE order_id = $1 ORDER BY created_at, id")
        .bind(order_id.to_string())
        .fetch_all(&mut **tx)
        .await
        .context("loading payments")?
        .iter()
        .map(decode)
        .collect()
}

/// Records a webhook event id; `false` when it was applied before.
pub async fn claim_webhook_event(tx: &mut Tx, id: &str, event_type: &str) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO webhook_events (id, type, received_at) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(event_type)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("recording webhook event")?;
    Ok(done.rows_affected() == 1)
}

/// A refund row as stored.
#[derive(Debug, Clone)]
pub struct RefundRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: PaymentStatus,
    pub amount: Money,
    pub card: Money,
    pub cash: Money,
    pub lines: Vec<LineRequest>,
    pub reason: String,
    pub processor_key: String,
    /// Why the processor refused it (status `failed`).
    pub failure: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

fn decode_refund(row: &sqlx::any::AnyRow) -> anyhow::Result<RefundRow> {
    let currency: String = row.try_get("currency")?;
    let currency: Currency = currency
        .parse()
        .map_err(|e| anyhow::anyhow!("stored currency: {e}"))?;
    let id: String = row.try_get("id")?;
    let order_id: String = row.try_get("order_id")?;
    let status: String = row.try_get("status")?;
    let lines: String = row.try_get("lines")?;
    Ok(RefundRow {
        id: id.parse()?,
        order_id: order_id.parse()?,
        status: parse_status(&status)?,
        amount: Money::from_minor(row.try_get("amount_minor")?, currency),
        card: Money::from_minor(row.try_get("card_minor")?, currency),
        cash: Money::from_minor(row.try_get("cash_minor")?, currency),
        lines: serde_json::from_str(&lines).context("stored refund lines")?,
        reason: row.try_get("reason")?,
        processor_key: row.try_get("processor_key")?,
        failure: row.try_get("failure")?,
        created_at: from_ms(row.try_get("created_at")?),
    })
}

pub async fn refund_by_key(tx: &mut Tx, key: &str) -> anyhow::Result<Option<RefundRow>> {
    sqlx::query("SELECT * FROM refunds WHERE processor_key = $1")
        .bind(key)
        .fetch_optional(&mut **tx)
        .await
        .context("loading refund")?
        .as_ref()
        .map(decode_refund)
        .transpose()
}

/// An order's refunds, oldest first, whatever their state, at most `limit`.
pub async fn refunds_of_order(
    tx: &mut Tx,
    order_id: Uuid,
    limit: i64,
) -> anyhow::Result<Vec<RefundRow>> {
    sqlx::query("SELECT * FROM refunds WHERE order_id = $1 ORDER BY created_at, id LIMIT $2")
        .bind(order_id.to_string())
        .bind(limit)
        .fetch_all(&mut **tx)
        .await
        .context("listing refunds")?
        .iter()
        .map(decode_refund)
        .collect()
}

pub async fn refund_exists(tx: &mut Tx, id: Uuid) -> anyhow::Result<bool> {
    let found = sqlx::query("SELECT 1 AS one FROM refunds WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .context("looking for a refund")?;
    Ok(found.is_some())
}

pub async fn insert_refund(tx: &mut Tx, r: &RefundRow) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO refunds (id, order_id, status, currency, amount_minor, card_minor, \
         cash_minor, lines, reason, processor_key, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(r.id.to_string())
    .bind(r.order_id.to_string())
    .bind(r.status.as_str())
    .bind(r.amount.currency().code())
    .bind(r.amount.to_minor())
    .bind(r.card.to_minor())
    .bind(r.cash.to_minor())
    .bind(serde_json::to_string(&r.lines).context("encoding refund lines")?)
    .bind(&r.reason)
    .bind(&r.processor_key)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("inserting refund")?;
    Ok(())
}

/// Settles a pending refund (with the processor's refund ids, or why it refused); `true` for
/// the call that did it.
pub async fn settle_refund(
    tx: &mut Tx,
    id: Uuid,
    to: PaymentStatus,
    processor_refs: &[String],
    failure: Option<&str>,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE refunds SET status = $1, processor_refs = $2, failure = $3, updated_at = $4 \
         WHERE id = $5 AND status = 'pending'",
    )
    .bind(to.as_str())
    .bind(processor_refs.join(","))
    .bind(failure)
    .bind(now_ms())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .context("settling refund")?;
    Ok(done.rows_affected() == 1)
}

/// Counts `delta_minor` against what may still be refunded: the update only happens while
/// refunded stays within [0, paid], so concurrent refunds can never give back more than was paid.
pub async fn move_refunded(tx: &mut Tx, order_id: Uuid, delta_minor: i64) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE orders SET refunded_minor = refunded_minor + $1, updated_at = $2 \
         WHERE id = $3 AND refunded_minor + $1 <= paid_minor AND refunded_minor + $1 >= 0",
    )
    .bind(delta_minor)
    .bind(now_ms())
    .bind(order_id.to_string())
    .execute(&mut **tx)
    .await
    .context("counting refund against the order")?;
    Ok(done.rows_affected() == 1)
}

/// A succeeded card payment and what can still be given back from it.
#[derive(Debug, Clone)]
pub struct CardRefundable {
    pub payment_id: Uuid,
    pub intent_id: String,
    pub refundable_minor: i64,
}

/// An order's succeeded card payments that still hold money, oldest first, with what each can
/// still give back: what it captured minus its refund parts and orphan refund.
pub async fn card_refundable(tx: &mut Tx, order_id: Uuid) -> anyhow::Result<Vec<CardRefundable>> {
    let rows = sqlx::query(
        "SELECT id, processor_ref, amount_minor - refunded_minor AS refundable FROM payments \
         WHERE order_id = $1 AND method = 'card' AND status = 'succeeded' \
         AND processor_ref IS NOT NULL AND amount_minor > refunded_minor \
         ORDER BY created_at, id",
    )
    .bind(order_id.to_string())
    .fetch_all(&mut **tx)
    .await
    .context("loading refundable card payments")?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get("id")?;
            Ok(CardRefundable {
                payment_id: id.parse()?,
                intent_id: row.try_get("processor_ref")?,
                refundable_minor: row.try_get("refundable")?,
            })
        })
        .collect()
}

/// Counts `delta_minor` as given back from one payment, within [0, what it took]; `false`
/// (nothing changed) when that bound would break.
pub async fn move_payment_refunded(
    tx: &mut Tx,
    payment_id: Uuid,
    delta_minor: i64,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE payments SET refunded_minor = refunded_minor + $1, updated_at = $2 \
         WHERE id = $3 AND refunded_minor + $1 <= amount_minor AND refunded_minor + $1 >= 0",
    )
    .bind(delta_minor)
    .bind(now_ms())
    .bind(payment_id.to_string())
    .execute(&mut **tx)
    .await
    .context("counting a refund against its payment")?;
    Ok(done.rows_affected() == 1)
}

/// One card payment's share of a refund.
#[derive(Debug, Clone)]
pub struct RefundPart {
    pub refund_id: Uuid,
    pub seq: i64,
    pub payment_id: Uuid,
    pub intent_id: String,
    pub amount_minor: i64,
    pub processor_ref: Option<String>,
}

pub async fn insert_part(tx: &mut Tx, p: &RefundPart) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO refund_parts (refund_id, seq, payment_id, intent_id, amount_minor) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(p.refund_id.to_string())
    .bind(p.seq)
    .bind(p.payment_id.to_string())
    .bind(&p.intent_id)
    .bind(p.amount_minor)
    .execute(&mut **tx)
    .await
    .context("inserting refund part")?;
    Ok(())
}

/// A refund's parts, in the order they go to the processor.
pub async fn parts_of(tx: &mut Tx, refund_id: Uuid) -> anyhow::Result<Vec<RefundPart>> {
    let rows = sqlx::query("SELECT * FROM refund_parts WHERE refund_id = $1 ORDER BY seq")
        .bind(refund_id.to_string())
        .fetch_all(&mut **tx)
        .await
        .context("loading refund parts")?;
    rows.iter()
        .map(|row| {
            let refund_id: String = row.try_get("refund_id")?;
            let payment_id: String = row.try_get("payment_id")?;
            Ok(RefundPart {
                refund_id: refund_id.parse()?,
                seq: row.try_get("seq")?,
                payment_id: payment_id.parse()?,
                intent_id: row.try_get("intent_id")?,
                amount_minor: row.try_get("amount_minor")?,
                processor_ref: row.try_get("processor_ref")?,
            })
        })
        .collect()
}

/// Notes the processor's refund id on a part (once).
pub async fn set_part_ref(
    tx: &mut Tx,
    refund_id: Uuid,
    seq: i64,
    processor_ref: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE refund_parts SET processor_ref = $1 \
         WHERE refund_id = $2 AND seq = $3 AND processor_ref IS NULL",
    )
    .bind(processor_ref)
    .bind(refund_id.to_string())
    .bind(seq)
    .execute(&mut **tx)
    .await
    .context("noting a refund part's reference")?;
    Ok(())
}

/// A part the processor refused while others of its refund went through: its amount is paid
/// back in cash instead (the refund's card and cash split move with it).
pub async fn part_to_cash(tx: &mut Tx, part: &RefundPart) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM refund_parts WHERE refund_id = $1 AND seq = $2")
        .bind(part.refund_id.to_string())
        .bind(part.seq)
        .execute(&mut **tx)
        .await
        .context("dropping a refused refund part")?;
    sqlx::query(
        "UPDATE refunds SET card_minor = card_minor - $1, cash_minor = cash_minor + $1 \
         WHERE id = $2",
    )
    .bind(part.amount_minor)
    .bind(part.refund_id.to_string())
    .execute(&mut **tx)
    .await
    .context("moving a refused part to cash")?;
    if !move_payment_refunded(tx, part.payment_id, -part.amount_minor).await? {
        anyhow::bail!(
            "refund part {} of {} out of bounds",
            part.seq,
            part.refund_id
        );
    }
    Ok(())
}

pub async fn refund_by_id(tx: &mut Tx, id: Uuid) -> anyhow::Result<Option<RefundRow>> {
    sqlx::query("SELECT * FROM refunds WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .context("loading refund")?
        .as_ref()
        .map(decode_refund)
        .transpose()
}

/// How many of an order's refunds still wait for the processor.
pub async fn pending_refunds_of_order(tx: &mut Tx, order_id: Uuid) -> anyhow::Result<i64> {
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM refunds WHERE order_id = $1 AND status = 'pending'")
            .bind(order_id.to_string())
            .fetch_one(&mut **tx)
            .await
            .context("counting pending refunds")?;
    Ok(row.try_get("n")?)
}

/// Whether an order has a card payment still waiting for the processor's outcome.
pub async fn has_pending_payment(tx: &mut Tx, order_id: Uuid) -> anyhow::Result<bool> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM payments WHERE order_id = $1 AND status = 'pending'",
    )
    .bind(order_id.to_string())
    .fetch_one(&mut **tx)
    .await
    .context("looking for pending payments")?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

/// Refunds still pending whose last change is at or before `before_ms` (the reconciler's work).
pub async fn stale_pending_refunds(
    tx: &mut Tx,
    before_ms: i64,
    limit: i64,
) -> anyhow::Result<Vec<Uuid>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM refunds WHERE status = 'pending' AND updated_at <= $1 \
         ORDER BY updated_at, id LIMIT $2",
    )
    .bind(before_ms)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
    .context("finding pending refunds")?;
    ids.iter().map(|id| Ok(id.parse()?)).collect()
}

/// Card payments still pending whose last change is at or before `before_ms`.
pub async fn stale_pending_payments(
    tx: &mut Tx,
    before_ms: i64,
    limit: i64,
) -> anyhow::Result<Vec<PaymentRow>> {
    sqlx::query(
        "SELECT * FROM payments WHERE status = 'pending' AND updated_at <= $1 \
         ORDER BY updated_at, id LIMIT $2",
    )
    .bind(before_ms)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
    .context("finding pending payments")?
    .iter()
    .map(decode)
    .collect()
}

/// Orphaned card payments the processor has not given back yet.
pub async fn pending_orphans(tx: &mut Tx, limit: i64) -> anyhow::Result<Vec<PaymentRow>> {
    sqlx::query("SELECT * FROM payments WHERE orphan = 'pending' ORDER BY created_at, id LIMIT $1")
        .bind(limit)
        .fetch_all(&mut **tx)
        .await
        .context("finding orphaned payments")?
        .iter()
        .map(decode)
        .collect()
}

/// Marks a succeeded payment as an orphan: all of it is to be given back, none of it can be
/// refunded again. `true` for the call that marked it.
pub async fn mark_orphan(tx: &mut Tx, payment_id: Uuid) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE payments SET orphan = 'pending', refunded_minor = amount_minor, updated_at = $1 \
         WHERE id = $2 AND orphan IS NULL AND refunded_minor = 0",
    )
    .bind(now_ms())
    .bind(payment_id.to_string())
    .execute(&mut **tx)
    .await
    .context("marking an orphaned payment")?;
    Ok(done.rows_affected() == 1)
}

/// The processor gave an orphan back; `true` for the call that recorded it.
pub async fn orphan_refunded(tx: &mut Tx, payment_id: Uuid) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE payments SET orphan = 'refunded', updated_at = $1 \
         WHERE id = $2 AND orphan = 'pending'",
    )
    .bind(now_ms())
    .bind(payment_id.to_string())
    .execute(&mut **tx)
    .await
    .context("recording an orphan's refund")?;
    Ok(done.rows_affected() == 1)
}

/// A payment Kassa recorded as failed that the processor says succeeded after all (a late or
/// out-of-order webhook, a reconciler that gave up): it becomes succeeded, once.
pub async fn revive(tx: &mut Tx, id: Uuid, processor_ref: &str) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE payments SET status = 'succeeded', processor_ref = $1, failure_code = NULL, \
         updated_at = $2 WHERE id = $3 AND status = 'failed' AND method = 'card' \
         AND (processor_ref IS NULL OR processor_ref = $1)",
    )
    .bind(processor_ref)
    .bind(now_ms())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .context("reviving a payment")?;
    Ok(done.rows_affected() == 1)
}

/// Keeps the payment-method token a card payment was sent with (for the reconciler's replay).
pub async fn set_payment_method(tx: &mut Tx, id: Uuid, token: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE payments SET payment_method = $1 WHERE id = $2")
        .bind(token)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .context("noting a payment's method token")?;
    Ok(())
}

/// The payment-method token a card payment was sent with, if it was kept.
pub async fn payment_method(tx: &mut Tx, id: Uuid) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT payment_method FROM payments WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .context("loading a payment's method token")?;
    Ok(row.and_then(|r| r.try_get("payment_method").ok().flatten()))
}

/// Bumps a pending row's clock so the reconciler waits a full period before its next try.
pub async fn touch_payment(tx: &mut Tx, id: Uuid) -> anyhow::Result<()> {
    sqlx::query("UPDATE payments SET updated_at = $1 WHERE id = $2 AND status = 'pending'")
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .context("touching a payment")?;
    Ok(())
}

pub async fn touch_refund(tx: &mut Tx, id: Uuid) -> anyhow::Result<()> {
    sqlx::query("UPDATE refunds SET updated_at = $1 WHERE id = $2 AND status = 'pending'")
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .context("touching a refund")?;
    Ok(())
}
