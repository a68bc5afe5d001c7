//! The simulator's HTTP face: Stripe's routes for PaymentIntents and Refunds, Bearer-key auth,
//! Stripe-shaped errors, and `Idempotency-Key` handling with Stripe's semantics.

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::intents::{Outcome, Processing, Store};
use crate::params::Params;
use crate::webhooks::{deliver_batch, TraceContext};
use crate::SimState;

/// Stripe's own limit on idempotency keys.
const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

/// The simulator's routes, for `oneshot` tests or [`crate::serve`].
pub fn router(state: SimState) -> Router {
    Router::new()
        .route("/v1/payment_intents", post(create_intent))
        .route("/v1/payment_intents/{id}", get(get_intent))
        .route("/v1/payment_intents/{id}/confirm", post(confirm_intent))
        .route("/v1/payment_intents/{id}/capture", post(capture_intent))
        .route("/v1/refunds", post(create_refund))
        .fallback(unknown_route)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ))
        .with_state(state)
}

async fn require_api_key(State(sim): State<SimState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|key| sim.api_key_matches(key)) {
        return next.run(request).await;
    }
    let body = json!({"error": {
        "type": "invalid_request_error",
        "message": "Invalid API Key provided (send Authorization: Bearer sk_…).",
    }});
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    let message = format!("Unrecognized request URL ({method}: {}).", uri.path());
    reply(Outcome::error(
        404,
        "invalid_request_error",
        None,
        &message,
        None,
    ))
}

async fn get_intent(State(sim): State<SimState>, Path(id): Path<String>) -> Response {
    let outcome = sim.store().intent_json(&id);
    reply(outcome)
}

async fn create_intent(State(sim): State<SimState>, headers: HeaderMap, body: Bytes) -> Response {
    idempotent(
        sim,
        &headers,
        "/v1/payment_intents".into(),
        &body,
        |store, params, now| store.create_intent(params, now),
    )
    .await
}

async fn confirm_intent(
    State(sim): State<SimState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("/v1/payment_intents/{id}/confirm");
    idempotent(sim, &headers, route, &body, |store, params, now| {
        store.confirm_intent(&id, params, now)
    })
    .await
}

async fn capture_intent(
    State(sim): State<SimState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("/v1/payment_intents/{id}/capture");
    idempotent(sim, &headers, route, &body, |store, params, now| {
        store.capture_intent(&id, params, now)
    })
    .await
}

async fn create_refund(State(sim): State<SimState>, headers: HeaderMap, body: Bytes) -> Response {
    idempotent(
        sim,
        &headers,
        "/v1/refunds".into(),
        &body,
        |store, params, now| store.refund(params, now),
    )
    .await
}

/// A saved answer under an idempotency key.
#[derive(Debug, Clone)]
pub struct SavedResponse {
    fingerprint: String,
    status: u16,
    body: serde_json::Value,
}

/// Runs a POST with Stripe's idempotency: the first answer under a key is saved (if the request
/// got past validation) and replayed for the same route and parameters; other parameters under
/// the same key are a 400 `idempotency_error`. The whole operation runs under the store's lock,
/// so two concurrent requests with one key execute once. Events go out after the lock is
/// released; a held answer (`pm_sim_timeout`) is held after everything is recorded.
async fn idempotent(
    sim: SimState,
    headers: &HeaderMap,
    route: String,
    body: &[u8],
    op: impl FnOnce(&mut Store, &Params, i64) -> Outcome,
) -> Response {
    let params = match Params::parse(body) {
        Ok(params) => params,
        Err(outcome) => return reply(outcome),
    };
    let key = match idempotency_key(headers) {
        Ok(key) => key,
        Err(outcome) => return reply(outcome),
    };
    if let Some(status) = sim.take_fault() {
        let (kind, code) = match status {
            429 => ("invalid_request_error", "rate_limit"),
            409 => ("invalid_request_error", "lock_timeout"),
            _ => ("api_error", "api_error"),
        };
        return reply(Outcome::error(
            status,
            kind,
            Some(code),
            "injected failure (fail_next_posts)",
            None,
        ));
    }
    let fingerprint = fingerprint(&route, &params);
    let now = chrono::Utc::now().timestamp();
    let outcome = {
        let mut books = sim.books();
        if let Some(key) = &key {
            if let Some(saved) = books.saved(key) {
                return if saved.fingerprint == fingerprint {
                    replay(saved)
                } else {
                    reply(Outcome::error(
                        400,
                        "idempotency_error",
                        None,
                        &format!(
                            "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
                        ),
                        None,
                    ))
                };
            }
        }
        let outcome = op(&mut books.store, &params, now);
        if let (Some(key), true) = (key, outcome.save) {
            books.save(
                key,
                SavedResponse {
                    fingerprint,
                    status: outcome.status,
                    body: outcome.body.clone(),
                },
            );
        }
        outcome
    };
    if !outcome.events.is_empty() {
        sim.record_emitted(&outcome.events);
        tokio::spawn(deliver_batch(
            sim.clone(),
            outcome.events.clone(),
            outcome.plan,
            TraceContext::from_headers(headers),
        ));
    }
    if let Some(later) = outcome.settle_later.clone() {
        tokio::spawn(finish_processing(sim.clone(), later));
    }
    if let Some(hold) = outcome.hold {
        tracing::info!(
            hold_s = hold.as_secs(),
            "holding the answer (pm_sim_timeout)"
        );
        tokio::time::sleep(hold).await;
    }
    reply(outcome)
}

/// Lets a `processing` intent succeed once its delay is over, and sends what that emits.
async fn finish_processing(sim: SimState, later: Box<Processing>) {
    tokio::time::sleep(later.delay.unwrap_or_else(|| sim.processing_delay())).await;
    if sim.is_shut_down() {
        return;
    }
    let now = chrono::Utc::now().timestamp();
    let settled = sim.books().store.finish_processing(&later.intent_id, now);
    if let Some((events, plan)) = settled {
        tracing::info!(intent = %later.intent_id, "processing intent succeeded");
        sim.record_emitted(&events);
        // Settled by the clock, not by a request: no trace to carry on.
        deliver_batch(sim, events, plan, TraceContext::default()).await;
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Outcome> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_LEN_MAX => {
            Ok(Some(key.to_owned()))
        }
        _ => Err(Outcome::invalid(
            "Idempotency-Key",
            "idempotency_key_invalid",
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
        )),
    }
}

/// Route plus parameters, order-insensitive, as Stripe compares them.
fn fingerprint(route: &str, params: &Params) -> String {
    let mut pairs = params.pairs().to_vec();
    pairs.sort();
    format!(
        "{route}?{}",
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    )
}

fn reply(outcome: Outcome) -> Response {
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(outcome.body)).into_response()
}

fn replay(saved: &SavedResponse) -> Response {
    let status = StatusCode::from_u16(saved.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(saved.body.clone())).into_response();
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
