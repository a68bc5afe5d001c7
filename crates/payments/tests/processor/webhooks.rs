//! Webhook delivery: signed, retried, and late, doubled or out of order when asked.

use std::time::{Duration, Instant};

use kassa_payments::{IntentStatus, PaymentProcessor, RefundRequest};

use crate::helpers::{sale, wait_until, Receiver, TestSim, WEBHOOK_SECRET};

async fn app_with_receiver() -> (TestSim, Receiver) {
    let app = TestSim::start().await;
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    app.sim.set_webhook_url(Some(receiver.url.clone()));
    (app, receiver)
}

#[tokio::test]
async fn a_sale_sends_created_then_succeeded_signed_with_the_order_id() {
    let (app, receiver) = app_with_receiver().await;
    let intent = app
        .processor
        .create_intent(sale("pm_card_visa", "order-w1"))
        .await
        .expect("paid");
    let events = receiver.wait_for_events(2).await;
    assert_eq!(
        receiver.event_types(),
        ["payment_intent.created", "payment_intent.succeeded"]
    );
    assert!(events.iter().all(|e| e.id.starts_with("evt_")));
    assert_ne!(events[0].id, events[1].id);
    let succeeded = events[1].payment_intent().expect("intent data");
    assert_eq!(succeeded.intent_id, intent.id);
    assert_eq!(succeeded.status, IntentStatus::Succeeded);
    assert_eq!(succeeded.order_id.as_deref(), Some("order-w1"));
    assert_eq!(succeeded.amount_received_minor, 1250);
    assert_eq!(app.sim.delivered_events(), events);
}

#[tokio::test]
async fn twice_delivers_each_event_twice_with_the_same_id() {
    let (app, receiver) = app_with_receiver().await;
    app.processor
        .create_intent(sale("pm_card_visa__twice", "order-w2"))
        .await
        .expect("paid");
    let events = receiver.wait_for_events(4).await;
    let ids: Vec<_> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[2], ids[3]);
    assert_ne!(ids[0], ids[2]);
}

#[tokio::test]
async fn out_of_order_delivers_succeeded_before_created() {
    let (app, receiver) = app_with_receiver().await;
    let mut request = sale("pm_card_visa", "order-w3");
    request.payment_method = "pm_card_visa__out_of_order".into();
    app.processor.create_intent(request).await.expect("paid");
    receiver.wait_for_events(2).await;
    assert_eq!(
        receiver.event_types(),
        ["payment_intent.succeeded", "payment_intent.created"]
    );
    let created = receiver.events()[1].payment_intent().expect("intent data");
    assert_eq!(
        created.status,
        IntentStatus::RequiresConfirmation,
        "a stale snapshot"
    );
}

#[tokio::test]
async fn late_delivers_after_the_delay() {
    let (app, receiver) = app_with_receiver().await;
    let started = Instant::now();
    let intent = app
        .processor
        .create_intent(sale("pm_card_visa__late", "order-w4"))
        .await
        .expect("paid");
    assert_eq!(
        intent.status,
        IntentStatus::Succeeded,
        "the answer is not late"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(receiver.events().is_empty(), "nothing before the delay");
    let done = wait_until(Duration::from_secs(5), || receiver.events().len() == 2).await;
    assert!(done, "both events after the delay");
    assert!(started.elapsed() >= Duration::from_millis(2000));
}

#[tokio::test]
async fn a_processing_card_succeeds_after_the_processing_delay_and_sends_succeeded_then() {
    let (app, receiver) = app_with_receiver().await;
    app.sim.set_processing_delay(Duration::from_millis(600));
    let started = Instant::now();
    let intent = app
        .processor
        .create_intent(sale("pm_sim_processing", "order-w11"))
        .await
        .expect("accepted");
    assert_eq!(intent.status, IntentStatus::Processing);
    assert_eq!(intent.amount_received_minor, 0);
    assert_eq!(receiver.wait_for_events(1).await.len(), 1);
    assert_eq!(receiver.event_types(), ["payment_intent.created"]);
    let read = app.processor.get_intent(&intent.id).await.expect("read");
    assert_eq!(read.status, IntentStatus::Processing, "still processing");

    let events = receiver.wait_for_events(2).await;
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(
        receiver.event_types(),
        ["payment_intent.created", "payment_intent.succeeded"]
    );
    let succeeded = events[1].payment_intent().expect("intent data");
    assert_eq!(succeeded.intent_id, intent.id);
    assert_eq!(succeeded.order_id.as_deref(), Some("order-w11"));
    assert_eq!(succeeded.amount_received_minor, 1250);
    let read = app.processor.get_intent(&intent.id).await.expect("read");
    assert_eq!(read.status, IntentStatus::Succeeded);
    // A retry with the same key replays the first answer and charges nothing more.
    let again = app
        .processor
        .create_intent(sale("pm_sim_processing", "order-w11"))
        .await
        .expect("replayed");
    assert_eq!(again.id, intent.id);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.events().len(), 2, "succeeded once");
}

#[tokio::test]
async fn a_processing_card_takes_its_delay_from_metadata_and_its_webhook_mode_from_the_token() {
    let app = TestSim::start().await;
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    app.sim.set_webhook_url(Some(receiver.url.clone()));
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/v1/payment_intents", app.sim.base_url))
        .bearer_auth(crate::helpers::API_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("amount=300&currency=eur&payment_method=pm_sim_processing__twice&confirm=true&metadata[order_id]=o-12&metadata[sim_delay_ms]=200")
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), 200);
    let body: serde_json::Value = created.json().await.expect("json");
    assert_eq!(body["status"], "processing");
    // The simulator's own delay (2 s) is not used: the request asked for 200 ms.
    let events = tokio::time::timeout(Duration::from_millis(1500), receiver.wait_for_events(4))
        .await
        .expect("in time");
    let succeeded: Vec<_> = events
        .iter()
        .filter(|e| e.r#type == "payment_intent.succeeded")
        .collect();
    assert_eq!(succeeded.len(), 2, "twice, with one id");
    assert_eq!(succeeded[0].id, succeeded[1].id);
}

#[tokio::test]
async fn none_delivers_nothing_but_the_events_exist() {
    let (app, receiver) = app_with_receiver().await;
    app.processor
        .create_intent(sale("pm_card_visa__none", "order-w5"))
        .await
        .expect("paid");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.events().is_empty());
    assert_eq!(app.sim.emitted_events().len(), 2);
    assert!(app.sim.delivery_attempts().is_empty());
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_again() {
    let (app, receiver) = app_with_receiver().await;
    receiver.fail_next(2);
    let mut request = sale("pm_card_visa", "order-w6");
    request.confirm = false;
    app.processor.create_intent(request).await.expect("created");
    let events = receiver.wait_for_events(1).await;
    assert_eq!(events[0].r#type, "payment_intent.created");
    // The simulator records an attempt once it has read the answer, just after the receiver
    // kept the event: wait for the third.
    wait_until(Duration::from_secs(5), || {
        app.sim.delivery_attempts().len() >= 3
    })
    .await;
    let attempts = app.sim.delivery_attempts();
    let statuses: Vec<_> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
    assert!(attempts.iter().all(|a| a.event_id == events[0].id));
}

#[tokio::test]
async fn a_receiver_with_another_secret_refuses_every_attempt() {
    let app = TestSim::start().await;
    let receiver = Receiver::start(b"whsec_not_the_one").await;
    app.sim.set_webhook_url(Some(receiver.url.clone()));
    let mut request = sale("pm_card_visa", "order-w7");
    request.confirm = false;
    app.processor.create_intent(request).await.expect("created");
    let all_tried = wait_until(Duration::from_secs(5), || {
        app.sim.delivery_attempts().len() == kassa_processor_sim::DELIVERY_ATTEMPTS_MAX as usize
    })
    .await;
    assert!(all_tried, "{:?}", app.sim.delivery_attempts());
    assert_eq!(
        receiver.refused(),
        kassa_processor_sim::DELIVERY_ATTEMPTS_MAX
    );
    assert!(app.sim.delivered_events().is_empty());
}

#[tokio::test]
async fn a_decline_sends_payment_failed() {
    let (app, receiver) = app_with_receiver().await;
    let _ = app
        .processor
        .create_intent(sale("pm_card_chargeDeclined", "order-w8"))
        .await
        .expect_err("declined");
    receiver.wait_for_events(2).await;
    assert_eq!(
        receiver.event_types(),
        ["payment_intent.created", "payment_intent.payment_failed"]
    );
    let failed = receiver.events()[1].payment_intent().expect("intent data");
    assert_eq!(failed.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(failed.order_id.as_deref(), Some("order-w8"));
}

#[tokio::test]
async fn a_refund_sends_charge_refunded_with_the_total_refunded() {
    let (app, receiver) = app_with_receiver().await;
    let intent = app
        .processor
        .create_intent(sale("pm_card_visa", "order-w9"))
        .await
        .expect("paid");
    receiver.wait_for_events(2).await;
    for (amount_minor, key) in [(200, "w9-a"), (300, "w9-b")] {
        app.processor
            .refund(RefundRequest {
                intent_id: intent.id.clone(),
                amount_minor,
                idempotency_key: key.into(),
            })
            .await
            .expect("refunded");
    }
    let events = receiver.wait_for_events(4).await;
    let refunded: Vec<_> = events[2..]
        .iter()
        .map(|e| {
            assert_eq!(e.r#type, "charge.refunded");
            e.charge_refund().expect("charge data")
        })
        .collect();
    let mut totals: Vec<_> = refunded.iter().map(|r| r.amount_refunded_minor).collect();
    totals.sort_unstable();
    assert_eq!(totals, [200, 500]);
    assert!(refunded.iter().all(|r| r.intent_id == intent.id));
    assert!(refunded
        .iter()
        .all(|r| r.order_id.as_deref() == Some("order-w9")));
}

#[tokio::test]
async fn the_webhook_mode_can_come_from_metadata_on_a_changed_url() {
    // Central cannot set metadata beyond order_id, so this drives the simulator directly.
    let app = TestSim::start().await;
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/v1/payment_intents", app.sim.base_url))
        .bearer_auth(crate::helpers::API_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("amount=300&currency=eur&payment_method=pm_card_visa&confirm=true&metadata[order_id]=o-10&metadata[sim_webhook]=late&metadata[sim_delay_ms]=400")
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), 200);
    // The URL is read at delivery time: set after the request, before the delay ends.
    app.sim.set_webhook_url(Some(receiver.url.clone()));
    let events = receiver.wait_for_events(2).await;
    assert_eq!(events.len(), 2);
}
