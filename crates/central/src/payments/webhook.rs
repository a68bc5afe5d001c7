//! `POST /v1/webhooks/payments`: the processor's signed callbacks. The signature (HMAC-SHA256
//! over the raw body, with a timestamp tolerance) is the caller's credential; each event id is
//! applied once, in the transaction that applies it; events may come in any order, so an event
//! only ever settles a payment that is still pending.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use kassa_domain::api::PaymentStatus;
use kassa_payments::webhook::{IntentEventData, SignatureError, WebhookError, SIGNATURE_HEADER};
use kassa_payments::WebhookEvent;
use uuid::Uuid;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Json;
use crate::state::AppState;
use crate::store::{self, Tx};

fn verify(state: &AppState, headers: &HeaderMap, body: &[u8]) -> ApiResult<WebhookEvent> {
    let secret = state
        .config
        .webhook_secret
        .as_ref()
        .ok_or_else(|| ApiError::NotConfigured {
            code: "webhooks_not_configured",
            message: "no webhook secret is configured (KASSA_WEBHOOK_SECRET)".into(),
        })?;
    let header = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_signature",
                "the Stripe-Signature header is required",
            )
        })?;
    let now = chrono::Utc::now().timestamp();
    WebhookEvent::from_signed(
        header,
        body,
        secret.expose().as_bytes(),
        now,
        state.config.webhook_tolerance_s,
    )
    .map_err(|e| match e {
        WebhookError::Signature(SignatureError::Stale { .. }) => {
            ApiError::bad_request("stale_signature", e.to_string())
        }
        WebhookError::Signature(_) => ApiError::bad_request("invalid_signature", e.to_string()),
        WebhookError::Json(_) => ApiError::bad_request("invalid_event", e.to_string()),
    })
}

/// Receives a processor event: 200 once applied (or when seen before), 400 for a bad signature.
#[utoipa::path(post, path = "/v1/webhooks/payments", tag = "payments",
    responses((status = 200), (status = 400), (status = 413)))]
#[tracing::instrument(skip_all)]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    // The raw body (the signature covers its bytes), with the same error body as every route
    // when it is too large or cannot be read.
    let body = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad_request("invalid_body", e.body_text())
        }
    })?;
    let event = verify(&state, &headers, &body)?;
    let mut tx = state.db.begin_write().await?;
    if !store::payments::claim_webhook_event(&mut tx, &event.id, &event.r#type).await? {
        return Ok(Json(
            serde_json::json!({ "received": true, "duplicate": true }),
        ));
    }
    // The intent's amount (to match a payment whose reference is not stored yet).
    let amount = event
        .data
        .object
        .get("amount")
        .and_then(serde_json::Value::as_i64);
    let orphan = match (event.r#type.as_str(), event.payment_intent()) {
        ("payment_intent.succeeded", Some(pi)) => {
            on_intent(&state, &mut tx, &pi, amount, true).await?
        }
        ("payment_intent.payment_failed", Some(pi)) => {
            on_intent(&state, &mut tx, &pi, amount, false).await?
        }
        _ => None,
    };
    tx.commit().await.map_err(anyhow::Error::from)?;
    if let Some(orphan) = orphan {
        super::refund_orphan(&state, orphan).await;
    }
    Ok(Json(serde_json::json!({ "received": true })))
}

async fn on_intent(
    state: &AppState,
    tx: &mut Tx,
    pi: &IntentEventData,
    amount: Option<i64>,
    succeeded: bool,
) -> ApiResult<Option<super::Orphan>> {
    let order_id = pi.order_id.as_deref().and_then(|o| o.parse::<Uuid>().ok());
    let payment_id = pi
        .payment_id
        .as_deref()
        .and_then(|p| p.parse::<Uuid>().ok());
    let amount = amount.unwrap_or(pi.amount_received_minor);
    let Some(payment) =
        store::payments::for_intent(tx, &pi.intent_id, payment_id, order_id, amount).await?
    else {
        tracing::warn!(intent_id = %pi.intent_id, "webhook for an intent Kassa does not know");
        return Ok(None);
    };
    if succeeded {
        super::apply_success(state, tx, payment.id, &pi.intent_id).await
    } else {
        store::payments::settle(
            tx,
            payment.id,
            PaymentStatus::Failed,
            Some(&pi.intent_id),
            Some("payment_failed"),
        )
        .await?;
        Ok(None)
    }
}
