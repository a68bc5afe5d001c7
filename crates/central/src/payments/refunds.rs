//! Refunds (`POST /v1/orders/{id}/refunds`, manager, Idempotency-Key): returned lines are
//! restocked and their share of the order given back; partial refunds are allowed, never more
//! than was paid. Card money goes back through the processor first (oldest card payment first),
//! the rest in cash. The order becomes REFUNDED once everything paid has been given back.
//!
//! Three steps: (1) one transaction counts the refund against the order (a conditional update,
//! so concurrent refunds cannot exceed what was paid) and marks the returned quantities;
//! (2) the processor refunds with keys derived from ours (a retry replays them); (3) one
//! transaction settles the refund, restocks, writes the events and saves the response.

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kassa_domain::api::{
    CreateRefund, LineRequest, Order, PaymentMethod, PaymentStatus, Refund, StockReason,
};
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
use crate::store::{self, payments::RefundRow, Tx};

const REASON_CHARS_MAX: usize = 200;
/// Refunds listed per order at most (each gives back at least a cent of what was paid).
const REFUNDS_LISTED_MAX: i64 = 1_000;

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
    let refs = if row.status == PaymentStatus::Pending {
        give_back_card(state, &row).await?
    } else {
        Vec::new()
    };
    let mut tx = state.db.begin_write().await?;
    let order = finalize(state, &mut tx, &row, &refs, by).await?;
    let done = RefundRow {
        status: PaymentStatus::Succeeded,
        ..row
    };
    let body = serde_json::to_string(&to_api(&done, order.status)).map_err(anyhow::Error::from)?;
    claim.finish_in(&mut tx, StatusCode::CREATED, &body).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(idempotency::json_response(StatusCode::CREATED, body))
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
        None => mark_returned(&mut tx, &order, &req.lines).await?,
    };
    if amount.currency() != order.paid.currency() {
        return Err(ApiError::invalid(
            "invalid_amount",
            "the refund must be in the order's currency",
        ));
    }
    if !store::payments::move_refunded(&mut tx, id, amount.to_minor()).await? {
        let refundable = order
            .paid
            .checked_sub(&order.refunded)
            .map_err(anyhow::Error::from)?;
        return Err(ApiError::Invalid {
            code: "refund_exceeds_paid",
            message: format!("at most {refundable} can still be refunded"),
            details: serde_json::json!({ "refundable": refundable }),
        });
    }
    let card = card_refundable(&mut tx, id).await?.min(amount.to_minor());
    let currency = amount.currency();
    let row = RefundRow {
        id: refund_id,
        order_id: id,
        status: PaymentStatus::Pending,
        amount,
        card: Money::from_minor(card, currency),
        cash: Money::from_minor(amount.to_minor() - card, currency),
        lines: req.lines.clone(),
        reason: req.reason.trim().to_owned(),
        processor_key: pkey.to_owned(),
        created_at: chrono::Utc::now(),
    };
    store::payments::insert_refund(&mut tx, &row).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(row)
}

/// What card payments took and earlier refunds have not given back yet.
async fn card_refundable(tx: &mut Tx, order_id: Uuid) -> ApiResult<i64> {
    let paid: i64 = card_payments(tx, order_id)
        .await?
        .iter()
        .map(|(_, m)| m)
        .sum();
    Ok(paid - store::payments::card_refunded_minor(tx, order_id).await?)
}

/// Succeeded card payments of an order, oldest first: (intent id, minor units).
async fn card_payments(tx: &mut Tx, order_id: Uuid) -> ApiResult<Vec<(String, i64)>> {
    Ok(store::payments::of_order(tx, order_id)
        .await?
        .into_iter()
        .filter(|p| p.method == PaymentMethod::Card && p.status == PaymentStatus::Succeeded)
        .filter_map(|p| p.processor_ref.map(|r| (r, p.amount.to_minor())))
        .collect())
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

/// Step 2: gives the card part back through the processor, spread over the order's card
/// payments oldest first. Keys derive from the refund's, so a retry replays each call.
async fn give_back_card(state: &AppState, row: &RefundRow) -> ApiResult<Vec<String>> {
    if row.card.is_zero() {
        return Ok(Vec::new());
    }
    let processor = processor(state)?;
    let mut tx = state.db.begin_read().await?;
    let cards = card_payments(&mut tx, row.order_id).await?;
    let before =
        store::payments::card_refunded_minor(&mut tx, row.order_id).await? - row.card.to_minor();
    tx.commit().await.map_err(anyhow::Error::from)?;
    let (from, to) = (before, before + row.card.to_minor());
    let mut refs = Vec::new();
    let mut start = 0;
    for (i, (intent_id, amount)) in cards.iter().enumerate() {
        let end = start + amount;
        let take = to.min(end) - from.max(start);
        start = end;
        if take <= 0 {
            continue;
        }
        let request = RefundRequest {
            intent_id: intent_id.clone(),
            amount_minor: take,
            idempotency_key: format!("{}-{i}", row.processor_key),
        };
        match processor.refund(request).await {
            Ok(refund) => refs.push(refund.id),
            Err(e) if e.outcome_unknown() => {
                return Err(ApiError::BadGateway {
                    code: "processor_unavailable",
                    message:
                        "the card processor did not answer; retry with the same Idempotency-Key"
                            .into(),
                })
            }
            Err(e) => return Err(fail(state, row, &e.to_string()).await),
        }
    }
    Ok(refs)
}

/// The processor refused the refund for good: undo step 1.
async fn fail(state: &AppState, row: &RefundRow, why: &str) -> ApiError {
    let undo = async {
        let mut tx = state.db.begin_write().await?;
        if store::payments::settle_refund(&mut tx, row.id, PaymentStatus::Failed, &[]).await? {
            store::payments::move_refunded(&mut tx, row.order_id, -row.amount.to_minor()).await?;
            for line in &row.lines {
                store::orders::unreturn(&mut tx, row.order_id, line.sku.as_ref(), line.qty).await?;
            }
        }
        tx.commit().await.context("committing the undone refund")
    };
    match undo.await {
        Ok(()) => ApiError::Invalid {
            code: "refund_rejected",
            message: format!("the card processor refused the refund: {why}"),
            details: serde_json::Value::Null,
        },
        Err(e) => ApiError::Internal(e),
    }
}

/// Step 3: settles the refund, restocks what came back, writes the events and, once
/// everything paid has been given back, moves the order to REFUNDED.
async fn finalize(
    state: &AppState,
    tx: &mut Tx,
    row: &RefundRow,
    refs: &[String],
    by: Uuid,
) -> ApiResult<Order> {
    let order = orders::load_locked(state, tx, row.order_id).await?;
    if !store::payments::settle_refund(tx, row.id, PaymentStatus::Succeeded, refs).await? {
        return Ok(order);
    }
    // Inside the transaction: a second pool connection here could wait on a pool that the
    // requests queued behind this order's row lock hold (a deadlock until the pool times out).
    let location_id = store::orders::location_id(tx, order.id).await?;
    let order_ref = order.id.to_string();
    let by = by.to_string();
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
                created_by: Some(&by),
            },
        )
        .await?;
    }
    let payload = serde_json::json!({
        "refund_id": row.id, "amount": row.amount, "card": row.card, "cash": row.cash,
        "lines": row.lines, "processor_refs": refs,
    });
    store::events::record(tx, "order.refund_issued", "order", &order_ref, &payload).await?;
    let fully = order.refunded == order.paid;
    if fully && matches!(order.status, OrderStatus::Paid | OrderStatus::Fulfilled) {
        orders::transition(tx, &order, OrderEvent::Refund, payload).await?;
    }
    orders::load_locked(state, tx, row.order_id).await
}

#[cfg(test)]
mod tests {
    use super::line_share_minor;

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
