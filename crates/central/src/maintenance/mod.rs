//! Graceful degradation: what an admin (or the instance itself) turns off so the shop's core,
//! selling and paying, holds under a spike or an incident.
//!
//! - Read-only mode (here): an admin stops every write at Central, on every instance, for a
//!   while (a stock count, a database move, an incident), while browsing, signing in and the
//!   registers' offline selling go on. Writes answer `503 read_only` with `Retry-After` and the
//!   admin's message; a register keeps its sales queued and retries.
//! - Feature switches ([`features`]): recommendations and search facets off, `503
//!   feature_disabled`, hidden by the register and the shop.
//! - Load shedding ([`shedding`]): a bound on requests in flight, browsing shed first.
//!
//! The mode and the switches are settings rows. Each instance keeps a copy in memory and reads
//! the row again once its copy is older than `KASSA_READ_ONLY_REFRESH_MS` (500 ms by default),
//! so every instance obeys within that. The instance that switches obeys at once. Background
//! work (the reservation sweeper, the payment reconciler, the relay) goes on: it settles what
//! is already under way.

pub mod features;
pub mod shedding;

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

/// This instance's copy of a settings row (JSON) and when it was read.
#[derive(Debug)]
pub struct SettingCopy<T> {
    name: &'static str,
    copy: RwLock<Option<(Instant, T)>>,
}

impl<T: Clone + Default + serde::Serialize + serde::de::DeserializeOwned> SettingCopy<T> {
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            copy: RwLock::new(None),
        }
    }

    fn keep(&self, value: T) {
        *self.copy.write().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), value));
    }

    /// The value, read again from the database when this instance's copy is older than
    /// `max_age`.
    async fn current(&self, db: &store::Db, max_age: std::time::Duration) -> anyhow::Result<T> {
        let fresh = self
            .copy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < max_age)
            .map(|(_, value)| value.clone());
        if let Some(value) = fresh {
            return Ok(value);
        }
        self.load(db).await
    }

    /// The stored value (the default when there is none), kept as this instance's copy.
    async fn load(&self, db: &store::Db) -> anyhow::Result<T> {
        let value = match store::settings::get(db, self.name).await? {
            Some(json) => serde_json::from_str(&json)?,
            None => T::default(),
        };
        self.keep(value.clone());
        Ok(value)
    }

    /// Stores `value` for every instance and keeps it here at once.
    async fn store(&self, db: &store::Db, value: T) -> anyhow::Result<()> {
        let json = serde_json::to_string(&value)?;
        store::settings::set(db, self.name, &json).await?;
        self.keep(value);
        Ok(())
    }
}

/// This instance's copy of read-only mode.
#[derive(Debug)]
pub struct ReadOnlySwitch(SettingCopy<ReadOnlyMode>);

impl Default for ReadOnlySwitch {
    fn default() -> Self {
        Self(SettingCopy::new(SETTING))
    }
}

impl ReadOnlySwitch {
    /// The mode, read again from the database when this instance's copy is stale.
    async fn current(&self, state: &AppState) -> anyhow::Result<ReadOnlyMode> {
        let mode = self
            .0
            .current(&state.db, state.config.read_only_refresh)
            .await?;
        gauge(&mode);
        Ok(mode)
    }
}

fn gauge(mode: &ReadOnlyMode) {
    metrics::gauge!(crate::telemetry::metrics::READ_ONLY).set(if mode.enabled { 1.0 } else { 0.0 });
}

/// Middleware: refuses writes while read-only mode is on.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let path = req.uri().path();
    // Feature switches too: an admin may turn recommendations off during a stock count.
    let allowed = WRITES_ALLOWED.contains(&path) || path.starts_with("/v1/admin/features/");
    if write && !allowed {
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
    let mode = state.read_only.0.load(&state.db).await?;
    gauge(&mode);
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
    state.read_only.0.store(&state.db, mode.clone()).await?;
    gauge(&mode);
    tracing::warn!(
        enabled = mode.enabled,
        message = %mode.message,
        by = %auth.caller.user_id,
        "read-only mode switched"
    );
    Ok((StatusCode::OK, Json(mode)))
}
