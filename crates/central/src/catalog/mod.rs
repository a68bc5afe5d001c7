//! The catalog: products with versions (ETag / If-Match), the delta feed, and locations.

pub mod product_cache;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kassa_domain::api::{
    CashRoundingSetting, CreateLocation, Location, Product, ProductInput, ProductPage,
};
use kassa_domain::CashRounding;
use serde::Deserialize;
use uuid::Uuid;

use crate::http::cache;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Admin, Auth, Browse, Json, Manager, Path, Query, ReadAfter, Staff};
use crate::state::AppState;
use crate::store;
use crate::store::catalog::WriteError;

const BARCODES_MAX: usize = 16;
const ATTRIBUTES_MAX: usize = 64;
const FEED_LIMIT_DEFAULT: i64 = 100;

fn check_len(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(ApiError::Invalid {
            code: "invalid_product",
            message: format!("{field} must be {min} to {max} characters"),
            details: serde_json::json!({ "field": field }),
        });
    }
    Ok(())
}

/// Checks what serde's types cannot: lengths, counts, duplicates, sign.
fn validate(input: &ProductInput) -> Result<(), ApiError> {
    check_len("name", input.name.trim(), 1, 200)?;
    check_len("description", &input.description, 0, 4000)?;
    check_len("category", &input.category, 0, 100)?;
    check_len("brand", &input.brand, 0, 100)?;
    let invalid = |message: String, field: &str| ApiError::Invalid {
        code: "invalid_product",
        message,
        details: serde_json::json!({ "field": field }),
    };
    if input.price.is_negative() {
        return Err(invalid("price must not be negative".into(), "price"));
    }
    if input.barcodes.len() > BARCODES_MAX {
        return Err(invalid(
            format!("at most {BARCODES_MAX} barcodes"),
            "barcodes",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for barcode in &input.barcodes {
        if !seen.insert(barcode.as_ref()) {
            return Err(invalid(
                format!("barcode {barcode} is listed twice"),
                "barcodes",
            ));
        }
    }
    if input.attributes.len() > ATTRIBUTES_MAX {
        return Err(invalid(
            format!("at most {ATTRIBUTES_MAX} attributes"),
            "attributes",
        ));
    }
    Ok(())
}

fn write_error(err: WriteError) -> ApiError {
    match err {
        WriteError::SkuTaken(sku) => ApiError::conflict(
            "sku_taken",
            format!("SKU {sku} is already used"),
            serde_json::json!({ "sku": sku }),
        ),
        WriteError::BarcodeTaken(barcode) => ApiError::conflict(
            "barcode_taken",
            format!("barcode {barcode} is already used by another product"),
            serde_json::json!({ "barcode": barcode }),
        ),
        WriteError::NotFound => ApiError::NotFound("product"),
        WriteError::VersionConflict(current) => ApiError::PreconditionFailed {
            current: serde_json::to_value(*current).unwrap_or_default(),
        },
        WriteError::Other(e) => ApiError::Internal(e),
    }
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn with_etag(status: StatusCode, product: Product) -> Response {
    let tag = etag(product.version);
    (status, [(header::ETAG, tag)], Json(product)).into_response()
}

/// Parses `If-Match: "3"` (also `W/"3"` and a bare `3`).
fn if_match(headers: &HeaderMap) -> Result<i64, ApiError> {
    let raw = headers
        .get(header::IF_MATCH)
        .ok_or(ApiError::PreconditionRequired(
            "If-Match with the product's version (its ETag) is required",
        ))?;
    raw.to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_if_match",
                "If-Match must be the product's ETag, e.g. \"3\"",
            )
        })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// The `next_cursor` of the previous page; omit for the start.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub since: Option<String>,
    /// Page size, at most 500 (a larger one is cut to 500).
    #[param(minimum = 1)]
    pub limit: Option<i64>,
}

/// The catalog delta feed: products changed after `since`, in change order; archived ones too.
/// Anyone may read it, signed in or not (see `http/cache.rs` for the caching headers).
#[utoipa::path(get, path = "/v1/products", tag = "catalog", params(FeedQuery),
    responses((status = 200, body = ProductPage), (status = 304, description = "Not Modified")))]
pub async fn list_products(
    State(state): State<AppState>,
    who: Browse,
    read_after: ReadAfter,
    headers: HeaderMap,
    Query(query): Query<FeedQuery>,
) -> ApiResult<Response> {
    let since = match query.since.as_deref() {
        None | Some("") => 0,
        Some(raw) => raw.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "since must be a cursor from next_cursor")
        })?,
    };
    let limit = query.limit.unwrap_or(FEED_LIMIT_DEFAULT);
    if limit < 1 {
        return Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be at least 1",
        ));
    }
    let limit = limit.min(state.config.feed_limit_max);
    let db = read_after.db(&state).await;
    let items = store::catalog::changed_since(&db, since, limit).await?;
    let next = items.last().map_or(since, |p| p.change_seq);
    let page = ProductPage {
        items,
        next_cursor: next.to_string(),
    };
    Ok(cache::answer(
        &headers,
        who.anonymous(),
        cache::SEARCH,
        cache::Tag::Body,
        &page,
    ))
}

/// One product, to anyone; its `ETag` is its version.
#[utoipa::path(get, path = "/v1/products/{id}", tag = "catalog",
    responses((status = 200, body = Product), (status = 304, description = "Not Modified"),
        (status = 404)))]
pub async fn get_product(
    State(state): State<AppState>,
    who: Browse,
    read_after: ReadAfter,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    // A caller that wrote reads its write (`Kassa-Read-After`): past this instance's cache,
    // which follows the change feed only within the refresher's lag.
    let kept = if read_after.0.is_none() {
        state.products.find(id).await
    } else {
        None
    };
    let product = match kept {
        Some(kept) => kept,
        None => {
            let db = read_after.db(&state).await;
            state
                .products
                .offer(
                    store::catalog::get(&db, id)
                        .await?
                        .ok_or(ApiError::NotFound("product"))?,
                )
                .await
        }
    };
    Ok(cache::answer(
        &headers,
        who.anonymous(),
        cache::PRODUCT,
        cache::Tag::Version(product.version),
        &*product,
    ))
}

/// Creates a product (manager).
#[utoipa::path(post, path = "/v1/products", tag = "catalog", request_body = ProductInput,
    responses((status = 201, body = Product), (status = 409), (status = 422)))]
pub async fn create_product(
    State(state): State<AppState>,
    _auth: Auth<Manager>,
    Json(input): Json<ProductInput>,
) -> ApiResult<Response> {
    validate(&input)?;
    let product = store::catalog::insert(&state.db, &input)
        .await
        .map_err(write_error)?;
    Ok(with_etag(StatusCode::CREATED, product))
}

/// Replaces a product's fields (manager). `If-Match` must carry the version the edit is based
/// on: 428 without it, 412 with the current product when it changed meanwhile.
#[utoipa::path(put, path = "/v1/products/{id}", tag = "catalog", request_body = ProductInput,
    responses((status = 200, body = Product), (status = 409), (status = 412), (status = 428)))]
pub async fn update_product(
    State(state): State<AppState>,
    _auth: Auth<Manager>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(input): Json<ProductInput>,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    validate(&input)?;
    let product = store::catalog::update(&state.db, id, expected, &input)
        .await
        .map_err(write_error)?;
    // This instance never serves the old version again; the others follow the change feed.
    state.products.offer(product.clone()).await;
    Ok(with_etag(StatusCode::OK, product))
}

/// Stores and warehouses.
#[utoipa::path(get, path = "/v1/locations", tag = "catalog", responses((status = 200, body = [Location])))]
pub async fn list_locations(
    State(state): State<AppState>,
    _auth: Auth<Staff>,
    read_after: ReadAfter,
) -> ApiResult<Json<Vec<Location>>> {
    let db = read_after.db(&state).await;
    Ok(Json(store::locations::list(&db).await?))
}

/// Checks an IANA time zone name against the time zone database (422 `invalid_time_zone`).
fn check_time_zone(name: &str) -> ApiResult<()> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-/".contains(c));
    if plain && jiff::tz::TimeZone::get(name).is_ok() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        code: "invalid_time_zone",
        message: "time_zone must be an IANA time zone name, like Europe/Amsterdam".into(),
        details: serde_json::json!({ "time_zone": clipped(name) }),
    })
}

/// Untrusted input quoted back, cut short.
fn clipped(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Adds a location (admin); `code` is short and unique, e.g. `STORE-1`; `time_zone` the
/// store's IANA time zone (UTC when absent; 422 `invalid_time_zone`); `cash_rounding` its cash
/// rounding increment in minor units (none when absent; 422 `invalid_cash_rounding`).
#[utoipa::path(post, path = "/v1/locations", tag = "catalog", request_body = CreateLocation,
    responses((status = 201, body = Location), (status = 409), (status = 422)))]
pub async fn create_location(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    Json(req): Json<CreateLocation>,
) -> ApiResult<(StatusCode, Json<Location>)> {
    let code = req.code.trim();
    let valid_code = !code.is_empty()
        && code.len() <= 32
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_code {
        return Err(ApiError::invalid(
            "invalid_location",
            "code must be 1 to 32 letters, digits, '-' or '_'",
        ));
    }
    check_len("name", req.name.trim(), 1, 100)?;
    let time_zone = req.time_zone.as_deref().map_or("UTC", str::trim);
    check_time_zone(time_zone)?;
    let cash_rounding = check_cash_rounding(req.cash_rounding.unwrap_or(0))?;
    let inserted = store::locations::insert_in_zone(
        &state.db,
        code,
        req.name.trim(),
        time_zone,
        cash_rounding,
    )
    .await?;
    match inserted {
        Some(location) => Ok((StatusCode::CREATED, Json(location))),
        None => Err(ApiError::conflict(
            "location_exists",
            format!("location {code} exists"),
            serde_json::Value::Null,
        )),
    }
}

/// A cash rounding increment from the wire (422 `invalid_cash_rounding`).
fn check_cash_rounding(minor: i64) -> ApiResult<CashRounding> {
    CashRounding::new(minor).map_err(|err| ApiError::Invalid {
        code: "invalid_cash_rounding",
        message: err.to_string(),
        details: serde_json::json!({ "cash_rounding": minor }),
    })
}

/// Sets a location's cash rounding (manager): the final cash due of every sale there is
/// rounded to `cash_rounding` minor units (5 = 0.05, 100 = 1.00; 0 turns it off); card
/// payments stay exact. The registers pull it with the locations (`GET /v1/locations`).
/// 422 `invalid_cash_rounding` for an increment that does not divide 10000, 422
/// `unknown_location` for a code no location has.
#[utoipa::path(put, path = "/v1/settings/cash-rounding", tag = "catalog",
    request_body = CashRoundingSetting,
    responses((status = 200, body = Location), (status = 422)))]
pub async fn put_cash_rounding(
    State(state): State<AppState>,
    _auth: Auth<Manager>,
    Json(req): Json<CashRoundingSetting>,
) -> ApiResult<Json<Location>> {
    let rule = check_cash_rounding(req.cash_rounding)?;
    store::locations::set_cash_rounding(&state.db, req.location.trim(), rule)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::Invalid {
            code: "unknown_location",
            message: "no location has this code".into(),
            details: serde_json::json!({ "location": clipped(&req.location) }),
        })
}
