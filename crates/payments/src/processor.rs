//! The processor boundary: the [`PaymentProcessor`] trait, the values it takes and returns,
//! and [`ProcessorError`], one error enum for everything a processor call can end in.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// The future every [`PaymentProcessor`] method returns. Boxed so the trait stays
/// dyn-compatible: Central holds an `Arc<dyn PaymentProcessor>`.
pub type ProcessorFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, ProcessorError>> + Send + 'a>>;

/// A card processor speaking PaymentIntents (Stripe's model).
///
/// Every mutating call takes the processor's own idempotency key: retrying a call with the same
/// key after a [`ProcessorError::Timeout`] or a 5xx is safe and returns the first outcome.
pub trait PaymentProcessor: Send + Sync + 'static {
    /// Creates a PaymentIntent (and, with `confirm`, charges or authorises the card at once).
    fn create_intent(&self, req: CreateIntent) -> ProcessorFuture<'_, Intent>;

    /// Confirms an intent created with `confirm: false`.
    fn confirm_intent<'a>(
        &'a self,
        intent_id: &'a str,
        idempotency_key: &'a str,
    ) -> ProcessorFuture<'a, Intent>;

    /// Captures an authorised (`requires_capture`) intent; `None` captures the full amount.
    fn capture_intent<'a>(
        &'a self,
        intent_id: &'a str,
        amount_minor: Option<i64>,
        idempotency_key: &'a str,
    ) -> ProcessorFuture<'a, Intent>;

    /// Reads an intent's current state (reconciliation after a timeout or a missed webhook).
    fn get_intent<'a>(&'a self, intent_id: &'a str) -> ProcessorFuture<'a, Intent>;

    /// Refunds part or all of a succeeded intent.
    fn refund(&self, req: RefundRequest) -> ProcessorFuture<'_, Refund>;
}

/// When the processor moves the money: at confirmation, or on a later capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMethod {
    /// Authorise only; the intent waits in `requires_capture` for [`PaymentProcessor::capture_intent`].
    Manual,
    /// Capture as soon as the payment is confirmed.
    Automatic,
}

impl CaptureMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Automatic => "automatic",
        }
    }
}

/// The request to create a PaymentIntent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateIntent {
    /// Amount in the currency's minor unit (cents), > 0.
    pub amount_minor: i64,
    /// Lowercase ISO 4217 code, as Stripe wants it: `"eur"`.
    pub currency: String,
    /// Kassa's order id; sent as `metadata[order_id]` and echoed back in webhooks.
    pub order_id: String,
    /// Kassa's payment id; sent as `metadata[payment_id]` and echoed back in webhooks, so an
    /// event names the one payment it settles even before Kassa knows the intent's id.
    pub payment_id: String,
    /// The processor's payment-method token (`pm_card_visa`); never a card number.
    pub payment_method: String,
    /// The processor's idempotency key (Central derives it from its own).
    pub idempotency_key: String,
    pub capture_method: CaptureMethod,
    /// Confirm at creation (one round trip for a card-present sale).
    pub confirm: bool,
}

/// A PaymentIntent's state, as the processor names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Succeeded,
    Canceled,
}

impl IntentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequiresPaymentMethod => "requires_payment_method",
            Self::RequiresConfirmation => "requires_confirmation",
            Self::RequiresAction => "requires_action",
            Self::Processing => "processing",
            Self::RequiresCapture => "requires_capture",
            Self::Succeeded => "succeeded",
            Self::Canceled => "canceled",
        }
    }

    /// Parses the processor's name (`"requires_capture"`); `None` for a status Kassa does not know.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }

    /// True once the intent can no longer change by itself (succeeded or canceled).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Canceled)
    }
}

/// A PaymentIntent as Kassa sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The processor's reference, `pi_…`.
    pub id: String,
    pub status: IntentStatus,
    pub amount_minor: i64,
    /// What was actually captured (0 until captured).
    pub amount_received_minor: i64,
    /// Lowercase ISO 4217 code.
    pub currency: String,
    /// The last payment error's decline code (or code, or message), e.g. `generic_decline`.
    pub last_error: Option<String>,
}

/// A refund request against a succeeded intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub intent_id: String,
    /// Minor units, > 0; the processor rejects more than what is left to refund.
    pub amount_minor: i64,
    pub idempotency_key: String,
}

/// A refund's state, as the processor names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
}

/// A refund as Kassa sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The processor's reference, `re_…`.
    pub id: String,
    pub status: RefundStatus,
    pub amount_minor: i64,
}

/// Everything a processor call can end in, other than success.
///
/// [`Timeout`](Self::Timeout), [`Server`](Self::Server) and [`Transport`](Self::Transport) leave
/// the outcome unknown: the processor may have acted. Retry with the same idempotency key, or
/// read the intent back with [`PaymentProcessor::get_intent`]; never retry with a new key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorError {
    /// The card was declined (HTTP 402, `card_error`). `code` is the decline code when the
    /// processor gives one (`generic_decline`, `insufficient_funds`), else the error code.
    #[error("card declined ({code}): {message}")]
    Declined { code: String, message: String },
    /// No answer within the configured timeout. The outcome is unknown.
    #[error("the payment processor did not answer in time")]
    Timeout,
    /// The processor failed (HTTP 5xx). The outcome is unknown.
    #[error("the payment processor failed with HTTP {status}: {message}")]
    Server { status: u16, message: String },
    /// The processor refused the request (any other 4xx): bad parameters, an idempotency-key
    /// reuse with different parameters, a refund above what was paid, a wrong API key…
    /// `code` is the error's code, else its type (`idempotency_error`).
    #[error("the payment processor rejected the request (HTTP {status}, {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// The request could not be sent or the answer could not be read. The outcome is unknown.
    #[error("payment processor transport error: {0}")]
    Transport(String),
}

impl ProcessorError {
    /// True when the processor may have acted although the call failed: the caller must retry
    /// with the same idempotency key or reconcile, not give up or start over.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::Server { .. } | Self::Transport(_)
        )
    }

    /// True when a retry with the same idempotency key may succeed: an unknown outcome, or a
    /// 409 (a concurrent request with the same key) or 429 (rate limited) rejection.
    pub fn is_retryable(&self) -> bool {
        self.outcome_unknown()
            || matches!(self, Self::Rejected { status, .. } if *status == 409 || *status == 429)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_status_round_trips_through_its_wire_name() {
        for status in [
            IntentStatus::RequiresPaymentMethod,
            IntentStatus::RequiresConfirmation,
            IntentStatus::RequiresAction,
            IntentStatus::Processing,
            IntentStatus::RequiresCapture,
            IntentStatus::Succeeded,
            IntentStatus::Canceled,
        ] {
            assert_eq!(IntentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(IntentStatus::parse("exploded"), None);
    }

    #[test]
    fn only_unknown_outcomes_and_conflicts_are_retryable() {
        assert!(ProcessorError::Timeout.is_retryable());
        assert!(ProcessorError::Server {
            status: 503,
            message: String::new()
        }
        .is_retryable());
        let declined = ProcessorError::Declined {
            code: "generic_decline".into(),
            message: String::new(),
        };
        assert!(!declined.is_retryable());
        let rejected = ProcessorError::Rejected {
            status: 400,
            code: "amount_too_large".into(),
            message: String::new(),
        };
        assert!(!rejected.is_retryable());
    }
}
