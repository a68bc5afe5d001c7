//! Read-only mode: an admin stops every write at Central, on every instance, for a while (a
//! stock count, a database move, an incident), while browsing, signing in and the registers'
//! offline selling go on. Writes answer `503 read_only` with `Retry-After` and the admin's
//! message; a register keeps its sales queued and retries.
//!
//! The mode is one settings row. Each instance keeps it in memory and reads the row again
//! before a write once its copy is older than `KASSA_READ_ONLY_REFRESH_MS` (500 ms by default),
//! so every instance obeys within that; reads never look. The instance that switches the mode
//! obeys at once. Background work (the reservation sweeper, the payment reconciler, the relay)
//! goes on: it settles what is already under way.

use std::sync::RwLock;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kassa_domain::maintenance::{ReadOnlyMode, READ_ONLY_MESSAGE_CHARS_MAX};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Admin, Auth, Customer, Json};
use crate::state::AppState;
use crate::store;

/// The settings row that holds the mode (JSON).
const SETTING: &str = "read_only";
/// What a refused write is told to wait before it retries.
pub const RETRY_AFTER_S: u64 = 30;
/// Writes that go on in read-only mode: signing in and out (staff must reach the registers'
/// offline mode and managers the switch) and the switch itself.
const WRITES_ALLOWED: &[&str] = &[
    "/v1/auth/login",
    "/v1/auth/device",
    "/v1/auth/refresh",
    "/v1/auth/logout",
    "/v1/admin/read-only",
];

/// This instance's copy of the mode and when it was read.
#[derive(Debug, Default)]
pub struct ReadOnlySwitch {
    copy: RwLock<Option<(Instant, ReadOnlyMode)>>,
}

impl ReadOnlySwitch {
    fn keep(&self, mode: ReadOnlyMode) {
        metrics::gauge!(crate::telemetry::metrics::READ_ONLY).set(if mode.enabled {
            1.0
        } else {
            0.0
        });
        *self.copy.write().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), mode));
    }

    /// The mode, read again from the database when this instance's copy is stale.
    async fn current(&self, state: &AppState) -> anyhow::Result<ReadOnlyMode> {
        let fresh = self
            .copy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < state.config.read_only_refresh)
            .map(|(_, mode)| mode.clone());
        if let Some(mode) = fresh {
            return Ok(mode);
        }
        let mode = load(&state.db).await?;
        self.keep(mode.clone());
        Ok(mode)
    }
}

async fn load(db: &store::Db) -> anyhow::Result<ReadOnlyMode> {
    Ok(match store::settings::get(db, SETTING).await? {
        Some(json) => serde_json::from_str(&json)?,
        None => ReadOnlyMode::default(),
    })
}

/// Middleware: refuses writes while read-only mode is on.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if write && !WRITES_ALLOWED.contains(&req.uri().path()) {
        match state.read_only.current(&state).await {
            Ok(mode) if mode.enabled => {
                return ApiError::ReadOnly {
                    message: mode.message,
                    retry_after_s: RETRY_AFTER_S,
                }
                .into_response()
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = ?e, "reading read-only mode failed");
                return ApiError::Unavailable.into_response();
            }
        }
    }
    next.run(req).await
}

/// Whether Central is in read-only mode, and its message; anyone signed in may ask (a register
/// shows it, the shop a banner).
#[utoipa::path(get, path = "/v1/admin/read-only", tag = "admin",
    responses((status = 200, body = ReadOnlyMode)))]
pub async fn get_read_only(
    State(state): State<AppState>,
    _auth: Auth<Customer>,
) -> ApiResult<Json<ReadOnlyMode>> {
    let mode = load(&state.db).await?;
    state.read_only.keep(mode.clone());
    Ok(Json(mode))
}

/// Switches read-only mode on or off (admin); every instance obeys within
/// `KASSA_READ_ONLY_REFRESH_MS`.
#[utoipa::path(put, path = "/v1/admin/read-only", tag = "admin", request_body = ReadOnlyMode,
    responses((status = 200, body = ReadOnlyMode), (status = 422)))]
pub async fn put_read_only(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Json(mut mode): Json<ReadOnlyMode>,
) -> ApiResult<(StatusCode, Json<ReadOnlyMode>)> {
    mode.message = mode.message.trim().to_owned();
    if mode.message.chars().count() > READ_ONLY_MESSAGE_CHARS_MAX {
        return Err(ApiError::invalid(
            "invalid_message",
            format!("message is at most {READ_ONLY_MESSAGE_CHARS_MAX} characters"),
        ));
    }
    let json = serde_json::to_string(&mode).map_err(anyhow::Error::from)?;
    store::settings::set(&state.db, SETTING, &json).await?;
    state.read_only.keep(mode.clone());
    tracing::warn!(
        enabled = mode.enabled,
        message = %mode.message,
        by = %auth.caller.user_id,
        "read-only mode switched"
    );
    Ok((StatusCode::OK, Json(mode)))
}
