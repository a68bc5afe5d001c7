//! Creating, confirming, capturing and reading intents; idempotency and auth.

use std::time::Duration;

use kassa_payments::{CaptureMethod, CreateIntent, IntentStatus, PaymentProcessor, ProcessorError};

use crate::helpers::{sale, TestSim};

#[tokio::test]
async fn a_visa_sale_with_automatic_capture_succeeds_at_once() {
    let app = TestSim::start().await;
    let intent = app
        .processor
        .create_intent(sale("pm_card_visa", "order-1"))
        .await
        .expect("approved");
    assert!(intent.id.starts_with("pi_"), "{}", intent.id);
    assert_eq!(intent.status, IntentStatus::Succeeded);
    assert_eq!(intent.amount_minor, 1250);
    assert_eq!(intent.amount_received_minor, 1250);
    assert_eq!(intent.currency, "eur");
    assert_eq!(intent.last_error, None);
    let read = app.processor.get_intent(&intent.id).await.expect("read");
    assert_eq!(read, intent);
}

#[tokio::test]
async fn the_processor_works_behind_a_dyn_trait_object() {
    let app = TestSim::start().await;
    let processor: std::sync::Arc<dyn PaymentProcessor> =
        std::sync::Arc::new(app.processor.clone());
    let intent = processor
        .create_intent(sale("pm_card_mastercard", "order-dyn"))
        .await
        .expect("approved");
    assert_eq!(intent.status, IntentStatus::Succeeded);
}

#[tokio::test]
async fn one_idempotency_key_creates_one_intent() {
    let app = TestSim::start().await;
    let first = app
        .processor
        .create_intent(sale("pm_card_visa", "order-2"))
        .await
        .expect("first");
    let second = app
        .processor
        .create_intent(sale("pm_card_visa", "order-2"))
        .await
        .expect("replay");
    assert_eq!(first, second);
    let other = app
        .processor
        .create_intent(CreateIntent {
            idempotency_key: "another-key".into(),
            ..sale("pm_card_visa", "order-2")
        })
        .await
        .expect("another intent");
    assert_ne!(other.id, first.id);
}

#[tokio::test]
async fn one_idempotency_key_with_other_parameters_is_rejected() {
    let app = TestSim::start().await;
    app.processor
        .create_intent(sale("pm_card_visa", "order-3"))
        .await
        .expect("first");
    let err = app
        .processor
        .create_intent(CreateIntent {
            amount_minor: 999,
            ..sale("pm_card_visa", "order-3")
        })
        .await
        .expect_err("a reused key");
    assert!(
        matches!(&err, ProcessorError::Rejected { status: 400, code, .. } if code == "idempotency_error"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_manual_capture_waits_for_capture_then_succeeds_for_the_captured_amount() {
    let app = TestSim::start().await;
    let intent = app
        .processor
        .create_intent(CreateIntent {
            capture_method: CaptureMethod::Manual,
            ..sale("pm_card_visa", "order-4")
        })
        .await
        .expect("authorised");
    assert_eq!(intent.status, IntentStatus::RequiresCapture);
    assert_eq!(intent.amount_received_minor, 0);

    let too_much = app
        .processor
        .capture_intent(&intent.id, Some(5000), "cap-4-too-much")
        .await
        .expect_err("above the authorisation");
    assert!(
        matches!(&too_much, ProcessorError::Rejected { status: 400, code, .. } if code == "amount_too_large"),
        "{too_much:?}"
    );

    let captured = app
        .processor
        .capture_intent(&intent.id, Some(1000), "cap-4")
        .await
        .expect("captured");
    assert_eq!(captured.status, IntentStatus::Succeeded);
    assert_eq!(captured.amount_received_minor, 1000);

    let replay = app
        .processor
        .capture_intent(&intent.id, Some(1000), "cap-4")
        .await
        .expect("replayed");
    assert_eq!(replay, captured);
    let again = app
        .processor
        .capture_intent(&intent.id, None, "cap-4-again")
        .await
        .expect_err("already captured");
    assert!(
        matches!(&again, ProcessorError::Rejected { code, .. } if code == "payment_intent_unexpected_state"),
        "{again:?}"
    );
}

#[tokio::test]
async fn an_unconfirmed_intent_is_charged_by_confirm() {
    let app = TestSim::start().await;
    let intent = app
        .processor
        .create_intent(CreateIntent {
            confirm: false,
            ..sale("pm_card_visa", "order-5")
        })
        .await
        .expect("created");
    assert_eq!(intent.status, IntentStatus::RequiresConfirmation);
    let confirmed = app
        .processor
        .confirm_intent(&intent.id, "confirm-5")
        .await
        .expect("confirmed");
    assert_eq!(confirmed.status, IntentStatus::Succeeded);
    assert_eq!(confirmed.amount_received_minor, 1250);
}

#[tokio::test]
async fn an_unknown_intent_is_a_404_rejection() {
    let app = TestSim::start().await;
    let err = app
        .processor
        .get_intent("pi_does_not_exist")
        .await
        .expect_err("missing");
    assert!(
        matches!(&err, ProcessorError::Rejected { status: 404, code, .. } if code == "resource_missing"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_rejected_with_401() {
    let app = TestSim::start().await;
    let err = app
        .client("sk_test_wrong", Duration::from_secs(5))
        .create_intent(sale("pm_card_visa", "order-6"))
        .await
        .expect_err("unauthorised");
    assert!(
        matches!(err, ProcessorError::Rejected { status: 401, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_card_number_is_refused_and_never_stored() {
    let app = TestSim::start().await;
    let err = app
        .processor
        .create_intent(sale("4242424242424242", "order-7"))
        .await
        .expect_err("a PAN");
    match err {
        ProcessorError::Rejected {
            status: 400,
            code,
            message,
        } => {
            assert_eq!(code, "card_number_not_allowed");
            assert!(!message.contains("4242"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}
