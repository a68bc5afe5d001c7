//! Declines, timeouts, processor errors and an unreachable processor, as Central sees them.

use std::time::{Duration, Instant};

use kassa_payments::{
    IntentStatus, PaymentProcessor, ProcessorError, SecretString, StripeProcessor,
};

use crate::helpers::{sale, TestSim, API_KEY};

#[tokio::test]
async fn a_declined_card_is_declined_with_its_decline_code() {
    let app = TestSim::start().await;
    let err = app
        .processor
        .create_intent(sale("pm_card_chargeDeclined", "order-d1"))
        .await
        .expect_err("declined");
    assert_eq!(
        err,
        ProcessorError::Declined {
            code: "generic_decline".into(),
            message: "Your card was declined.".into()
        }
    );
    assert!(!err.outcome_unknown());
}

#[tokio::test]
async fn a_declined_intent_keeps_its_decline_as_last_error() {
    let app = TestSim::start().await;
    let _ = app
        .processor
        .create_intent(sale("pm_card_chargeDeclinedInsufficientFunds", "order-d2"))
        .await
        .expect_err("declined");
    let intent_id = first_intent_id(&app);
    let intent = app.processor.get_intent(&intent_id).await.expect("read");
    assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(intent.last_error.as_deref(), Some("insufficient_funds"));
    assert_eq!(intent.amount_received_minor, 0);
}

/// The intent id of the first event the simulator emitted.
fn first_intent_id(app: &TestSim) -> String {
    let events = app.sim.emitted_events();
    events[0]
        .payment_intent()
        .expect("an intent event")
        .intent_id
}

#[tokio::test]
async fn a_slow_processor_is_a_timeout_and_the_same_key_then_finds_the_approved_intent() {
    let app = TestSim::start().await;
    let impatient = app.client(API_KEY, Duration::from_millis(300));
    let started = Instant::now();
    let err = impatient
        .create_intent(sale("pm_sim_timeout", "order-t1"))
        .await
        .expect_err("timed out");
    assert_eq!(err, ProcessorError::Timeout);
    assert!(err.outcome_unknown());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the client timeout holds"
    );

    // The processor approved it anyway; retrying with the same key replays that at once.
    let intent = app
        .processor
        .create_intent(sale("pm_sim_timeout", "order-t1"))
        .await
        .expect("replayed");
    assert_eq!(intent.status, IntentStatus::Succeeded);
    assert_eq!(
        app.sim.emitted_events().len(),
        2,
        "created and succeeded, once"
    );
}

#[tokio::test]
async fn a_processor_500_is_a_server_error_with_an_unknown_outcome() {
    let app = TestSim::start().await;
    let err = app
        .processor
        .create_intent(sale("pm_sim_error500", "order-e1"))
        .await
        .expect_err("500");
    assert!(
        matches!(err, ProcessorError::Server { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.outcome_unknown());
    assert!(app.sim.emitted_events().is_empty(), "nothing happened");
}

#[tokio::test]
async fn an_unreachable_processor_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let processor = StripeProcessor::new(
        &format!("http://{addr}"),
        SecretString::new(API_KEY),
        Duration::from_secs(2),
    )
    .expect("client");
    let err = processor
        .get_intent("pi_x")
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, ProcessorError::Transport(_)), "{err:?}");
}

#[tokio::test]
async fn an_unknown_payment_method_is_rejected() {
    let app = TestSim::start().await;
    let err = app
        .processor
        .create_intent(sale("pm_card_unheard_of", "order-u1"))
        .await
        .expect_err("unknown token");
    assert!(
        matches!(&err, ProcessorError::Rejected { status: 400, code, .. } if code == "resource_missing"),
        "{err:?}"
    );
}
