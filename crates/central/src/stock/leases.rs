//! Stock leases: stock reserved at Central for one register, which its offline sales consume
//! with no shortfall (`/v1/stock/leases`), and how a location's registers size them
//! (`/v1/settings/leases`).
//!
//! Leased units are reserved (`stock.reserved`), so available = on_hand − reserved leaves them
//! out for the shop and the other tills. Granting takes at most what is available, under the
//! stock row's lock. A lease ends exactly once (released by its register or a manager, or
//! expired by the sweeper of any instance): the end is an update conditional on `active`, and
//! it gives back what the lease still holds in the same transaction. A synced offline sale of
//! the register takes its units from the lease first ([`sell_leased`], inside the sale's own
//! exactly-once transaction), then from available, then from the other tills' leases at the
//! location ([`sell_shared`]: they share the shelf). An online order placed at the register
//! draws on its lease first too ([`draw_for_order`], in the order's transaction).
//!
//! Lock order: the stock rows of the lease's SKUs in SKU order, then the lease. Offline sync
//! and checkout lock stock rows first too, so no two of them wait on each other in a circle.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kassa_domain::api::{LineRequest, StockReason};
use kassa_domain::lease::{
    BeyondLease, Lease, LeaseLine, LeaseList, LeaseRequest, LeaseSettings, LeaseUpdate,
    LEASE_LIST_MAX, LEASE_TTL_S_MAX,
};
use kassa_domain::{Role, Sku};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, Json, Manager, Path, Query, Staff};
use crate::idempotency::{self, BeginIn};
use crate::state::AppState;
use crate::stock::{location_id, note_level, scope, validate_lines};
use crate::store::leases::{LeaseRow, NewLease, SettingsRow};
use crate::store::stock::{Level, Movement};
use crate::store::{self, now_ms, Tx};

/// Expired leases ended per sweep.
const SWEEP_BATCH_MAX: i64 = 500;
/// Tries to lock a lease whose SKUs a concurrent resize keeps changing.
const LOCK_TRIES_MAX: usize = 3;

/// A register's device session leases for itself; managers and admins for any register (at a
/// till, that till unless they name another). Cashiers may not lease.
fn may_lease(caller: &Caller) -> ApiResult<()> {
    match caller.role {
        Role::Register | Role::Manager | Role::Admin => Ok(()),
        _ => Err(ApiError::Forbidden),
    }
}

/// The register a request is for, and its location code.
async fn target_register(
    state: &AppState,
    caller: &Caller,
    asked: Option<Uuid>,
) -> ApiResult<(Uuid, String)> {
    let register_id = match (caller.role, caller.register_id, asked) {
        (Role::Register, Some(own), None) => own,
        (Role::Register, Some(own), Some(other)) if other == own => own,
        (Role::Register, _, _) => {
            return Err(ApiError::Denied {
                code: "other_register",
                message: "a register leases for itself only".into(),
            })
        }
        (_, _, Some(asked)) => asked,
        (_, Some(own), None) => own,
        (_, None, None) => {
            return Err(ApiError::invalid(
                "missing_register",
                "name the register the lease is for (\"register\")",
            ))
        }
    };
    let location = store::sync::register_location(&state.db, register_id)
        .await?
        .ok_or_else(|| ApiError::Invalid {
            code: "unknown_register",
            message: format!("no register {register_id}"),
            details: json!({ "register": register_id }),
        })?;
    Ok((register_id, location))
}

/// A lease the caller may see: a register only its own (another's is a 404, as if absent).
fn visible(caller: &Caller, lease: &LeaseRow) -> ApiResult<()> {
    let own = caller
        .register_id
        .is_some_and(|r| r.to_string() == lease.register_id);
    if caller.role == Role::Register && !own {
        return Err(ApiError::NotFound("lease"));
    }
    Ok(())
}

fn check_ttl(ttl_s: u64) -> ApiResult<()> {
    if ttl_s == 0 || ttl_s > LEASE_TTL_S_MAX {
        return Err(ApiError::invalid(
            "invalid_ttl",
            format!("ttl_s must be 1 to {LEASE_TTL_S_MAX}"),
        ));
    }
    Ok(())
}

fn expiry(ttl_s: u64) -> i64 {
    now_ms() + i64::try_from(ttl_s * 1000).unwrap_or(i64::MAX)
}

/// Every SKU is in the catalog (an unknown one would otherwise get a stock row).
async fn check_skus(tx: &mut Tx, lines: &[LineRequest]) -> ApiResult<()> {
    for line in lines {
        if store::catalog::by_sku(tx, line.sku.as_ref())
            .await?
            .is_none()
        {
            return Err(ApiError::Invalid {
                code: "unknown_sku",
                message: format!("no product with SKU {}", line.sku),
                details: json!({ "sku": line.sku }),
            });
        }
    }
    Ok(())
}

fn wire(lease: &LeaseRow) -> ApiResult<Lease> {
    let lines = lease
        .lines
        .iter()
        .map(|l| {
            Ok(LeaseLine {
                sku: Sku::parse(&l.sku)?,
                requested: l.requested,
                granted: l.granted,
                consumed: l.consumed,
                released: l.released,
                remaining: l.remaining,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Lease {
        id: lease.id.parse().context("lease id")?,
        register: lease.register_id.parse().context("lease register")?,
        location: lease.location_code.clone(),
        status: lease.status.clone(),
        lines,
        expires_at: store::from_ms(lease.expires_at),
        created_at: store::from_ms(lease.created_at),
    })
}

/// Reserves up to `asked` of a locked stock row: what is available, never more. Returns the
/// units reserved.
async fn grant(
    tx: &mut Tx,
    sku: &str,
    location_id: &str,
    level: &Level,
    asked: i64,
) -> ApiResult<i64> {
    let take = asked.min(level.available()).max(0);
    if take > 0 {
        let after = store::stock::reserve(tx, sku, location_id, take)
            .await?
            .context("available stock shrank under the row lock")?;
        note_level(tx, sku, location_id, level.available(), &after).await?;
    }
    Ok(take)
}

/// Leases stock for a register (Idempotency-Key required): each line gets what was asked or
/// what is available, whichever is less, and the answer says what was granted. A retry with
/// the same key replays the first answer.
#[utoipa::path(post, path = "/v1/stock/leases", tag = "stock", request_body = LeaseRequest,
    responses((status = 201, body = Lease), (status = 403), (status = 409), (status = 422)))]
pub async fn create_lease(
    State(state): State<AppState>,
    auth: Auth<Staff>,
    headers: HeaderMap,
    Json(req): Json<LeaseRequest>,
) -> ApiResult<Response> {
    may_lease(&auth.caller)?;
    let key = idempotency::key_from(&headers)?;
    validate_lines(&req.lines)?;
    check_ttl(req.ttl_s)?;
    let (register_id, register_location) =
        target_register(&state, &auth.caller, req.register).await?;
    if req.location != register_location {
        return Err(ApiError::Denied {
            code: "wrong_location",
            message: format!("this register sells at {register_location}"),
        });
    }
    let location_id = location_id(&state, &req.location).await?;
    let hash = idempotency::fingerprint(
        "POST /v1/stock/leases",
        &serde_json::to_value(&req).map_err(anyhow::Error::from)?,
    );
    let (mut tx, claim) =
        match idempotency::begin_in(&state, &scope(&auth.caller), &key, &hash).await? {
            BeginIn::Replay(response) => return Ok(response),
            BeginIn::Proceed(tx, claim) => (tx, claim),
        };
    let work = async {
        check_skus(&mut tx, &req.lines).await?;
        let lease = NewLease {
            id: &Uuid::now_v7().to_string(),
            register_id: &register_id.to_string(),
            location_id: &location_id,
            expires_at: expiry(req.ttl_s),
            created_by: &auth.caller.user_id.to_string(),
        };
        let lease = create_in(&state, &mut tx, &lease, &req.lines).await?;
        let body = serde_json::to_string(&wire(&lease)?).map_err(anyhow::Error::from)?;
        claim.finish_in(&mut tx, StatusCode::CREATED, &body).await?;
        Ok::<_, ApiError>(body)
    }
    .await;
    claim
        .conclude_in(&state.db, tx, work, StatusCode::CREATED)
        .await
}

/// Reserves each line (in SKU order, each stock row locked first) and writes the lease.
async fn create_in(
    state: &AppState,
    tx: &mut Tx,
    lease: &NewLease<'_>,
    lines: &[LineRequest],
) -> ApiResult<LeaseRow> {
    let mut sorted: Vec<(&str, i64)> = lines
        .iter()
        .map(|l| (l.sku.as_ref(), i64::from(l.qty)))
        .collect();
    sorted.sort_unstable();
    let mut granted = Vec::with_capacity(sorted.len());
    for (sku, asked) in &sorted {
        let level = store::stock::lock_level(&state.db, tx, sku, lease.location_id).await?;
        granted.push(grant(tx, sku, lease.location_id, &level, *asked).await?);
    }
    store::leases::insert(tx, lease).await?;
    for ((sku, asked), granted) in sorted.iter().zip(&granted) {
        store::leases::insert_line(tx, lease.id, sku, *asked, *granted).await?;
    }
    let payload = json!({
        "register_id": lease.register_id, "location_id": lease.location_id,
        "expires_at": lease.expires_at,
        "lines": sorted.iter().zip(&granted)
            .map(|((sku, asked), granted)| json!({ "sku": sku, "requested": asked, "granted": granted }))
            .collect::<Vec<_>>(),
    });
    store::events::record(tx, "lease.granted", "lease", lease.id, &payload).await?;
    Ok(store::leases::get(tx, lease.id)
        .await?
        .context("a lease just written")?)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LeaseQuery {
    /// The register's id; a register's own session may leave it out (its own), a manager's
    /// lists every register's leases without it.
    pub register: Option<Uuid>,
    /// `true`: only the leases still active.
    pub active: Option<bool>,
}

/// A register's leases, newest first (at most 100): its own session, or a manager.
#[utoipa::path(get, path = "/v1/stock/leases", tag = "stock", params(LeaseQuery),
    responses((status = 200, body = LeaseList), (status = 403)))]
pub async fn list_leases(
    State(state): State<AppState>,
    auth: Auth<Staff>,
    Query(q): Query<LeaseQuery>,
) -> ApiResult<Json<LeaseList>> {
    may_lease(&auth.caller)?;
    let register = match (auth.caller.role, auth.caller.register_id, q.register) {
        (Role::Register, Some(own), None) => Some(own),
        (Role::Register, Some(own), Some(asked)) if asked == own => Some(own),
        (Role::Register, _, _) => {
            return Err(ApiError::Denied {
                code: "other_register",
                message: "a register sees its own leases only".into(),
            })
        }
        (_, _, asked) => asked,
    };
    let limit = i64::try_from(LEASE_LIST_MAX).unwrap_or(100);
    let register = register.map(|r| r.to_string());
    let rows = store::leases::list(
        &state.db,
        register.as_deref(),
        q.active.unwrap_or(false),
        limit,
    )
    .await?;
    let items = rows.iter().map(wire).collect::<ApiResult<_>>()?;
    Ok(Json(LeaseList { items }))
}

async fn load(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<LeaseRow> {
    let mut conn = state.db.pool().acquire().await.context("reading a lease")?;
    let lease = store::leases::get(&mut conn, &id.to_string())
        .await?
        .ok_or(ApiError::NotFound("lease"))?;
    visible(caller, &lease)?;
    Ok(lease)
}

/// One lease: its register's own session, or a manager.
#[utoipa::path(get, path = "/v1/stock/leases/{id}", tag = "stock",
    responses((status = 200, body = Lease), (status = 404)))]
pub async fn get_lease(
    State(state): State<AppState>,
    auth: Auth<Staff>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Lease>> {
    may_lease(&auth.caller)?;
    Ok(Json(wire(&load(&state, &auth.caller, id).await?)?))
}

/// Locks a lease for a change: the stock rows of its SKUs and of `extra` in SKU order, then the
/// lease row (the one lock order). `None` when there is no such lease. A resize that added a
/// SKU between the read and the locks makes it start again.
async fn lock_lease(
    state: &AppState,
    id: &str,
    extra: &BTreeSet<String>,
) -> ApiResult<Option<(Tx, LeaseRow, BTreeMap<String, Level>)>> {
    for _ in 0..LOCK_TRIES_MAX {
        let mut tx = state.db.begin_write().await?;
        let Some(before) = store::leases::get(&mut tx, id).await? else {
            return Ok(None);
        };
        let skus: BTreeSet<String> = before
            .lines
            .iter()
            .map(|l| l.sku.clone())
            .chain(extra.iter().cloned())
            .collect();
        let mut levels = BTreeMap::new();
        for sku in &skus {
            let level =
                store::stock::lock_level(&state.db, &mut tx, sku, &before.location_id).await?;
            levels.insert(sku.clone(), level);
        }
        store::leases::lock(&state.db, &mut tx, id).await?;
        let lease = store::leases::get(&mut tx, id)
            .await?
            .context("a locked lease vanished")?;
        if lease.lines.iter().all(|l| skus.contains(&l.sku)) {
            return Ok(Some((tx, lease, levels)));
        }
        tx.rollback().await.context("rolling back a lease lock")?;
    }
    Err(anyhow::anyhow!("lease {id} kept changing while being locked").into())
}

fn ended(lease: &LeaseRow) -> ApiError {
    ApiError::conflict(
        "lease_ended",
        format!("the lease is already {}", lease.status),
        json!({ "status": lease.status }),
    )
}

/// Renews a lease (`ttl_s` from now) and, with `lines`, resizes it: each SKU grows up to what is
/// available or gives units back down to what is asked; a SKU left out is given back whole.
#[utoipa::path(put, path = "/v1/stock/leases/{id}", tag = "stock", request_body = LeaseUpdate,
    responses((status = 200, body = Lease), (status = 404), (status = 409), (status = 422)))]
pub async fn update_lease(
    State(state): State<AppState>,
    auth: Auth<Staff>,
    Path(id): Path<Uuid>,
    Json(req): Json<LeaseUpdate>,
) -> ApiResult<Json<Lease>> {
    may_lease(&auth.caller)?;
    check_ttl(req.ttl_s)?;
    if let Some(lines) = req.lines.as_deref().filter(|l| !l.is_empty()) {
        validate_lines(lines)?;
    }
    load(&state, &auth.caller, id).await?;
    let wanted: Option<BTreeMap<String, i64>> = req.lines.as_ref().map(|lines| {
        lines
            .iter()
            .map(|l| (l.sku.to_string(), i64::from(l.qty)))
            .collect()
    });
    let extra: BTreeSet<String> = wanted.iter().flat_map(|w| w.keys().cloned()).collect();
    let id = id.to_string();
    let (mut tx, lease, levels) = lock_lease(&state, &id, &extra)
        .await?
        .ok_or(ApiError::NotFound("lease"))?;
    let work = async {
        if lease.status != "active" {
            return Err(ended(&lease));
        }
        if let Some(lines) = &req.lines {
            check_skus(&mut tx, lines).await?;
        }
        if let Some(wanted) = &wanted {
            resize(&mut tx, &lease, &levels, wanted).await?;
        }
        store::leases::renew(&mut tx, &id, expiry(req.ttl_s)).await?;
        let payload = json!({ "ttl_s": req.ttl_s, "lines": wanted });
        store::events::record(&mut tx, "lease.renewed", "lease", &id, &payload).await?;
        let lease = store::leases::get(&mut tx, &id)
            .await?
            .context("a renewed lease vanished")?;
        Ok(lease)
    }
    .await;
    match work {
        Ok(lease) => {
            tx.commit().await.context("committing a lease change")?;
            Ok(Json(wire(&lease)?))
        }
        Err(err) => {
            tx.rollback().await.context("rolling back a lease change")?;
            Err(err)
        }
    }
}

/// Brings each SKU of the lease to what `wanted` asks (0 when left out), in SKU order, the stock
/// rows already locked.
async fn resize(
    tx: &mut Tx,
    lease: &LeaseRow,
    levels: &BTreeMap<String, Level>,
    wanted: &BTreeMap<String, i64>,
) -> ApiResult<()> {
    let location_id = lease.location_id.as_str();
    for (sku, level) in levels {
        let target = wanted.get(sku).copied().unwrap_or(0);
        match lease.lines.iter().find(|l| &l.sku == sku) {
            None => {
                let granted = grant(tx, sku, location_id, level, target).await?;
                store::leases::insert_line(tx, &lease.id, sku, target, granted).await?;
            }
            Some(line) if target > line.remaining => {
                let grow = grant(tx, sku, location_id, level, target - line.remaining).await?;
                store::leases::resize_line(tx, &lease.id, sku, target, grow, 0).await?;
            }
            Some(line) => {
                let give = line.remaining - target;
                if give > 0 {
                    store::stock::unreserve(tx, sku, location_id, give).await?;
                }
                store::leases::resize_line(tx, &lease.id, sku, target, 0, give).await?;
            }
        }
    }
    Ok(())
}

/// Ends an active lease as `to` and gives back what it still holds, exactly once. With
/// `expired_at`, only if the lease's expiry is not after it (a renewal that raced the sweeper
/// wins). `Ok(None)` when the lease is unknown; `Ok(Some((false, lease)))` when it was no
/// longer active or not yet expired.
async fn end(
    state: &AppState,
    id: &str,
    to: &str,
    expired_at: Option<i64>,
) -> ApiResult<Option<(bool, LeaseRow)>> {
    let Some((mut tx, lease, _)) = lock_lease(state, id, &BTreeSet::new()).await? else {
        return Ok(None);
    };
    let due = expired_at.is_none_or(|now| lease.expires_at <= now);
    let held = if due {
        store::leases::end(&mut tx, id, to).await?
    } else {
        None
    };
    let Some(held) = held else {
        tx.rollback().await.context("rolling back a lease end")?;
        return Ok(Some((false, lease)));
    };
    for (sku, qty) in &held {
        store::stock::unreserve(&mut tx, sku, &lease.location_id, *qty).await?;
    }
    let payload = json!({ "register_id": lease.register_id, "released": held });
    store::events::record(&mut tx, &format!("lease.{to}"), "lease", id, &payload).await?;
    let lease = store::leases::get(&mut tx, id)
        .await?
        .context("an ended lease vanished")?;
    tx.commit().await.context("committing a lease end")?;
    Ok(Some((true, lease)))
}

/// Gives back what a lease still holds and ends it, once: a second release is 409
/// `lease_ended`. The register does it at shift close and at a clean shutdown.
#[utoipa::path(delete, path = "/v1/stock/leases/{id}", tag = "stock",
    responses((status = 200, body = Lease), (status = 404), (status = 409)))]
pub async fn delete_lease(
    State(state): State<AppState>,
    auth: Auth<Staff>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Lease>> {
    may_lease(&auth.caller)?;
    load(&state, &auth.caller, id).await?;
    match end(&state, &id.to_string(), "released", None).await? {
        None => Err(ApiError::NotFound("lease")),
        Some((true, lease)) => Ok(Json(wire(&lease)?)),
        Some((false, lease)) => Err(ended(&lease)),
    }
}

/// Ends every expired lease and gives back what it held. Safe with several instances: each
/// end is conditional on the lease being active, so it happens once whoever sweeps.
#[tracing::instrument(skip_all)]
pub async fn sweep_expired(state: &AppState) -> anyhow::Result<usize> {
    let now = now_ms();
    let mut ended = 0;
    for id in store::leases::expired(&state.db, now, SWEEP_BATCH_MAX).await? {
        match end(state, &id, "expired", Some(now)).await {
            Ok(Some((true, _))) => ended += 1,
            Ok(_) => {}
            Err(ApiError::Internal(e)) => return Err(e),
            Err(e) => anyhow::bail!("ending lease {id}: {e}"),
        }
    }
    if ended > 0 {
        tracing::info!(ended, "expired stock leases released");
    }
    Ok(ended)
}

/// Sells `qty` units of `sku` for a register's synced sale from what its active leases still
/// hold (soonest expiry first): each taken unit leaves the lease, reserved and on_hand (a
/// `sale` ledger row naming the lease). Returns the units taken; the rest is the caller's to
/// take from available, then from the other tills' leases ([`sell_shared`]). The caller holds
/// the stock row's lock and runs this in the sale's exactly-once transaction, so a replayed
/// sale never takes twice.
pub async fn sell_leased(
    state: &AppState,
    tx: &mut Tx,
    sale: &LeasedSale<'_>,
    qty: i64,
) -> anyhow::Result<i64> {
    let register_id = sale.register_id.to_string();
    let held = store::leases::held(&state.db, tx, &register_id, sale.location_id, sale.sku).await?;
    let mut left = qty;
    for (lease_id, remaining) in held {
        if left == 0 {
            break;
        }
        let take = left.min(remaining);
        sell_from(tx, sale, &lease_id, take, &format!("lease {lease_id}")).await?;
        let payload = json!({ "sku": sale.sku, "qty": take, "order_id": sale.order_id });
        store::events::record(tx, "lease.consumed", "lease", &lease_id, &payload).await?;
        left -= take;
    }
    Ok(qty - left)
}

/// Sells up to `qty` units of `sku` that a synced sale took past its own lease and past what
/// was available from the leases of the other registers at the same location (the fullest
/// first): the tills share the shelf, so the units another till leased but has not sold were
/// the goods this one sold. That lease shrinks (its register hears it at its next renew);
/// reserved and on_hand drop with a `sale` ledger row naming it. Returns the units taken;
/// what is still missing is a shortfall. Same locks and transaction as [`sell_leased`].
pub async fn sell_shared(
    state: &AppState,
    tx: &mut Tx,
    sale: &LeasedSale<'_>,
    qty: i64,
) -> anyhow::Result<i64> {
    if qty <= 0 {
        return Ok(0);
    }
    let register_id = sale.register_id.to_string();
    let held =
        store::leases::held_by_others(&state.db, tx, &register_id, sale.location_id, sale.sku)
            .await?;
    let mut left = qty;
    for (lease_id, holder, remaining) in held {
        if left == 0 {
            break;
        }
        let take = left.min(remaining);
        let note = format!("lease {lease_id} of register {holder} (shared shelf)");
        sell_from(tx, sale, &lease_id, take, &note).await?;
        let payload = json!({
            "sku": sale.sku, "qty": take, "order_id": sale.order_id, "by_register": register_id,
        });
        store::events::record(tx, "lease.consumed", "lease", &lease_id, &payload).await?;
        left -= take;
    }
    Ok(qty - left)
}

/// Takes `take` units from a lease line (locked) and sells them from reserved stock.
async fn sell_from(
    tx: &mut Tx,
    sale: &LeasedSale<'_>,
    lease_id: &str,
    take: i64,
    note: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        store::leases::consume(tx, lease_id, sale.sku, take).await?,
        "a lease line shrank under its lock"
    );
    let movement = Movement {
        sku: sale.sku,
        location_id: sale.location_id,
        delta: -take,
        reason: StockReason::Sale,
        reference: Some(sale.order_id),
        note: Some(note),
        created_by: Some(sale.by),
    };
    store::stock::sell_reserved(tx, &movement).await?;
    Ok(())
}

/// Whose sale [`sell_leased`] sells.
#[derive(Debug)]
pub struct LeasedSale<'a> {
    pub register_id: Uuid,
    pub location_id: &'a str,
    pub sku: &'a str,
    pub order_id: &'a str,
    pub by: &'a str,
}

/// An online order placed at a register (its device session or staff signed in at it) draws
/// on the register's own lease first: per line, what its active leases at the order's
/// location hold moves to the order, staying reserved (the lease line counts it consumed,
/// once, in the order's own transaction, so a retry or a concurrent order cannot take it
/// again). Returns the lines still to reserve from available (the caller's
/// [`crate::stock::reserve_lines`]); without a lease, `lines` as they are. Locks the stock rows
/// in SKU order, each before its lease lines (the one lock order). The order's reservation
/// holds all its units, so a cancel or an expiry gives them back to available as for any
/// order, and a payment sells them.
pub async fn draw_for_order(
    state: &AppState,
    tx: &mut Tx,
    register_id: Option<Uuid>,
    location_id: &str,
    order_id: &str,
    lines: &[(String, i64)],
) -> anyhow::Result<Vec<(String, i64)>> {
    let Some(register_id) = register_id.map(|r| r.to_string()) else {
        return Ok(lines.to_vec());
    };
    if !store::leases::holds_any(tx, &register_id, location_id).await? {
        return Ok(lines.to_vec());
    }
    let mut sorted = lines.to_vec();
    sorted.sort_unstable();
    let mut rest = Vec::with_capacity(sorted.len());
    for (sku, qty) in sorted {
        store::stock::lock_level(&state.db, tx, &sku, location_id).await?;
        let held = store::leases::held(&state.db, tx, &register_id, location_id, &sku).await?;
        let mut left = qty;
        for (lease_id, remaining) in held {
            if left == 0 {
                break;
            }
            let take = left.min(remaining);
            anyhow::ensure!(
                store::leases::consume(tx, &lease_id, &sku, take).await?,
                "a lease line shrank under its lock"
            );
            let payload = json!({ "sku": sku, "qty": take, "order_id": order_id, "online": true });
            store::events::record(tx, "lease.consumed", "lease", &lease_id, &payload).await?;
            left -= take;
        }
        if left > 0 {
            rest.push((sku, left));
        }
    }
    Ok(rest)
}

// ---- settings ----

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SettingsQuery {
    /// Location code.
    pub location: String,
}

fn beyond_text(beyond: BeyondLease) -> &'static str {
    match beyond {
        BeyondLease::Warn => "warn",
        BeyondLease::Approval => "approval",
    }
}

/// The lease settings of a location (staff and registers; the registers pull them with their
/// sync): the defaults until a manager sets them (`set_by_manager` says which; a till leases
/// only where a manager has).
#[utoipa::path(get, path = "/v1/settings/leases", tag = "stock", params(SettingsQuery),
    responses((status = 200, body = LeaseSettings), (status = 422)))]
pub async fn get_lease_settings(
    State(state): State<AppState>,
    _auth: Auth<Staff>,
    Query(q): Query<SettingsQuery>,
) -> ApiResult<Json<LeaseSettings>> {
    let location_id = location_id(&state, &q.location).await?;
    let Some(row) = store::leases::settings(&state.db, &location_id).await? else {
        return Ok(Json(LeaseSettings::default_for(&q.location)));
    };
    let num = |v: i64| u32::try_from(v).context("a stored lease setting");
    Ok(Json(LeaseSettings {
        location: q.location,
        horizon_s: u64::try_from(row.horizon_s).context("a stored lease horizon")?,
        cap_percent: num(row.cap_percent)?,
        floor_units: num(row.floor_units)?,
        top_sellers: num(row.top_sellers)?,
        beyond: if row.beyond == "approval" {
            BeyondLease::Approval
        } else {
            BeyondLease::Warn
        },
        set_by_manager: true,
    }))
}

/// Sets how a location's registers size their leases (manager): the offline horizon, the
/// share of available one register may hold, the floor for its top sellers, and what the till
/// does past its lease.
#[utoipa::path(put, path = "/v1/settings/leases", tag = "stock", request_body = LeaseSettings,
    responses((status = 200, body = LeaseSettings), (status = 422)))]
pub async fn put_lease_settings(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    Json(req): Json<LeaseSettings>,
) -> ApiResult<Json<LeaseSettings>> {
    req.check()
        .map_err(|message| ApiError::invalid("invalid_lease_settings", message))?;
    let location_id = location_id(&state, &req.location).await?;
    let row = SettingsRow {
        horizon_s: i64::try_from(req.horizon_s).context("horizon")?,
        cap_percent: i64::from(req.cap_percent),
        floor_units: i64::from(req.floor_units),
        top_sellers: i64::from(req.top_sellers),
        beyond: beyond_text(req.beyond).to_owned(),
    };
    store::leases::set_settings(
        &state.db,
        &location_id,
        &row,
        &auth.caller.user_id.to_string(),
    )
    .await?;
    Ok(Json(LeaseSettings {
        set_by_manager: true,
        ..req
    }))
}
