//! The one error type of the HTTP boundary and its JSON body `{"error":{"code","message","details"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kassa_domain::api::{ErrorBody, ErrorDetail};
use serde_json::Value;

/// Every way a request can fail. Each variant's doc names its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, bad query, missing header).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no valid credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 402: the card processor refused the payment (a decline); the order is unchanged.
    #[error("{message}")]
    PaymentRequired {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// 403: authenticated, but the role may not do this.
    #[error("this action needs another role")]
    Forbidden,
    /// 403 with its own code: the role may do this, but not in this situation
    /// (`not_a_register`: the route needs a session signed in at a register).
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    /// 404
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// 410: the resource existed but has expired (a cart past its time to live).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// 412: `If-Match` names an old version; details carry the current row.
    #[error("the resource changed since the version you based this on")]
    PreconditionFailed { current: Value },
    /// 413
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 422: well-formed, but the values are invalid.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// 423 with `Retry-After`: this way of signing in is locked for a while (`pin_locked`:
    /// too many wrong PINs in a row).
    #[error("{message}")]
    Locked {
        code: &'static str,
        message: String,
        retry_after_s: u64,
    },
    /// 428: a conditional header is required (`If-Match`).
    #[error("{0}")]
    PreconditionRequired(&'static str),
    /// 429 with `Retry-After`.
    #[error("too many requests")]
    TooManyRequests { retry_after_s: u64 },
    /// 502: the card processor did not answer or answered with an error; whether it acted is
    /// unknown, so the client retries with the same Idempotency-Key.
    #[error("{message}")]
    BadGateway { code: &'static str, message: String },
    /// 503 `read_only` with `Retry-After`: an admin has put Central in read-only mode; the
    /// message is theirs.
    #[error("{message}")]
    ReadOnly { message: String, retry_after_s: u64 },
    /// 503 `overloaded` with `Retry-After`: this instance has as many requests in flight as
    /// it takes (`KASSA_INFLIGHT_MAX`); nothing was done, retry after the wait.
    #[error("Central is busy; try again in a moment")]
    Overloaded { retry_after_s: u64 },
    /// 503: a dependency (database) is unreachable.
    #[error("service unavailable")]
    Unavailable,
    /// 503 with its own code and `Retry-After`: what this request needs lives in a dependency
    /// that does not answer for now (`cart_unavailable`: a guest cart kept in Redis while
    /// Redis is down); nothing was done, retry after the wait.
    #[error("{message}")]
    TryLater {
        code: &'static str,
        message: String,
        retry_after_s: u64,
    },
    /// 503 with its own code: the operator has not configured this feature
    /// (`webhooks_not_configured`, `card_payments_unavailable`) or has switched it off
    /// (`feature_disabled`); a setting, not a failure.
    #[error("{message}")]
    NotConfigured { code: &'static str, message: String },
    /// 500: logged with the request id, never echoed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>, details: Value) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
            details,
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, Value) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code, Value::Null),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", Value::Null),
            Self::PaymentRequired { code, details, .. } => {
                (StatusCode::PAYMENT_REQUIRED, code, details.clone())
            }
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden", Value::Null),
            Self::Denied { code, .. } => (StatusCode::FORBIDDEN, code, Value::Null),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", Value::Null),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                Value::Null,
            ),
            Self::Conflict { code, details, .. } => (StatusCode::CONFLICT, code, details.clone()),
            Self::Gone { code, .. } => (StatusCode::GONE, code, Value::Null),
            Self::PreconditionFailed { current } => (
                StatusCode::PRECONDITION_FAILED,
                "version_conflict",
                serde_json::json!({ "current": current }),
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                Value::Null,
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                Value::Null,
            ),
            Self::Invalid { code, details, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, details.clone())
            }
            Self::Locked {
                code,
                retry_after_s,
                ..
            } => (
                StatusCode::LOCKED,
                code,
                serde_json::json!({ "retry_after_s": retry_after_s }),
            ),
            Self::PreconditionRequired(_) => (
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                Value::Null,
            ),
            Self::TooManyRequests { retry_after_s } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                serde_json::json!({ "retry_after_s": retry_after_s }),
            ),
            Self::BadGateway { code, .. } => (StatusCode::BAD_GATEWAY, code, Value::Null),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", Value::Null),
            Self::TryLater {
                code,
                retry_after_s,
                ..
            } => (
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                serde_json::json!({ "retry_after_s": retry_after_s }),
            ),
            Self::Overloaded { retry_after_s } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                serde_json::json!({ "retry_after_s": retry_after_s }),
            ),
            Self::ReadOnly { retry_after_s, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "read_only",
                serde_json::json!({ "retry_after_s": retry_after_s }),
            ),
            Self::NotConfigured { code, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, code, Value::Null)
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", Value::Null),
        }
    }
}

impl ApiError {
    /// The status and the JSON body this error answers with (500s are logged here).
    pub fn render(&self) -> (StatusCode, ErrorBody) {
        let (status, code, details) = self.parts();
        let message = match self {
            Self::Internal(err) => {
                // The span carries the request id; the body only points at it.
                tracing::error!(error = ?err, "request failed");
                "internal error; quote the x-request-id header when reporting it".to_owned()
            }
            other => other.to_string(),
        };
        (
            status,
            ErrorBody {
                error: ErrorDetail {
                    code: code.to_owned(),
                    message,
                    details,
                },
            },
        )
    }
}

/// PostgreSQL's SQLSTATE for text it cannot store (a NUL character, `\u0000`, in a JSON string).
const PG_CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";

impl ApiError {
    /// A database refusal caused by the client's text is the client's error (422 `invalid_text`),
    /// wherever the query ran; SQLite stores the same text.
    fn reclassified(self) -> Self {
        let Self::Internal(err) = &self else {
            return self;
        };
        let bad_text = err
            .chain()
            .filter_map(|e| e.downcast_ref::<sqlx::Error>())
            .filter_map(|e| e.as_database_error())
            .any(|e| e.code().as_deref() == Some(PG_CHARACTER_NOT_IN_REPERTOIRE));
        if bad_text {
            return Self::invalid(
                "invalid_text",
                "text may not contain the NUL character (\\u0000)",
            );
        }
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let this = self.reclassified();
        let (status, body) = this.render();
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::TooManyRequests { retry_after_s }
        | Self::Locked { retry_after_s, .. }
        | Self::ReadOnly { retry_after_s, .. }
        | Self::Overloaded { retry_after_s }
        | Self::TryLater { retry_after_s, .. } = this
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
