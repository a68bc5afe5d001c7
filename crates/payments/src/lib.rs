//! Kassa's side of card payments: the [`PaymentProcessor`] trait Central talks to, a
//! Stripe-compatible adapter ([`StripeProcessor`]) and webhook signature checks ([`webhook`]).
//!
//! No card number ever passes through here: Kassa only handles the processor's tokens
//! (`pm_…`) and references (`pi_…`, `re_…`).

mod processor;
mod secret;
mod stripe;
pub mod webhook;

pub use processor::{
    CaptureMethod, CreateIntent, Intent, IntentStatus, PaymentProcessor, ProcessorError,
    ProcessorFuture, Refund, RefundRequest, RefundStatus,
};
pub use secret::SecretString;
pub use stripe::{StripeProcessor, PROCESSOR_DURATION, PROCESSOR_ERRORS};
pub use webhook::{
    sign_payload, verify_signature, IntentEventData, RefundEventData, SignatureError, WebhookData,
    WebhookError, WebhookEvent,
};
