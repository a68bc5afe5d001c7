//! Stock: levels per SKU and location, the ledger behind them, adjustments and receiving,
//! low-stock alerts, reservations (holds) that expire exactly once, and registers' stock leases
//! ([`leases`]), and the hot-SKU gate in Redis in front of order creation ([`hot_gate`]).

pub mod hot_gate;
pub mod leases;

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kassa_domain::api::{
    DiscrepancyPage, LineRequest, Reservation, ReservationRequest, ResolveDiscrepancy,
    SetLowStockThreshold, ShortLine, StockAdjustment, StockDiscrepancy, StockLevel, StockPage,
    StockReason, RESOLUTION_CHARS_MAX, STOCK_PAGE_LIMIT_MAX,
};
use kassa_domain::{Role, Sku, LINE_QTY_MAX};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, Customer, Json, Manager, Path, Query, ReadAfter, Staff};
use crate::idempotency::{self, Begin, Claim};
use crate::state::AppState;
use crate::store::{self, now_ms, stock::Level, Tx};

/// Reservations hold stock at most this long.
pub const RESERVATION_TTL_S_MAX: u64 = 24 * 3600;
/// Lines per reservation or order.
pub const LINES_MAX: usize = kassa_domain::CART_LINES_MAX;
/// Expired reservations released per sweep.
const SWEEP_BATCH_MAX: i64 = 500;
/// Discrepancies per page.
const DISCREPANCY_PAGE_MAX: i64 = 500;

/// A location by code, or 422.
pub async fn location_id(state: &AppState, code: &str) -> ApiResult<String> {
    store::locations::find_by_code(&state.db, code)
        .await?
        .map(|l| l.id.to_string())
        .ok_or_else(|| ApiError::Invalid {
            code: "unknown_location",
            message: format!("no location with code {code}"),
            details: serde_json::json!({ "location": code }),
        })
}

/// Emits `stock.low` when this change took available from at/above the threshold to below it.
pub async fn note_level(
    tx: &mut Tx,
    sku: &str,
    location_id: &str,
    available_before: i64,
    level: &Level,
) -> anyhow::Result<()> {
    if let Some(threshold) = level.low_threshold {
        if available_before >= threshold && level.available() < threshold {
            let payload = serde_json::json!({
                "sku": sku, "location_id": location_id, "available": level.available(), "threshold": threshold
            });
            store::events::record(
                tx,
                "stock.low",
                "stock",
                &format!("{sku}@{location_id}"),
                &payload,
            )
            .await?;
        }
    }
    Ok(())
}

/// Checks lines: non-empty, bounded, quantities in range, each SKU once.
pub fn validate_lines(lines: &[LineRequest]) -> ApiResult<()> {
    if lines.is_empty() || lines.len() > LINES_MAX {
        return Err(ApiError::invalid(
            "invalid_lines",
            format!("1 to {LINES_MAX} lines are required"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for line in lines {
        if line.qty == 0 || line.qty > LINE_QTY_MAX {
            return Err(ApiError::Invalid {
                code: "invalid_quantity",
                message: format!("quantity of {} must be 1 to {LINE_QTY_MAX}", line.sku),
                details: serde_json::json!({ "sku": line.sku }),
            });
        }
        if !seen.insert(line.sku.as_ref()) {
            return Err(ApiError::invalid(
                "duplicate_sku",
                format!("{} is listed twice; add up the quantities", line.sku),
            ));
        }
    }
    Ok(())
}

/// Reserves every line or none. Lines are taken in SKU order so two transactions never lock the
/// same rows in opposite orders. On shortage the caller must roll back: the error names every
/// short line with what is available.
pub async fn reserve_lines(
    tx: &mut Tx,
    location_id: &str,
    lines: &[(String, i64)],
) -> ApiResult<()> {
    let mut sorted: Vec<&(String, i64)> = lines.iter().collect();
    sorted.sort();
    let mut short = Vec::new();
    for (sku, qty) in sorted {
        match store::stock::reserve(tx, sku, location_id, *qty).await? {
            Some(level) => {
                note_level(tx, sku, location_id, level.available() + qty, &level).await?
            }
            None => {
                let available = store::stock::level(&mut **tx, sku, location_id)
                    .await?
                    .map_or(0, |l| l.available());
                short.push(ShortLine {
                    sku: Sku::parse(sku).map_err(anyhow::Error::from)?,
                    requested: u32::try_from(*qty).unwrap_or(u32::MAX),
                    available,
                });
            }
        }
    }
    if short.is_empty() {
        return Ok(());
    }
    metrics::counter!(crate::telemetry::metrics::OVERSELL_REFUSALS).increment(1);
    let names: Vec<String> = short
        .iter()
        .map(|s| format!("{} (available {})", s.sku, s.available))
        .collect();
    Err(ApiError::conflict(
        "insufficient_stock",
        format!("not enough stock for {}", names.join(", ")),
        serde_json::json!({ "lines": short }),
    ))
}

/// Ends an active reservation as `to` and gives its units back, exactly once. `false` when it
/// had already ended (another sweeper, a payment, or a cancel got there first).
pub async fn release(tx: &mut Tx, reservation_id: &str, to: &str) -> anyhow::Result<bool> {
    if !store::stock::end_reservation(tx, reservation_id, to).await? {
        return Ok(false);
    }
    let r = store::stock::reservation(tx, reservation_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("reservation vanished"))?;
    for (sku, qty) in &r.lines {
        store::stock::unreserve(tx, sku, &r.location_id, *qty).await?;
    }
    store::events::record(
        tx,
        &format!("reservation.{to}"),
        "reservation",
        reservation_id,
        &serde_json::json!({
            "order_id": r.order_id, "lines": r.lines,
        }),
    )
    .await?;
    Ok(true)
}

/// Releases every expired reservation and cancels its order, giving back what the order had
/// paid. An order with a card payment in flight waits (its reservation stays until the payment
/// settles: the webhook, the retry or the reconciler). Safe with several instances: each
/// release is conditional, so a reservation is released once whoever sweeps. Locks the order
/// before its reservation and stock, the one lock order.
#[tracing::instrument(skip_all)]
pub async fn sweep_expired(state: &AppState) -> anyhow::Result<usize> {
    let mut released = 0;
    for id in store::stock::expired_reservations(&state.db, now_ms(), SWEEP_BATCH_MAX).await? {
        let mut tx = state.db.begin_write().await?;
        let order_id = store::stock::reservation(&mut tx, &id)
            .await?
            .and_then(|r| r.order_id);
        let (done, refund) = match order_id {
            None => (release(&mut tx, &id, "expired").await?, None),
            Some(order_id) => {
                let order = crate::orders::load_locked(state, &mut tx, order_id.parse()?).await?;
                let payload = serde_json::json!({ "reason": "reservation_expired" });
                match crate::orders::cancel_in(&mut tx, &order, "expired", payload).await {
                    Ok(refund) => (true, refund),
                    // A payment in flight: the order waits; another outcome: only the hold goes.
                    Err(ApiError::Conflict {
                        code: "payment_in_flight",
                        ..
                    }) => (false, None),
                    Err(_) => (release(&mut tx, &id, "expired").await?, None),
                }
            }
        };
        if done {
            tx.commit().await?;
            released += 1;
            crate::orders::refund_cancelled(state, refund, None).await;
        } else {
            tx.rollback().await?;
        }
    }
    if released > 0 {
        tracing::info!(released, "expired reservations released");
    }
    Ok(released)
}

/// Runs [`sweep_expired`] and [`leases::sweep_expired`] every `interval` until the process ends.
pub fn spawn_sweeper(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = sweep_expired(&state).await {
                tracing::warn!(error = ?e, "reservation sweep failed");
            }
            if let Err(e) = leases::sweep_expired(&state).await {
                tracing::warn!(error = ?e, "stock lease sweep failed");
            }
        }
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LocationQuery {
    /// Location code.
    #[param(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")]
    pub location: String,
}

async fn level_response(
    state: &AppState,
    sku: &Sku,
    code: &str,
    location_id: &str,
) -> ApiResult<StockLevel> {
    let level = store::stock::level(state.db.pool(), sku.as_ref(), location_id).await?;
    let level = level.unwrap_or(Level {
        on_hand: 0,
        reserved: 0,
        low_threshold: None,
    });
    Ok(StockLevel {
        sku: sku.clone(),
        location: code.to_owned(),
        on_hand: level.on_hand,
        reserved: level.reserved,
        available: level.available(),
        low_threshold: level.low_threshold,
    })
}

/// Stock of one SKU at one location.
#[utoipa::path(get, path = "/v1/stock/{sku}", tag = "stock", params(LocationQuery),
    responses((status = 200, body = StockLevel)))]
pub async fn get_stock(
    State(state): State<AppState>,
    _auth: Auth<Staff>,
    Path(sku): Path<String>,
    Query(query): Query<LocationQuery>,
) -> ApiResult<Json<StockLevel>> {
    let sku = Sku::parse(&sku).map_err(|e| ApiError::bad_request("invalid_sku", e.to_string()))?;
    let location_id = location_id(&state, &query.location).await?;
    Ok(Json(
        level_response(&state, &sku, &query.location, &location_id).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StockPageQuery {
    /// Location code.
    #[param(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")]
    pub location: String,
    /// The last SKU of the previous page (`next_cursor`); none for the first page.
    #[param(max_length = 200)]
    pub after: Option<String>,
    /// Levels per page, 1 to 1000 (the default).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Stock levels at one location, paged by SKU over the whole catalog (a register's first sync
/// reads them a thousand at a time instead of one request per SKU).
#[utoipa::path(get, path = "/v1/stock", tag = "stock", params(StockPageQuery),
    responses((status = 200, body = StockPage), (status = 400), (status = 422)))]
pub async fn list_stock(
    State(state): State<AppState>,
    _auth: Auth<Staff>,
    read_after: ReadAfter,
    Query(query): Query<StockPageQuery>,
) -> ApiResult<Json<StockPage>> {
    let limit = query.limit.unwrap_or(STOCK_PAGE_LIMIT_MAX);
    if !(1..=STOCK_PAGE_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be 1 to {STOCK_PAGE_LIMIT_MAX}"),
        ));
    }
    let after = query.after.unwrap_or_default();
    if after.chars().count() > AFTER_CHARS_MAX {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            format!("after is a SKU of at most {AFTER_CHARS_MAX} characters"),
        ));
    }
    let location_id = location_id(&state, &query.location).await?;
    let db = read_after.db(&state).await;
    let rows =
        store::stock::levels_after(db.pool(), &location_id, &after, i64::from(limit)).await?;
    let full = rows.len() == limit as usize;
    let mut items = Vec::with_capacity(rows.len());
    for (sku, level) in rows {
        items.push(StockLevel {
            sku: Sku::parse(&sku).map_err(|e| anyhow::anyhow!("stored SKU {sku}: {e}"))?,
            location: query.location.clone(),
            on_hand: level.on_hand,
            reserved: level.reserved,
            available: level.available(),
            low_threshold: level.low_threshold,
        });
    }
    let next_cursor = full
        .then(|| items.last().map(|l| l.sku.as_ref().to_owned()))
        .flatten();
    Ok(Json(StockPage { items, next_cursor }))
}

/// `after` is a SKU; anything longer is not one.
pub const AFTER_CHARS_MAX: usize = 200;

/// Moves on-hand stock with a reason (manager): receiving, adjustment, count correction, return.
/// Refused (409) if it would leave less than what is reserved. With an `Idempotency-Key`
/// (optional here; a register's queued adjustments send one) a retry moves the stock once and
/// replays the first answer.
#[utoipa::path(post, path = "/v1/stock/adjustments", tag = "stock", request_body = StockAdjustment,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry apply once")),
    responses((status = 201, body = StockLevel), (status = 409), (status = 422)))]
pub async fn adjust(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    headers: HeaderMap,
    Json(req): Json<StockAdjustment>,
) -> ApiResult<Response> {
    let manual = [
        StockReason::Receiving,
        StockReason::Adjustment,
        StockReason::CountCorrection,
        StockReason::Return,
    ];
    if !manual.contains(&req.reason) {
        return Err(ApiError::invalid(
            "invalid_reason",
            "sales and conversions are recorded by orders, not by hand",
        ));
    }
    if req.delta == 0 || req.delta.unsigned_abs() > 1_000_000 {
        return Err(ApiError::invalid(
            "invalid_delta",
            "delta must be non-zero and at most 1,000,000 units",
        ));
    }
    if matches!(req.reason, StockReason::Receiving | StockReason::Return) && req.delta < 0 {
        return Err(ApiError::invalid(
            "invalid_delta",
            "receiving and returns add stock",
        ));
    }
    if req.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        return Err(ApiError::invalid(
            "invalid_note",
            "note is at most 500 characters",
        ));
    }
    let location_id = location_id(&state, &req.location).await?;
    let claim = if headers.contains_key("idempotency-key") {
        let key = idempotency::key_from(&headers)?;
        let hash = idempotency::fingerprint(
            "POST /v1/stock/adjustments",
            &serde_json::to_value(&req).map_err(anyhow::Error::from)?,
        );
        match idempotency::begin(&state, &scope(&auth.caller), &key, &hash).await? {
            Begin::Replay(response) => return Ok(response),
            Begin::Proceed(claim) => Some(claim),
        }
    } else {
        None
    };
    let work = adjust_in(&state, &auth, &req, &location_id, claim.as_ref());
    match (work.await, claim) {
        (Ok(body), _) => Ok(idempotency::json_response(StatusCode::CREATED, body)),
        (Err(err), Some(claim)) => Err(claim.settle_error(&state.db, err).await),
        (Err(err), None) => Err(err),
    }
}

/// The adjustment in one transaction, with the answer saved under `claim` when there is one.
async fn adjust_in(
    state: &AppState,
    auth: &Auth<Manager>,
    req: &StockAdjustment,
    location_id: &str,
    claim: Option<&Claim>,
) -> ApiResult<String> {
    let location_id = location_id.to_owned();
    let mut tx = state.db.begin_write().await?;
    let by = auth.caller.user_id.to_string();
    let movement = store::stock::Movement {
        sku: req.sku.as_ref(),
        location_id: &location_id,
        delta: req.delta,
        reason: req.reason,
        reference: None,
        note: req.note.as_deref(),
        created_by: Some(&by),
    };
    let Some(level) = store::stock::move_on_hand(&mut tx, &movement).await? else {
        return Err(ApiError::conflict(
            "insufficient_stock",
            format!("{} would leave less on hand than is reserved", req.sku),
            serde_json::json!({ "sku": req.sku }),
        ));
    };
    note_level(
        &mut tx,
        req.sku.as_ref(),
        &location_id,
        level.available() - req.delta,
        &level,
    )
    .await?;
    store::events::record(&mut tx, "stock.adjusted", "stock", &format!("{}@{location_id}", req.sku), &serde_json::json!({
        "sku": req.sku, "location_id": location_id, "delta": req.delta, "reason": req.reason, "on_hand": level.on_hand,
    }))
    .await?;
    let answer = StockLevel {
        sku: req.sku.clone(),
        location: req.location.clone(),
        on_hand: level.on_hand,
        reserved: level.reserved,
        available: level.available(),
        low_threshold: level.low_threshold,
    };
    let body = serde_json::to_string(&answer).map_err(anyhow::Error::from)?;
    if let Some(claim) = claim {
        claim.finish_in(&mut tx, StatusCode::CREATED, &body).await?;
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(body)
}

/// Sets the low-stock threshold of a SKU at a location (manager); `stock.low` fires when
/// available falls below it.
#[utoipa::path(put, path = "/v1/stock/{sku}/threshold", tag = "stock", request_body = SetLowStockThreshold,
    responses((status = 200, body = StockLevel)))]
pub async fn set_threshold(
    State(state): State<AppState>,
    _auth: Auth<Manager>,
    Path(sku): Path<String>,
    Json(req): Json<SetLowStockThreshold>,
) -> ApiResult<Json<StockLevel>> {
    let sku = Sku::parse(&sku).map_err(|e| ApiError::bad_request("invalid_sku", e.to_string()))?;
    if req.threshold.is_some_and(|t| !(0..=1_000_000).contains(&t)) {
        return Err(ApiError::invalid(
            "invalid_threshold",
            "threshold must be 0 to 1,000,000",
        ));
    }
    let location_id = location_id(&state, &req.location).await?;
    let mut tx = state.db.begin_write().await?;
    store::stock::set_threshold(&mut tx, sku.as_ref(), &location_id, req.threshold).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(Json(
        level_response(&state, &sku, &req.location, &location_id).await?,
    ))
}

fn reservation_body(r: &store::stock::ReservationRow, code: &str) -> ApiResult<Reservation> {
    Ok(Reservation {
        id: r.id.parse().map_err(anyhow::Error::from)?,
        location: code.to_owned(),
        status: r.status.clone(),
        lines: r
            .lines
            .iter()
            .map(|(sku, qty)| {
                Ok(LineRequest {
                    sku: Sku::parse(sku)?,
                    qty: u32::try_from(*qty).unwrap_or(u32::MAX),
                })
            })
            .collect::<anyhow::Result<_>>()?,
        expires_at: store::from_ms(r.expires_at),
        order_id: r
            .order_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(anyhow::Error::from)?,
    })
}

/// Holds stock for `ttl_s` seconds (Idempotency-Key required): all lines or none; 409
/// `insufficient_stock` names the short lines.
#[utoipa::path(post, path = "/v1/reservations", tag = "stock", request_body = ReservationRequest,
    responses((status = 201, body = Reservation), (status = 409)))]
pub async fn create_reservation(
    State(state): State<AppState>,
    auth: Auth<Customer>,
    headers: HeaderMap,
    Json(req): Json<ReservationRequest>,
) -> ApiResult<Response> {
    let key = idempotency::key_from(&headers)?;
    validate_lines(&req.lines)?;
    if req.ttl_s == 0 || req.ttl_s > RESERVATION_TTL_S_MAX {
        return Err(ApiError::invalid(
            "invalid_ttl",
            format!("ttl_s must be 1 to {RESERVATION_TTL_S_MAX}"),
        ));
    }
    let location_id = location_id(&state, &req.location).await?;
    let hash = idempotency::fingerprint(
        "POST /v1/reservations",
        &serde_json::to_value(&req).map_err(anyhow::Error::from)?,
    );
    let claim = match idempotency::begin(&state, &scope(&auth.caller), &key, &hash).await? {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(claim) => claim,
    };
    let row = store::stock::ReservationRow {
        id: Uuid::now_v7().to_string(),
        location_id: location_id.clone(),
        order_id: None,
        status: "active".into(),
        expires_at: now_ms() + i64::try_from(req.ttl_s * 1000).unwrap_or(i64::MAX),
        created_by: auth.caller.user_id.to_string(),
        lines: req
            .lines
            .iter()
            .map(|l| (l.sku.to_string(), i64::from(l.qty)))
            .collect(),
    };
    let work = async {
        let mut tx = state.db.begin_write().await?;
        reserve_lines(&mut tx, &location_id, &row.lines).await?;
        store::stock::insert_reservation(&mut tx, &row).await?;
        let body = serde_json::to_string(&reservation_body(&row, &req.location)?)
            .map_err(anyhow::Error::from)?;
        claim.finish_in(&mut tx, StatusCode::CREATED, &body).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok::<_, ApiError>(body)
    };
    match work.await {
        Ok(body) => Ok(idempotency::json_response(StatusCode::CREATED, body)),
        Err(err) => Err(claim.settle_error(&state.db, err).await),
    }
}

/// Releases a reservation now (its creator or a manager).
#[utoipa::path(delete, path = "/v1/reservations/{id}", tag = "stock",
    responses((status = 204), (status = 404), (status = 409)))]
pub async fn delete_reservation(
    State(state): State<AppState>,
    auth: Auth<Customer>,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin_write().await?;
    let r = store::stock::reservation(&mut tx, &id.to_string())
        .await?
        .ok_or(ApiError::NotFound("reservation"))?;
    let manager = matches!(auth.caller.role, Role::Admin | Role::Manager);
    if !manager && r.created_by != auth.caller.user_id.to_string() {
        return Err(ApiError::NotFound("reservation"));
    }
    if r.order_id.is_some() {
        return Err(ApiError::conflict(
            "reservation_has_order",
            "this reservation belongs to an order; cancel the order instead",
            serde_json::json!({ "order_id": r.order_id }),
        ));
    }
    if !release(&mut tx, &r.id, "released").await? {
        return Err(ApiError::conflict(
            "reservation_ended",
            format!("the reservation is already {}", r.status),
            serde_json::json!({ "status": r.status }),
        ));
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiscrepancyQuery {
    /// Location code; every location when absent.
    #[param(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")]
    pub location: Option<String>,
    /// `true`: only the discrepancies not resolved yet.
    pub open: Option<bool>,
    /// The `next_cursor` of the previous page.
    pub after: Option<Uuid>,
    /// Page size, at most 500 (default 100).
    pub limit: Option<i64>,
}

/// Shortfalls recorded when offline sales sold more than was available (manager), oldest first.
#[utoipa::path(get, path = "/v1/stock/discrepancies", tag = "stock", params(DiscrepancyQuery),
    responses((status = 200, body = DiscrepancyPage), (status = 422)))]
pub async fn list_discrepancies(
    State(state): State<AppState>,
    _auth: Auth<Manager>,
    Query(q): Query<DiscrepancyQuery>,
) -> ApiResult<Json<DiscrepancyPage>> {
    let location_id = match &q.location {
        Some(code) => Some(location_id(&state, code).await?),
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, DISCREPANCY_PAGE_MAX);
    let filter = store::stock::DiscrepancyFilter {
        location_id: location_id.as_deref(),
        open_only: q.open.unwrap_or(false),
        after: q.after,
        limit,
    };
    let items = store::stock::discrepancies(&state.db, &filter).await?;
    let next_cursor = (items.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| items.last().map(|d| d.id.to_string()))
        .flatten();
    Ok(Json(DiscrepancyPage { items, next_cursor }))
}

/// Marks a shortfall as dealt with (manager), with a note saying how; the stock count itself
/// is corrected with an adjustment. 404 unknown, 409 `already_resolved`, 422 `invalid_note`.
#[utoipa::path(post, path = "/v1/stock/discrepancies/{id}/resolve", tag = "stock",
    request_body = ResolveDiscrepancy,
    responses((status = 200, body = StockDiscrepancy), (status = 404), (status = 409), (status = 422)))]
pub async fn resolve_discrepancy(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    Path(id): Path<Uuid>,
    Json(req): Json<ResolveDiscrepancy>,
) -> ApiResult<Json<StockDiscrepancy>> {
    let note = req.note.trim();
    if note.is_empty() || note.chars().count() > RESOLUTION_CHARS_MAX {
        return Err(ApiError::invalid(
            "invalid_note",
            format!("say how it was resolved in 1 to {RESOLUTION_CHARS_MAX} characters"),
        ));
    }
    let mut tx = state.db.begin_write().await?;
    let resolved =
        store::stock::resolve_discrepancy(&mut tx, id, auth.caller.user_id, note).await?;
    let discrepancy = store::stock::discrepancy(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("discrepancy"))?;
    if !resolved {
        return Err(ApiError::conflict(
            "already_resolved",
            "this discrepancy was resolved already",
            serde_json::json!({
                "resolved_at": discrepancy.resolved_at, "resolved_by": discrepancy.resolved_by,
            }),
        ));
    }
    let payload = serde_json::json!({
        "discrepancy_id": id, "order_id": discrepancy.order_id, "shortfall": discrepancy.shortfall,
        "resolved_by": discrepancy.resolved_by, "resolution": note,
    });
    // The same aggregate as the `stock.discrepancy` event it answers.
    let location_id = location_id(&state, &discrepancy.location).await?;
    store::events::record(
        &mut tx,
        "stock.discrepancy_resolved",
        "stock",
        &format!("{}@{location_id}", discrepancy.sku),
        &payload,
    )
    .await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(Json(discrepancy))
}

/// The idempotency scope of a caller's keys: a register's sessions share one scope (the till
/// retries its writes with the same keys whoever is signed in when the retry goes), anyone
/// else's are their own.
pub fn scope(caller: &Caller) -> String {
    match caller.register_id {
        Some(register) => format!("register:{register}"),
        None => format!("user:{}", caller.user_id),
    }
}
