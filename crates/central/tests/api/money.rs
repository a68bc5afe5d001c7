//! Money never goes astray (issue 10): refused refunds stay refused, transient processor errors
//! leave payments and refunds pending until the retry or the reconciler settles them, refunds
//! split over several card payments (never touching an orphan), no cancelled order holds money,
//! zero-total sales, one order per client-chosen id, late successes (attached, or refunded as
//! orphans when the order can no longer take them), idempotency claims that only their owner
//! completes, and payments, cancels, syncs and the sweeper on the same SKUs without a deadlock.

use std::time::Duration;

use kassa_central::payments::reconcile;
use kassa_central::store;
use kassa_central::Config;
use kassa_domain::api::{Order, Payment, PaymentStatus, Refund};
use kassa_domain::{OrderStatus, Role};
use kassa_payments::{PaymentProcessor, RefundRequest};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::catalog::{create, ean, product_body};
use crate::checkout::{assert_ledger_balanced, count, order, receive, seed, stock};
use crate::helpers::{error_body, TestApp, WEBHOOK_SECRET};
use crate::payments::{
    card, eventually, get_order, intent_event, money, pay, post_webhook, refund, refund_storm,
    reserved_order, signed,
};
use crate::sync::{offline_order, register_session, sign_in_at, sync};
use crate::till_retries::events_of;
use crate::{story, story_with};

story!(
    a_refund_the_processor_refused_is_refused_again_on_retry,
    a_refund_draws_on_each_card_payment_within_what_it_holds,
    concurrent_refunds_over_two_card_payments_never_exceed_either,
    a_payment_already_given_back_as_an_orphan_is_not_refunded_again,
    cancelling_a_partly_paid_order_gives_the_money_back,
    an_order_with_a_card_payment_in_flight_cannot_be_cancelled,
    a_zero_total_sale_is_paid_with_nothing,
    concurrent_orders_with_one_client_chosen_id_give_one_201_and_409s,
    a_success_after_kassa_recorded_a_failure_is_attached_not_dropped,
    a_claim_taken_over_cannot_be_completed_or_released_by_its_old_owner,
    a_zero_total_offline_sale_is_accepted,
    concurrent_sync_groups_checkouts_and_cancels_never_deadlock,
    a_retry_by_another_cashier_at_the_same_till_is_the_same_request,
    the_owner_cancelling_a_partly_paid_order_gets_the_card_part_back,
    a_late_success_for_an_order_paid_another_way_is_refunded_as_an_orphan,
    a_late_success_for_a_cancelled_order_is_refunded_as_an_orphan,
);
story_with!(
    reconcile_at_once: a_rate_limited_refund_stays_pending_until_the_reconciler_settles_it,
    a_refund_pending_then_refused_gives_its_amount_back,
    a_rate_limited_card_payment_stays_pending_and_its_retry_pays,
    a_timed_out_card_payment_is_settled_by_the_reconciler,
    the_reconciler_runs_at_start_up_and_then_on_its_schedule,
);
story_with!(reconcile_and_give_up_at_once: a_card_payment_never_answered_is_given_up_and_another_card_pays);
story_with!(short_reservations: an_expired_order_gives_back_its_card_money_but_waits_for_a_payment_in_flight);
story_with!(reservations_of_half_a_second: payments_cancels_syncs_and_the_sweeper_on_the_same_skus_never_deadlock);

fn reconcile_at_once(c: &mut Config) {
    c.reconcile_after = Duration::ZERO;
    c.processor_timeout = Duration::from_millis(600);
}

fn reconcile_and_give_up_at_once(c: &mut Config) {
    reconcile_at_once(c);
    c.card_pending_give_up = Duration::ZERO;
}

fn short_reservations(c: &mut Config) {
    c.reservation_ttl = Duration::from_millis(300);
}

fn reservations_of_half_a_second(c: &mut Config) {
    c.reservation_ttl = Duration::from_millis(500);
}

/// A client of the simulator, to act at the processor as a shop's dashboard would.
fn dashboard(app: &TestApp) -> kassa_payments::StripeProcessor {
    kassa_payments::StripeProcessor::new(
        &app.sim.as_ref().unwrap().base_url,
        kassa_payments::SecretString::new("sk_test_kassa"),
        Duration::from_secs(5),
    )
    .unwrap()
}

/// What the processor has given back from `intent` so far (minor units).
fn refunded_at_processor(app: &TestApp, intent: &str) -> i64 {
    app.sim
        .as_ref()
        .unwrap()
        .emitted_events()
        .iter()
        .filter(|e| e.r#type == "charge.refunded" && e.data.object["payment_intent"] == intent)
        .map(|e| e.data.object["amount_refunded"].as_i64().unwrap())
        .max()
        .unwrap_or(0)
}

async fn card_paid(app: &TestApp, token: &str, id: Uuid, amount: &str) -> Payment {
    let response = pay(
        app,
        token,
        id,
        &Uuid::new_v4().to_string(),
        &card(amount, "pm_card_visa"),
    )
    .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn refunds_of(app: &TestApp, token: &str, id: Uuid) -> Vec<Refund> {
    app.get(&format!("/v1/orders/{id}/refunds"), token)
        .await
        .json()
        .await
        .unwrap()
}

fn amount(a: &str) -> Value {
    json!({ "amount": money(a), "reason": "goodwill" })
}

async fn a_refund_the_processor_refused_is_refused_again_on_retry(app: TestApp) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 2).await;
    let intent = card_paid(&app, customer.token(), o.id, "5.00")
        .await
        .processor_ref
        .unwrap();
    // Given back at the processor by other means: the processor refuses Central's refund.
    dashboard(&app)
        .refund(RefundRequest {
            intent_id: intent.clone(),
            amount_minor: 500,
            idempotency_key: "dashboard-1".into(),
        })
        .await
        .unwrap();
    for _ in 0..2 {
        error_body(
            refund(&app, &manager, o.id, "rr-1", &amount("5.00")).await,
            422,
            "refund_rejected",
        )
        .await;
    }
    let after = get_order(&app, &manager, o.id).await;
    assert_eq!(
        (after.status, after.refunded.to_string()),
        (OrderStatus::Paid, "0.00 EUR".into())
    );
    let refunds = refunds_of(&app, &manager, o.id).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].status, PaymentStatus::Failed);
}

async fn a_rate_limited_refund_stays_pending_until_the_reconciler_settles_it(app: TestApp) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 2).await;
    let intent = card_paid(&app, customer.token(), o.id, "5.00")
        .await
        .processor_ref
        .unwrap();
    let sim = app.sim.as_ref().unwrap();
    sim.fail_next_posts(&[429]);
    error_body(
        refund(&app, &manager, o.id, "tr-1", &amount("5.00")).await,
        502,
        "processor_unavailable",
    )
    .await;
    let mid = get_order(&app, &manager, o.id).await;
    assert_eq!(mid.status, OrderStatus::Paid, "not REFUNDED while pending");
    assert_eq!(
        mid.refunded.to_string(),
        "5.00 EUR",
        "counted while pending"
    );
    assert_eq!(
        refunds_of(&app, &manager, o.id).await[0].status,
        PaymentStatus::Pending
    );
    error_body(
        refund(&app, &manager, o.id, "tr-2", &amount("0.01")).await,
        422,
        "refund_exceeds_paid",
    )
    .await;
    sim.fail_next_posts(&[503, 409]);
    let first = reconcile::run_once(&app.state).await.unwrap();
    let second = reconcile::run_once(&app.state).await.unwrap();
    assert_eq!((first.refunds_settled, second.refunds_settled), (0, 0));
    let third = reconcile::run_once(&app.state).await.unwrap();
    assert_eq!(third.refunds_settled, 1);
    let after = get_order(&app, &manager, o.id).await;
    assert_eq!(after.status, OrderStatus::Refunded);
    assert_eq!(refunded_at_processor(&app, &intent), 500);
    let replay = refund(&app, &manager, o.id, "tr-1", &amount("5.00")).await;
    assert_eq!(replay.status(), 201);
    let r: Refund = replay.json().await.unwrap();
    assert_eq!(r.status, PaymentStatus::Succeeded);
    assert_eq!(refunded_at_processor(&app, &intent), 500, "given back once");
}

async fn a_refund_pending_then_refused_gives_its_amount_back(app: TestApp) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 2).await;
    let intent = card_paid(&app, customer.token(), o.id, "5.00")
        .await
        .processor_ref
        .unwrap();
    app.sim.as_ref().unwrap().fail_next_posts(&[500]);
    error_body(
        refund(&app, &manager, o.id, "pr-1", &amount("3.00")).await,
        502,
        "processor_unavailable",
    )
    .await;
    dashboard(&app)
        .refund(RefundRequest {
            intent_id: intent,
            amount_minor: 500,
            idempotency_key: "dashboard-2".into(),
        })
        .await
        .unwrap();
    let done = reconcile::run_once(&app.state).await.unwrap();
    assert_eq!(done.refunds_settled, 1);
    let after = get_order(&app, &manager, o.id).await;
    assert_eq!(
        (after.status, after.refunded.to_string()),
        (OrderStatus::Paid, "0.00 EUR".into())
    );
    assert_eq!(
        refunds_of(&app, &manager, o.id).await[0].status,
        PaymentStatus::Failed
    );
    error_body(
        refund(&app, &manager, o.id, "pr-1", &amount("3.00")).await,
        422,
        "refund_rejected",
    )
    .await;
}

/// A 5.00 order paid by two cards of 2.50: (intent a, intent b).
async fn paid_by_two_cards(app: &TestApp, customer: &str) -> (Order, String, String) {
    let o = reserved_order(app, customer, 2).await;
    let a = card_paid(app, customer, o.id, "2.50").await;
    let b = card_paid(app, customer, o.id, "2.50").await;
    assert_eq!(b.order_status, OrderStatus::Paid);
    (o, a.processor_ref.unwrap(), b.processor_ref.unwrap())
}

async fn a_refund_draws_on_each_card_payment_within_what_it_holds(app: TestApp) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let (o, a, b) = paid_by_two_cards(&app, customer.token()).await;
    let first: Refund = refund(&app, &manager, o.id, "s-1", &amount("3.00"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first.card.to_string(), "3.00 EUR");
    assert_eq!(
        (
            refunded_at_processor(&app, &a),
            refunded_at_processor(&app, &b)
        ),
        (250, 50)
    );
    // The retry is the same split, not a new one.
    let replay = refund(&app, &manager, o.id, "s-1", &amount("3.00")).await;
    assert_eq!(replay.status(), 201);
    let last: Refund = refund(&app, &manager, o.id, "s-2", &amount("2.00"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(last.order_status, OrderStatus::Refunded);
    assert_eq!(
        (
            refunded_at_processor(&app, &a),
            refunded_at_processor(&app, &b)
        ),
        (250, 250)
    );
}

async fn concurrent_refunds_over_two_card_payments_never_exceed_either(app: TestApp) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let (o, a, b) = paid_by_two_cards(&app, customer.token()).await;
    let statuses = refund_storm(&app, &manager, o.id, 8, &amount("1.00")).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        5,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [201, 409, 422].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(
        (
            refunded_at_processor(&app, &a),
            refunded_at_processor(&app, &b)
        ),
        (250, 250)
    );
    let after = get_order(&app, &manager, o.id).await;
    assert_eq!(after.status, OrderStatus::Refunded);
}

async fn a_payment_already_given_back_as_an_orphan_is_not_refunded_again(app: TestApp) {
    let manager = seed(&app, 10).await;
    let cashier = app.user(Role::Cashier).await;
    let sim = app.sim.as_ref().unwrap();
    sim.set_processing_delay(Duration::from_millis(300));
    let o = reserved_order(&app, cashier.token(), 2).await;
    let slow = pay(
        &app,
        cashier.token(),
        o.id,
        "slow-card",
        &card("5.00", "pm_sim_processing"),
    )
    .await;
    assert_eq!(slow.status(), 202);
    let intent = slow.json::<Payment>().await.unwrap().processor_ref.unwrap();
    // The customer pays cash meanwhile; the card's success then comes for a PAID order.
    let cash = json!({ "method": "cash", "amount": money("5.00"), "tendered": money("5.00") });
    assert_eq!(
        pay(&app, cashier.token(), o.id, "cash", &cash)
            .await
            .status(),
        201
    );
    eventually("the orphaned card payment is given back", || async {
        refunded_at_processor(&app, &intent) == 500
    })
    .await;
    let r: Refund = refund(&app, &manager, o.id, "after-orphan", &amount("5.00"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r.card.to_string(), r.cash.to_string()),
        ("0.00 EUR".into(), "5.00 EUR".into())
    );
    assert_eq!(r.order_status, OrderStatus::Refunded);
}

async fn cancelling_a_partly_paid_order_gives_the_money_back(app: TestApp) {
    let manager = seed(&app, 10).await;
    let cashier = app.user(Role::Cashier).await;
    let o = reserved_order(&app, cashier.token(), 2).await;
    let cash = json!({ "method": "cash", "amount": money("2.00"), "tendered": money("2.00") });
    assert_eq!(
        pay(&app, cashier.token(), o.id, "part", &cash)
            .await
            .status(),
        201
    );
    let intent = card_paid(&app, cashier.token(), o.id, "1.50")
        .await
        .processor_ref
        .unwrap();
    let cancelled: Order = app
        .post(
            &format!("/v1/orders/{}/cancel", o.id),
            cashier.token(),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(
        cancelled.refunded, cancelled.paid,
        "no cancelled order holds money"
    );
    assert_eq!(cancelled.paid.to_string(), "3.50 EUR");
    let refunds = refunds_of(&app, &manager, o.id).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].status, PaymentStatus::Succeeded);
    assert_eq!(
        (refunds[0].card.to_string(), refunds[0].cash.to_string()),
        ("1.50 EUR".into(), "2.00 EUR".into())
    );
    assert_eq!(refunded_at_processor(&app, &intent), 150);
    let level = stock(&app, &manager, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved), (10, 0));
    assert_ledger_balanced(&app, &manager, "SKU-1").await;
}

async fn an_order_with_a_card_payment_in_flight_cannot_be_cancelled(app: TestApp) {
    seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    app.sim
        .as_ref()
        .unwrap()
        .set_processing_delay(Duration::from_millis(500));
    let o = reserved_order(&app, customer.token(), 1).await;
    let slow = pay(
        &app,
        customer.token(),
        o.id,
        "slow",
        &card("2.50", "pm_sim_processing"),
    )
    .await;
    assert_eq!(slow.status(), 202);
    error_body(
        app.post(
            &format!("/v1/orders/{}/cancel", o.id),
            customer.token(),
            &json!({}),
        )
        .await,
        409,
        "payment_in_flight",
    )
    .await;
    eventually("the card payment settles the order", || async {
        get_order(&app, customer.token(), o.id).await.status == OrderStatus::Paid
    })
    .await;
}

async fn an_expired_order_gives_back_its_card_money_but_waits_for_a_payment_in_flight(
    app: TestApp,
) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let sim = app.sim.as_ref().unwrap();
    // Partly paid by card, then abandoned: expiry cancels it and the card money goes back.
    let abandoned = reserved_order(&app, customer.token(), 2).await;
    let intent = card_paid(&app, customer.token(), abandoned.id, "2.00")
        .await
        .processor_ref
        .unwrap();
    // A card payment still processing when the reservation runs out: the order waits.
    sim.set_processing_delay(Duration::from_millis(1500));
    let waiting = reserved_order(&app, customer.token(), 1).await;
    let slow = pay(
        &app,
        customer.token(),
        waiting.id,
        "slow",
        &card("2.50", "pm_sim_processing"),
    )
    .await;
    assert_eq!(slow.status(), 202);
    tokio::time::sleep(Duration::from_millis(400)).await;
    kassa_central::stock::sweep_expired(&app.state)
        .await
        .unwrap();
    let gone = get_order(&app, &manager, abandoned.id).await;
    assert_eq!(gone.status, OrderStatus::Cancelled);
    assert_eq!(gone.refunded, gone.paid);
    assert_eq!(refunded_at_processor(&app, &intent), 200);
    assert_eq!(
        get_order(&app, &manager, waiting.id).await.status,
        OrderStatus::Reserved,
        "expiry waits while a payment is in flight"
    );
    eventually("the slow card pays the waiting order", || async {
        get_order(&app, &manager, waiting.id).await.status == OrderStatus::Paid
    })
    .await;
    kassa_central::stock::sweep_expired(&app.state)
        .await
        .unwrap();
    assert_eq!(
        get_order(&app, &manager, waiting.id).await.status,
        OrderStatus::Paid
    );
    assert_ledger_balanced(&app, &manager, "SKU-1").await;
}

async fn a_zero_total_sale_is_paid_with_nothing(app: TestApp) {
    let manager = seed(&app, 10).await;
    create(&app, &manager, &product_body("FREE-1", &ean(77), "0.00")).await;
    receive(&app, &manager, "FREE-1", 5).await;
    let cashier = app.user(Role::Cashier).await;
    let body = json!({ "location": "STORE-1", "lines": [{ "sku": "FREE-1", "qty": 1 }] });
    let created: Order = order(&app, cashier.token(), "free-1", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created.totals.total.to_string(), "0.00 EUR");
    let nothing = json!({ "method": "cash", "amount": money("0.00"), "tendered": money("0.00") });
    let paid = pay(&app, cashier.token(), created.id, "free-pay", &nothing).await;
    assert_eq!(paid.status(), 201);
    let after = get_order(&app, cashier.token(), created.id).await;
    assert_eq!(after.status, OrderStatus::Paid);
    // Zero is refused where something is owed.
    let owed = reserved_order(&app, cashier.token(), 1).await;
    error_body(
        pay(&app, cashier.token(), owed.id, "zero", &nothing).await,
        422,
        "invalid_amount",
    )
    .await;
    assert_eq!(stock(&app, &manager, "FREE-1").await.on_hand, 4);
    assert_ledger_balanced(&app, &manager, "FREE-1").await;
}

async fn concurrent_orders_with_one_client_chosen_id_give_one_201_and_409s(app: TestApp) {
    let manager = seed(&app, 100).await;
    let cashier = app.user(Role::Cashier).await;
    let id = Uuid::now_v7();
    let body = json!({ "id": id, "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 1 }] });
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (client, url, token, body) = (
                app.client.clone(),
                app.url("/v1/orders"),
                cashier.token().to_owned(),
                body.clone(),
            );
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .header("idempotency-key", format!("same-id-{i}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let code = response.json::<Value>().await.unwrap()["error"]["code"].clone();
                (status, code)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|(s, c)| *s == 201 || (*s == 409 && c == "order_exists")),
        "{answers:?}"
    );
    assert_eq!(stock(&app, &manager, "SKU-1").await.reserved, 1);
}

async fn a_success_after_kassa_recorded_a_failure_is_attached_not_dropped(app: TestApp) {
    seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 1).await;
    let declined = pay(
        &app,
        customer.token(),
        o.id,
        "declined",
        &card("2.50", "pm_card_chargeDeclined"),
    )
    .await;
    assert_eq!(declined.status(), 402);
    let payments: Vec<Payment> = app
        .get(&format!("/v1/orders/{}/payments", o.id), customer.token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(payments[0].status, PaymentStatus::Failed);
    // The processor changes its mind about that very intent (Kassa may or may not have seen
    // its failure webhook yet).
    let intent = app
        .sim
        .as_ref()
        .unwrap()
        .emitted_events()
        .iter()
        .find(|e| {
            e.r#type == "payment_intent.payment_failed"
                && e.data.object["metadata"]["order_id"] == o.id.to_string().as_str()
        })
        .map(|e| e.data.object["id"].as_str().unwrap().to_owned())
        .unwrap();
    let body = intent_event(
        "evt_late_success",
        "payment_intent.succeeded",
        &intent,
        o.id,
        payments[0].id,
    );
    let now = chrono::Utc::now().timestamp();
    let response = post_webhook(&app, &body, Some(signed(&body, WEBHOOK_SECRET, now))).await;
    assert_eq!(response.status(), 200);
    let after = get_order(&app, customer.token(), o.id).await;
    assert_eq!(
        (after.status, after.paid.to_string()),
        (OrderStatus::Paid, "2.50 EUR".into())
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM events WHERE type = 'payment.revived' AND aggregate_id = '{}'",
                o.id
            )
        )
        .await,
        1
    );
}

async fn a_rate_limited_card_payment_stays_pending_and_its_retry_pays(app: TestApp) {
    seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 1).await;
    app.sim.as_ref().unwrap().fail_next_posts(&[429]);
    let visa = card("2.50", "pm_card_visa");
    error_body(
        pay(&app, customer.token(), o.id, "rl", &visa).await,
        502,
        "processor_unavailable",
    )
    .await;
    let payments: Vec<Payment> = app
        .get(&format!("/v1/orders/{}/payments", o.id), customer.token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(payments[0].status, PaymentStatus::Pending);
    let retry = pay(&app, customer.token(), o.id, "rl", &visa).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(
        get_order(&app, customer.token(), o.id).await.status,
        OrderStatus::Paid
    );
}

async fn a_timed_out_card_payment_is_settled_by_the_reconciler(app: TestApp) {
    seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 1).await;
    // Approved at the processor, the answer never comes back and no webhook is sent.
    error_body(
        pay(
            &app,
            customer.token(),
            o.id,
            "slow",
            &card("2.50", "pm_sim_timeout__none"),
        )
        .await,
        502,
        "processor_unavailable",
    )
    .await;
    assert_eq!(
        get_order(&app, customer.token(), o.id).await.status,
        OrderStatus::Reserved
    );
    let done = reconcile::run_once(&app.state).await.unwrap();
    assert_eq!(done.payments_settled, 1);
    assert_eq!(
        get_order(&app, customer.token(), o.id).await.status,
        OrderStatus::Paid
    );
    let again = reconcile::run_once(&app.state).await.unwrap();
    assert_eq!(again, reconcile::Reconciled::default());
}

async fn a_card_payment_never_answered_is_given_up_and_another_card_pays(app: TestApp) {
    seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 1).await;
    error_body(
        pay(
            &app,
            customer.token(),
            o.id,
            "broken",
            &card("2.50", "pm_sim_error500"),
        )
        .await,
        502,
        "processor_unavailable",
    )
    .await;
    let done = reconcile::run_once(&app.state).await.unwrap();
    assert_eq!(done.payments_settled, 1);
    let payments: Vec<Payment> = app
        .get(&format!("/v1/orders/{}/payments", o.id), customer.token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (payments[0].status, payments[0].failure_code.as_deref()),
        (PaymentStatus::Failed, Some("processor_unreachable"))
    );
    card_paid(&app, customer.token(), o.id, "2.50").await;
}

async fn a_claim_taken_over_cannot_be_completed_or_released_by_its_old_owner(app: TestApp) {
    let db = &app.state.db;
    let old = store::idempotency::claim(db, "s", "k", "h")
        .await
        .unwrap()
        .unwrap();
    // The old owner's lease ran out; another request takes the key over.
    let stored = store::idempotency::load(db, "s", "k")
        .await
        .unwrap()
        .unwrap();
    let new = store::idempotency::take_over(db, "s", "k", stored.locked_at, "h")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(old, new);
    let mut tx = db.begin_write().await.unwrap();
    assert!(
        !store::idempotency::complete_in(&mut tx, "s", "k", old, 201, "old")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    store::idempotency::release(db, "s", "k", old)
        .await
        .unwrap();
    assert!(
        store::idempotency::load(db, "s", "k")
            .await
            .unwrap()
            .is_some(),
        "the new owner's claim stays"
    );
    let mut tx = db.begin_write().await.unwrap();
    assert!(
        store::idempotency::complete_in(&mut tx, "s", "k", new, 201, "new")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let stored = store::idempotency::load(db, "s", "k")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.response, Some((201, "new".into())));
}

async fn a_zero_total_offline_sale_is_accepted(app: TestApp) {
    let admin = seed(&app, 10).await;
    create(&app, &admin, &product_body("FREE-1", &ean(77), "0.00")).await;
    receive(&app, &admin, "FREE-1", 5).await;
    let (till, _) = register_session(&app, &admin).await;
    let free = offline_order(Uuid::now_v7(), &[("FREE-1", 2, "0.00")], "0.00");
    let paid = offline_order(Uuid::now_v7(), &[("SKU-1", 1, "2.50")], "2.50");
    let (status, body) = sync(&app, &till, &[free, paid]).await;
    assert_eq!(status, 200);
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    for result in parsed["results"].as_array().unwrap() {
        assert_eq!(result["outcome"], "accepted", "{result}");
    }
    assert_eq!(stock(&app, &admin, "FREE-1").await.on_hand, 3);
    assert_ledger_balanced(&app, &admin, "FREE-1").await;
}

async fn concurrent_sync_groups_checkouts_and_cancels_never_deadlock(app: TestApp) {
    let admin = seed(&app, 500).await;
    receive(&app, &admin, "SKU-2", 500).await;
    let (a, _) = register_session(&app, &admin).await;
    let (b, _) = register_session(&app, &admin).await;
    let cashier = app.user(Role::Cashier).await.tokens.access_token;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for round in 0..6 {
        // Till A's group sells SKU-2 then SKU-1, till B's the other way round.
        for (till, first, second) in [(&a, "SKU-2", "SKU-1"), (&b, "SKU-1", "SKU-2")] {
            let (app, till) = (app.clone(), till.clone());
            let group = vec![
                offline_order(Uuid::now_v7(), &[(first, 1, "1.00")], "1.00"),
                offline_order(Uuid::now_v7(), &[(second, 1, "1.00")], "1.00"),
            ];
            tasks.push(tokio::spawn(async move {
                let (status, body) = sync(&app, &till, &group).await;
                (status, String::from_utf8_lossy(&body).into_owned())
            }));
        }
        let (app, cashier) = (app.clone(), cashier.clone());
        tasks.push(tokio::spawn(async move {
            let both = json!({ "location": "STORE-1",
                "lines": [{ "sku": "SKU-2", "qty": 1 }, { "sku": "SKU-1", "qty": 1 }] });
            let created = order(&app, &cashier, &format!("both-{round}"), &both).await;
            let status = created.status().as_u16();
            if status != 201 {
                return (status, created.text().await.unwrap());
            }
            let o: Order = created.json().await.unwrap();
            let path = format!("/v1/orders/{}/cancel", o.id);
            let cancelled = app.post(&path, &cashier, &json!({})).await;
            (cancelled.status().as_u16(), cancelled.text().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!([200, 201].contains(&status), "{status} {body}");
    }
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
    assert_ledger_balanced(&app, &admin, "SKU-2").await;
    assert_eq!(stock(&app, &admin, "SKU-1").await.on_hand, 488);
}

async fn a_retry_by_another_cashier_at_the_same_till_is_the_same_request(app: TestApp) {
    let admin = seed(&app, 10).await;
    let created = app
        .post(
            "/v1/registers",
            &admin,
            &json!({ "location": "STORE-1", "name": "Till 7" }),
        )
        .await;
    let register: kassa_domain::api::RegisterCreated = created.json().await.unwrap();
    let mut tokens = Vec::new();
    for _ in 0..2 {
        tokens.push(sign_in_at(&app, &register, Role::Cashier).await.1);
    }
    let body = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 1 }] });
    let first: Order = order(&app, &tokens[0], "till-7-sale-1", &body)
        .await
        .json()
        .await
        .unwrap();
    // The first cashier signs out before the answer arrives; the next retries the same key.
    let retry = order(&app, &tokens[1], "till-7-sale-1", &body).await;
    assert_eq!(retry.status(), 201);
    let again: Order = retry.json().await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(stock(&app, &admin, "SKU-1").await.reserved, 1);
    let cash = json!({ "method": "cash", "amount": money("2.50"), "tendered": money("5.00") });
    let paid: Payment = pay(&app, &tokens[0], first.id, "till-7-pay-1", &cash)
        .await
        .json()
        .await
        .unwrap();
    let replay: Payment = pay(&app, &tokens[1], first.id, "till-7-pay-1", &cash)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(replay.id, paid.id);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM payments").await,
        1,
        "one payment whoever retried"
    );
}

async fn the_reconciler_runs_at_start_up_and_then_on_its_schedule(app: TestApp) {
    seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let stuck = |key: &'static str| {
        let (app, token) = (&app, customer.token().to_owned());
        async move {
            let o = reserved_order(app, &token, 1).await;
            let slow = card("2.50", "pm_sim_timeout__none");
            error_body(
                pay(app, &token, o.id, key, &slow).await,
                502,
                "processor_unavailable",
            )
            .await;
            o
        }
    };
    // Left pending before the instance (re)starts: settled by the run at start-up.
    let before = stuck("before").await;
    let reconciler = reconcile::spawn_reconciler(app.state.clone(), Duration::from_millis(300));
    eventually("the start-up run settles it", || async {
        get_order(&app, customer.token(), before.id).await.status == OrderStatus::Paid
    })
    .await;
    // Left pending while it runs: settled by a later scheduled run.
    let later = stuck("later").await;
    eventually("a scheduled run settles it", || async {
        get_order(&app, customer.token(), later.id).await.status == OrderStatus::Paid
    })
    .await;
    reconciler.abort();
}

async fn the_owner_cancelling_a_partly_paid_order_gets_the_card_part_back(app: TestApp) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 2).await;
    let intent = card_paid(&app, customer.token(), o.id, "2.00")
        .await
        .processor_ref
        .unwrap();
    // The shopper, not staff, changes their mind with 2.00 of 5.00 paid.
    let response = app
        .post(
            &format!("/v1/orders/{}/cancel", o.id),
            customer.token(),
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let cancelled: Order = response.json().await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(
        (cancelled.paid.to_string(), cancelled.refunded.to_string()),
        ("2.00 EUR".into(), "2.00 EUR".into()),
        "no cancelled order holds money"
    );
    assert_eq!(
        refunded_at_processor(&app, &intent),
        200,
        "given back by card"
    );
    let refunds = refunds_of(&app, &manager, o.id).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        (refunds[0].status, refunds[0].card.to_string()),
        (PaymentStatus::Succeeded, "2.00 EUR".into())
    );
    let level = stock(&app, &manager, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved), (10, 0));
    assert_ledger_balanced(&app, &manager, "SKU-1").await;
}

/// A 2.50 card payment of `id` the processor declined: its intent.
async fn declined_card(app: &TestApp, token: &str, id: Uuid) -> String {
    let declined = pay(
        app,
        token,
        id,
        "declined",
        &card("2.50", "pm_card_chargeDeclined"),
    )
    .await;
    assert_eq!(declined.status(), 402);
    let intents = app.sim.as_ref().unwrap().intents_of_order(&id.to_string());
    assert_eq!(intents.len(), 1);
    intents[0].id.clone()
}

/// The processor takes the money on `intent` after all (confirmed again with a good card, as
/// its dashboard can): it then sends `payment_intent.succeeded` for a payment Kassa recorded as
/// failed.
async fn succeeds_at_processor_after_all(app: &TestApp, intent: &str) {
    let sim = app.sim.as_ref().unwrap();
    let response = app
        .client
        .post(format!(
            "{}/v1/payment_intents/{intent}/confirm",
            sim.base_url
        ))
        .bearer_auth("sk_test_kassa")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("payment_method=pm_card_visa")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// The late success of `intent` on order `id` is given back as an orphan: refunded at the
/// processor once, never counted on the order.
async fn assert_given_back_as_orphan(app: &TestApp, token: &str, id: Uuid, intent: &str) {
    eventually("the late success is refunded as an orphan", || async {
        refunded_at_processor(app, intent) == 250
    })
    .await;
    let held: i64 = app
        .sim
        .as_ref()
        .unwrap()
        .intents_of_order(&id.to_string())
        .iter()
        .map(|i| i.held_minor())
        .sum();
    assert_eq!(held, 0, "the processor holds nothing for the order");
    assert_eq!(events_of(app, "payment.revived", id).await, 1);
    assert_eq!(events_of(app, "payment.orphaned", id).await, 1);
    let payments: Vec<Payment> = app
        .get(&format!("/v1/orders/{id}/payments"), token)
        .await
        .json()
        .await
        .unwrap();
    let revived: Vec<_> = payments
        .iter()
        .filter(|p| p.processor_ref.as_deref() == Some(intent))
        .collect();
    assert_eq!(revived.len(), 1);
    assert_eq!(
        revived[0].status,
        PaymentStatus::Succeeded,
        "kept, not dropped"
    );
}

async fn a_late_success_for_an_order_paid_another_way_is_refunded_as_an_orphan(app: TestApp) {
    let manager = seed(&app, 10).await;
    let cashier = app.user(Role::Cashier).await;
    let o = reserved_order(&app, cashier.token(), 1).await;
    let intent = declined_card(&app, cashier.token(), o.id).await;
    let cash = json!({ "method": "cash", "amount": money("2.50"), "tendered": money("5.00") });
    assert_eq!(
        pay(&app, cashier.token(), o.id, "cash", &cash)
            .await
            .status(),
        201
    );
    succeeds_at_processor_after_all(&app, &intent).await;
    assert_given_back_as_orphan(&app, &manager, o.id, &intent).await;
    let after = get_order(&app, &manager, o.id).await;
    assert_eq!(
        (
            after.status,
            after.paid.to_string(),
            after.refunded.to_string()
        ),
        (OrderStatus::Paid, "2.50 EUR".into(), "0.00 EUR".into()),
        "never counted as paid"
    );
    // Nothing of the orphan can be refunded again: only the cash is there to give back.
    let r: Refund = refund(&app, &manager, o.id, "all", &amount("2.50"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r.card.to_string(), r.cash.to_string()),
        ("0.00 EUR".into(), "2.50 EUR".into())
    );
    assert_eq!(refunded_at_processor(&app, &intent), 250);
}

async fn a_late_success_for_a_cancelled_order_is_refunded_as_an_orphan(app: TestApp) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 1).await;
    let intent = declined_card(&app, customer.token(), o.id).await;
    let cancelled = app
        .post(
            &format!("/v1/orders/{}/cancel", o.id),
            customer.token(),
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    succeeds_at_processor_after_all(&app, &intent).await;
    assert_given_back_as_orphan(&app, &manager, o.id, &intent).await;
    let after = get_order(&app, &manager, o.id).await;
    assert_eq!(
        (after.status, after.paid.to_string()),
        (OrderStatus::Cancelled, "0.00 EUR".into()),
        "a cancelled order holds no money"
    );
    let level = stock(&app, &manager, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved), (10, 0));
}

/// What one checkout of the contention story did: (status of each call, body of the last).
type Outcome = (Vec<u16>, String);

/// One checkout of SKU-2 then SKU-1 (6.50) paid by `how` (`cash`, `card`, `cancel`: cancelled
/// unpaid, `abandon`: left for the sweeper): the statuses it saw and the order's id.
async fn checkout_then(
    app: &TestApp,
    token: &str,
    key: &str,
    how: &str,
) -> (Outcome, Option<Uuid>) {
    let both = json!({ "location": "STORE-1",
        "lines": [{ "sku": "SKU-2", "qty": 1 }, { "sku": "SKU-1", "qty": 1 }] });
    let created = order(app, token, key, &both).await;
    let status = created.status().as_u16();
    if status != 201 {
        return ((vec![status], created.text().await.unwrap()), None);
    }
    let o: Order = created.json().await.unwrap();
    let pay_key = format!("{key}-pay");
    let next = match how {
        "cash" => {
            let cash =
                json!({ "method": "cash", "amount": money("6.50"), "tendered": money("10.00") });
            pay(app, token, o.id, &pay_key, &cash).await
        }
        "card" => pay(app, token, o.id, &pay_key, &card("6.50", "pm_card_visa")).await,
        "cancel" => {
            app.post(&format!("/v1/orders/{}/cancel", o.id), token, &json!({}))
                .await
        }
        _ => return ((vec![status], String::new()), Some(o.id)),
    };
    let second = next.status().as_u16();
    (
        (vec![status, second], next.text().await.unwrap()),
        Some(o.id),
    )
}

async fn payments_cancels_syncs_and_the_sweeper_on_the_same_skus_never_deadlock(app: TestApp) {
    let admin = seed(&app, 500).await;
    receive(&app, &admin, "SKU-2", 500).await;
    let (a, _) = register_session(&app, &admin).await;
    let (b, _) = register_session(&app, &admin).await;
    let cashier = app.user(Role::Cashier).await.tokens.access_token;
    let app = std::sync::Arc::new(app);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The reservation sweeper runs all along, expiring the abandoned orders as the rest goes on.
    let sweeper = {
        let (app, done) = (app.clone(), done.clone());
        tokio::spawn(async move {
            let mut sweeps = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                kassa_central::stock::sweep_expired(&app.state)
                    .await
                    .expect("the sweeper never fails");
                sweeps += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sweeps
        })
    };
    let mut syncs = Vec::new();
    let mut checkouts = Vec::new();
    for round in 0..6 {
        for (till, first, second) in [(&a, "SKU-2", "SKU-1"), (&b, "SKU-1", "SKU-2")] {
            let (app, till) = (app.clone(), till.clone());
            let group = vec![
                offline_order(Uuid::now_v7(), &[(first, 1, "1.00")], "1.00"),
                offline_order(Uuid::now_v7(), &[(second, 1, "1.00")], "1.00"),
            ];
            syncs.push(tokio::spawn(async move {
                let (status, body) = sync(&app, &till, &group).await;
                (status, String::from_utf8_lossy(&body).into_owned())
            }));
        }
        for how in ["cash", "card", "cancel", "abandon"] {
            let (app, cashier) = (app.clone(), cashier.clone());
            checkouts.push(tokio::spawn(async move {
                let key = format!("{how}-{round}");
                let (outcome, id) = checkout_then(&app, &cashier, &key, how).await;
                (how, outcome, id)
            }));
        }
    }
    for t in syncs {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains("\"rejected\""), "{body}");
    }
    let mut ids = Vec::new();
    for t in checkouts {
        let (how, (statuses, body), id) = t.await.unwrap();
        // A pay or cancel that lost the race with expiry is 409 `illegal_transition`; never
        // a 5xx, never a deadlock.
        let fine = statuses[0] == 201
            && statuses[1..].iter().all(|s| {
                [200, 201].contains(s) || (*s == 409 && body.contains("illegal_transition"))
            });
        assert!(fine, "{how}: {statuses:?} {body}");
        ids.push((how, id.unwrap()));
    }
    // Whatever was left reserved expires now.
    tokio::time::sleep(Duration::from_millis(600)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(sweeper.await.unwrap() > 0);
    kassa_central::stock::sweep_expired(&app.state)
        .await
        .unwrap();
    // The books: each order either paid in full (and the card part at the processor) or
    // cancelled holding nothing; stock sold = paid orders + offline sales, nothing reserved.
    let mut paid_orders: i64 = 0;
    for (how, id) in ids {
        let o = get_order(&app, &admin, id).await;
        let held: i64 = app
            .sim
            .as_ref()
            .unwrap()
            .intents_of_order(&id.to_string())
            .iter()
            .map(|i| i.held_minor())
            .sum();
        match o.status {
            OrderStatus::Paid => {
                assert_eq!(o.paid, o.totals.total, "{o:?}");
                paid_orders += 1;
                let card_part = if how == "card" { 650 } else { 0 };
                assert_eq!(held, card_part, "{how}: {o:?}");
            }
            OrderStatus::Cancelled => {
                assert_eq!(o.refunded, o.paid, "no cancelled order holds money: {o:?}");
                assert_eq!(held, 0, "{o:?}");
            }
            other => panic!("order left {other:?}: {o:?}"),
        }
    }
    assert!(paid_orders > 0);
    for sku in ["SKU-1", "SKU-2"] {
        assert_ledger_balanced(&app, &admin, sku).await;
        let level = stock(&app, &admin, sku).await;
        assert_eq!(level.reserved, 0, "{sku}");
        assert_eq!(level.on_hand, 500 - 12 - paid_orders, "{sku}");
    }
}
