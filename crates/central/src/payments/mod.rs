//! Payments: cash recorded by the register, card through the processor (a Stripe-compatible
//! `PaymentProcessor`), the processor's signed webhooks, and refunds. An order becomes PAID
//! exactly once, when what succeeded covers its total; only processor references are stored.

pub mod reconcile;
pub mod refunds;
pub mod webhook;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kassa_domain::api::{CreatePayment, Order, Payment, PaymentMethod, PaymentStatus};
use kassa_domain::{Money, OrderEvent, OrderStatus, Role};
use kassa_payments::{CaptureMethod, CreateIntent, IntentStatus, PaymentProcessor, ProcessorError};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, Customer, Json, Path};
use crate::idempotency::{self, Begin, Claim};
use crate::orders;
use crate::state::AppState;
use crate::stock;
use crate::store::{self, payments::PaymentRow, Tx};

/// The card processor Central talks to (absent: card payments are unavailable).
#[derive(Clone)]
pub struct Processor(pub Arc<dyn PaymentProcessor>);

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Processor")
    }
}

/// Builds the Stripe-compatible client when `KASSA_PROCESSOR_URL` is set.
pub fn processor_from(config: &crate::Config) -> anyhow::Result<Option<Processor>> {
    let Some(url) = &config.processor_url else {
        return Ok(None);
    };
    let secret = kassa_payments::SecretString::new(config.processor_secret.expose());
    let client = kassa_payments::StripeProcessor::new(url, secret, config.processor_timeout)
        .map_err(|e| anyhow::anyhow!("KASSA_PROCESSOR_URL: {e}"))?;
    Ok(Some(Processor(Arc::new(client))))
}

fn processor(state: &AppState) -> ApiResult<Arc<dyn PaymentProcessor>> {
    state
        .processor
        .as_ref()
        .map(|p| p.0.clone())
        .ok_or_else(|| ApiError::NotConfigured {
            code: "card_payments_unavailable",
            message: "no card processor is configured (KASSA_PROCESSOR_URL)".into(),
        })
}

/// The idempotency key Central sends the processor: derived from the caller's key and request,
/// so a retry of the same request replays at the processor too, and another request never does.
pub fn processor_key(prefix: &str, scope: &str, key: &str, request_hash: &str) -> String {
    let mut h = Sha256::new();
    for part in [scope, key, request_hash] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("kassa-{prefix}-{}", &hex::encode(h.finalize())[..40])
}

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(code, message)
}

/// Checks the request's shape (before any key is claimed: a bad request stores nothing).
fn validate(req: &CreatePayment, caller: &Caller) -> ApiResult<()> {
    // Zero pays a zero-total order (a free item, a 100 % discount); check_outstanding refuses
    // it anywhere else.
    if req.amount.is_negative() {
        return Err(invalid("invalid_amount", "amount must not be negative"));
    }
    match req.method {
        PaymentMethod::Cash => {
            if caller.role == Role::Customer {
                return Err(ApiError::Forbidden);
            }
            let tendered = req
                .tendered
                .ok_or_else(|| invalid("tendered_required", "a cash payment needs `tendered`"))?;
            if tendered.currency() != req.amount.currency() || tendered < req.amount {
                return Err(invalid(
                    "tendered_too_little",
                    "tendered must be in the order's currency and at least the amount",
                ));
            }
            if req.payment_method.is_some() {
                return Err(invalid("unexpected_field", "cash takes no payment_method"));
            }
            if req
                .cash_rounding
                .is_some_and(|r| r.currency() != req.amount.currency())
            {
                return Err(invalid(
                    "invalid_cash_rounding",
                    "cash_rounding must be in the order's currency",
                ));
            }
        }
        PaymentMethod::Card => {
            let pm = req.payment_method.as_deref().unwrap_or("");
            if (pm.is_empty() && !req.amount.is_zero()) || pm.len() > 255 {
                return Err(invalid(
                    "payment_method_required",
                    "a card payment needs the processor's payment_method token (pm_…)",
                ));
            }
            if req.tendered.is_some() {
                return Err(invalid(
                    "unexpected_field",
                    "card payments take no tendered",
                ));
            }
            if req.cash_rounding.is_some_and(|r| !r.is_zero()) {
                return Err(invalid(
                    "rounding_not_cash",
                    "card payments are never rounded: only the final cash due is",
                ));
            }
        }
    }
    Ok(())
}

/// 422 unless `amount` fits what is outstanding on a RESERVED order.
fn check_outstanding(order: &Order, amount: Money) -> ApiResult<()> {
    check_outstanding_rounded(order, amount, Money::zero(amount.currency()))
}

/// [`check_outstanding`] for a payment whose cash due was rounded by `rounding`: it settles
/// `amount − rounding`, which must then be all that is outstanding.
fn check_outstanding_rounded(order: &Order, amount: Money, rounding: Money) -> ApiResult<()> {
    if order.status != OrderStatus::Reserved {
        return Err(orders::illegal(order, OrderEvent::Pay));
    }
    let outstanding = order
        .totals
        .total
        .checked_sub(&order.paid)
        .map_err(anyhow::Error::from)?;
    let covers = amount.checked_sub(&rounding).ok();
    let fits = covers.is_some_and(|covers| {
        covers.currency() == outstanding.currency()
            && covers <= outstanding
            && (!covers.is_zero() || outstanding.is_zero())
            && (rounding.is_zero() || covers == outstanding)
    });
    if !fits {
        return Err(ApiError::Invalid {
            code: "invalid_amount",
            message: format!(
                "amount must be more than zero and at most the {outstanding} outstanding"
            ),
            details: serde_json::json!({ "outstanding": outstanding }),
        });
    }
    Ok(())
}

/// 422 `invalid_cash_rounding` unless `rounding` is what the order's location rounds its
/// outstanding cash due by, and `amount` is that rounded due. Zero passes: exact cash is
/// always accepted.
async fn check_rounding(
    tx: &mut Tx,
    order: &Order,
    amount: Money,
    rounding: Money,
) -> ApiResult<()> {
    if rounding.is_zero() {
        return Ok(());
    }
    let rule = store::locations::find_by_code_in(tx, &order.location)
        .await?
        .map(|l| l.cash_rounding)
        .unwrap_or_default();
    let outstanding = order
        .totals
        .total
        .checked_sub(&order.paid)
        .map_err(anyhow::Error::from)?;
    let rounded = rule.round(outstanding).map_err(anyhow::Error::from)?;
    if rule.allows(outstanding, rounding) && amount == rounded.due {
        return Ok(());
    }
    Err(ApiError::Invalid {
        code: "invalid_cash_rounding",
        message: format!(
            "{} rounds cash to {} minor units: the {outstanding} due is paid as {} (rounding {})",
            order.location, rule, rounded.due, rounded.difference
        ),
        details: serde_json::json!({
            "outstanding": outstanding, "cash_rounding": rounding,
            "rounded_due": rounded.due, "expected_rounding": rounded.difference,
            "increment_minor": rule.increment_minor(),
        }),
    })
}

pub fn to_api(p: &PaymentRow, order_status: OrderStatus) -> Payment {
    Payment {
        id: p.id,
        order_id: p.order_id,
        method: p.method,
        status: p.status,
        amount: p.amount,
        tendered: p.tendered,
        change: p.change,
        processor_ref: p.processor_ref.clone(),
        failure_code: p.failure_code.clone(),
        order_status,
        created_at: p.created_at,
    }
}

/// Pays an order (Idempotency-Key required). Cash (staff): 201, the order is PAID once fully
/// paid. Card: 201 when the processor approves, 202 while its outcome is pending (the webhook
/// settles it), 402 `card_declined`, 502 when the processor's answer is unknown (retry with the
/// same key).
#[utoipa::path(post, path = "/v1/orders/{id}/payments", tag = "payments", request_body = CreatePayment,
    responses((status = 201, body = Payment), (status = 202, body = Payment), (status = 402),
        (status = 409), (status = 422), (status = 502)))]
pub async fn create_payment(
    State(state): State<AppState>,
    auth: Auth<Customer>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(req): Json<CreatePayment>,
) -> ApiResult<Response> {
    let key = idempotency::key_from(&headers)?;
    validate(&req, &auth.caller)?;
    orders::check_access(&state, &auth.caller, id).await?;
    let route = format!("POST /v1/orders/{id}/payments");
    let body = serde_json::to_value(&req).map_err(anyhow::Error::from)?;
    let hash = idempotency::fingerprint(&route, &body);
    let scope = stock::scope(&auth.caller);
    let claim = match idempotency::begin(&state, &scope, &key, &hash).await? {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(claim) => claim,
    };
    let result = match req.method {
        _ if req.amount.is_zero() => pay_nothing(&state, id, &req, &claim).await,
        PaymentMethod::Cash => pay_cash(&state, id, &req, &claim).await,
        PaymentMethod::Card => {
            let pkey = processor_key("pay", &scope, key.as_ref(), &hash);
            pay_card(&state, id, &req, &claim, &pkey).await
        }
    };
    match result {
        Ok(response) => Ok(response),
        Err(err) => Err(claim.settle_error(&state.db, err).await),
    }
}

/// The cash rounding a payment claims (zero when none; a card's was refused by `validate`).
fn rounding_of(req: &CreatePayment) -> Money {
    req.cash_rounding
        .filter(|_| req.method == PaymentMethod::Cash)
        .unwrap_or_else(|| Money::zero(req.amount.currency()))
}

/// Commits `tx` with the response saved under the claim, and answers with it.
async fn finish(
    mut tx: Tx,
    claim: &Claim,
    status: StatusCode,
    payment: &Payment,
) -> ApiResult<Response> {
    let body = serde_json::to_string(payment).map_err(anyhow::Error::from)?;
    claim.finish_in(&mut tx, status, &body).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(idempotency::json_response(status, body))
}

/// A zero-total order is paid by a payment of 0.00 in any method: no money moves, so no
/// payment row is written (and no processor is called); the order becomes PAID.
async fn pay_nothing(
    state: &AppState,
    id: Uuid,
    req: &CreatePayment,
    claim: &Claim,
) -> ApiResult<Response> {
    let mut tx = state.db.begin_write().await?;
    let order = orders::load_locked(state, &mut tx, id).await?;
    let rounding = rounding_of(req);
    check_outstanding_rounded(&order, req.amount, rounding)?;
    check_rounding(&mut tx, &order, req.amount, rounding).await?;
    let order = orders::record_payment_rounded(state, &mut tx, id, req.amount, rounding).await?;
    let cash = req.method == PaymentMethod::Cash;
    let payment = Payment {
        id: Uuid::now_v7(),
        order_id: id,
        method: req.method,
        status: PaymentStatus::Succeeded,
        amount: req.amount,
        tendered: req.tendered.filter(|_| cash),
        change: req
            .tendered
            .filter(|_| cash)
            .and_then(|t| t.checked_sub(&req.amount).ok()),
        processor_ref: None,
        failure_code: None,
        order_status: order.status,
        created_at: chrono::Utc::now(),
    };
    finish(tx, claim, StatusCode::CREATED, &payment).await
}

async fn pay_cash(
    state: &AppState,
    id: Uuid,
    req: &CreatePayment,
    claim: &Claim,
) -> ApiResult<Response> {
    let tendered = req.tendered.unwrap_or(req.amount);
    let change = tendered
        .checked_sub(&req.amount)
        .map_err(anyhow::Error::from)?;
    let mut tx = state.db.begin_write().await?;
    let order = orders::load_locked(state, &mut tx, id).await?;
    let rounding = rounding_of(req);
    check_outstanding_rounded(&order, req.amount, rounding)?;
    check_rounding(&mut tx, &order, req.amount, rounding).await?;
    let order = orders::record_payment_rounded(state, &mut tx, id, req.amount, rounding).await?;
    let row = store::payments::insert(
        &mut tx,
        &PaymentRow {
            id: Uuid::now_v7(),
            order_id: id,
            method: PaymentMethod::Cash,
            status: PaymentStatus::Succeeded,
            amount: req.amount,
            tendered: Some(tendered),
            change: Some(change),
            processor_key: None,
            processor_ref: None,
            failure_code: None,
            created_at: chrono::Utc::now(),
        },
    )
    .await?;
    finish(tx, claim, StatusCode::CREATED, &to_api(&row, order.status)).await
}

/// Writes the pending card payment (committed before the processor is called, so a webhook
/// that races our own call always finds it). A retry finds the row its first try wrote.
async fn pending_card(
    state: &AppState,
    id: Uuid,
    req: &CreatePayment,
    pkey: &str,
) -> ApiResult<PaymentRow> {
    let mut tx = state.db.begin_write().await?;
    if let Some(row) = store::payments::by_processor_key(&mut tx, pkey).await? {
        return Ok(row);
    }
    let order = orders::load_locked(state, &mut tx, id).await?;
    check_outstanding(&order, req.amount)?;
    let row = store::payments::insert(
        &mut tx,
        &PaymentRow {
            id: Uuid::now_v7(),
            order_id: id,
            method: PaymentMethod::Card,
            status: PaymentStatus::Pending,
            amount: req.amount,
            tendered: None,
            change: None,
            processor_key: Some(pkey.to_owned()),
            processor_ref: None,
            failure_code: None,
            created_at: chrono::Utc::now(),
        },
    )
    .await?;
    if let Some(pm) = &req.payment_method {
        store::payments::set_payment_method(&mut tx, row.id, pm).await?;
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(row)
}

async fn pay_card(
    state: &AppState,
    id: Uuid,
    req: &CreatePayment,
    claim: &Claim,
    pkey: &str,
) -> ApiResult<Response> {
    let processor = processor(state)?;
    let row = pending_card(state, id, req, pkey).await?;
    let outcome = processor
        .create_intent(CreateIntent {
            amount_minor: req.amount.to_minor(),
            currency: req.amount.currency().code().to_lowercase(),
            order_id: id.to_string(),
            payment_id: row.id.to_string(),
            payment_method: req.payment_method.clone().unwrap_or_default(),
            idempotency_key: pkey.to_owned(),
            capture_method: CaptureMethod::Automatic,
            confirm: true,
        })
        .await;
    let mut tx = state.db.begin_write().await?;
    match outcome {
        Ok(intent) if intent.status == IntentStatus::Succeeded => {
            let orphan = apply_success(state, &mut tx, row.id, &intent.id).await?;
            let (payment, status) = current(state, &mut tx, row.id).await?;
            let response = finish(tx, claim, StatusCode::CREATED, &to_api(&payment, status)).await;
            if let Some(orphan) = orphan {
                refund_orphan(state, orphan).await;
            }
            response
        }
        Ok(intent) => {
            store::payments::set_ref(&mut tx, row.id, &intent.id).await?;
            let (payment, status) = current(state, &mut tx, row.id).await?;
            let code = if payment.status == PaymentStatus::Pending {
                StatusCode::ACCEPTED
            } else {
                StatusCode::CREATED
            };
            finish(tx, claim, code, &to_api(&payment, status)).await
        }
        Err(err) => Err(card_failure(tx, row.id, err).await),
    }
}

/// Maps a processor error: declines and refusals settle the payment as failed (the order is
/// left RESERVED); an unknown outcome, and a 409 or 429 (the processor busy with the same key,
/// or rate limiting), leave it pending for the retry, the webhook or the reconciler.
async fn card_failure(mut tx: Tx, payment_id: Uuid, err: ProcessorError) -> ApiError {
    if err.is_retryable() {
        tracing::warn!(error = %err, %payment_id, "card payment outcome unknown; stays pending");
        let touched = async {
            store::payments::touch_payment(&mut tx, payment_id).await?;
            tx.commit().await.map_err(anyhow::Error::from)
        };
        if let Err(e) = touched.await {
            return ApiError::Internal(e);
        }
        return ApiError::BadGateway {
            code: "processor_unavailable",
            message: "the card processor did not answer; retry with the same Idempotency-Key"
                .into(),
        };
    }
    let (code, api_error) = match err {
        ProcessorError::Declined { code, message } => {
            let details = serde_json::json!({ "decline_code": code });
            let e = ApiError::PaymentRequired {
                code: "card_declined",
                message: format!("the card was declined: {message}"),
                details,
            };
            (code, e)
        }
        ProcessorError::Rejected { code, message, .. } => {
            let e = ApiError::Invalid {
                code: "payment_rejected",
                message: format!("the processor refused the payment: {message}"),
                details: serde_json::json!({ "processor_code": code }),
            };
            (code, e)
        }
        unknown => {
            // is_retryable() covers every other variant; kept for exhaustiveness.
            return ApiError::Internal(anyhow::anyhow!("unexpected processor error: {unknown}"));
        }
    };
    let settled = async {
        store::payments::settle(
            &mut tx,
            payment_id,
            PaymentStatus::Failed,
            None,
            Some(&code),
        )
        .await?;
        tx.commit().await.map_err(anyhow::Error::from)
    }
    .await;
    match settled {
        Ok(()) => api_error,
        Err(e) => ApiError::Internal(e),
    }
}

/// The payment and its order's state, as they stand in `tx`.
async fn current(
    state: &AppState,
    tx: &mut Tx,
    payment_id: Uuid,
) -> ApiResult<(PaymentRow, OrderStatus)> {
    let payment = store::payments::by_id(tx, payment_id)
        .await?
        .ok_or(ApiError::NotFound("payment"))?;
    let order = orders::load_locked(state, tx, payment.order_id).await?;
    Ok((payment, order.status))
}

/// A card success that came for an order which can no longer take it: to be refunded.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub payment_id: Uuid,
    pub intent_id: String,
    pub amount: Money,
}

/// Settles a card payment as succeeded and, for the one caller that settles it, counts it on
/// the order (PAID when covered). Whether the processor's answer, its webhook or the
/// reconciler comes first, the order is paid once. A payment Kassa had recorded as failed that
/// the processor says succeeded after all is revived the same way, never dropped. A success
/// for an order that can no longer take it (cancelled, or paid by another payment) is kept,
/// marked as an orphan (none of it can be refunded again), raised as `payment.orphaned`, and
/// returned so the caller refunds it once the transaction is committed ([`refund_orphan`]).
pub async fn apply_success(
    state: &AppState,
    tx: &mut Tx,
    payment_id: Uuid,
    intent_id: &str,
) -> ApiResult<Option<Orphan>> {
    let Some(payment) = store::payments::by_id(tx, payment_id).await? else {
        return Ok(None);
    };
    // The order first, then its payments: the one lock order.
    let order = orders::load_locked(state, tx, payment.order_id).await?;
    let settled = store::payments::settle(
        tx,
        payment_id,
        PaymentStatus::Succeeded,
        Some(intent_id),
        None,
    )
    .await?;
    if !settled {
        if !store::payments::revive(tx, payment_id, intent_id).await? {
            return Ok(None);
        }
        tracing::warn!(%payment_id, %intent_id, "a payment recorded as failed succeeded after all");
        let payload = serde_json::json!({ "payment_id": payment_id, "intent_id": intent_id });
        store::events::record(
            tx,
            "payment.revived",
            "order",
            &order.id.to_string(),
            &payload,
        )
        .await?;
    }
    if check_outstanding(&order, payment.amount).is_ok() {
        orders::record_payment(state, tx, order.id, payment.amount).await?;
        return Ok(None);
    }
    tracing::warn!(order_id = %order.id, %intent_id, "card payment succeeded for an order that cannot take it");
    store::payments::mark_orphan(tx, payment_id).await?;
    let payload = serde_json::json!({
        "payment_id": payment_id, "intent_id": intent_id,
        "amount": payment.amount, "order_status": order.status,
    });
    store::events::record(
        tx,
        "payment.orphaned",
        "order",
        &order.id.to_string(),
        &payload,
    )
    .await?;
    Ok(Some(Orphan {
        payment_id,
        intent_id: intent_id.to_owned(),
        amount: payment.amount,
    }))
}

/// Gives an orphaned card payment back through the processor (key derived from the payment,
/// so however often this runs the customer is refunded once) and records `payment.refunded`.
/// A failure is logged and the orphan stays pending: the reconciler tries again. `true` once
/// the processor has given it back.
pub async fn refund_orphan(state: &AppState, orphan: Orphan) -> bool {
    let result = async {
        let processor = processor(state)?;
        let refund = processor
            .refund(kassa_payments::RefundRequest {
                intent_id: orphan.intent_id.clone(),
                amount_minor: orphan.amount.to_minor(),
                idempotency_key: format!("kassa-orphan-{}", orphan.payment_id),
            })
            .await
            .map_err(|e| anyhow::anyhow!("refunding orphaned payment: {e}"))?;
        let mut tx = state.db.begin_write().await?;
        if store::payments::orphan_refunded(&mut tx, orphan.payment_id).await? {
            let payload = serde_json::json!({
                "payment_id": orphan.payment_id, "intent_id": orphan.intent_id,
                "refund_id": refund.id, "amount": orphan.amount,
            });
            store::events::record(
                &mut tx,
                "payment.refunded",
                "payment",
                &orphan.payment_id.to_string(),
                &payload,
            )
            .await?;
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, payment_id = %orphan.payment_id, "orphaned card payment not refunded yet");
            false
        }
    }
}

/// The payments of an order (its owner, or staff).
#[utoipa::path(get, path = "/v1/orders/{id}/payments", tag = "payments",
    responses((status = 200, body = Vec<Payment>), (status = 404)))]
pub async fn list_payments(
    State(state): State<AppState>,
    auth: Auth<Customer>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<Payment>>> {
    orders::check_access(&state, &auth.caller, id).await?;
    let mut tx = state.db.begin_read().await?;
    let order = store::orders::get(&mut tx, id, "")
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    let rows = store::payments::of_order(&mut tx, id).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(Json(rows.iter().map(|p| to_api(p, order.status)).collect()))
}
