//! Offline sync: orders a register completed while offline (`POST /v1/sync/orders`), applied
//! exactly once per (register, order id). A batch is written in transactions of up to
//! [`ORDERS_PER_COMMIT`] orders, each order inside a savepoint of its own, so a drain pays one
//! durable commit per group instead of one per order and a rejected order still leaves nothing.
//!
//! The goods have already left the store, so a valid offline sale is never refused for lack of
//! stock: it takes what is available (never what online orders hold reserved) and records the
//! rest as a shortfall (`stock_discrepancies` and a `stock.discrepancy` event) for a manager.
//! Units the register holds on a stock lease are taken from the lease first, so a till selling
//! within its lease causes no shortfall.
//! An accepted order's result is kept with its key and replayed byte for byte on every retry;
//! a rejected order (invalid input, an id already taken) leaves nothing behind, so the register
//! can correct it and send it again.

use std::collections::BTreeMap;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kassa_domain::api::{
    OfflineOrder, OfflinePayment, Shortfall, StockReason, SyncOrderResult, SyncOrdersRequest,
    SyncOrdersResponse, SYNC_BATCH_ORDERS_MAX, SYNC_ORDER_PAYMENTS_MAX, SYNC_TEXT_CHARS_MAX,
};
use kassa_domain::{check_line_qty, Money, OrderEvent, OrderStatus, Totals};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, Json, Staff};
use crate::idempotency;
use crate::orders;
use crate::state::AppState;
use crate::stock;
use crate::store::sync::{ClaimInfo, OfflineKey, PaymentRow};
use crate::store::{self, Tx};
use crate::telemetry::metrics::{
    ORDER_TRANSITIONS, SHORTFALLS, SHORTFALL_UNITS, SYNC_BATCHES, SYNC_ORDERS,
};

/// Tries per order when its transaction hits a unique violation: another register or an online
/// checkout took the same order id at the same moment. The next try sees who won.
const APPLY_TRIES_MAX: usize = 3;

/// Orders per transaction: one durable commit for this many orders, while SQLite's single
/// writer is never held for long (other tills' online checkouts queue behind it).
pub const ORDERS_PER_COMMIT: usize = 25;

/// The batch as received. Each order is parsed on its own, so one malformed order is rejected
/// alone instead of failing the whole batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    orders: Vec<serde_json::Value>,
}

/// Where the orders come from: the caller's register, its location and the signed-in user.
#[derive(Debug)]
struct Till {
    register_id: Uuid,
    location: String,
    user_id: Uuid,
    /// The cashier's discount limit, read before any transaction of the batch.
    discount_limit: u32,
}

/// Applies a batch of offline orders (staff signed in at a register): one result per order, in
/// request order. Accepted orders are PAID; retries replay their first result.
#[utoipa::path(post, path = "/v1/sync/orders", tag = "sync", request_body = SyncOrdersRequest,
    responses((status = 200, body = SyncOrdersResponse), (status = 403), (status = 422)))]
#[tracing::instrument(skip_all)]
pub async fn sync_orders(
    State(state): State<AppState>,
    auth: Auth<Staff>,
    Json(batch): Json<RawBatch>,
) -> ApiResult<Response> {
    let till = till(&state, &auth.caller).await?;
    let ids = batch_ids(&batch)?;
    let register = till.register_id.to_string();
    metrics::counter!(SYNC_BATCHES, "register" => register.clone()).increment(1);
    let mut results = Vec::with_capacity(ids.len());
    let mut orders = ids.into_iter().zip(batch.orders).peekable();
    while orders.peek().is_some() {
        let mut tx = state.db.begin_write().await?;
        let group: Vec<(Uuid, serde_json::Value)> =
            orders.by_ref().take(ORDERS_PER_COMMIT).collect();
        lock_group_stock(&state, &mut tx, &group).await?;
        for (id, raw) in group {
            let result = apply(&state, &mut tx, &till, id, raw).await?;
            tx.count_on_commit(
                SYNC_ORDERS,
                &[("register", &register), ("outcome", result.outcome)],
                1,
            );
            results.push(result.body);
        }
        tx.commit().await.context("committing offline orders")?;
    }
    // Stored results are spliced in as they were saved, so a replay is byte-identical.
    let body = format!("{{\"results\":[{}]}}", results.join(","));
    Ok(idempotency::json_response(StatusCode::OK, body))
}

/// Locks every stock row a commit group will sell from, per location in one sorted pass, before
/// any order of the group takes its units: the group's orders touch SKUs in whatever order they
/// were sold, and a group that locked rows as it went could deadlock with checkouts, payments
/// or another till's group (each of which keeps the SKU order).
async fn lock_group_stock(
    state: &AppState,
    tx: &mut Tx,
    group: &[(Uuid, serde_json::Value)],
) -> ApiResult<()> {
    let mut wanted: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for (_, raw) in group {
        let Some(location) = raw.get("location").and_then(serde_json::Value::as_str) else {
            continue;
        };
        let lines = raw.get("lines").and_then(serde_json::Value::as_array);
        for line in lines.into_iter().flatten() {
            if let Some(sku) = line.get("sku").and_then(serde_json::Value::as_str) {
                wanted.entry(location).or_default().insert(sku);
            }
        }
    }
    let mut by_location = BTreeMap::new();
    for (code, skus) in wanted {
        // An unknown location is the order's own error, reported when it is applied.
        if let Some(l) = store::locations::find_by_code_in(tx, code).await? {
            by_location.insert(l.id.to_string(), skus);
        }
    }
    for (location_id, skus) in by_location {
        let skus: Vec<&str> = skus.into_iter().collect();
        store::stock::lock_rows(&state.db, tx, &location_id, &skus).await?;
    }
    Ok(())
}

fn not_a_register() -> ApiError {
    ApiError::Denied {
        code: "not_a_register",
        message: "offline orders are synced by a register: sign in with the register's credential"
            .into(),
    }
}

async fn till(state: &AppState, caller: &Caller) -> ApiResult<Till> {
    let register_id = caller.register_id.ok_or_else(not_a_register)?;
    let location = store::sync::register_location(&state.db, register_id)
        .await?
        .ok_or_else(not_a_register)?;
    Ok(Till {
        register_id,
        location,
        user_id: caller.user_id,
        discount_limit: crate::approvals::discount_limit_percent(state).await?,
    })
}

/// Checks the batch size and reads every order's id; without ids no per-order answer is possible.
fn batch_ids(batch: &RawBatch) -> ApiResult<Vec<Uuid>> {
    if batch.orders.len() > SYNC_BATCH_ORDERS_MAX {
        return Err(ApiError::Invalid {
            code: "batch_too_large",
            message: format!(
                "a batch carries at most {SYNC_BATCH_ORDERS_MAX} orders; send the rest in the next"
            ),
            details: json!({ "count": batch.orders.len(), "max": SYNC_BATCH_ORDERS_MAX }),
        });
    }
    batch
        .orders
        .iter()
        .enumerate()
        .map(|(index, order)| {
            order
                .get("id")
                .and_then(|id| id.as_str())
                .and_then(|id| id.parse::<Uuid>().ok())
                .filter(|id| !id.is_nil())
                .ok_or_else(|| ApiError::Invalid {
                    code: "invalid_order_id",
                    message: format!("order {index} of the batch has no valid id (a UUID)"),
                    details: json!({ "index": index }),
                })
        })
        .collect()
}

/// One order's result: its JSON, and `accepted` (now or before) or `rejected`.
struct Applied {
    body: String,
    outcome: &'static str,
}

/// One order's result: accepted (now or before) or rejected. Only internal failures fail the
/// batch; orders applied before them stay applied and replay on the retry.
async fn apply(
    state: &AppState,
    tx: &mut Tx,
    till: &Till,
    id: Uuid,
    raw: serde_json::Value,
) -> ApiResult<Applied> {
    let outcome = match serde_json::from_value::<OfflineOrder>(raw) {
        Ok(order) => apply_valid(state, tx, till, &order).await,
        Err(e) => Err(ApiError::Invalid {
            code: "invalid_order",
            message: e.to_string(),
            details: serde_json::Value::Null,
        }),
    };
    match outcome {
        Ok(body) => Ok(Applied {
            body,
            outcome: "accepted",
        }),
        Err(err @ (ApiError::Invalid { .. } | ApiError::Conflict { .. })) => Ok(Applied {
            body: rejected(id, &err)?,
            outcome: "rejected",
        }),
        Err(err) => Err(err),
    }
}

fn rejected(id: Uuid, err: &ApiError) -> ApiResult<String> {
    let (_, body) = err.render();
    let result = SyncOrderResult::Rejected {
        id,
        error: body.error,
    };
    Ok(serde_json::to_string(&result).context("encoding a rejected result")?)
}

/// Applies (or replays) one order inside its own savepoint of `tx`: any failure rolls back
/// exactly what this order wrote.
async fn apply_valid(
    state: &AppState,
    tx: &mut Tx,
    till: &Till,
    order: &OfflineOrder,
) -> ApiResult<String> {
    validate(till, order)?;
    // In the batch's transaction, never a second pool connection (see find_by_code_in).
    let location_id = store::locations::find_by_code_in(tx, &order.location)
        .await?
        .map(|l| l.id.to_string())
        .ok_or_else(|| ApiError::Invalid {
            code: "unknown_location",
            message: format!("no location with code {}", order.location),
            details: json!({ "location": order.location }),
        })?;
    let hash = idempotency::fingerprint(
        "POST /v1/sync/orders",
        &serde_json::to_value(order).context("encoding an offline order")?,
    );
    let mut tries = 1;
    loop {
        tx.savepoint().await?;
        match apply_once(state, tx, till, order, &location_id, &hash).await {
            Ok(body) => {
                tx.release_savepoint().await?;
                return Ok(body);
            }
            Err(err) => {
                tx.rollback_to_savepoint().await?;
                match err {
                    ApiError::Internal(e) if tries < APPLY_TRIES_MAX && is_unique_violation(&e) => {
                        tracing::warn!(order_id = %order.id, error = ?e, "offline order raced; trying again");
                        tries += 1;
                    }
                    err => return Err(err),
                }
            }
        }
    }
}

fn is_unique_violation(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
        .any(store::is_unique_violation)
}

fn too_long(text: &str) -> bool {
    text.trim().is_empty() || text.chars().count() > SYNC_TEXT_CHARS_MAX
}

/// Checks what needs no database: location, lines, payments, receipt number.
fn validate(till: &Till, order: &OfflineOrder) -> ApiResult<()> {
    if order.location != till.location {
        return Err(ApiError::Invalid {
            code: "wrong_location",
            message: format!("this register sells at {}", till.location),
            details: json!({ "location": order.location, "register_location": till.location }),
        });
    }
    if order.lines.is_empty() || order.lines.len() > stock::LINES_MAX {
        return Err(ApiError::invalid(
            "invalid_lines",
            format!("1 to {} lines are required", stock::LINES_MAX),
        ));
    }
    if let Some(line) = order.lines.iter().find(|l| check_line_qty(l.qty).is_err()) {
        return Err(ApiError::Invalid {
            code: "invalid_quantity",
            message: format!("quantity of {} is out of range", line.sku),
            details: json!({ "sku": line.sku }),
        });
    }
    for line in &order.lines {
        orders::check_approver(line.discount_approved_by.as_deref())?;
    }
    if order.payments.len() > SYNC_ORDER_PAYMENTS_MAX {
        return Err(ApiError::invalid(
            "invalid_payments",
            format!("at most {SYNC_ORDER_PAYMENTS_MAX} payments per order"),
        ));
    }
    let bad_reference = order.payments.iter().any(|p| match p {
        OfflinePayment::CardOffline { reference, .. } => too_long(reference),
        OfflinePayment::Cash { .. } => false,
    });
    if too_long(&order.receipt_no) || bad_reference {
        return Err(ApiError::invalid(
            "invalid_text",
            format!("receipt_no and card references are 1 to {SYNC_TEXT_CHARS_MAX} characters"),
        ));
    }
    Ok(())
}

/// One try: claim the key, then apply the order, or replay what the key holds.
async fn apply_once(
    state: &AppState,
    tx: &mut Tx,
    till: &Till,
    order: &OfflineOrder,
    location_id: &str,
    hash: &str,
) -> ApiResult<String> {
    let key = OfflineKey {
        register_id: till.register_id,
        order_id: order.id,
    };
    let info = ClaimInfo {
        request_hash: hash,
        receipt_no: &order.receipt_no,
        completed_at_ms: order.completed_at.timestamp_millis(),
    };
    if !store::sync::claim(tx, key, &info).await? {
        return replay(tx, key, hash).await;
    }
    let body = apply_in(state, tx, till, order, location_id).await?;
    store::sync::finish(tx, key, &body).await?;
    Ok(body)
}

/// The stored result of an order this register already sent, if it sends the same order.
async fn replay(tx: &mut Tx, key: OfflineKey, hash: &str) -> ApiResult<String> {
    let stored = store::sync::stored(tx, key)
        .await?
        .context("an offline order key was claimed but not found")?;
    if stored.request_hash != hash {
        return Err(ApiError::conflict(
            "order_id_reused",
            format!(
                "this register already synced order {} with other contents; that one stands",
                key.order_id
            ),
            json!({ "id": key.order_id }),
        ));
    }
    Ok(stored.result)
}

/// Writes the order and moves it CREATED → RESERVED → PAID, records its payments and takes
/// its stock; returns the accepted result as JSON.
async fn apply_in(
    state: &AppState,
    tx: &mut Tx,
    till: &Till,
    order: &OfflineOrder,
    location_id: &str,
) -> ApiResult<String> {
    let existing = store::orders::get(tx, order.id, state.db.for_update()).await?;
    let (totals, names) = price(tx, order).await?;
    let rounding = order
        .cash_rounding
        .unwrap_or_else(|| Money::zero(totals.total.currency()));
    check_payments(&order.payments, &totals.total, &rounding)?;
    check_rounding(tx, location_id, order, &rounding).await?;
    match existing {
        None => {
            insert_created(tx, till, order, location_id, &totals, &names).await?;
            step(
                state,
                tx,
                order.id,
                OrderEvent::Reserve,
                json!({ "source": "offline" }),
            )
            .await?;
        }
        Some(existing) => {
            if let Some(done) = adopt(state, tx, till, order, &existing, &totals, &names).await? {
                return Ok(done);
            }
        }
    }
    let discounted: Vec<crate::approvals::DiscountLine<'_>> = totals
        .lines
        .iter()
        .zip(&order.lines)
        .map(|(line, sold)| crate::approvals::DiscountLine {
            sku: sold.sku.as_ref(),
            gross_minor: line.gross_before_discount.to_minor(),
            discount_minor: line.discount.to_minor(),
            approved_by: sold.discount_approved_by.as_deref(),
            approval: sold.discount_approval.as_ref(),
        })
        .collect();
    // The sale happened: an approval that does not hold up is flagged, never a refusal.
    crate::approvals::check_discounts(
        tx,
        Some(till.register_id),
        order.id,
        till.discount_limit,
        &discounted,
        crate::approvals::Sale::Offline {
            completed_at_ms: order.completed_at.timestamp_millis(),
        },
    )
    .await?;
    record_payments(tx, order).await?;
    let paid = totals
        .total
        .checked_add(&rounding)
        .map_err(|e| invalid_payment(e.to_string()))?;
    store::orders::add_paid(tx, order.id, paid.to_minor()).await?;
    let methods: Vec<&str> = order.payments.iter().map(OfflinePayment::method).collect();
    let mut paid = json!({ "paid": paid, "methods": methods, "source": "offline" });
    if !rounding.is_zero() {
        store::orders::set_cash_rounding(tx, order.id, rounding.to_minor()).await?;
        paid["cash_rounding"] = json!(rounding);
    }
    step(state, tx, order.id, OrderEvent::Pay, paid).await?;
    let shortfalls = take_stock(state, tx, till, order, location_id).await?;
    let applied = orders::load_locked(state, tx, order.id).await?;
    debug_assert_eq!(applied.status, OrderStatus::Paid);
    let result = SyncOrderResult::Accepted {
        id: order.id,
        order: Box::new(applied),
        shortfalls,
    };
    Ok(serde_json::to_string(&result).context("encoding an accepted result")?)
}

/// An order this till created online that it then completed another way (the payment call was
/// cut, its cashier signed out, the reservation expired before the pay): the sale happened, so
/// it is never lost and never doubled. Already paid (the pay landed, its answer did not): the
/// order as it stands is the result (`Some`), nothing moves twice. Holding no money: it becomes
/// this offline sale (`None`: the caller records the till's payments and takes the stock), its
/// reservation released and its lines the till's; a cancelled one is revived with
/// `order.revived_offline`. Anything else (another register's, the shop's, money held) is
/// `order_exists`.
async fn adopt(
    state: &AppState,
    tx: &mut Tx,
    till: &Till,
    order: &OfflineOrder,
    existing: &kassa_domain::api::Order,
    totals: &Totals,
    names: &[String],
) -> ApiResult<Option<String>> {
    let exists = || {
        ApiError::conflict(
            "order_exists",
            format!(
                "order {} exists (another register or an online order)",
                order.id
            ),
            json!({ "id": order.id }),
        )
    };
    if existing.register_id != Some(till.register_id) {
        return Err(exists());
    }
    if matches!(
        existing.status,
        OrderStatus::Paid | OrderStatus::Fulfilled | OrderStatus::Refunded
    ) {
        let result = SyncOrderResult::Accepted {
            id: order.id,
            order: Box::new(existing.clone()),
            shortfalls: Vec::new(),
        };
        return Ok(Some(
            serde_json::to_string(&result).context("encoding an offline result")?,
        ));
    }
    let payments = store::payments::of_order(tx, order.id).await?;
    let holds_money = !existing.paid.is_zero()
        || payments
            .iter()
            .any(|p| p.status != kassa_domain::api::PaymentStatus::Failed);
    if holds_money {
        return Err(exists());
    }
    if let Some(reservation_id) = existing.reservation_id {
        stock::release(tx, &reservation_id.to_string(), "released").await?;
    }
    let new = store::orders::NewOrder {
        id: order.id,
        owner_id: till.user_id,
        register_id: Some(till.register_id),
        location_id: "",
        source: "offline",
        status: existing.status,
        totals,
        names,
        approvers: &order
            .lines
            .iter()
            .map(|l| l.discount_approved_by.clone())
            .collect::<Vec<_>>(),
        paid_minor: 0,
    };
    store::orders::reprice(tx, &new).await?;
    match existing.status {
        OrderStatus::Created => {
            step(
                state,
                tx,
                order.id,
                OrderEvent::Reserve,
                json!({ "source": "offline" }),
            )
            .await?;
        }
        OrderStatus::Cancelled => {
            if !store::orders::set_status(
                tx,
                order.id,
                OrderStatus::Cancelled,
                OrderStatus::Reserved,
            )
            .await?
            {
                return Err(exists());
            }
            let payload = json!({
                "source": "offline", "register_id": till.register_id,
                "receipt_no": order.receipt_no, "completed_at": order.completed_at,
            });
            store::events::record(
                tx,
                "order.revived_offline",
                "order",
                &order.id.to_string(),
                &payload,
            )
            .await?;
        }
        _ => {}
    }
    Ok(None)
}

/// One state-machine step through [`orders::transition`], which writes its event row.
async fn step(
    state: &AppState,
    tx: &mut Tx,
    id: Uuid,
    event: OrderEvent,
    payload: serde_json::Value,
) -> ApiResult<()> {
    let current = orders::load_locked(state, tx, id).await?;
    orders::transition(tx, &current, event, payload).await?;
    Ok(())
}

/// Totals from the prices paid at the till, with the tax class and name from the catalog (an
/// archived product still counts: the sale happened).
async fn price(tx: &mut Tx, order: &OfflineOrder) -> ApiResult<(Totals, Vec<String>)> {
    let lines: Vec<orders::PriceLine<'_>> = order
        .lines
        .iter()
        .map(|l| orders::PriceLine {
            sku: &l.sku,
            qty: l.qty,
            discount: l.discount,
            unit_price: Some(l.unit_price),
        })
        .collect();
    orders::price_lines(tx, &lines, true).await
}

fn invalid_payment(message: String) -> ApiError {
    ApiError::invalid("invalid_payment", message)
}

/// Every payment is positive (or 0.00 paying a zero total: a free item, a 100 % discount), in
/// the order's currency, cash covers its amount, and together they pay exactly the total plus
/// the cash rounding, which only a final cash payment may carry.
fn check_payments(payments: &[OfflinePayment], total: &Money, rounding: &Money) -> ApiResult<()> {
    if rounding.currency() != total.currency() {
        return Err(ApiError::invalid(
            "invalid_cash_rounding",
            format!("cash_rounding must be in {}", total.currency()),
        ));
    }
    if !rounding.is_zero() && !matches!(payments.last(), Some(OfflinePayment::Cash { .. })) {
        return Err(ApiError::invalid(
            "rounding_not_cash",
            "only the final cash due is rounded: the last payment must be cash",
        ));
    }
    let total = &total
        .checked_add(rounding)
        .map_err(|e| invalid_payment(e.to_string()))?;
    let mut paid = Money::zero(total.currency());
    for payment in payments {
        let amount = payment.amount();
        let zero_allowed = total.is_zero();
        if amount.currency() != total.currency()
            || amount.is_negative()
            || (amount.is_zero() && !zero_allowed)
        {
            return Err(invalid_payment(format!(
                "a payment must be more than zero in {}",
                total.currency()
            )));
        }
        if let OfflinePayment::Cash { tendered, .. } = payment {
            if tendered.currency() != amount.currency() || *tendered < amount {
                return Err(invalid_payment(
                    "cash tendered must be at least the amount it pays".into(),
                ));
            }
        }
        paid = paid
            .checked_add(&amount)
            .map_err(|e| invalid_payment(e.to_string()))?;
    }
    if paid != *total {
        let code = if paid < *total {
            "insufficient_payment"
        } else {
            "overpayment"
        };
        return Err(ApiError::Invalid {
            code,
            message: format!("the payments add up to {paid}, the order's total is {total}"),
            details: json!({ "paid": paid, "total": total }),
        });
    }
    Ok(())
}

/// 422 `invalid_cash_rounding` unless `rounding` is what the location's rule makes of the
/// sale's cash due (the cash of a sale is rounded as one: its cash payments together are the
/// rounded due; `check_payments` made sure the last payment is cash).
async fn check_rounding(
    tx: &mut Tx,
    location_id: &str,
    order: &OfflineOrder,
    rounding: &Money,
) -> ApiResult<()> {
    if rounding.is_zero() {
        return Ok(());
    }
    let cash: Vec<Money> = order
        .payments
        .iter()
        .filter(|p| matches!(p, OfflinePayment::Cash { .. }))
        .map(OfflinePayment::amount)
        .collect();
    let paid_in_cash = Money::checked_sum(&cash, rounding.currency())
        .map_err(|e| invalid_payment(e.to_string()))?;
    let rule = store::locations::cash_rounding_in(tx, location_id).await?;
    let exact = paid_in_cash
        .checked_sub(rounding)
        .map_err(|e| invalid_payment(e.to_string()))?;
    let rounded = rule
        .round(exact)
        .map_err(|e| invalid_payment(e.to_string()))?;
    if rule.allows(exact, *rounding) && rounded.due == paid_in_cash {
        return Ok(());
    }
    Err(ApiError::Invalid {
        code: "invalid_cash_rounding",
        message: format!(
            "{} rounds cash to {} minor units: a cash due of {exact} is paid as {} (rounding {})",
            order.location, rule, rounded.due, rounded.difference
        ),
        details: json!({
            "cash_due": exact, "cash_rounding": rounding, "rounded_due": rounded.due,
            "expected_rounding": rounded.difference, "increment_minor": rule.increment_minor(),
        }),
    })
}

async fn insert_created(
    tx: &mut Tx,
    till: &Till,
    order: &OfflineOrder,
    location_id: &str,
    totals: &Totals,
    names: &[String],
) -> ApiResult<()> {
    let new = store::orders::NewOrder {
        id: order.id,
        owner_id: till.user_id,
        register_id: Some(till.register_id),
        location_id,
        source: "offline",
        status: OrderStatus::Created,
        totals,
        names,
        approvers: &order
            .lines
            .iter()
            .map(|l| l.discount_approved_by.clone())
            .collect::<Vec<_>>(),
        paid_minor: 0,
    };
    store::orders::insert(tx, &new).await?;
    let payload = json!({
        "location_id": location_id, "total": totals.total, "source": "offline",
        "register_id": till.register_id, "receipt_no": order.receipt_no,
        "completed_at": order.completed_at,
    });
    store::events::record(
        tx,
        "order.created",
        "order",
        &order.id.to_string(),
        &payload,
    )
    .await?;
    tx.count_on_commit(
        ORDER_TRANSITIONS,
        &[("to", OrderStatus::Created.as_str())],
        1,
    );
    Ok(())
}

async fn record_payments(tx: &mut Tx, order: &OfflineOrder) -> anyhow::Result<()> {
    for (seq, payment) in order.payments.iter().enumerate() {
        let amount = payment.amount();
        if amount.is_zero() {
            // A zero-total sale's 0.00 tender moves no money: nothing to record.
            continue;
        }
        let (tendered, reference) = match payment {
            OfflinePayment::Cash { tendered, .. } => (Some(tendered.to_minor()), None),
            OfflinePayment::CardOffline { reference, .. } => (None, Some(reference.as_str())),
        };
        let row = PaymentRow {
            order_id: order.id,
            seq: i64::try_from(seq + 1).context("payment number")?,
            method: payment.method(),
            currency: amount.currency().code(),
            amount_minor: amount.to_minor(),
            tendered_minor: tendered,
            change_minor: tendered.map(|t| t - amount.to_minor()),
            reference,
        };
        store::sync::insert_payment(tx, &row).await?;
    }
    Ok(())
}

/// Takes the sold units from stock, SKU by SKU in order (so concurrent transactions lock stock
/// rows in the same order); returns the shortfalls it recorded.
async fn take_stock(
    state: &AppState,
    tx: &mut Tx,
    till: &Till,
    order: &OfflineOrder,
    location_id: &str,
) -> ApiResult<Vec<Shortfall>> {
    let mut sold: BTreeMap<&str, i64> = BTreeMap::new();
    for line in &order.lines {
        *sold.entry(line.sku.as_ref()).or_default() += i64::from(line.qty);
    }
    let mut shortfalls = Vec::new();
    for (sku, qty) in sold {
        let short = sell(state, tx, till, order.id, sku, qty, location_id).await?;
        if short > 0 {
            record_shortfall(tx, till, order.id, sku, short, location_id).await?;
            tx.count_on_commit(SHORTFALLS, &[], 1);
            tx.count_on_commit(SHORTFALL_UNITS, &[], u64::try_from(short).unwrap_or(0));
            shortfalls.push(Shortfall {
                sku: kassa_domain::Sku::parse(sku).context("a validated SKU")?,
                location: order.location.clone(),
                shortfall: short,
            });
        }
    }
    Ok(shortfalls)
}

/// Takes the units from the register's own lease first (no shortfall while within it), then
/// decrements on_hand by at most what is available, then takes from the other tills' leases at
/// the location (reserved units of online orders stay with them), with `sale` ledger rows;
/// returns how many units were missing.
async fn sell(
    state: &AppState,
    tx: &mut Tx,
    till: &Till,
    order_id: Uuid,
    sku: &str,
    qty: i64,
    location_id: &str,
) -> anyhow::Result<i64> {
    let level = store::stock::lock_level(&state.db, tx, sku, location_id).await?;
    let (reference, by) = (order_id.to_string(), till.user_id.to_string());
    let sale = stock::leases::LeasedSale {
        register_id: till.register_id,
        location_id,
        sku,
        order_id: &reference,
        by: &by,
    };
    // Selling leased units moves on_hand and reserved together: available stays as it was.
    let qty = qty - stock::leases::sell_leased(state, tx, &sale, qty).await?;
    let take = qty.min(level.available()).max(0);
    if take > 0 {
        let movement = store::stock::Movement {
            sku,
            location_id,
            delta: -take,
            reason: StockReason::Sale,
            reference: Some(&reference),
            note: None,
            created_by: Some(&by),
        };
        let after = store::stock::move_on_hand(tx, &movement)
            .await?
            .context("available stock shrank under the row lock")?;
        stock::note_level(tx, sku, location_id, level.available(), &after).await?;
    }
    // Past available: the other tills' leases of the same shelf, before any shortfall.
    let rest = qty - take;
    Ok(rest - stock::leases::sell_shared(state, tx, &sale, rest).await?)
}

async fn record_shortfall(
    tx: &mut Tx,
    till: &Till,
    order_id: Uuid,
    sku: &str,
    shortfall: i64,
    location_id: &str,
) -> anyhow::Result<()> {
    let order_id = order_id.to_string();
    store::stock::record_discrepancy(tx, sku, location_id, &order_id, shortfall).await?;
    let payload = json!({
        "sku": sku, "location_id": location_id, "order_id": order_id,
        "register_id": till.register_id, "shortfall": shortfall,
    });
    store::events::record(
        tx,
        "stock.discrepancy",
        "stock",
        &format!("{sku}@{location_id}"),
        &payload,
    )
    .await?;
    Ok(())
}
