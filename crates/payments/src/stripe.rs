//! [`StripeProcessor`]: the [`PaymentProcessor`] over Stripe's HTTP API (PaymentIntents and
//! Refunds, form-encoded requests, JSON answers). It also talks to `kassa-processor-sim`.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tracing::Instrument as _;

use crate::processor::{
    CreateIntent, Intent, IntentStatus, PaymentProcessor, ProcessorError, ProcessorFuture, Refund,
    RefundRequest, RefundStatus,
};
use crate::secret::SecretString;

/// A Stripe-compatible processor client.
#[derive(Debug, Clone)]
pub struct StripeProcessor {
    http: reqwest::Client,
    base_url: Url,
    secret_key: SecretString,
}

impl StripeProcessor {
    /// `base_url` is `https://api.stripe.com` or the simulator's URL; `timeout` bounds every
    /// request end to end (a call that takes longer fails with [`ProcessorError::Timeout`]).
    pub fn new(
        base_url: &str,
        secret_key: SecretString,
        timeout: Duration,
    ) -> Result<Self, ProcessorError> {
        let base_url = Url::parse(base_url).map_err(|e| {
            ProcessorError::Transport(format!("invalid base url {base_url:?}: {e}"))
        })?;
        if base_url.cannot_be_a_base() {
            return Err(ProcessorError::Transport(format!(
                "invalid base url {base_url}: cannot hold a path"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| ProcessorError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base_url,
            secret_key,
        })
    }

    /// `{base}/v1/{segments…}`, each segment percent-encoded (an id can never change the path).
    fn url(&self, segments: &[&str]) -> Result<Url, ProcessorError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| ProcessorError::Transport("base url cannot hold a path".into()))?
            .pop_if_empty()
            .push("v1")
            .extend(segments);
        Ok(url)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<T, ProcessorError> {
        let body = serde_urlencoded::to_string(form)
            .map_err(|e| ProcessorError::Transport(format!("cannot encode the form: {e}")))?;
        let request = self
            .http
            .request(Method::POST, self.url(segments)?)
            .header("Idempotency-Key", idempotency_key)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        self.send(operation(&Method::POST, segments), request).await
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ProcessorError> {
        let request = self.http.request(Method::GET, self.url(segments)?);
        self.send(operation(&Method::GET, segments), request).await
    }

    /// One call, as a client span that carries the trace to the processor (`traceparent`), timed
    /// in `kassa_processor_request_duration_seconds` and counted in `kassa_processor_errors_total`
    /// when it fails.
    async fn send<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ProcessorError> {
        let span = tracing::info_span!(
            "processor call",
            otel.name = format!("processor {operation}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            processor.operation = operation,
            http.response.status_code = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let result = self.exchange(request).instrument(span.clone()).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                let kind = error_kind(e);
                metrics::counter!(PROCESSOR_ERRORS, "operation" => operation, "kind" => kind)
                    .increment(1);
                kind
            }
        };
        metrics::histogram!(PROCESSOR_DURATION, "operation" => operation, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn exchange<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ProcessorError> {
        let mut trace = reqwest::header::HeaderMap::new();
        kassa_telemetry::inject(&mut trace);
        let response = request
            .headers(trace)
            .bearer_auth(self.secret_key.expose_secret())
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        tracing::Span::current().record("http.response.status_code", status.as_u16());
        let body = response.bytes().await.map_err(transport_error)?;
        if status.is_success() {
            serde_json::from_slice(&body).map_err(|e| {
                ProcessorError::Transport(format!("unreadable answer (HTTP {status}): {e}"))
            })
        } else {
            Err(error_from_response(status, &body))
        }
    }

    #[tracing::instrument(skip_all, fields(order_id = %req.order_id, amount_minor = req.amount_minor))]
    async fn create(&self, req: CreateIntent) -> Result<Intent, ProcessorError> {
        let form = vec![
            ("amount", req.amount_minor.to_string()),
            ("currency", req.currency.to_lowercase()),
            ("payment_method", req.payment_method),
            ("confirm", req.confirm.to_string()),
            ("capture_method", req.capture_method.as_str().to_owned()),
            ("metadata[order_id]", req.order_id),
            ("metadata[payment_id]", req.payment_id),
        ];
        let intent: WireIntent = self
            .post(&["payment_intents"], &form, &req.idempotency_key)
            .await?;
        Ok(intent.into())
    }

    #[tracing::instrument(skip_all, fields(intent_id))]
    async fn confirm(
        &self,
        intent_id: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProcessorError> {
        let intent: WireIntent = self
            .post(
                &["payment_intents", intent_id, "confirm"],
                &[],
                idempotency_key,
            )
            .await?;
        Ok(intent.into())
    }

    #[tracing::instrument(skip_all, fields(intent_id, amount_minor))]
    async fn capture(
        &self,
        intent_id: &str,
        amount_minor: Option<i64>,
        idempotency_key: &str,
    ) -> Result<Intent, ProcessorError> {
        let form: Vec<(&str, String)> = amount_minor
            .map(|amount| ("amount_to_capture", amount.to_string()))
            .into_iter()
            .collect();
        let intent: WireIntent = self
            .post(
                &["payment_intents", intent_id, "capture"],
                &form,
                idempotency_key,
            )
            .await?;
        Ok(intent.into())
    }

    #[tracing::instrument(skip_all, fields(intent_id))]
    async fn get_one(&self, intent_id: &str) -> Result<Intent, ProcessorError> {
        let intent: WireIntent = self.get(&["payment_intents", intent_id]).await?;
        Ok(intent.into())
    }

    #[tracing::instrument(skip_all, fields(intent_id = %req.intent_id, amount_minor = req.amount_minor))]
    async fn create_refund(&self, req: RefundRequest) -> Result<Refund, ProcessorError> {
        let form = vec![
            ("payment_intent", req.intent_id),
            ("amount", req.amount_minor.to_string()),
        ];
        let refund: WireRefund = self.post(&["refunds"], &form, &req.idempotency_key).await?;
        Ok(Refund {
            id: refund.id,
            status: refund.status,
            amount_minor: refund.amount,
        })
    }
}

impl PaymentProcessor for StripeProcessor {
    fn create_intent(&self, req: CreateIntent) -> ProcessorFuture<'_, Intent> {
        Box::pin(self.create(req))
    }

    fn confirm_intent<'a>(
        &'a self,
        intent_id: &'a str,
        idempotency_key: &'a str,
    ) -> ProcessorFuture<'a, Intent> {
        Box::pin(self.confirm(intent_id, idempotency_key))
    }

    fn capture_intent<'a>(
        &'a self,
        intent_id: &'a str,
        amount_minor: Option<i64>,
        idempotency_key: &'a str,
    ) -> ProcessorFuture<'a, Intent> {
        Box::pin(self.capture(intent_id, amount_minor, idempotency_key))
    }

    fn get_intent<'a>(&'a self, intent_id: &'a str) -> ProcessorFuture<'a, Intent> {
        Box::pin(self.get_one(intent_id))
    }

    fn refund(&self, req: RefundRequest) -> ProcessorFuture<'_, Refund> {
        Box::pin(self.create_refund(req))
    }
}

/// Calls to the processor by `operation` and `outcome` (Central exports it).
pub const PROCESSOR_DURATION: &str = "kassa_processor_request_duration_seconds";
/// Failed calls by `operation` and `kind`.
pub const PROCESSOR_ERRORS: &str = "kassa_processor_errors_total";

/// The processor operation a call makes, for metrics and span names.
fn operation(method: &Method, segments: &[&str]) -> &'static str {
    match (segments.first().copied(), segments.get(2).copied()) {
        (Some("refunds"), _) => "create_refund",
        (_, Some("confirm")) => "confirm_intent",
        (_, Some("capture")) => "capture_intent",
        _ if method == Method::GET => "get_intent",
        _ => "create_intent",
    }
}

/// A failed call's kind, the `kind` label of `kassa_processor_errors_total`.
fn error_kind(e: &ProcessorError) -> &'static str {
    match e {
        ProcessorError::Declined { .. } => "declined",
        ProcessorError::Timeout => "timeout",
        ProcessorError::Transport(_) => "transport",
        ProcessorError::Server { .. } => "server",
        ProcessorError::Rejected { .. } => "rejected",
    }
}

fn transport_error(e: reqwest::Error) -> ProcessorError {
    if e.is_timeout() {
        ProcessorError::Timeout
    } else {
        // Without the URL: it is ours, and the error's source chain says what failed.
        ProcessorError::Transport(e.without_url().to_string())
    }
}

/// Maps Stripe's `{"error":{"type","code","decline_code","message"}}` and the HTTP status.
fn error_from_response(status: StatusCode, body: &[u8]) -> ProcessorError {
    let error = serde_json::from_slice::<WireErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_default();
    let message = error
        .message
        .unwrap_or_else(|| format!("HTTP {status} without a Stripe error body"));
    if status == StatusCode::PAYMENT_REQUIRED || error.kind.as_deref() == Some("card_error") {
        return ProcessorError::Declined {
            code: error
                .decline_code
                .or(error.code)
                .unwrap_or_else(|| "card_declined".into()),
            message,
        };
    }
    if status.is_server_error() {
        return ProcessorError::Server {
            status: status.as_u16(),
            message,
        };
    }
    ProcessorError::Rejected {
        status: status.as_u16(),
        code: error
            .code
            .or(error.kind)
            .unwrap_or_else(|| "unknown".into()),
        message,
    }
}

#[derive(Debug, Deserialize)]
struct WireIntent {
    id: String,
    status: IntentStatus,
    amount: i64,
    #[serde(default)]
    amount_received: i64,
    currency: String,
    #[serde(default)]
    last_payment_error: Option<WireError>,
}

impl From<WireIntent> for Intent {
    fn from(w: WireIntent) -> Self {
        Self {
            id: w.id,
            status: w.status,
            amount_minor: w.amount,
            amount_received_minor: w.amount_received,
            currency: w.currency,
            last_error: w
                .last_payment_error
                .and_then(|e| e.decline_code.or(e.code).or(e.message)),
        }
    }
}

#[derive(Debug, Deserialize)]
struct WireRefund {
    id: String,
    status: RefundStatus,
    amount: i64,
}

#[derive(Debug, Deserialize)]
struct WireErrorBody {
    error: WireError,
}

#[derive(Debug, Default, Deserialize)]
struct WireError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_error_is_a_decline_with_its_decline_code() {
        let body = br#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds."}}"#;
        assert_eq!(
            error_from_response(StatusCode::PAYMENT_REQUIRED, body),
            ProcessorError::Declined {
                code: "insufficient_funds".into(),
                message: "Your card has insufficient funds.".into()
            }
        );
    }

    #[test]
    fn an_idempotency_error_is_a_rejection_named_by_its_type() {
        let body = br#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters"}}"#;
        let err = error_from_response(StatusCode::BAD_REQUEST, body);
        assert!(
            matches!(&err, ProcessorError::Rejected { status: 400, code, .. } if code == "idempotency_error"),
            "{err:?}"
        );
    }

    #[test]
    fn a_5xx_without_a_body_is_a_server_error() {
        let err = error_from_response(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert!(
            matches!(err, ProcessorError::Server { status: 502, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn ids_are_percent_encoded_into_one_path_segment() {
        let stripe = StripeProcessor::new(
            "http://127.0.0.1:1/base/",
            SecretString::new("sk_test"),
            Duration::from_secs(1),
        )
        .expect("valid");
        let url = stripe
            .url(&["payment_intents", "pi_1/../../refunds", "confirm"])
            .expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/base/v1/payment_intents/pi_1%2F..%2F..%2Frefunds/confirm"
        );
    }
}
