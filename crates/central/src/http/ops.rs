//! Operations: liveness, readiness, Prometheus metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use super::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Alive: the process answers.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200)))]
pub async fn health() -> &'static str {
    "ok"
}

/// Ready: the database answers and the instance is not shutting down (503 from the moment it
/// received SIGTERM, so load balancers stop sending it requests).
#[utoipa::path(get, path = "/ready", tag = "ops", responses((status = 200), (status = 503)))]
pub async fn ready(State(state): State<AppState>) -> ApiResult<&'static str> {
    if state
        .shutting_down
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Err(ApiError::Unavailable);
    }
    state.db.ping().await.map_err(|e| {
        tracing::warn!(error = ?e, "database not reachable");
        ApiError::Unavailable
    })?;
    // A replica that does not answer degrades reads to the primary; the instance still serves.
    if state.db.replica_answers().await == Some(false) {
        return Ok("ready (degraded: the read replica does not answer; reads go to the primary)");
    }
    Ok("ready")
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = crate::telemetry::metrics::render(&state);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
}
