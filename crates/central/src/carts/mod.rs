//! Carts: guest carts (opened by an unguessable token) and user carts, lines priced at the time
//! they were added, expiry, and merging a guest's cart into the user's when the guest signs in.
//!
//! # Who opens a cart
//!
//! A user's cart opens for its owner's bearer token; a guest cart for its `X-Cart-Token` (256
//! random bits, shown once at creation; Central keeps only its SHA-256). Any other caller gets
//! 404, the same answer as for a cart that does not exist, so a cart id reveals nothing.
//!
//! # Prices
//!
//! A line keeps the name, unit price and tax class its product had when the SKU was first added
//! to the cart; later catalog changes do not touch it. `PUT` replaces the whole list of lines: a
//! SKU already in the cart keeps its line's price, a new SKU takes the catalog's current price.
//! Totals are computed from the lines on every read (tax-inclusive prices, one rounding per tax
//! class; see `kassa_domain::cart`).
//!
//! # Expiry
//!
//! Every write moves `expires_at` to now + the cart's time to live (`KASSA_GUEST_CART_TTL_S`,
//! 7 days; `KASSA_USER_CART_TTL_S`, 30 days). An expired cart answers 410 `cart_expired` until
//! [`purge_expired`] deletes it; a user whose cart expired gets a fresh one from `POST /v1/carts`.
//!
//! # The merge rule
//!
//! `POST /v1/carts/{id}/merge`, with the user's bearer token and the guest cart's `X-Cart-Token`,
//! moves guest cart `{id}` into the user's cart (made at the guest cart's location if the user
//! has none) in one transaction:
//!
//! 1. A SKU in both carts: the quantities add up, capped by what is available at the user cart's
//!    location (`on_hand − reserved`; no stock row is 0) — but a line never shrinks below what
//!    the user already had: `qty = max(user, min(user + guest, available))`. The user's price,
//!    from when they added it, is kept.
//! 2. A SKU only in the guest cart: `qty = min(guest, available)` with the guest's price; a line
//!    that gets 0 (or would exceed [`CART_LINES_MAX`]) is not taken over.
//! 3. Every line that got less than the sum is listed in `shortfalls`.
//! 4. The guest cart is deleted in the same transaction, so a second merge of it is a 404.
//!    (A guest cart kept in Redis: see below.)
//!
//! # Guest carts in Redis
//!
//! Where guest carts live is chosen at start ([`GuestCarts`]): with `KASSA_REDIS_URL`, a new
//! guest cart is kept in Redis ([`in_redis`]), not in the database; user carts always stay in
//! the database, keyed by their owner. A cart kept in Redis has a version-8 UUID (a UUIDv7 with
//! its version nibble set to 8), so every request knows from the id alone where to look; a
//! cart made in the database (without Redis, or while Redis was down) stays there for life.
//! Everything above holds for both: the token check (only the token's SHA-256 is kept), prices
//! from when a line was added, the line limits, the version and `If-Match`, the merge rule.
//!
//! - **Expiry.** Every write moves `expires_at` to now + `KASSA_GUEST_CART_TTL_S` and the key's
//!   expiry in Redis to `expires_at` + [`in_redis::EXPIRED_KEPT`] (ten minutes): until then
//!   the cart answers 410 `cart_expired` as a database cart does until the purge, then 404.
//!   Redis's expiry is the purge: nothing sweeps Redis.
//! - **Concurrent writes.** A `PUT` reads the cart, prices the lines, and writes them with a
//!   script that checks the version it read; when another write came first it reads again
//!   (with `If-Match`: 412), so two `PUT`s never mix: the last one wins, whole. Writers on
//!   one instance take turns per cart, so the check only turns away other instances' writers.
//! - **Merge.** The user's new lines and a record of the merge (`merged_guest_carts`) commit in
//!   one database transaction; the cart's key in Redis is deleted after. A merge that finds the
//!   record is a 404 (and deletes the key if it is still there), so a crash or a Redis failure
//!   between the commit and the delete never merges the same cart twice. Two merges at once:
//!   the record's primary key lets one through. The record is forgotten when the key is surely
//!   gone ([`purge_expired`]).
//! - **Redis down** (the shared circuit is open): a new guest cart is made in the database, so a
//!   guest can always shop; a cart kept in Redis answers 503 `cart_unavailable` with
//!   `Retry-After` (never 500, never a made-up 404) and is back, unchanged, when Redis is. A
//!   Redis restarted without persistence has lost its carts: they answer 404.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kassa_domain::api::{
    Cart, CartCreated, CartItem, CartLinesInput, CartMerged, CreateCart, MergeShortfall,
};
use kassa_domain::{
    check_line_qty, compute_totals, CartLine, Currency, Money, PriceMode, Sku, TaxTable, Totals,
    LINE_QTY_MAX,
};
use uuid::Uuid;

pub mod in_redis;

use crate::auth::{random_token, token_hash};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{CartCredentials, Json, Path};
use crate::state::AppState;
use crate::store::carts::{NewCart, StoredCart, StoredLine};
use crate::store::{self, from_ms, now_ms, Db, Tx};

/// The most lines one cart may hold (a `PUT` body and a merge alike).
pub const CART_LINES_MAX: usize = 100;
/// Expired carts deleted per transaction by [`purge_expired`].
const PURGE_BATCH_MAX: i64 = 500;

/// How long a client waits before asking again for a guest cart while Redis is down: about
/// when the shared circuit tries Redis again.
const RETRY_AFTER_S: u64 = 1;
/// Writes to one guest cart in Redis tried before giving up (each lost to a concurrent write).
const WRITE_TRIES: usize = 16;

/// Where guest carts are made, chosen at start: [`GuestCarts::Redis`] with `KASSA_REDIS_URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestCarts {
    Db,
    Redis,
}

impl GuestCarts {
    pub fn of(state: &AppState) -> Self {
        if state.shared.is_configured() {
            Self::Redis
        } else {
            Self::Db
        }
    }

    /// Where cart `id` lives: in Redis when Redis is configured and the id is one of its own.
    fn holding(state: &AppState, id: Uuid) -> Self {
        match Self::of(state) {
            Self::Redis if in_redis::holds(id) => Self::Redis,
            _ => Self::Db,
        }
    }
}

/// Deletes every expired cart in the database; returns how many. Also forgets merge records of
/// guest carts Redis has dropped. Meant for a periodic housekeeping task. (Redis expires its own
/// guest carts.)
#[tracing::instrument(skip_all)]
pub async fn purge_expired(db: &Db) -> anyhow::Result<u64> {
    let now = now_ms();
    let purged = store::carts::purge_expired(db, now, PURGE_BATCH_MAX).await?;
    if purged > 0 {
        tracing::info!(purged, "expired carts purged");
    }
    let forgotten = store::carts::forget_merges(db, now).await?;
    if forgotten > 0 {
        tracing::info!(forgotten, "old guest cart merge records forgotten");
    }
    Ok(purged)
}

fn cart_unavailable() -> ApiError {
    ApiError::TryLater {
        code: "cart_unavailable",
        message: "this cart is kept where Central cannot reach right now; try again shortly".into(),
        retry_after_s: RETRY_AFTER_S,
    }
}

/// Guest cart `id` from Redis: 503 while Redis is down.
async fn load_from_redis(state: &AppState, id: Uuid) -> ApiResult<Option<StoredCart>> {
    Ok(in_redis::load(state, &id.to_string())
        .await
        .ok_or_else(cart_unavailable)??)
}

fn invalid_cart(message: String, details: serde_json::Value) -> ApiError {
    ApiError::Invalid {
        code: "invalid_cart",
        message,
        details,
    }
}

/// Checks what serde's types cannot: the line count, each quantity's range, duplicate SKUs.
fn validate(input: &CartLinesInput) -> ApiResult<()> {
    if input.lines.len() > CART_LINES_MAX {
        return Err(invalid_cart(
            format!("a cart may have at most {CART_LINES_MAX} lines"),
            serde_json::json!({ "field": "lines" }),
        ));
    }
    let mut seen = HashSet::new();
    for (i, line) in input.lines.iter().enumerate() {
        let details = |field: &str| serde_json::json!({ "field": format!("lines[{i}].{field}"), "sku": line.sku });
        check_line_qty(line.qty)
            .map_err(|e| invalid_cart(format!("line {}: {e}", line.sku), details("qty")))?;
        if !seen.insert(&line.sku) {
            return Err(invalid_cart(
                format!("SKU {} is listed twice", line.sku),
                details("sku"),
            ));
        }
    }
    Ok(())
}

fn ttl_ms(state: &AppState, cart: &StoredCart) -> i64 {
    let ttl = if cart.owner_id.is_some() {
        state.config.user_cart_ttl
    } else {
        state.config.guest_cart_ttl
    };
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// Whether `creds` open `cart`: its owner's bearer token, or its guest token.
fn opens(cart: &StoredCart, creds: &CartCredentials) -> bool {
    let by_owner = match (&cart.owner_id, &creds.caller) {
        (Some(owner), Some(caller)) => *owner == caller.user_id.to_string(),
        _ => false,
    };
    let by_token = match (&cart.token_hash, &creds.cart_token) {
        (Some(hash), Some(token)) => *hash == token_hash(token),
        _ => false,
    };
    by_owner || by_token
}

/// Loads cart `id` if `creds` open it (404 otherwise) and it is live (410 otherwise).
async fn open(tx: &mut Tx, id: Uuid, creds: &CartCredentials, lock: &str) -> ApiResult<StoredCart> {
    let cart = store::carts::load(tx, &id.to_string(), lock).await?;
    check_open(cart, creds)
}

/// `cart` if it exists and `creds` open it (404 otherwise) and it is live (410 otherwise).
fn check_open(cart: Option<StoredCart>, creds: &CartCredentials) -> ApiResult<StoredCart> {
    let cart = cart
        .filter(|cart| opens(cart, creds))
        .ok_or(ApiError::NotFound("cart"))?;
    if cart.expires_at <= now_ms() {
        return Err(ApiError::Gone {
            code: "cart_expired",
            message: "the cart has expired".into(),
        });
    }
    Ok(cart)
}

fn pricing_lines(lines: &[StoredLine]) -> Vec<CartLine> {
    lines
        .iter()
        .map(|l| CartLine {
            sku: l.sku.clone(),
            name: l.name.clone(),
            unit_price: Money::from_minor(l.unit_price_minor, l.currency),
            qty: l.qty,
            tax_class: l.tax_class,
            discount: Money::zero(l.currency),
        })
        .collect()
}

fn totals(lines: &[StoredLine], currency: Currency) -> Result<Totals, kassa_domain::CartError> {
    compute_totals(
        &pricing_lines(lines),
        PriceMode::TaxInclusive,
        &TaxTable::default(),
        currency,
    )
}

/// Refuses lines whose totals cannot be computed (overflow) before they are stored; [`to_api`]
/// checks the same again on every load.
fn check_totals(lines: &[StoredLine], currency: Currency) -> ApiResult<()> {
    totals(lines, currency)
        .map(|_| ())
        .map_err(|e| invalid_cart(e.to_string(), serde_json::Value::Null))
}

fn to_api(cart: &StoredCart) -> ApiResult<Cart> {
    let totals = totals(&cart.lines, cart.currency)
        .with_context(|| format!("totals of stored cart {}", cart.id))?;
    let lines = cart
        .lines
        .iter()
        .map(|l| CartItem {
            sku: l.sku.clone(),
            name: l.name.clone(),
            qty: l.qty,
            unit_price: Money::from_minor(l.unit_price_minor, l.currency),
            tax_class: l.tax_class,
        })
        .collect();
    Ok(Cart {
        id: cart.id.parse().context("stored cart id")?,
        location: cart.location_code.clone(),
        lines,
        totals,
        expires_at: from_ms(cart.expires_at),
        version: cart.version,
    })
}

fn with_etag(body: impl serde::Serialize, version: i64) -> Response {
    let tag = HeaderValue::from_str(&format!("\"{version}\""))
        .unwrap_or(HeaderValue::from_static("\"0\""));
    ([(header::ETAG, tag)], Json(body)).into_response()
}

/// An optional `If-Match: "3"` (also `W/"3"` and a bare `3`).
fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_if_match",
                "If-Match must be the cart's ETag, e.g. \"3\"",
            )
        })
}

/// The location (id, code) for a new cart: `code`, else the first location by code.
async fn location(db: &Db, code: Option<&str>) -> ApiResult<(String, String)> {
    let location = match code {
        Some(code) => store::locations::find_by_code(db, code).await?,
        None => store::locations::list(db).await?.into_iter().next(),
    };
    let location = location.ok_or_else(|| ApiError::Invalid {
        code: "unknown_location",
        message: code.map_or("there is no location yet".into(), |c| {
            format!("no location has code {c}")
        }),
        details: serde_json::json!({ "location": code }),
    })?;
    Ok((location.id.to_string(), location.code))
}

/// The user's live cart, or a new empty one at `location_id` (an expired one is replaced).
/// `true` when it was made now.
async fn user_cart(
    state: &AppState,
    tx: &mut Tx,
    user_id: Uuid,
    location_id: &str,
    now: i64,
) -> ApiResult<(bool, StoredCart)> {
    let owner = user_id.to_string();
    let lock = state.db.for_update();
    if let Some(id) = store::carts::user_cart_id(tx, &owner, lock).await? {
        let cart = store::carts::load(tx, &id, lock)
            .await?
            .context("user cart vanished")?;
        if cart.expires_at > now {
            return Ok((false, cart));
        }
        store::carts::delete(tx, &id).await?;
    }
    let id = Uuid::now_v7().to_string();
    let ttl = i64::try_from(state.config.user_cart_ttl.as_millis()).unwrap_or(i64::MAX);
    let new = NewCart {
        id: &id,
        owner_id: Some(&owner),
        token_hash: None,
        location_id,
        currency: state.config.shop_currency,
        expires_at: now.saturating_add(ttl),
        now,
    };
    // On PostgreSQL a concurrent request may have made the cart since we looked; then use it.
    let created = store::carts::insert(tx, &new).await?;
    let id = match created {
        true => id,
        false => store::carts::user_cart_id(tx, &owner, lock)
            .await?
            .context("user cart after conflict")?,
    };
    let cart = store::carts::load(tx, &id, lock)
        .await?
        .context("reading back the cart")?;
    Ok((created, cart))
}

/// Creates a cart. With a bearer token: the caller's user cart (201 when made now, 200 with the
/// existing one, whose location stays). Without: a new guest cart and its `cart_token`, shown
/// only this once. The body may be `{}`; `location` is a location code.
#[utoipa::path(post, path = "/v1/carts", tag = "carts", request_body = CreateCart,
    responses((status = 201, body = CartCreated), (status = 200, body = CartCreated), (status = 422)))]
pub async fn create_cart(
    State(state): State<AppState>,
    creds: CartCredentials,
    Json(req): Json<CreateCart>,
) -> ApiResult<(StatusCode, Json<CartCreated>)> {
    let (location_id, location_code) =
        location(&state.db, req.location.as_deref().map(str::trim)).await?;
    let now = now_ms();
    let (created, cart, cart_token) = match &creds.caller {
        Some(caller) => {
            let mut tx = state.db.begin_write().await?;
            let (created, cart) =
                user_cart(&state, &mut tx, caller.user_id, &location_id, now).await?;
            let body = to_api(&cart)?;
            tx.commit().await.context("committing cart")?;
            (created, body, None)
        }
        None => {
            let token = random_token();
            let cart = new_guest_cart(&state, &token, location_id, location_code, now).await?;
            (true, cart, Some(token))
        }
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(CartCreated { cart, cart_token })))
}

/// A new, empty guest cart opened by `token`: in Redis when it is configured and answers, else
/// in the database.
async fn new_guest_cart(
    state: &AppState,
    token: &str,
    location_id: String,
    location_code: String,
    now: i64,
) -> ApiResult<Cart> {
    let hash = token_hash(token);
    let ttl = i64::try_from(state.config.guest_cart_ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(ttl);
    if GuestCarts::of(state) == GuestCarts::Redis {
        let cart = StoredCart {
            id: in_redis::new_id().to_string(),
            owner_id: None,
            token_hash: Some(hash.clone()),
            location_id: location_id.clone(),
            location_code,
            currency: state.config.shop_currency,
            expires_at,
            version: 1,
            lines: Vec::new(),
        };
        match in_redis::write(state, &cart, 0, now).await {
            Some(written) => {
                if !written? {
                    return Err(
                        anyhow::anyhow!("a new guest cart collided with an existing one").into(),
                    );
                }
                return to_api(&cart);
            }
            None => tracing::debug!("Redis is down: a new guest cart is made in the database"),
        }
    }
    let id = Uuid::now_v7().to_string();
    let new = NewCart {
        id: &id,
        owner_id: None,
        token_hash: Some(&hash),
        location_id: &location_id,
        currency: state.config.shop_currency,
        expires_at,
        now,
    };
    let mut tx = state.db.begin_write().await?;
    if !store::carts::insert(&mut tx, &new).await? {
        return Err(anyhow::anyhow!("a new guest cart collided with an existing one").into());
    }
    let cart = store::carts::load(&mut tx, &id, "")
        .await?
        .context("reading back the cart")?;
    let body = to_api(&cart)?;
    tx.commit().await.context("committing cart")?;
    Ok(body)
}

/// A cart, for its owner or the holder of its `X-Cart-Token`; its `ETag` is its version.
#[utoipa::path(get, path = "/v1/carts/{id}", tag = "carts",
    params(("X-Cart-Token" = Option<String>, Header, description = "a guest cart's token")),
    responses((status = 200, body = Cart), (status = 404), (status = 410),
        (status = 503, description = "`cart_unavailable` with `Retry-After`: a guest cart kept in Redis while Redis is down")))]
pub async fn get_cart(
    State(state): State<AppState>,
    creds: CartCredentials,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    if GuestCarts::holding(&state, id) == GuestCarts::Redis {
        let cart = check_open(load_from_redis(&state, id).await?, &creds)?;
        return Ok(with_etag(to_api(&cart)?, cart.version));
    }
    let mut tx = state.db.begin_read().await?;
    let cart = open(&mut tx, id, &creds, "").await?;
    tx.commit().await.context("ending a read")?;
    Ok(with_etag(to_api(&cart)?, cart.version))
}

/// The new lines of a cart: kept lines keep their price, new SKUs take the catalog's.
async fn priced_lines(
    tx: &mut Tx,
    cart: &StoredCart,
    input: &CartLinesInput,
    now: i64,
) -> ApiResult<Vec<StoredLine>> {
    let mut lines = Vec::with_capacity(input.lines.len());
    for wanted in &input.lines {
        if let Some(kept) = cart.lines.iter().find(|l| l.sku == wanted.sku) {
            lines.push(StoredLine {
                qty: wanted.qty,
                ..kept.clone()
            });
            continue;
        }
        let price = store::carts::catalog_price(tx, &wanted.sku)
            .await?
            .filter(|p| !p.archived)
            .ok_or_else(|| ApiError::Invalid {
                code: "unknown_sku",
                message: format!("no product on sale has SKU {}", wanted.sku),
                details: serde_json::json!({ "sku": wanted.sku }),
            })?;
        if price.currency != cart.currency {
            return Err(ApiError::Invalid {
                code: "currency_mismatch",
                message: format!(
                    "{} is priced in {}, the cart is in {}",
                    wanted.sku, price.currency, cart.currency
                ),
                details: serde_json::json!({ "sku": wanted.sku }),
            });
        }
        lines.push(StoredLine {
            sku: wanted.sku.clone(),
            qty: wanted.qty,
            unit_price_minor: price.price_minor,
            currency: price.currency,
            name: price.name,
            tax_class: price.tax_class,
            added_at: now,
        });
    }
    Ok(lines)
}

/// Replaces a cart's lines (`{lines:[{sku,qty}]}`, at most 100, each SKU once, qty 1..=9999).
/// `If-Match` is optional: with it, a cart changed since that version is a 412 with the current
/// cart.
#[utoipa::path(put, path = "/v1/carts/{id}", tag = "carts", request_body = CartLinesInput,
    params(("X-Cart-Token" = Option<String>, Header, description = "a guest cart's token")),
    responses((status = 200, body = Cart), (status = 404), (status = 410), (status = 412), (status = 422),
        (status = 503, description = "`cart_unavailable` with `Retry-After`: a guest cart kept in Redis while Redis is down")))]
pub async fn update_cart(
    State(state): State<AppState>,
    creds: CartCredentials,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(input): Json<CartLinesInput>,
) -> ApiResult<Response> {
    validate(&input)?;
    let expected = if_match(&headers)?;
    if GuestCarts::holding(&state, id) == GuestCarts::Redis {
        return update_in_redis(&state, id, &creds, expected, &input).await;
    }
    let mut tx = state.db.begin_write().await?;
    let cart = open(&mut tx, id, &creds, state.db.for_update()).await?;
    let now = now_ms();
    let lines = new_lines(&mut tx, &cart, expected, &input, now).await?;
    store::carts::replace_lines(
        &mut tx,
        &cart.id,
        &lines,
        now.saturating_add(ttl_ms(&state, &cart)),
        now,
    )
    .await?;
    let cart = store::carts::load(&mut tx, &cart.id, "")
        .await?
        .context("reading back the cart")?;
    let body = to_api(&cart)?;
    tx.commit().await.context("committing cart")?;
    Ok(with_etag(body, cart.version))
}

/// The lines `input` asks of `cart` (412 when `If-Match` names another version), priced and
/// checked.
async fn new_lines(
    tx: &mut Tx,
    cart: &StoredCart,
    expected: Option<i64>,
    input: &CartLinesInput,
    now: i64,
) -> ApiResult<Vec<StoredLine>> {
    if expected.is_some_and(|v| v != cart.version) {
        return Err(ApiError::PreconditionFailed {
            current: serde_json::to_value(to_api(cart)?).unwrap_or_default(),
        });
    }
    let lines = priced_lines(tx, cart, input, now).await?;
    check_totals(&lines, cart.currency)?;
    Ok(lines)
}

/// [`update_cart`] of a guest cart kept in Redis: read, price, write if nobody wrote since;
/// else again.
async fn update_in_redis(
    state: &AppState,
    id: Uuid,
    creds: &CartCredentials,
    expected: Option<i64>,
    input: &CartLinesInput,
) -> ApiResult<Response> {
    let _turn = in_redis::writer_turn(id).await;
    for attempt in 0..WRITE_TRIES {
        if attempt > 0 {
            // Another instance wrote in between: let it finish.
            let jitter = u64::from(rand::random::<u8>() % 8);
            tokio::time::sleep(std::time::Duration::from_millis(jitter + 1)).await;
        }
        let cart = check_open(load_from_redis(state, id).await?, creds)?;
        let now = now_ms();
        let mut tx = state.db.begin_read().await?;
        let lines = new_lines(&mut tx, &cart, expected, input, now).await?;
        tx.commit().await.context("ending a read")?;
        let read = cart.version;
        let cart = StoredCart {
            lines,
            version: read.saturating_add(1),
            expires_at: now.saturating_add(ttl_ms(state, &cart)),
            ..cart
        };
        if in_redis::write(state, &cart, read, now)
            .await
            .ok_or_else(cart_unavailable)??
        {
            return Ok(with_etag(to_api(&cart)?, cart.version));
        }
    }
    tracing::warn!(cart_id = %id, "a guest cart kept changing under its writes");
    Err(cart_unavailable())
}

/// The user's lines after merging in the guest's, and what fell short; see the module docs.
#[derive(Debug, PartialEq)]
struct Merged {
    lines: Vec<StoredLine>,
    shortfalls: Vec<MergeShortfall>,
}

fn merge_lines(user: &[StoredLine], guest: &[StoredLine], available: &HashMap<Sku, i64>) -> Merged {
    let available = |sku: &Sku| {
        let units = available
            .get(sku)
            .copied()
            .unwrap_or(0)
            .clamp(0, i64::from(LINE_QTY_MAX));
        u32::try_from(units).unwrap_or(0)
    };
    let mut lines = Vec::with_capacity(user.len() + guest.len());
    let mut shortfalls = Vec::new();
    let mut fell_short = |sku: &Sku, wanted: u32, qty: u32| {
        if qty < wanted {
            shortfalls.push(MergeShortfall {
                sku: sku.clone(),
                wanted,
                qty,
            });
        }
    };
    for mine in user {
        let Some(theirs) = guest.iter().find(|g| g.sku == mine.sku) else {
            lines.push(mine.clone());
            continue;
        };
        let wanted = mine.qty.saturating_add(theirs.qty);
        let qty = mine.qty.max(wanted.min(available(&mine.sku)));
        fell_short(&mine.sku, wanted, qty);
        lines.push(StoredLine {
            qty,
            ..mine.clone()
        });
    }
    for theirs in guest
        .iter()
        .filter(|g| !user.iter().any(|u| u.sku == g.sku))
    {
        let qty = if lines.len() < CART_LINES_MAX {
            theirs.qty.min(available(&theirs.sku))
        } else {
            0
        };
        fell_short(&theirs.sku, theirs.qty, qty);
        if qty > 0 {
            lines.push(StoredLine {
                qty,
                ..theirs.clone()
            });
        }
    }
    Merged { lines, shortfalls }
}

/// Merges guest cart `{id}` (its `X-Cart-Token`) into the signed-in caller's cart and deletes
/// the guest cart. See the module docs for the rule.
#[utoipa::path(post, path = "/v1/carts/{id}/merge", tag = "carts",
    params(("X-Cart-Token" = String, Header, description = "the guest cart's token")),
    responses((status = 200, body = CartMerged), (status = 401), (status = 404), (status = 409), (status = 410),
        (status = 503, description = "`cart_unavailable` with `Retry-After`: a guest cart kept in Redis while Redis is down")))]
pub async fn merge_cart(
    State(state): State<AppState>,
    creds: CartCredentials,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let caller = creds
        .caller
        .as_ref()
        .ok_or(ApiError::Unauthorized("missing bearer token"))?;
    // Only the guest token opens the cart to merge: a user's own cart is never merged away.
    let guest_only = CartCredentials {
        caller: None,
        cart_token: creds.cart_token.clone(),
    };
    let in_redis = GuestCarts::holding(&state, id) == GuestCarts::Redis;
    let (guest, mut tx) = if in_redis {
        let guest = check_open(load_from_redis(&state, id).await?, &guest_only)?;
        (guest, state.db.begin_write().await?)
    } else {
        let mut tx = state.db.begin_write().await?;
        let guest = open(&mut tx, id, &guest_only, state.db.for_update()).await?;
        (guest, tx)
    };
    let now = now_ms();
    if in_redis {
        let kept = i64::try_from(in_redis::EXPIRED_KEPT.as_millis()).unwrap_or(i64::MAX);
        let forget_at = guest.expires_at.saturating_add(kept);
        if !store::carts::claim_merge(&mut tx, &guest.id, forget_at, now).await? {
            drop(tx);
            // Merged before, and its key outlived the merge: finish the job.
            let _ = in_redis::delete(&state, &guest.id).await;
            return Err(ApiError::NotFound("cart"));
        }
    } else {
        store::carts::delete(&mut tx, &guest.id).await?;
    }
    let (_, user) = user_cart(&state, &mut tx, caller.user_id, &guest.location_id, now).await?;
    if user.currency != guest.currency {
        return Err(ApiError::conflict(
            "currency_mismatch",
            format!(
                "the guest cart is in {}, the user's in {}",
                guest.currency, user.currency
            ),
            serde_json::Value::Null,
        ));
    }
    let mut available = HashMap::new();
    for line in &guest.lines {
        available.insert(
            line.sku.clone(),
            store::carts::available(&mut tx, &line.sku, &user.location_id).await?,
        );
    }
    let merged = merge_lines(&user.lines, &guest.lines, &available);
    check_totals(&merged.lines, user.currency)?;
    store::carts::replace_lines(
        &mut tx,
        &user.id,
        &merged.lines,
        now.saturating_add(ttl_ms(&state, &user)),
        now,
    )
    .await?;
    let cart = store::carts::load(&mut tx, &user.id, "")
        .await?
        .context("reading back the cart")?;
    let body = CartMerged {
        cart: to_api(&cart)?,
        shortfalls: merged.shortfalls,
    };
    tx.commit().await.context("committing cart merge")?;
    if in_redis && in_redis::delete(&state, &guest.id).await.is_none() {
        // The merge record already makes a second merge a 404; the key expires on its own.
        tracing::warn!(guest_cart = %guest.id, "Redis is down: a merged guest cart stays until it expires");
    }
    tracing::info!(guest_cart = %guest.id, user_cart = %cart.id, "guest cart merged");
    Ok(with_etag(body, cart.version))
}

#[cfg(test)]
mod tests {
    use kassa_domain::TaxClass;

    use super::*;

    fn line(sku: &str, qty: u32, price: i64) -> StoredLine {
        StoredLine {
            sku: Sku::parse(sku).unwrap(),
            qty,
            unit_price_minor: price,
            currency: Currency::EUR,
            name: sku.into(),
            tax_class: TaxClass::Standard,
            added_at: 0,
        }
    }

    fn stock(pairs: &[(&str, i64)]) -> HashMap<Sku, i64> {
        pairs
            .iter()
            .map(|(s, n)| (Sku::parse(s).unwrap(), *n))
            .collect()
    }

    fn qtys(merged: &Merged) -> Vec<(String, u32)> {
        merged
            .lines
            .iter()
            .map(|l| (l.sku.to_string(), l.qty))
            .collect()
    }

    #[test]
    fn quantities_add_up_within_availability_keeping_the_users_price() {
        let merged = merge_lines(
            &[line("A", 2, 100)],
            &[line("A", 3, 90)],
            &stock(&[("A", 10)]),
        );
        assert_eq!(merged.lines, vec![line("A", 5, 100)]);
        assert!(merged.shortfalls.is_empty());
    }

    #[test]
    fn the_sum_is_capped_by_availability_but_never_below_the_users_own_qty() {
        let merged = merge_lines(
            &[line("A", 2, 100), line("B", 5, 100)],
            &[line("A", 3, 90), line("B", 1, 90)],
            &stock(&[("A", 4), ("B", 1)]),
        );
        assert_eq!(qtys(&merged), vec![("A".into(), 4), ("B".into(), 5)]);
        let short: Vec<_> = merged
            .shortfalls
            .iter()
            .map(|s| (s.sku.to_string(), s.wanted, s.qty))
            .collect();
        assert_eq!(short, vec![("A".into(), 5, 4), ("B".into(), 6, 5)]);
    }

    #[test]
    fn new_guest_lines_follow_with_the_guests_price_and_unavailable_ones_are_left_out() {
        let merged = merge_lines(
            &[line("A", 1, 100)],
            &[line("B", 3, 70), line("C", 2, 50), line("D", 1, 10)],
            &stock(&[("B", 2), ("C", 5)]),
        );
        assert_eq!(
            merged.lines,
            vec![line("A", 1, 100), line("B", 2, 70), line("C", 2, 50)]
        );
        let short: Vec<_> = merged
            .shortfalls
            .iter()
            .map(|s| (s.sku.to_string(), s.wanted, s.qty))
            .collect();
        assert_eq!(short, vec![("B".into(), 3, 2), ("D".into(), 1, 0)]);
    }

    #[test]
    fn a_merge_never_exceeds_the_line_limits() {
        let user: Vec<_> = (0..CART_LINES_MAX)
            .map(|i| line(&format!("U{i}"), LINE_QTY_MAX, 1))
            .collect();
        let guest = vec![line("U0", 5, 1), line("NEW", 1, 1)];
        let merged = merge_lines(&user, &guest, &stock(&[("U0", i64::MAX), ("NEW", 9)]));
        assert_eq!(merged.lines.len(), CART_LINES_MAX);
        assert_eq!(merged.lines[0].qty, LINE_QTY_MAX);
        assert_eq!(merged.shortfalls.len(), 2);
    }
}
