//! Refunds (`POST /v1/orders/{id}/refunds`, manager, Idempotency-Key): returned lines are
//! restocked and their share of the order given back; partial refunds are allowed, never more
//! than was paid. Card money goes back through the processor first, the rest in cash. The order
//! becomes REFUNDED once everything paid has been given back and no refund of it is pending.
//!
//! Three steps: (1) one transaction counts the refund against the order and against each card
//! payment it draws on (conditional updates under the order's lock, so concurrent refunds can
//! exceed neither the order nor any payment) and writes the split as refund parts; (2) each
//! part goes to the processor with a key derived from the refund's, so a retry or the
//! reconciler replays the same calls; (3) one transaction settles the refund, restocks and
//! writes the events.
//!
//! A processor that refuses the only card money of a refund fails it for good: everything step 1
//! counted is undone and every retry with the same key answers the same refusal (422
//! `refund_rejected`), never a success. A refused part after other parts went through (or any
//! refused part of the refund a cancellation makes) is paid back in cash instead: money that has
//! moved cannot be undone. A timeout, 5xx, 409 or 429 leaves the refund pending (502
//! `processor_unavailable`): the retry with the same key, or the reconciler
//! ([`super::reconcile`]), settles it.

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kassa_domain::api::{CreateRefund, LineRequest, Order, PaymentStatus, Refund, StockReason};
use kassa_domain::{Money, OrderEvent, OrderStatus};
use kassa_payments::RefundRequest;
use uuid::Uuid;

use super::{processor, processor_key};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, Json, Manager, Path, Staff};
use crate::idempotency::{self, Begin, Claim};
use crate::orders;
use crate::state::AppState;
use crate::stock;
use crate::store::{
    self,
    payments::{CardRefundable, RefundPart, RefundRow},
    Tx,
};

pub const REASON_CHARS_MAX: usize = 200;
/// Refunds listed per order at most (each gives back at least a cent of what was paid).
const REFUNDS_LISTED_MAX: i64 = 1_000;
/// The processor key prefix of the refund a cancellation makes.
const CANCEL_KEY_PREFIX: &str = "kassa-cancel-";

fn validate(req: &CreateRefund) -> ApiResult<()> {
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > REASON_CHARS_MAX {
        return Err(ApiError::invalid(
            "invalid_reason",
            format!("a reason of 1 to {REASON_CHARS_MAX} characters is required"),
        ));
    }
    match (req.lines.is_empty(), req.amount) {
        (false, None) => stock::validate_lines(&req.lines),
        (true, Some(amount)) if !amount.is_negative() && !amount.is_zero() => Ok(()),
        (true, Some(_)) => Err(ApiError::invalid(
            "invalid_amount",
            "amount must be more than zero",
        )),
        _ => Err(ApiError::invalid(
            "lines_or_amount",
            "give the returned `lines` (refunded at what they cost) or an `amount`, not both",
        )),
    }
}

/// Refunds returned lines or an amount of a PAID or FULFILLED order.
#[utoipa::path(post, path = "/v1/orders/{id}/refunds", tag = "payments", request_body = CreateRefund,
    responses((status = 201, body = Refund), (status = 409), (status = 422), (status = 502)))]
pub async fn create_refund(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(req): Json<CreateRefund>,
) -> ApiResult<Response> {
    let key = idempotency::key_from(&headers)?;
    validate(&req)?;
    let route = format!("POST /v1/orders/{id}/refunds");
    let hash = idempotency::fingerprint(
        &route,
        &serde_json::to_value(&req).map_err(anyhow::Error::from)?,
    );
    let scope = stock::scope(&auth.caller);
    let claim = match idempotency::begin(&state, &scope, &key, &hash).await? {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(claim) => claim,
    };
    let pkey = processor_key("refund", &scope, key.as_ref(), &hash);
    match refund(&state, id, &req, &claim, &pkey, auth.caller.user_id).await {
        Ok(response) => Ok(response),
        Err(err) => Err(claim.settle_error(&state.db, err).await),
    }
}

/// An order's refunds, oldest first, with their state (`pending` while the processor is
/// still to answer, `succeeded`, or `failed` when it refused and nothing was given back).
/// Staff and registers: a till reads what became of a refund it asked for.
#[utoipa::path(get, path = "/v1/orders/{id}/refunds", tag = "payments",
    responses((status = 200, body = Vec<Refund>), (status = 404)))]
pub async fn list_refunds(
    State(state): State<AppState>,
    _auth: Auth<Staff>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<Refund>>> {
    let mut tx = state.db.begin_read().await?;
    let order = store::orders::get(&mut tx, id, "")
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    let rows = store::payments::refunds_of_order(&mut tx, id, REFUNDS_LISTED_MAX).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(Json(rows.iter().map(|r| to_api(r, order.status)).collect()))
}

async fn refund(
    state: &AppState,
    id: Uuid,
    req: &CreateRefund,
    claim: &Claim,
    pkey: &str,
    by: Uuid,
) -> ApiResult<Response> {
    let row = prepare(state, id, req, pkey).await?;
    let (row, order_status) = drive(state, row.id, Some(by)).await?;
    match row.status {
        PaymentStatus::Succeeded => {
            let body =
                serde_json::to_string(&to_api(&row, order_status)).map_err(anyhow::Error::from)?;
            let mut tx = state.db.begin_write().await?;
            claim.finish_in(&mut tx, StatusCode::CREATED, &body).await?;
            tx.commit().await.map_err(anyhow::Error::from)?;
            Ok(idempotency::json_response(StatusCode::CREATED, body))
        }
        // Not stored: every retry finds the failed row again and answers the same refusal.
        PaymentStatus::Failed => Err(ApiError::Invalid {
            code: "refund_rejected",
            message: format!(
                "the card processor refused the refund: {}",
                row.failure.as_deref().unwrap_or("no reason given")
            ),
            details: serde_json::json!({ "refund_id": row.id }),
        }),
        PaymentStatus::Pending => Err(ApiError::BadGateway {
            code: "processor_unavailable",
            message: format!(
                "the card processor did not answer; refund {} stays pending until it does \
                 (retry with the same Idempotency-Key, or read GET /v1/orders/{id}/refunds)",
                row.id
            ),
        }),
    }
}

fn to_api(r: &RefundRow, order_status: OrderStatus) -> Refund {
    Refund {
        id: r.id,
        order_id: r.order_id,
        status: r.status,
        amount: r.amount,
        card: r.card,
        cash: r.cash,
        lines: r.lines.clone(),
        reason: r.reason.clone(),
        order_status,
        created_at: r.created_at,
    }
}

/// Step 1: counts the refund against the order and marks the returned quantities (a retry
/// finds the row its first try wrote).
async fn prepare(
    state: &AppState,
    id: Uuid,
    req: &CreateRefund,
    pkey: &str,
) -> ApiResult<RefundRow> {
    let mut tx = state.db.begin_write().await?;
    if let Some(row) = store::payments::refund_by_key(&mut tx, pkey).await? {
        return Ok(row);
    }
    let order = orders::load_locked(state, &mut tx, id).await?;
    if !matches!(order.status, OrderStatus::Paid | OrderStatus::Fulfilled) {
        return Err(orders::illegal(&order, OrderEvent::Refund));
    }
    let refund_id = req.id.unwrap_or_else(Uuid::now_v7);
    if store::payments::refund_exists(&mut tx, refund_id).await? {
        return Err(ApiError::conflict(
            "refund_exists",
            format!("refund {refund_id} exists"),
            serde_json::json!({ "id": refund_id }),
        ));
    }
    let amount = match req.amount {
        Some(amount) => amount,
        None => {
            let shares = mark_returned(&mut tx, &order, &req.lines).await?;
            after_cash_rounding(&order, &req.lines, shares).map_err(anyhow::Error::from)?
        }
    };
    if amount.currency() != order.paid.currency() {
        return Err(ApiError::invalid(
            "invalid_amount",
            "the refund must be in the order's currency",
        ));
    }
    let opening = Opening {
        id: refund_id,
        amount,
        lines: req.lines.clone(),
        reason: req.reason.trim().to_owned(),
        processor_key: pkey.to_owned(),
    };
    let Some(row) = open(&mut tx, &order, opening).await? else {
        let refundable = order
            .paid
            .checked_sub(&order.refunded)
            .map_err(anyhow::Error::from)?;
        return Err(ApiError::Invalid {
            code: "refund_exceeds_paid",
            message: format!("at most {refundable} can still be refunded"),
            details: serde_json::json!({ "refundable": refundable }),
        });
    };
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(row)
}

/// What returned lines give back on an order whose cash was rounded (paid = total +
/// rounding): their shares of the total, but never more than is left of what was paid, and the
/// return that brings back the last of the goods gives back all that is left.
fn after_cash_rounding(
    order: &Order,
    lines: &[LineRequest],
    shares: Money,
) -> Result<Money, kassa_domain::MoneyError> {
    if order.cash_rounding.is_none() {
        return Ok(shares);
    }
    let left = order.paid.checked_sub(&order.refunded)?;
    let returned: u32 = lines.iter().map(|l| l.qty).sum();
    let before: u32 = order.lines.iter().map(|l| l.returned_qty).sum();
    let sold: u32 = order.lines.iter().map(|l| l.qty).sum();
    if before.saturating_add(returned) >= sold || shares > left {
        return Ok(left);
    }
    Ok(shares)
}

/// A refund about to be written.
struct Opening {
    id: Uuid,
    amount: Money,
    lines: Vec<LineRequest>,
    reason: String,
    processor_key: String,
}

/// Writes a pending refund of a locked order: counts it against the order (`None`, nothing
/// written, when that would give back more than was paid) and splits its card part over the
/// card payments that still hold money, oldest first, each counted against its payment.
async fn open(tx: &mut Tx, order: &Order, o: Opening) -> ApiResult<Option<RefundRow>> {
    let minor = o.amount.to_minor();
    if !store::payments::move_refunded(tx, order.id, minor).await? {
        return Ok(None);
    }
    let cards = store::payments::card_refundable(tx, order.id).await?;
    let split = split_over_cards(minor, &cards);
    let card: i64 = split.iter().map(|(_, take)| take).sum();
    let currency = o.amount.currency();
    let row = RefundRow {
        id: o.id,
        order_id: order.id,
        status: PaymentStatus::Pending,
        amount: o.amount,
        card: Money::from_minor(card, currency),
        cash: Money::from_minor(minor - card, currency),
        lines: o.lines,
        reason: o.reason,
        processor_key: o.processor_key,
        failure: None,
        created_at: chrono::Utc::now(),
    };
    store::payments::insert_refund(tx, &row).await?;
    for (seq, (i, take)) in (0i64..).zip(split) {
        let from = &cards[i];
        if !store::payments::move_payment_refunded(tx, from.payment_id, take).await? {
            return Err(anyhow::anyhow!(
                "payment {} changed under the order lock",
                from.payment_id
            )
            .into());
        }
        let part = RefundPart {
            refund_id: row.id,
            seq,
            payment_id: from.payment_id,
            intent_id: from.intent_id.clone(),
            amount_minor: take,
            processor_ref: None,
        };
        store::payments::insert_part(tx, &part).await?;
    }
    Ok(Some(row))
}

/// Splits `amount_minor` over card payments oldest first, each giving at most what it still
/// holds: `(index into cards, minor units)`. What the cards cannot cover is the cash part.
pub fn split_over_cards(amount_minor: i64, cards: &[CardRefundable]) -> Vec<(usize, i64)> {
    let mut left = amount_minor;
    let mut split = Vec::new();
    for (i, card) in cards.iter().enumerate() {
        if left <= 0 {
            break;
        }
        let take = left.min(card.refundable_minor);
        if take > 0 {
            split.push((i, take));
            left -= take;
        }
    }
    split
}

/// Opens the refund of what a cancelled order had paid (in the cancellation's transaction,
/// the order locked): card parts through the processor, the rest as cash to pay back. `None`
/// when nothing was paid. Drive it with [`drive`] once committed.
pub async fn open_for_cancel(tx: &mut Tx, order: &Order) -> ApiResult<Option<Uuid>> {
    let held = order.paid.to_minor() - order.refunded.to_minor();
    if held <= 0 {
        return Ok(None);
    }
    let opening = Opening {
        id: Uuid::now_v7(),
        amount: Money::from_minor(held, order.paid.currency()),
        lines: Vec::new(),
        reason: "order cancelled: what was paid goes back".into(),
        processor_key: format!("{CANCEL_KEY_PREFIX}{}", order.id),
    };
    let row = open(tx, order, opening)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {} refunded more than it was paid", order.id))?;
    Ok(Some(row.id))
}

/// A line's share of its total for `qty` more returned units after `returned`: cumulative
/// shares rounded half up, so the shares of a whole line add up to its total exactly.
pub fn line_share_minor(total_minor: i64, line_qty: u32, returned: u32, qty: u32) -> i64 {
    let share = |n: u32| {
        let n = i128::from(n);
        let (t, q) = (i128::from(total_minor), i128::from(line_qty).max(1));
        i64::try_from((2 * t * n + q) / (2 * q)).unwrap_or(i64::MAX)
    };
    share(returned + qty) - share(returned)
}

/// Marks the returned quantities (never more than sold) and prices them.
async fn mark_returned(tx: &mut Tx, order: &Order, lines: &[LineRequest]) -> ApiResult<Money> {
    let currency = order.totals.total.currency();
    let mut total = 0i64;
    for want in lines {
        let line = order
            .lines
            .iter()
            .find(|l| l.sku == want.sku && l.qty - l.returned_qty >= want.qty)
            .ok_or_else(|| ApiError::Invalid {
                code: "return_exceeds_sold",
                message: format!("{} was not sold on this order that many times", want.sku),
                details: serde_json::json!({ "sku": want.sku }),
            })?;
        if !store::orders::add_returned(tx, order.id, line.line_no, want.qty).await? {
            return Err(ApiError::conflict(
                "concurrent_update",
                "the order changed while this request ran; read it again",
                serde_json::Value::Null,
            ));
        }
        total += line_share_minor(line.total.to_minor(), line.qty, line.returned_qty, want.qty);
    }
    Ok(Money::from_minor(total, currency))
}

/// Steps 2 and 3 for a pending refund, whoever calls (the request, its retry, a cancellation,
/// the reconciler): sends every part the processor has not answered yet, then settles the
/// refund unless an answer is still unknown. Returns the refund and its order's state as they
/// stand afterwards. Safe to run concurrently: the processor replays keys and every settling
/// update is conditional on the refund still being pending.
pub async fn drive(
    state: &AppState,
    refund_id: Uuid,
    by: Option<Uuid>,
) -> ApiResult<(RefundRow, OrderStatus)> {
    let mut tx = state.db.begin_read().await?;
    let row = store::payments::refund_by_id(&mut tx, refund_id)
        .await?
        .ok_or(ApiError::NotFound("refund"))?;
    let parts = store::payments::parts_of(&mut tx, refund_id).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    if row.status != PaymentStatus::Pending {
        return current(state, refund_id).await;
    }
    let mut refused = Vec::new();
    let unsent: Vec<&RefundPart> = parts.iter().filter(|p| p.processor_ref.is_none()).collect();
    if !unsent.is_empty() {
        let processor = processor(state)?;
        let mut unknown = false;
        for part in unsent {
            let request = RefundRequest {
                intent_id: part.intent_id.clone(),
                amount_minor: part.amount_minor,
                idempotency_key: format!("{}-{}", row.processor_key, part.seq),
            };
            match processor.refund(request).await {
                Ok(done) => {
                    let mut tx = state.db.begin_write().await?;
                    store::payments::set_part_ref(&mut tx, refund_id, part.seq, &done.id).await?;
                    tx.commit().await.map_err(anyhow::Error::from)?;
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, %refund_id, "refund outcome unknown; stays pending");
                    unknown = true;
                }
                Err(e) => refused.push((part.clone(), e.to_string())),
            }
        }
        if unknown {
            let mut tx = state.db.begin_write().await?;
            store::payments::touch_refund(&mut tx, refund_id).await?;
            tx.commit().await.map_err(anyhow::Error::from)?;
            return current(state, refund_id).await;
        }
    }
    let mut tx = state.db.begin_write().await?;
    // The order first, then its refund and payments: the one lock order.
    let order = orders::load_locked(state, &mut tx, row.order_id).await?;
    let parts = store::payments::parts_of(&mut tx, refund_id).await?;
    let went_through = parts.iter().any(|p| p.processor_ref.is_some());
    let cancelling = row.processor_key.starts_with(CANCEL_KEY_PREFIX);
    if !refused.is_empty() && !went_through && !cancelling {
        let why: Vec<&str> = refused.iter().map(|(_, why)| why.as_str()).collect();
        fail(&mut tx, &row, &parts, &why.join("; ")).await?;
    } else {
        let refs: Vec<String> = parts
            .iter()
            .filter_map(|p| p.processor_ref.clone())
            .collect();
        if store::payments::settle_refund(&mut tx, refund_id, PaymentStatus::Succeeded, &refs, None)
            .await?
        {
            for (part, why) in &refused {
                tracing::warn!(%refund_id, seq = part.seq, %why, "card refund part refused; paid back in cash");
                store::payments::part_to_cash(&mut tx, part).await?;
            }
            let row = store::payments::refund_by_id(&mut tx, refund_id)
                .await?
                .ok_or(ApiError::NotFound("refund"))?;
            finalize(&mut tx, &order, &row, &refs, by).await?;
        }
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    current(state, refund_id).await
}

/// The refund and its order's state, read fresh.
async fn current(state: &AppState, refund_id: Uuid) -> ApiResult<(RefundRow, OrderStatus)> {
    let mut tx = state.db.begin_read().await?;
    let row = store::payments::refund_by_id(&mut tx, refund_id)
        .await?
        .ok_or(ApiError::NotFound("refund"))?;
    let order = store::orders::get(&mut tx, row.order_id, "")
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok((row, order.status))
}

/// The processor refused the refund for good and no money moved: undo step 1, once.
async fn fail(tx: &mut Tx, row: &RefundRow, parts: &[RefundPart], why: &str) -> ApiResult<()> {
    if !store::payments::settle_refund(tx, row.id, PaymentStatus::Failed, &[], Some(why)).await? {
        return Ok(());
    }
    let undo = async {
        if !store::payments::move_refunded(tx, row.order_id, -row.amount.to_minor()).await? {
            anyhow::bail!("undoing refund {}: order out of bounds", row.id);
        }
        for part in parts {
            if !store::payments::move_payment_refunded(tx, part.payment_id, -part.amount_minor)
                .await?
            {
                anyhow::bail!("undoing refund {}: payment out of bounds", row.id);
            }
        }
        for line in &row.lines {
            store::orders::unreturn(tx, row.order_id, line.sku.as_ref(), line.qty).await?;
        }
        let payload = serde_json::json!({ "refund_id": row.id, "amount": row.amount, "why": why });
        store::events::record(
            tx,
            "order.refund_failed",
            "order",
            &row.order_id.to_string(),
            &payload,
        )
        .await
    };
    undo.await.context("undoing a refused refund")?;
    Ok(())
}

/// Step 3: restocks what came back, writes the events and, once everything paid has been
/// given back and no refund of the order is pending, moves it to REFUNDED.
async fn finalize(
    tx: &mut Tx,
    order: &Order,
    row: &RefundRow,
    refs: &[String],
    by: Option<Uuid>,
) -> ApiResult<()> {
    // Inside the transaction: a second pool connection here could wait on a pool that the
    // requests queued behind this order's row lock hold (a deadlock until the pool times out).
    let location_id = store::orders::location_id(tx, order.id).await?;
    let order_ref = order.id.to_string();
    let by = by.map(|b| b.to_string());
    for line in &row.lines {
        store::stock::move_on_hand(
            tx,
            &store::stock::Movement {
                sku: line.sku.as_ref(),
                location_id: &location_id,
                delta: i64::from(line.qty),
                reason: StockReason::Return,
                reference: Some(&order_ref),
                note: Some(&row.reason),
                created_by: by.as_deref(),
            },
        )
        .await?;
    }
    let payload = serde_json::json!({
        "refund_id": row.id, "amount": row.amount, "card": row.card, "cash": row.cash,
        "lines": row.lines, "processor_refs": refs,
    });
    store::events::record(tx, "order.refund_issued", "order", &order_ref, &payload).await?;
    let fully = order.refunded == order.paid
        && store::payments::pending_refunds_of_order(tx, order.id).await? == 0;
    if fully && matches!(order.status, OrderStatus::Paid | OrderStatus::Fulfilled) {
        orders::transition(tx, order, OrderEvent::Refund, payload).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::line_share_minor;

    use super::split_over_cards;
    use crate::store::payments::CardRefundable;

    fn cards(left: &[i64]) -> Vec<CardRefundable> {
        left.iter()
            .map(|&l| CardRefundable {
                payment_id: uuid::Uuid::now_v7(),
                intent_id: "pi".into(),
                refundable_minor: l,
            })
            .collect()
    }

    #[test]
    fn a_refund_draws_on_card_payments_oldest_first_each_within_what_it_holds() {
        assert_eq!(
            split_over_cards(700, &cards(&[500, 500])),
            vec![(0, 500), (1, 200)]
        );
        assert_eq!(split_over_cards(300, &cards(&[0, 500])), vec![(1, 300)]);
        // More than the cards hold: the rest is the cash part.
        assert_eq!(
            split_over_cards(1200, &cards(&[500, 500])),
            vec![(0, 500), (1, 500)]
        );
        assert!(split_over_cards(100, &cards(&[])).is_empty());
    }

    #[test]
    fn shares_of_a_line_returned_unit_by_unit_add_up_to_its_total() {
        // 10.00 over 3 units: 3.33, 3.34, 3.33.
        let shares: Vec<i64> = (0..3).map(|r| line_share_minor(1000, 3, r, 1)).collect();
        assert_eq!(shares, vec![333, 334, 333]);
        assert_eq!(shares.iter().sum::<i64>(), 1000);
        assert_eq!(line_share_minor(1000, 3, 1, 2), 667);
    }

    #[test]
    fn any_split_of_a_line_adds_up_to_its_total() {
        for total in [0, 1, 99, 1000, 123_457] {
            for qty in 1..=7u32 {
                for first in 0..=qty {
                    let sum = line_share_minor(total, qty, 0, first)
                        + line_share_minor(total, qty, first, qty - first);
                    assert_eq!(sum, total, "total {total} qty {qty} first {first}");
                }
            }
        }
    }
}
