//! `StripeProcessor` against the processor simulator, in process: intents, failures, refunds
//! and webhook delivery, each test with its own simulator on a free port.

mod failures;
mod helpers;
mod intents;
mod refunds;
mod webhooks;
