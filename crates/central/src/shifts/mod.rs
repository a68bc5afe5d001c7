//! Shifts: every register's closed shifts, as their Z reports arrive through sync
//! (`POST /v1/sync/shifts`, a register's sessions), kept exactly once per (register, Z number);
//! and a manager's list (`GET /v1/shifts`) with Z numbers, expected, counted and over/short,
//! the store days they make (registers summed) and the Z numbers that never arrived.
//!
//! A Z number a register delivers twice with the same report is a replay (200, nothing new);
//! the same number with another report is refused (409 `z_number_taken`); a number beyond the
//! next is kept, and the answer names the gap below it (and so does every list of that register).

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{Datelike, NaiveDate};
use kassa_domain::shift::{
    ShiftList, ShiftReport, StoreDay, ZGap, ZReceived, DENOMINATION_COUNT_MAX,
    MOVEMENT_REASON_CHARS_MAX,
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, Json, Manager, Query, Staff};
use crate::state::AppState;
use crate::store;
use crate::store::shifts::{Filter, NewShift};

/// Shifts listed at most per request.
pub const SHIFTS_LISTED_MAX: i64 = 1_000;
/// Cash movements one Z report may carry.
pub const Z_MOVEMENTS_MAX: usize = 1_000;
/// Names and codes in a Z report, in characters.
const Z_TEXT_CHARS_MAX: usize = 64;
/// Payment methods, tax lines and days one Z report may carry, each.
const Z_LINES_MAX: usize = 100;
/// The years a shift may fall in (its business day is kept as `YYYY-MM-DD` text).
const YEAR_MIN: i32 = 2000;
const YEAR_MAX: i32 = 2999;

fn not_a_register() -> ApiError {
    ApiError::Denied {
        code: "not_a_register",
        message: "Z reports are delivered by a register: sign in with the register's credential"
            .into(),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        code: "invalid_z_report",
        message: message.into(),
        details: serde_json::Value::Null,
    }
}

/// Bounds on what a report carries (the body limit bounds the whole).
fn check_bounds(r: &ShiftReport) -> ApiResult<()> {
    let texts = [
        Some(r.register_code.as_str()),
        Some(r.location.as_str()),
        Some(r.opened_by.as_str()),
        r.closed_by.as_deref(),
        r.over_short_approved_by.as_deref(),
    ];
    if texts
        .iter()
        .flatten()
        .any(|t| t.is_empty() || t.chars().count() > Z_TEXT_CHARS_MAX)
    {
        return Err(invalid(format!(
            "codes and names in a Z report are 1 to {Z_TEXT_CHARS_MAX} characters"
        )));
    }
    if r.movements.len() > Z_MOVEMENTS_MAX
        || r.movements
            .iter()
            .any(|m| m.reason.chars().count() > MOVEMENT_REASON_CHARS_MAX)
    {
        return Err(invalid(format!(
            "a Z report carries at most {Z_MOVEMENTS_MAX} cash movements, each with a reason of \
             at most {MOVEMENT_REASON_CHARS_MAX} characters"
        )));
    }
    let s = &r.sales;
    if s.by_method.len() > Z_LINES_MAX
        || s.taxes.len() > Z_LINES_MAX
        || s.by_day.len() > Z_LINES_MAX
    {
        return Err(invalid(format!(
            "a Z report carries at most {Z_LINES_MAX} payment methods, tax lines and days"
        )));
    }
    if r.counted_by_denomination.len() > Z_LINES_MAX
        || r.counted_by_denomination
            .iter()
            .any(|c| c.count > DENOMINATION_COUNT_MAX)
    {
        return Err(invalid(format!(
            "a count carries at most {Z_LINES_MAX} denominations of at most \
             {DENOMINATION_COUNT_MAX} each"
        )));
    }
    if r.no_sales < 0 || s.sales < 0 || s.refund_count < 0 {
        return Err(invalid("counts cannot be negative"));
    }
    let years = [
        r.business_day.year(),
        r.opened_at.year(),
        r.closed_at.map_or(2000, |at| at.year()),
    ];
    if years.iter().any(|y| !(YEAR_MIN..=YEAR_MAX).contains(y)) {
        return Err(invalid(format!(
            "a shift's days and times fall in the years {YEAR_MIN} to {YEAR_MAX}"
        )));
    }
    Ok(())
}

/// A register delivers the Z report of a closed shift (staff signed in at the register, or its
/// device session). 201 kept; 200 the same report again (nothing new); 409 `z_number_taken`
/// (that Z number holds another report) or `shift_already_reported` (that shift came under
/// another number); 422 `invalid_z_report` (not a closed, counted, consistent Z report of
/// this register's location). A gap below the number is named in the answer.
#[utoipa::path(post, path = "/v1/sync/shifts", tag = "sync", request_body = ShiftReport,
    responses((status = 201, body = ZReceived), (status = 200, body = ZReceived),
        (status = 403), (status = 409), (status = 422)))]
#[tracing::instrument(skip_all, fields(z_no))]
pub async fn sync_shift(
    State(state): State<AppState>,
    auth: Auth<Staff>,
    Json(report): Json<ShiftReport>,
) -> ApiResult<(StatusCode, Json<ZReceived>)> {
    let register_id = auth.caller.register_id.ok_or_else(not_a_register)?;
    let location = store::sync::register_location(&state.db, register_id)
        .await?
        .ok_or_else(not_a_register)?;
    let (
        Some(z_no),
        Some(closed_at),
        Some(closed_by),
        Some(expected),
        Some(counted),
        Some(over_short),
    ) = (
        report.z_no,
        report.closed_at,
        report.closed_by.as_deref(),
        report.expected,
        report.counted,
        report.over_short,
    )
    else {
        return Err(invalid(
            "a Z report is a closed, counted shift: z_no, closed_at, closed_by, expected, \
             counted and over_short are all needed",
        ));
    };
    tracing::Span::current().record("z_no", z_no);
    if z_no < 1 {
        return Err(invalid("Z numbers start at 1"));
    }
    check_bounds(&report)?;
    report.check().map_err(invalid)?;
    if report.location != location {
        return Err(ApiError::Invalid {
            code: "invalid_z_report",
            message: format!(
                "this register stands at {location}, not at {}",
                report.location
            ),
            details: json!({ "location": location }),
        });
    }
    let location_id = crate::stock::location_id(&state, &location).await?;
    let body = serde_json::to_string(&report).context("serialising a Z report")?;
    let mut tx = state.db.begin_write().await?;
    let fresh = store::shifts::insert(
        &mut tx,
        &NewShift {
            register_id,
            location_id: &location_id,
            report: &report,
            body: &body,
            received_from: auth.caller.user_id,
            z_no,
            closed_at,
            closed_by,
            expected,
            counted,
            over_short,
        },
    )
    .await?;
    let status = if fresh {
        StatusCode::CREATED
    } else {
        match store::shifts::kept(&mut tx, register_id, z_no).await? {
            Some(kept) if kept == body => StatusCode::OK,
            Some(_) => {
                return Err(ApiError::Conflict {
                    code: "z_number_taken",
                    message: format!(
                        "Z number {z_no} of this register holds another report; a Z number is \
                         never reused"
                    ),
                    details: json!({ "z_no": z_no }),
                })
            }
            None => {
                return Err(ApiError::Conflict {
                    code: "shift_already_reported",
                    message: format!(
                        "shift {} came under another Z number already",
                        report.shift_id
                    ),
                    details: json!({ "shift_id": report.shift_id }),
                })
            }
        }
    };
    let gap = store::shifts::gap_below(&mut tx, register_id, z_no)
        .await?
        .map(|(from, to)| ZGap {
            register_id,
            register_code: report.register_code.clone(),
            from,
            to,
            before: z_no,
        });
    tx.commit().await.context("keeping a Z report")?;
    if let Some(gap) = &gap {
        tracing::warn!(%register_id, from = gap.from, to = gap.to, "Z numbers missing");
    }
    Ok((
        status,
        Json(ZReceived {
            register_id,
            z_no,
            replayed: status == StatusCode::OK,
            gap,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ShiftQuery {
    /// Location code; every location when absent.
    #[param(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")]
    pub location: Option<String>,
    /// A register's id or its code (`R1`); every register when absent.
    #[param(min_length = 1, max_length = 36, pattern = "^[A-Za-z0-9-]+$")]
    pub register: Option<String>,
    /// The first business day listed (`YYYY-MM-DD`, the store's local day).
    #[param(value_type = Option<String>, format = Date)]
    pub since: Option<NaiveDate>,
}

/// Every register's closed shifts (manager): Z numbers, expected, counted and over/short, the
/// store days they sum to, and the gaps in the listed registers' Z numbers. At most
/// [`SHIFTS_LISTED_MAX`] shifts, oldest business day first. 422 `unknown_location`.
#[utoipa::path(get, path = "/v1/shifts", tag = "shifts", params(ShiftQuery),
    responses((status = 200, body = ShiftList), (status = 422)))]
pub async fn list_shifts(
    State(state): State<AppState>,
    _auth: Auth<Manager>,
    Query(q): Query<ShiftQuery>,
) -> ApiResult<Json<ShiftList>> {
    let location_id = match &q.location {
        Some(code) => Some(crate::stock::location_id(&state, code).await?),
        None => None,
    };
    let register = q.register.as_deref().map(|r| {
        r.parse::<Uuid>()
            .map_or_else(|_| r.to_owned(), |id| id.to_string())
    });
    let filter = Filter {
        location_id: location_id.as_deref(),
        register: register.as_deref(),
        since: q.since,
        limit: SHIFTS_LISTED_MAX,
    };
    let shifts = store::shifts::list(&state.db, &filter).await?;
    let gaps = store::shifts::gaps(&state.db, &filter).await?;
    let days = StoreDay::sum(&shifts).context("summing store days")?;
    Ok(Json(ShiftList { shifts, days, gaps }))
}
