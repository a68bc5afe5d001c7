//! The HTTP boundary: the router (every route with its role decision), middleware (request ids,
//! logs, metrics, timeouts, body limits) and serving with graceful shutdown.

pub mod cache;
pub mod codes;
pub mod contract;
pub mod error;
pub mod extract;
pub mod ops;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, Response};
use axum::middleware::{self, Next};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::error::ApiError;
use crate::state::AppState;
use crate::telemetry::{self, metrics::HTTP_DURATION, metrics::HTTP_REQUESTS};
use crate::{
    approvals, auth, carts, catalog, maintenance, orders, payments, recommend, search, shifts,
    stock, sync,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kassa Central",
        description = "The source of truth for catalog, stock, carts, orders and payments."
    ),
    components(schemas(kassa_domain::api::ErrorBody))
)]
struct ApiDoc;

/// Every route, registered through utoipa so the OpenAPI document lists exactly what is served
/// (the role-matrix test walks that list).
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(auth::routes::login))
        .routes(routes!(auth::routes::device_login))
        .routes(routes!(auth::routes::refresh))
        .routes(routes!(auth::routes::logout))
        .routes(routes!(auth::routes::create_user))
        .routes(routes!(auth::routes::set_pin))
        .routes(routes!(auth::routes::create_register))
        .routes(routes!(catalog::list_products, catalog::create_product))
        .routes(routes!(catalog::get_product, catalog::update_product))
        .routes(routes!(catalog::list_locations, catalog::create_location))
        .routes(routes!(catalog::put_cash_rounding))
        .routes(routes!(stock::get_stock))
        .routes(routes!(stock::list_stock))
        .routes(routes!(stock::list_discrepancies))
        .routes(routes!(stock::resolve_discrepancy))
        .routes(routes!(stock::adjust))
        .routes(routes!(stock::set_threshold))
        .routes(routes!(stock::create_reservation))
        .routes(routes!(stock::delete_reservation))
        .routes(routes!(
            stock::leases::create_lease,
            stock::leases::list_leases
        ))
        .routes(routes!(
            stock::leases::get_lease,
            stock::leases::update_lease,
            stock::leases::delete_lease
        ))
        .routes(routes!(
            stock::leases::get_lease_settings,
            stock::leases::put_lease_settings
        ))
        .routes(routes!(orders::create_order, orders::list_orders))
        .routes(routes!(orders::get_order))
        .routes(routes!(orders::fulfill))
        .routes(routes!(orders::cancel))
        .routes(routes!(payments::create_payment, payments::list_payments))
        .routes(routes!(
            payments::refunds::create_refund,
            payments::refunds::list_refunds
        ))
        .routes(routes!(payments::webhook::receive))
        .routes(routes!(carts::create_cart))
        .routes(routes!(carts::get_cart, carts::update_cart))
        .routes(routes!(carts::merge_cart))
        .routes(routes!(search::search))
        .routes(routes!(recommend::for_product))
        .routes(routes!(recommend::feed))
        .routes(routes!(sync::sync_orders))
        .routes(routes!(shifts::sync_shift))
        .routes(routes!(shifts::list_shifts))
        .routes(routes!(approvals::grant))
        .routes(routes!(approvals::list_flags))
        .routes(routes!(
            approvals::get_sale_settings,
            approvals::put_sale_settings
        ))
        .routes(routes!(
            maintenance::get_read_only,
            maintenance::put_read_only
        ))
        .routes(routes!(maintenance::features::list_features))
        .routes(routes!(maintenance::features::put_feature))
}

/// The OpenAPI document of everything [`router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().1
}

/// The routes and their document, completed with what every route shares.
fn documented_routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = api_routes().split_for_parts();
    contract::complete(&mut doc);
    (routes, doc)
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the application; serving is separate so tests can bind port 0.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = documented_routes();
    let doc = std::sync::Arc::new(doc);
    let body_max = state.config.body_bytes_max;
    routes
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_max))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            maintenance::guard,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            maintenance::shedding::guard,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            write_position,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            timeout_and_metrics,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal(anyhow::anyhow!(
                "handler panicked"
            )))
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::http_span)
                .on_response(telemetry::record_status),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Bounds each request's time and records `http_requests_total` and
/// `http_request_duration_seconds` by route and status.
async fn timeout_and_metrics(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response<axum::body::Body> {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(ApiError::Unavailable),
    };
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// With a read replica, a successful write's response carries `Kassa-Write-Position`: the
/// client sends it back as `Kassa-Read-After` and reads its write through any instance.
async fn write_position(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response<axum::body::Body> {
    use axum::http::Method;
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut response = next.run(req).await;
    if writes && state.db.has_replica() && response.status().is_success() {
        match state.db.write_position().await {
            Ok(position) => {
                if let Ok(value) = axum::http::HeaderValue::from_str(&position.to_string()) {
                    response
                        .headers_mut()
                        .insert(extract::WRITE_POSITION, value);
                }
            }
            Err(e) => tracing::warn!(error = ?e, "no write position for this response"),
        }
    }
    response
}

/// Serves until `shutdown` resolves, then: `/ready` answers 503 at once; requests are still
/// served for `shutdown_drain` (the load balancer's health checks notice meanwhile); then no new
/// connection is accepted and in-flight requests get `shutdown_grace` to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (drain, grace) = (state.config.shutdown_drain, state.config.shutdown_grace);
    let shutting_down = state.shutting_down.clone();
    let (stopped_accepting, accepting_stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        shutting_down.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            drain_ms = drain.as_millis(),
            "shutting down: /ready answers 503, still serving while the load balancer notices"
        );
        tokio::time::sleep(drain).await;
        tracing::info!(
            grace_ms = grace.as_millis(),
            "no longer accepting; finishing in-flight requests"
        );
        let _ = stopped_accepting.send(());
    };
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    let bound = async move {
        if accepting_stopped.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = server => served?,
        () = bound => tracing::warn!("requests still in flight after the shutdown grace; exiting"),
    }
    Ok(())
}
