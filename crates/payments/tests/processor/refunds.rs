//! Refunds: partial ones add up, never beyond what was paid.

use kassa_payments::{
    CaptureMethod, CreateIntent, PaymentProcessor, ProcessorError, RefundRequest, RefundStatus,
};

use crate::helpers::{sale, TestSim};

fn refund(intent_id: &str, amount_minor: i64, key: &str) -> RefundRequest {
    RefundRequest {
        intent_id: intent_id.into(),
        amount_minor,
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn partial_refunds_add_up_to_the_amount_paid_and_no_further() {
    let app = TestSim::start().await;
    let intent = app
        .processor
        .create_intent(sale("pm_card_visa", "order-r1"))
        .await
        .expect("paid");

    let first = app
        .processor
        .refund(refund(&intent.id, 500, "r1-a"))
        .await
        .expect("first refund");
    assert!(first.id.starts_with("re_"), "{}", first.id);
    assert_eq!(first.status, RefundStatus::Succeeded);
    assert_eq!(first.amount_minor, 500);

    let replay = app
        .processor
        .refund(refund(&intent.id, 500, "r1-a"))
        .await
        .expect("replayed");
    assert_eq!(replay, first, "one key, one refund");

    let too_much = app
        .processor
        .refund(refund(&intent.id, 751, "r1-b"))
        .await
        .expect_err("above what is left");
    assert!(
        matches!(&too_much, ProcessorError::Rejected { status: 400, code, .. } if code == "amount_too_large"),
        "{too_much:?}"
    );

    let rest = app
        .processor
        .refund(refund(&intent.id, 750, "r1-b"))
        .await
        .expect("the rest, with the key corrected after a refusal");
    assert_eq!(rest.amount_minor, 750);

    let none_left = app
        .processor
        .refund(refund(&intent.id, 1, "r1-c"))
        .await
        .expect_err("fully refunded");
    assert!(
        matches!(&none_left, ProcessorError::Rejected { status: 400, code, .. } if code == "charge_already_refunded"),
        "{none_left:?}"
    );
}

#[tokio::test]
async fn a_refund_counts_what_was_captured_not_what_was_authorised() {
    let app = TestSim::start().await;
    let intent = app
        .processor
        .create_intent(CreateIntent {
            capture_method: CaptureMethod::Manual,
            ..sale("pm_card_visa", "order-r2")
        })
        .await
        .expect("authorised");
    let before = app
        .processor
        .refund(refund(&intent.id, 100, "r2-early"))
        .await
        .expect_err("nothing captured yet");
    assert!(
        matches!(&before, ProcessorError::Rejected { code, .. } if code == "payment_intent_unexpected_state"),
        "{before:?}"
    );
    app.processor
        .capture_intent(&intent.id, Some(800), "r2-cap")
        .await
        .expect("captured");
    let err = app
        .processor
        .refund(refund(&intent.id, 801, "r2-a"))
        .await
        .expect_err("above the capture");
    assert!(matches!(err, ProcessorError::Rejected { status: 400, .. }));
    app.processor
        .refund(refund(&intent.id, 800, "r2-b"))
        .await
        .expect("all of the capture");
}
