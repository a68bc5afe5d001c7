//! Orders: idempotent creation that reserves stock, the state machine
//! (CREATED → RESERVED → PAID → FULFILLED; CANCELLED; REFUNDED), and reads.
//! Every transition writes its event row in the transaction that makes it. Orders are created
//! in group commits ([`group_commit`]).

pub mod group_commit;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use kassa_domain::api::{CreateOrder, LineRequest, Order, OrderPage};
use kassa_domain::{
    compute_totals, CartLine, Money, OrderEvent, OrderStatus, PriceMode, Role, TaxTable,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, Customer, Json, Path, Query, ReadAfter, Staff};
use crate::idempotency;
use crate::state::AppState;
use crate::stock;
use crate::store::events::NewEvent;
use crate::store::{self, now_ms, Tx};
use crate::telemetry::metrics::ORDER_TRANSITIONS;

const PAGE_MAX: i64 = 200;

/// 409 with the order's current state.
pub fn illegal(order: &Order, event: OrderEvent) -> ApiError {
    illegal_from(order.status, event)
}

fn illegal_from(status: OrderStatus, event: OrderEvent) -> ApiError {
    let err = status
        .apply(event)
        .err()
        .map_or_else(|| "illegal transition".to_owned(), |e| e.to_string());
    ApiError::conflict(
        "illegal_transition",
        err,
        serde_json::json!({ "status": status }),
    )
}

/// Applies `event` to a loaded order: checks the state machine, makes the conditional update and
/// writes the event row.
pub async fn transition(
    tx: &mut Tx,
    order: &Order,
    event: OrderEvent,
    payload: serde_json::Value,
) -> ApiResult<OrderStatus> {
    transition_from(tx, order.id, order.status, event, payload).await
}

/// [`transition`] for an order known to be in `status` (one this transaction wrote), unread.
pub async fn transition_from(
    tx: &mut Tx,
    id: Uuid,
    status: OrderStatus,
    event: OrderEvent,
    payload: serde_json::Value,
) -> ApiResult<OrderStatus> {
    let next = status
        .apply(event)
        .map_err(|_| illegal_from(status, event))?;
    if !store::orders::set_status(tx, id, status, next).await? {
        return Err(ApiError::conflict(
            "concurrent_update",
            "the order changed while this request ran; read it again",
            serde_json::json!({ "status": status }),
        ));
    }
    store::events::record(tx, next.event_type(), "order", &id.to_string(), &payload).await?;
    tx.count_on_commit(ORDER_TRANSITIONS, &[("to", next.as_str())], 1);
    Ok(next)
}

/// Loads an order with its row locked (PostgreSQL), or 404.
pub async fn load_locked(state: &AppState, tx: &mut Tx, id: Uuid) -> ApiResult<Order> {
    store::orders::get(tx, id, state.db.for_update())
        .await?
        .ok_or(ApiError::NotFound("order"))
}

/// Records a payment of `amount`; when the order is fully paid it becomes PAID and its
/// reservation turns into a sale (on_hand drops with a `reservation_conversion` ledger row).
pub async fn record_payment(
    state: &AppState,
    tx: &mut Tx,
    id: Uuid,
    amount: Money,
) -> ApiResult<Order> {
    let rounding = Money::zero(amount.currency());
    record_payment_rounded(state, tx, id, amount, rounding).await
}

/// [`record_payment`] of a final cash payment whose due was rounded by `rounding` (rounded −
/// exact, checked against the location's rule by the caller): `amount − rounding` must be
/// exactly what is outstanding, and the order records the rounding, so paid = total + rounding.
/// A zero `rounding` is a plain payment.
pub async fn record_payment_rounded(
    state: &AppState,
    tx: &mut Tx,
    id: Uuid,
    amount: Money,
    rounding: Money,
) -> ApiResult<Order> {
    let order = load_locked(state, tx, id).await?;
    if order.status != OrderStatus::Reserved {
        return Err(illegal(&order, OrderEvent::Pay));
    }
    let outstanding = order
        .totals
        .total
        .checked_sub(&order.paid)
        .map_err(anyhow::Error::from)?;
    // What of the total this payment settles: the rounding is money no one owes.
    let covers = amount.checked_sub(&rounding).ok();
    let fits = covers.is_some_and(|covers| {
        covers.currency() == outstanding.currency()
            && !amount.is_negative()
            && !covers.is_negative()
            && (!covers.is_zero() || outstanding.is_zero())
            && covers <= outstanding
            && (rounding.is_zero() || covers == outstanding)
    });
    let Some(covers) = covers.filter(|_| fits) else {
        return Err(ApiError::Invalid {
            code: "invalid_amount",
            message: format!(
                "amount must be more than zero and at most the {outstanding} outstanding"
            ),
            details: serde_json::json!({ "outstanding": outstanding }),
        });
    };
    if !amount.is_zero() {
        store::orders::add_paid(tx, id, amount.to_minor()).await?;
    }
    if !rounding.is_zero() {
        store::orders::set_cash_rounding(tx, id, rounding.to_minor()).await?;
    }
    if covers == outstanding {
        if let Some(reservation_id) = order.reservation_id {
            let reservation_id = reservation_id.to_string();
            if !store::stock::end_reservation(tx, &reservation_id, "converted").await? {
                return Err(illegal(&order, OrderEvent::Pay));
            }
            let r = store::stock::reservation(tx, &reservation_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("reservation vanished"))?;
            for (sku, qty) in &r.lines {
                let level =
                    store::stock::convert(tx, sku, &r.location_id, *qty, &id.to_string()).await?;
                stock::note_level(tx, sku, &r.location_id, level.available(), &level).await?;
            }
        }
        transition(
            tx,
            &order,
            OrderEvent::Pay,
            paid_payload(&order.totals.total, &rounding)?,
        )
        .await?;
    }
    load_locked(state, tx, id).await
}

/// The `order.paid` event's payload: what was paid, and the cash rounding when there was one.
fn paid_payload(total: &Money, rounding: &Money) -> ApiResult<serde_json::Value> {
    if rounding.is_zero() {
        return Ok(serde_json::json!({ "paid": total }));
    }
    let paid = total.checked_add(rounding).map_err(anyhow::Error::from)?;
    Ok(serde_json::json!({ "paid": paid, "cash_rounding": rounding }))
}

/// Cancels a CREATED or RESERVED order in `tx` (locked by the caller): refuses while a card
/// payment is in flight (409 `payment_in_flight`: the cancel waits for its outcome), releases
/// its reservation (`released` or `expired`), and opens the refund of whatever was paid, so no
/// cancelled order holds money. Returns that refund, to drive once `tx` is committed.
pub async fn cancel_in(
    tx: &mut Tx,
    order: &Order,
    released_as: &str,
    payload: serde_json::Value,
) -> ApiResult<Option<Uuid>> {
    if !matches!(order.status, OrderStatus::Created | OrderStatus::Reserved) {
        return Err(illegal(order, OrderEvent::Cancel));
    }
    if store::payments::has_pending_payment(tx, order.id).await? {
        return Err(ApiError::conflict(
            "payment_in_flight",
            "a card payment of this order is waiting for the processor; cancel once it settles",
            serde_json::json!({ "order_id": order.id }),
        ));
    }
    if let Some(reservation_id) = order.reservation_id {
        stock::release(tx, &reservation_id.to_string(), released_as).await?;
    }
    transition(tx, order, OrderEvent::Cancel, payload).await?;
    crate::payments::refunds::open_for_cancel(tx, order).await
}

/// Gives back what a cancelled order had paid (after the cancellation committed). A refund the
/// processor leaves unanswered stays pending for the reconciler.
pub async fn refund_cancelled(state: &AppState, refund: Option<Uuid>, by: Option<Uuid>) {
    let Some(refund_id) = refund else { return };
    if let Err(e) = crate::payments::refunds::drive(state, refund_id, by).await {
        tracing::warn!(error = ?e, %refund_id, "refund of a cancelled order left pending");
    }
}

/// May `caller` see this order? Staff see all; customers their own.
pub async fn check_access(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<()> {
    if matches!(caller.role, Role::Admin | Role::Manager | Role::Cashier) {
        return Ok(());
    }
    let mut conn = state
        .db
        .pool()
        .acquire()
        .await
        .map_err(anyhow::Error::from)?;
    match store::orders::owner(&mut conn, id).await? {
        Some(owner) if owner == caller.user_id => Ok(()),
        _ => Err(ApiError::NotFound("order")),
    }
}

fn validate_order(req: &CreateOrder, caller: &Caller) -> ApiResult<()> {
    let lines: Vec<LineRequest> = req
        .lines
        .iter()
        .map(|l| LineRequest {
            sku: l.sku.clone(),
            qty: l.qty,
        })
        .collect();
    stock::validate_lines(&lines)?;
    if req.lines.iter().any(|l| l.discount.is_some()) && caller.role == Role::Customer {
        return Err(ApiError::invalid(
            "discount_not_allowed",
            "only store staff can give line discounts",
        ));
    }
    for line in &req.lines {
        check_approver(line.discount_approved_by.as_deref())?;
    }
    Ok(())
}

/// A line's `discount_approved_by` is a username (the register recorded who approved).
pub fn check_approver(approver: Option<&str>) -> ApiResult<()> {
    let Some(name) = approver else {
        return Ok(());
    };
    kassa_domain::Username::parse(name).map(drop).map_err(|e| {
        ApiError::invalid(
            "invalid_approver",
            format!("discount_approved_by must be a username: {e}"),
        )
    })
}

/// One line to price.
#[derive(Debug)]
pub struct PriceLine<'a> {
    pub sku: &'a kassa_domain::Sku,
    pub qty: u32,
    pub discount: Option<Money>,
    /// What a till charged (offline sales); `None` takes the catalog's price.
    pub unit_price: Option<Money>,
}

/// Prices lines (names and tax classes from the catalog) and computes the receipt with the
/// shared domain maths. Archived products count only when `archived_ok` (a sale that already
/// happened at a till); otherwise they are unknown SKUs.
pub async fn price_lines(
    tx: &mut Tx,
    lines: &[PriceLine<'_>],
    archived_ok: bool,
) -> ApiResult<(kassa_domain::Totals, Vec<String>)> {
    price_lines_with(tx, lines, archived_ok, &mut Prices::default()).await
}

/// Products' prices read in one transaction, by SKU (`None`: no such product): orders priced
/// in one batch read each SKU once.
pub type Prices = std::collections::HashMap<String, Option<store::catalog::PriceRow>>;

/// [`price_lines`], reading each SKU at most once per `prices`.
pub async fn price_lines_with(
    tx: &mut Tx,
    lines: &[PriceLine<'_>],
    archived_ok: bool,
    prices: &mut Prices,
) -> ApiResult<(kassa_domain::Totals, Vec<String>)> {
    let mut cart = Vec::with_capacity(lines.len());
    for line in lines {
        let sku = line.sku.as_ref();
        let known = match prices.get(sku) {
            Some(known) => known.clone(),
            None => {
                let read = store::catalog::price_by_sku(tx, sku).await?;
                prices.insert(sku.to_owned(), read.clone());
                read
            }
        };
        let product = known
            .filter(|p| archived_ok || !p.archived)
            .ok_or_else(|| ApiError::Invalid {
                code: "unknown_sku",
                message: format!("no product with SKU {}", line.sku),
                details: serde_json::json!({ "sku": line.sku }),
            })?;
        let unit_price = line.unit_price.unwrap_or(product.price);
        cart.push(CartLine {
            sku: line.sku.clone(),
            name: product.name,
            unit_price,
            qty: line.qty,
            tax_class: product.tax_class,
            discount: line
                .discount
                .unwrap_or_else(|| Money::zero(unit_price.currency())),
        });
    }
    let currency = cart
        .first()
        .map(|l| l.unit_price.currency())
        .ok_or_else(|| ApiError::invalid("invalid_lines", "an order needs at least one line"))?;
    let totals = compute_totals(
        &cart,
        PriceMode::TaxInclusive,
        &TaxTable::default(),
        currency,
    )
    .map_err(|e| ApiError::invalid("invalid_order", e.to_string()))?;
    Ok((totals, cart.into_iter().map(|l| l.name).collect()))
}

/// Prices an order's lines at the catalog's prices.
async fn price(
    tx: &mut Tx,
    req: &CreateOrder,
    prices: &mut Prices,
) -> ApiResult<(kassa_domain::Totals, Vec<String>)> {
    let lines: Vec<PriceLine<'_>> = req
        .lines
        .iter()
        .map(|l| PriceLine {
            sku: &l.sku,
            qty: l.qty,
            discount: l.discount,
            unit_price: None,
        })
        .collect();
    price_lines_with(tx, &lines, false, prices).await
}

/// Creates an order and reserves its stock in one transaction (Idempotency-Key required):
/// 201 RESERVED, or 409 `insufficient_stock` naming the short lines (with Redis, a sold-out
/// answer comes from the hot-SKU gate, `stock::hot_gate`; Redis down, 503 `overloaded` when too
/// many orders wait for one SKU).
#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = CreateOrder,
    responses((status = 201, body = Order), (status = 409), (status = 422), (status = 503)))]
pub async fn create_order(
    State(state): State<AppState>,
    auth: Auth<Customer>,
    headers: HeaderMap,
    Json(req): Json<CreateOrder>,
) -> ApiResult<Response> {
    let key = idempotency::key_from(&headers)?;
    validate_order(&req, &auth.caller)?;
    // The hot-SKU gate (with Redis): a sold-out answer from Redis, before any database work.
    // Without Redis the location is looked up in the order's batch.
    let location_id = if state.shared.is_configured() {
        Some(stock::hot_gate::location_id(&state, &req.location).await?)
    } else {
        None
    };
    let scope = stock::scope(&auth.caller);
    let lines = order_lines(&req);
    let gate_location = location_id.as_deref().unwrap_or_default();
    let hold =
        stock::hot_gate::enter(&state, &auth.caller, &scope, &key, gate_location, &lines).await?;
    let answer = create_after_gate(&state, &auth.caller, &key, req, location_id).await;
    let settled = match &answer {
        Ok((_, false)) => stock::hot_gate::Settled::Created,
        Ok((_, true)) => stock::hot_gate::Settled::Replayed,
        Err(err) => stock::hot_gate::Settled::Failed(err),
    };
    hold.settle(&state, settled).await;
    answer.map(|(response, _)| response)
}

fn order_lines(req: &CreateOrder) -> Vec<(String, i64)> {
    req.lines
        .iter()
        .map(|l| (l.sku.to_string(), i64::from(l.qty)))
        .collect()
}

/// Order creation past the hot-SKU gate: the response, and whether it is a replay. The order
/// waits for the next group commit ([`group_commit`]), which creates it in its own savepoint and
/// answers once the batch's commit is durable.
async fn create_after_gate(
    state: &AppState,
    caller: &Caller,
    key: &kassa_domain::IdempotencyKey,
    req: CreateOrder,
    location_id: Option<String>,
) -> ApiResult<(Response, bool)> {
    let request_hash = idempotency::fingerprint(
        "POST /v1/orders",
        &serde_json::to_value(&req).map_err(anyhow::Error::from)?,
    );
    let asked = group_commit::Asked {
        caller: caller.clone(),
        scope: stock::scope(caller),
        key: key.as_ref().to_owned(),
        request_hash,
        req,
        location_id,
    };
    state.orders.create(state, asked).await
}

/// Creates an order and reserves its stock in `tx` (one group commit's transaction, inside the
/// order's own savepoint), and returns it as written, unread, with its two events for the
/// batch to write (`order.created`, `order.reserved`). `prices` are the batch's.
async fn create_in(
    state: &AppState,
    tx: &mut Tx,
    asked: &group_commit::Asked,
    location_id: &str,
    discount_limit: u32,
    prices: &mut Prices,
) -> ApiResult<(Order, Vec<NewEvent>)> {
    let (caller, req) = (&asked.caller, &asked.req);
    let id = req.id.unwrap_or_else(Uuid::now_v7);
    let (totals, names) = price(tx, req, prices).await?;
    let discounted: Vec<crate::approvals::DiscountLine<'_>> = totals
        .lines
        .iter()
        .zip(&req.lines)
        .map(|(line, asked)| crate::approvals::DiscountLine {
            sku: asked.sku.as_ref(),
            gross_minor: line.gross_before_discount.to_minor(),
            discount_minor: line.discount.to_minor(),
            approved_by: asked.discount_approved_by.as_deref(),
            approval: asked.discount_approval.as_ref(),
        })
        .collect();
    crate::approvals::check_discounts(
        tx,
        caller.register_id,
        id,
        discount_limit,
        &discounted,
        crate::approvals::Sale::Online {
            seller: caller.role,
        },
    )
    .await?;
    let source = if caller.register_id.is_some() {
        "register"
    } else {
        "online"
    };
    let approvers: Vec<Option<String>> = req
        .lines
        .iter()
        .map(|l| l.discount_approved_by.clone())
        .collect();
    let new = store::orders::NewOrder {
        id,
        owner_id: caller.user_id,
        register_id: caller.register_id,
        location_id,
        source,
        status: OrderStatus::Created,
        totals: &totals,
        names: &names,
        approvers: &approvers,
        paid_minor: 0,
    };
    let now = now_ms();
    let lines = order_lines(req);
    // The stock first: a sold-out order stops at its first statement. At a register, the
    // lease's units move to the order first; the rest comes from available.
    let from_available = stock::leases::draw_for_order(
        state,
        tx,
        caller.register_id,
        location_id,
        &id.to_string(),
        &lines,
    )
    .await?;
    stock::reserve_lines(tx, location_id, &from_available).await?;
    let ttl_ms = i64::try_from(state.config.reservation_ttl.as_millis()).unwrap_or(i64::MAX);
    let reservation = store::stock::ReservationRow {
        id: Uuid::now_v7().to_string(),
        location_id: location_id.to_owned(),
        order_id: Some(id.to_string()),
        status: "active".into(),
        expires_at: now + ttl_ms,
        created_by: caller.user_id.to_string(),
        lines,
    };
    store::stock::insert_reservation(tx, &reservation).await?;
    // The order written as CREATED-then-RESERVED leaves it, in one insert. Two requests with
    // the same client-chosen id: the second waits for the first and is told.
    let reserved = store::orders::ReservedAs {
        reservation_id: &reservation.id,
    };
    if !store::orders::try_insert_reserved(tx, &new, reserved, now).await? {
        return Err(ApiError::conflict(
            "order_exists",
            format!("order {id} exists"),
            serde_json::json!({ "id": id }),
        ));
    }
    let version = store::orders::RESERVED_VERSION;
    let created = serde_json::json!({
        "location_id": location_id, "total": totals.total, "source": source,
    });
    let reserved = serde_json::json!({ "reservation_id": reservation.id });
    let reserve_event = OrderStatus::Created
        .apply(OrderEvent::Reserve)
        .map_err(|_| illegal_from(OrderStatus::Created, OrderEvent::Reserve))?
        .event_type();
    // Written by the batch, all its orders' in one insert, once the order stands.
    let events = vec![
        NewEvent::now("order.created", "order", id.to_string(), created),
        NewEvent::now(reserve_event, "order", id.to_string(), reserved),
    ];
    for to in [OrderStatus::Created, OrderStatus::Reserved] {
        tx.count_on_commit(ORDER_TRANSITIONS, &[("to", to.as_str())], 1);
    }
    let written = Written {
        id,
        source,
        reservation_id: &reservation.id,
        expires_at_ms: reservation.expires_at,
        now_ms: now,
        version,
    };
    Ok((
        as_written(asked, &totals, names, &approvers, &written)?,
        events,
    ))
}

/// What [`create_in`] wrote besides the request and its totals.
struct Written<'a> {
    id: Uuid,
    source: &'a str,
    reservation_id: &'a str,
    expires_at_ms: i64,
    now_ms: i64,
    version: i64,
}

/// The order [`create_in`] wrote, as `store::orders::get` would read it back.
fn as_written(
    asked: &group_commit::Asked,
    totals: &kassa_domain::Totals,
    names: Vec<String>,
    approvers: &[Option<String>],
    w: &Written<'_>,
) -> ApiResult<Order> {
    let currency = totals.currency;
    let minor = |m: &Money| Money::from_minor(m.to_minor(), currency);
    let lines = totals
        .lines
        .iter()
        .zip(names)
        .zip(approvers)
        .enumerate()
        .map(|(i, ((line, name), approver))| {
            Ok(kassa_domain::api::OrderLine {
                line_no: u32::try_from(i + 1).map_err(anyhow::Error::from)?,
                sku: line.sku.clone(),
                name,
                qty: line.qty,
                unit_price: Money::from_minor(store::orders::unit_price_minor(line), currency),
                discount: minor(&line.discount),
                total: minor(&line.total),
                tax_class: line.tax_class,
                returned_qty: 0,
                discount_approved_by: approver.clone(),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    // Stored as JSON and read back from it: the same bytes a later read answers with.
    let totals = serde_json::to_string(totals)
        .and_then(|t| serde_json::from_str(&t))
        .map_err(anyhow::Error::from)?;
    Ok(Order {
        id: w.id,
        status: OrderStatus::Reserved,
        source: w.source.to_owned(),
        location: asked.req.location.clone(),
        register_id: asked.caller.register_id,
        lines,
        totals,
        paid: Money::from_minor(0, currency),
        cash_rounding: None,
        refunded: Money::from_minor(0, currency),
        reservation_id: Some(w.reservation_id.parse().map_err(anyhow::Error::from)?),
        reservation_expires_at: Some(store::from_ms(w.expires_at_ms)),
        created_at: store::from_ms(w.now_ms),
        updated_at: store::from_ms(w.now_ms),
        version: w.version,
    })
}

/// One order (its owner, or staff).
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", responses((status = 200, body = Order), (status = 404)))]
pub async fn get_order(
    State(state): State<AppState>,
    auth: Auth<Customer>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Order>> {
    check_access(&state, &auth.caller, id).await?;
    let mut conn = state
        .db
        .pool()
        .acquire()
        .await
        .map_err(anyhow::Error::from)?;
    Ok(Json(
        store::orders::get(&mut conn, id, "")
            .await?
            .ok_or(ApiError::NotFound("order"))?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only orders in this state.
    #[param(pattern = "^(CREATED|RESERVED|PAID|FULFILLED|CANCELLED|REFUNDED)$")]
    pub status: Option<String>,
    /// Only orders created at or after this time (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// The `next_cursor` of the previous page.
    pub after: Option<Uuid>,
    /// Page size, at most 200.
    pub limit: Option<i64>,
}

/// Orders, oldest first, paginated; customers see their own.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(ListQuery), responses((status = 200, body = OrderPage)))]
pub async fn list_orders(
    State(state): State<AppState>,
    auth: Auth<Customer>,
    read_after: ReadAfter,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<OrderPage>> {
    let status = q
        .status
        .as_deref()
        .map(str::parse::<OrderStatus>)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_status", e.to_string()))?;
    let limit = q.limit.unwrap_or(50).clamp(1, PAGE_MAX);
    let owner = (auth.caller.role == Role::Customer).then_some(auth.caller.user_id);
    let db = read_after.db(&state).await;
    let mut conn = db.pool().acquire().await.map_err(anyhow::Error::from)?;
    let since = q.since.map(|s| s.timestamp_millis());
    let items = store::orders::list(&mut conn, status, owner, since, q.after, limit).await?;
    let next_cursor = (items.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| items.last().map(|o| o.id.to_string()))
        .flatten();
    Ok(Json(OrderPage { items, next_cursor }))
}

/// Hands a PAID order over (staff): PAID → FULFILLED.
#[utoipa::path(post, path = "/v1/orders/{id}/fulfill", tag = "orders", responses((status = 200, body = Order), (status = 409)))]
pub async fn fulfill(
    State(state): State<AppState>,
    _auth: Auth<Staff>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Order>> {
    let mut tx = state.db.begin_write().await?;
    let order = load_locked(&state, &mut tx, id).await?;
    transition(&mut tx, &order, OrderEvent::Fulfill, serde_json::json!({})).await?;
    let order = load_locked(&state, &mut tx, id).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(Json(order))
}

/// Cancels a CREATED or RESERVED order (its owner, or staff) and releases its stock; what it
/// had paid goes back (card through the processor, cash as cash to pay back). 409
/// `payment_in_flight` while a card payment waits for the processor.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders", responses((status = 200, body = Order), (status = 409)))]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Auth<Customer>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Order>> {
    check_access(&state, &auth.caller, id).await?;
    let mut tx = state.db.begin_write().await?;
    let order = load_locked(&state, &mut tx, id).await?;
    let payload = serde_json::json!({ "reason": "cancelled", "by": auth.caller.user_id });
    let refund = cancel_in(&mut tx, &order, "released", payload).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    refund_cancelled(&state, refund, Some(auth.caller.user_id)).await;
    let mut tx = state.db.begin_read().await?;
    let order = store::orders::get(&mut tx, id, "")
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(Json(order))
}
