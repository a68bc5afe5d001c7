//! Operations: liveness, readiness, Prometheus metrics.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::error::{ApiError, ApiResult};
use crate::state::AppState;

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide metrics recorder once (several test servers share a process).
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &buckets)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200)))]
pub async fn health() -> &'static str {
    "ok"
}

/// Ready: the database answers.
#[utoipa::path(get, path = "/ready", tag = "ops", responses((status = 200), (status = 503)))]
pub async fn ready(State(state): State<AppState>) -> ApiResult<&'static str> {
    state.db.ping().await.map_err(|e| {
        tracing::warn!(error = ?e, "database not reachable");
        ApiError::Unavailable
    })?;
    Ok("ready")
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200)))]
pub async fn metrics() -> impl IntoResponse {
    let body = metrics_handle()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
}
