//! Payment stories against the processor simulator: cash with change, card approvals, declines,
//! timeouts, webhooks that come twice, late, out of order, forged or stale, and refunds that
//! restock and never give back more than was paid.

use std::time::Duration;

use kassa_domain::api::{Order, Payment, PaymentStatus, Refund};
use kassa_domain::{OrderStatus, Role};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::checkout::reservations_of_300_ms;
use crate::checkout::{assert_ledger_balanced, count, order, seed, stock};
use crate::helpers::{error_body, TestApp, WEBHOOK_SECRET};
use crate::{story, story_with};

story!(
    cash_pays_the_order_gives_change_and_turns_the_reservation_into_a_sale,
    an_approved_card_pays_the_order_once_whatever_the_webhooks_do,
    a_declined_card_leaves_the_order_reserved_and_a_new_card_can_pay,
    a_processor_timeout_is_settled_by_the_webhook_and_the_retry,
    webhooks_with_bad_signatures_or_stale_timestamps_change_nothing,
    a_late_failure_for_a_declined_intent_does_not_settle_the_next_card_payment,
    refunds_restock_and_never_exceed_what_was_paid,
    a_card_refund_goes_back_through_the_processor,
    concurrent_refunds_never_give_back_more_than_was_paid,
    a_refund_made_under_the_callers_id_is_listed_with_its_state_once,
);

fn without_processor_or_webhook_secret(config: &mut kassa_central::Config) {
    config.processor_url = None;
    config.webhook_secret = None;
}

story_with!(without_processor_or_webhook_secret:
    unconfigured_card_payments_and_webhooks_answer_503_with_their_code,
);

/// A setting the operator left out is no server failure: 503 with a code.
async fn unconfigured_card_payments_and_webhooks_answer_503_with_their_code(app: TestApp) {
    seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 1).await;
    let card = card("2.50", "pm_card_visa");
    let response = pay(&app, customer.token(), o.id, "card-1", &card).await;
    error_body(response, 503, "card_payments_unavailable").await;
    let response = post_webhook(&app, "{}", Some("t=1,v1=00".into())).await;
    error_body(response, 503, "webhooks_not_configured").await;
    // A body over the limit gets the same JSON error body as every route, not plain text.
    let huge = "x".repeat(app.state.config.body_bytes_max + 1);
    let response = post_webhook(&app, &huge, Some("t=1,v1=00".into())).await;
    error_body(response, 413, "payload_too_large").await;
}

pub fn money(amount: &str) -> Value {
    json!({ "amount": amount, "currency": "EUR" })
}

/// An order of `qty` × SKU-1 (2.50 each) placed by `token`.
pub async fn reserved_order(app: &TestApp, token: &str, qty: u32) -> Order {
    let body = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": qty }] });
    let response = order(app, token, &Uuid::new_v4().to_string(), &body).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

pub async fn pay(
    app: &TestApp,
    token: &str,
    id: Uuid,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/orders/{id}/payments")))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub async fn refund(
    app: &TestApp,
    token: &str,
    id: Uuid,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/orders/{id}/refunds")))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `n` refunds of `body` sent at once, each under its own key: their statuses.
pub async fn refund_storm(
    app: &TestApp,
    token: &str,
    id: Uuid,
    n: usize,
    body: &Value,
) -> Vec<u16> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (client, url, token, body) = (
                app.client.clone(),
                app.url(&format!("/v1/orders/{id}/refunds")),
                token.to_owned(),
                body.clone(),
            );
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .header("idempotency-key", format!("storm-{i}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

pub async fn get_order(app: &TestApp, token: &str, id: Uuid) -> Order {
    app.get(&format!("/v1/orders/{id}"), token)
        .await
        .json()
        .await
        .unwrap()
}

pub fn card(amount: &str, pm: &str) -> Value {
    json!({ "method": "card", "amount": money(amount), "payment_method": pm })
}

/// Waits (bounded) until `check` holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn paid_events(app: &TestApp, id: Uuid) -> i64 {
    count(
        app,
        &format!("SELECT COUNT(*) FROM events WHERE type = 'order.paid' AND aggregate_id = '{id}'"),
    )
    .await
}

async fn cash_pays_the_order_gives_change_and_turns_the_reservation_into_a_sale(app: TestApp) {
    let manager = seed(&app, 10).await;
    let cashier = app.user(Role::Cashier).await;
    let o = reserved_order(&app, cashier.token(), 2).await;
    assert_eq!(o.totals.total.to_string(), "5.00 EUR");
    let cash = json!({ "method": "cash", "amount": money("5.00"), "tendered": money("20.00") });

    let first = pay(&app, cashier.token(), o.id, "cash-1", &cash).await;
    assert_eq!(first.status(), 201);
    let first_body = first.text().await.unwrap();
    let payment: Payment = serde_json::from_str(&first_body).unwrap();
    assert_eq!(payment.status, PaymentStatus::Succeeded);
    assert_eq!(payment.change.unwrap().to_string(), "15.00 EUR");
    assert_eq!(payment.order_status, OrderStatus::Paid);

    let replay = pay(&app, cashier.token(), o.id, "cash-1", &cash).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.unwrap(), first_body);

    let level = stock(&app, &manager, "SKU-1").await;
    assert_eq!(
        (level.on_hand, level.reserved),
        (8, 0),
        "the reservation became a sale"
    );
    assert_ledger_balanced(&app, &manager, "SKU-1").await;
    assert_eq!(paid_events(&app, o.id).await, 1);

    let again = pay(&app, cashier.token(), o.id, "cash-2", &cash).await;
    assert_eq!(
        error_body(again, 409, "illegal_transition").await["error"]["details"]["status"],
        "PAID"
    );

    let o2 = reserved_order(&app, cashier.token(), 1).await;
    let too_little =
        json!({ "method": "cash", "amount": money("2.50"), "tendered": money("2.00") });
    error_body(
        pay(&app, cashier.token(), o2.id, "c3", &too_little).await,
        422,
        "tendered_too_little",
    )
    .await;
    let too_much = json!({ "method": "cash", "amount": money("3.00"), "tendered": money("5.00") });
    error_body(
        pay(&app, cashier.token(), o2.id, "c4", &too_much).await,
        422,
        "invalid_amount",
    )
    .await;
    let customer = app.user(Role::Customer).await;
    let own = reserved_order(&app, customer.token(), 1).await;
    let cash_own = json!({ "method": "cash", "amount": money("2.50"), "tendered": money("2.50") });
    error_body(
        pay(&app, customer.token(), own.id, "c5", &cash_own).await,
        403,
        "forbidden",
    )
    .await;
    let missing_key = app
        .post(
            &format!("/v1/orders/{}/payments", o2.id),
            cashier.token(),
            &cash_own,
        )
        .await;
    error_body(missing_key, 400, "missing_idempotency_key").await;
    assert_eq!(
        get_order(&app, cashier.token(), o2.id).await.status,
        OrderStatus::Reserved
    );
}

async fn an_approved_card_pays_the_order_once_whatever_the_webhooks_do(app: TestApp) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let sim = app.sim.as_ref().unwrap();
    for (i, pm) in [
        "pm_card_visa__twice",
        "pm_card_visa__out_of_order",
        "pm_card_visa__late",
    ]
    .into_iter()
    .enumerate()
    {
        let o = reserved_order(&app, customer.token(), 1).await;
        let response = pay(
            &app,
            customer.token(),
            o.id,
            &format!("card-{i}"),
            &card("2.50", pm),
        )
        .await;
        assert_eq!(response.status(), 201, "{pm}");
        let payment: Payment = response.json().await.unwrap();
        assert_eq!(payment.status, PaymentStatus::Succeeded);
        assert_eq!(payment.order_status, OrderStatus::Paid);
        let intent = payment
            .processor_ref
            .clone()
            .expect("the intent id is kept");
        assert!(
            intent.starts_with("pi_"),
            "only the processor's reference: {intent}"
        );
        if pm.ends_with("late") {
            continue;
        }
        let wanted = if pm.ends_with("twice") { 4 } else { 2 };
        eventually("the simulator delivered every webhook", || async {
            sim.delivered_events()
                .iter()
                .filter(|e| e.data.object["id"] == intent.as_str())
                .count()
                >= wanted
        })
        .await;
        assert_eq!(paid_events(&app, o.id).await, 1, "{pm}: paid once");
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payments WHERE status = 'succeeded'"
        )
        .await,
        3
    );
    assert_ledger_balanced(&app, &manager, "SKU-1").await;
}

async fn a_declined_card_leaves_the_order_reserved_and_a_new_card_can_pay(app: TestApp) {
    seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 2).await;
    let declined = card("5.00", "pm_card_chargeDeclinedInsufficientFunds");
    let first = pay(&app, customer.token(), o.id, "d-1", &declined).await;
    let body = error_body(first, 402, "card_declined").await;
    assert_eq!(
        body["error"]["details"]["decline_code"],
        "insufficient_funds"
    );
    let replay = pay(&app, customer.token(), o.id, "d-1", &declined).await;
    assert_eq!(replay.status(), 402);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        get_order(&app, customer.token(), o.id).await.status,
        OrderStatus::Reserved
    );
    error_body(
        pay(
            &app,
            customer.token(),
            o.id,
            "d-2",
            &card("5.00", "pm_unknown"),
        )
        .await,
        422,
        "payment_rejected",
    )
    .await;
    let ok = pay(
        &app,
        customer.token(),
        o.id,
        "d-3",
        &card("5.00", "pm_card_mastercard"),
    )
    .await;
    assert_eq!(ok.status(), 201);
    assert_eq!(
        get_order(&app, customer.token(), o.id).await.status,
        OrderStatus::Paid
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payments WHERE status = 'failed'"
        )
        .await,
        2
    );
}

async fn a_processor_timeout_is_settled_by_the_webhook_and_the_retry(app: TestApp) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 1).await;
    let body = card("2.50", "pm_sim_timeout");
    let first = pay(&app, customer.token(), o.id, "t-1", &body).await;
    error_body(first, 502, "processor_unavailable").await;
    // The processor approved at once; its webhook pays the order although our call timed out.
    eventually("the webhook paid the order", || async {
        get_order(&app, customer.token(), o.id).await.status == OrderStatus::Paid
    })
    .await;
    let retry = pay(&app, customer.token(), o.id, "t-1", &body).await;
    assert_eq!(retry.status(), 201);
    let payment: Payment = retry.json().await.unwrap();
    assert_eq!(
        (payment.status, payment.order_status),
        (PaymentStatus::Succeeded, OrderStatus::Paid)
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(paid_events(&app, o.id).await, 1);
    let level = stock(&app, &manager, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved), (9, 0));

    let o2 = reserved_order(&app, customer.token(), 1).await;
    error_body(
        pay(
            &app,
            customer.token(),
            o2.id,
            "t-2",
            &card("2.50", "pm_sim_error500"),
        )
        .await,
        502,
        "processor_unavailable",
    )
    .await;
    assert_eq!(
        get_order(&app, customer.token(), o2.id).await.status,
        OrderStatus::Reserved
    );
}

pub fn signed(body: &str, secret: &str, at: i64) -> String {
    kassa_payments::webhook::sign_payload(secret.as_bytes(), at, body.as_bytes())
}

pub async fn post_webhook(
    app: &TestApp,
    body: &str,
    signature: Option<String>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/v1/webhooks/payments"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(sig) = signature {
        req = req.header("stripe-signature", sig);
    }
    req.send().await.unwrap()
}

async fn webhooks_with_bad_signatures_or_stale_timestamps_change_nothing(app: TestApp) {
    seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 1).await;
    // A pending card payment whose success is forged below.
    let row_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO payments (id, order_id, method, status, currency, amount_minor, processor_ref, \
         created_at, updated_at) VALUES ($1, $2, 'card', 'pending', 'EUR', 250, 'pi_forged', 0, 0)",
    )
    .bind(row_id.to_string())
    .bind(o.id.to_string())
    .execute(app.state.db.pool())
    .await
    .unwrap();
    let event = json!({
        "id": "evt_forged", "type": "payment_intent.succeeded", "created": 0,
        "data": { "object": { "object": "payment_intent", "id": "pi_forged", "status": "succeeded",
            "amount": 250, "amount_received": 250, "metadata": { "order_id": o.id.to_string() } } }
    })
    .to_string();
    let now = chrono::Utc::now().timestamp();
    error_body(
        post_webhook(&app, &event, None).await,
        400,
        "missing_signature",
    )
    .await;
    error_body(
        post_webhook(&app, &event, Some(signed(&event, "whsec_wrong", now))).await,
        400,
        "invalid_signature",
    )
    .await;
    error_body(
        post_webhook(
            &app,
            &event,
            Some(signed(&event, WEBHOOK_SECRET, now - 3600)),
        )
        .await,
        400,
        "stale_signature",
    )
    .await;
    let tampered = event.replace("250", "1");
    error_body(
        post_webhook(&app, &tampered, Some(signed(&event, WEBHOOK_SECRET, now))).await,
        400,
        "invalid_signature",
    )
    .await;
    assert_eq!(
        get_order(&app, customer.token(), o.id).await.status,
        OrderStatus::Reserved
    );
    // The genuine article pays it, once, however often it comes.
    for _ in 0..3 {
        let ok = post_webhook(&app, &event, Some(signed(&event, WEBHOOK_SECRET, now))).await;
        assert_eq!(ok.status(), 200);
    }
    assert_eq!(
        get_order(&app, customer.token(), o.id).await.status,
        OrderStatus::Paid
    );
    assert_eq!(paid_events(&app, o.id).await, 1);
    // A failure notice arriving after the success does not undo it.
    let failed = event
        .replace("evt_forged", "evt_older")
        .replace("payment_intent.succeeded", "payment_intent.payment_failed");
    let response = post_webhook(&app, &failed, Some(signed(&failed, WEBHOOK_SECRET, now))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payments WHERE status = 'succeeded'"
        )
        .await,
        1
    );
}

/// A signed `payment_intent.*` event for an intent Kassa holds no reference to yet.
pub fn intent_event(
    event_id: &str,
    kind: &str,
    intent: &str,
    order: Uuid,
    payment: Uuid,
) -> String {
    let status = if kind == "payment_intent.succeeded" {
        "succeeded"
    } else {
        "requires_payment_method"
    };
    json!({
        "id": event_id, "type": kind, "created": 0,
        "data": { "object": { "object": "payment_intent", "id": intent, "status": status,
            "amount": 250, "amount_received": 250,
            "metadata": { "order_id": order.to_string(), "payment_id": payment.to_string() } } }
    })
    .to_string()
}

async fn a_late_failure_for_a_declined_intent_does_not_settle_the_next_card_payment(app: TestApp) {
    seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 1).await;
    // A second card payment of the same amount, still waiting for its processor's answer.
    let waiting = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO payments (id, order_id, method, status, currency, amount_minor, \
         created_at, updated_at) VALUES ($1, $2, 'card', 'pending', 'EUR', 250, 0, 0)",
    )
    .bind(waiting.to_string())
    .bind(o.id.to_string())
    .execute(app.state.db.pool())
    .await
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    // The first card was declined; its processor's failure notice comes only now.
    let declined = intent_event(
        "evt_late_fail",
        "payment_intent.payment_failed",
        "pi_declined",
        o.id,
        Uuid::now_v7(),
    );
    let response = post_webhook(
        &app,
        &declined,
        Some(signed(&declined, WEBHOOK_SECRET, now)),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payments WHERE status = 'pending'"
        )
        .await,
        1,
        "the waiting payment is not the declined intent's"
    );
    let approved = intent_event(
        "evt_ok",
        "payment_intent.succeeded",
        "pi_approved",
        o.id,
        waiting,
    );
    let response = post_webhook(
        &app,
        &approved,
        Some(signed(&approved, WEBHOOK_SECRET, now)),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        get_order(&app, customer.token(), o.id).await.status,
        OrderStatus::Paid
    );
}

pub async fn paid_cash_order(app: &TestApp, cashier: &str, qty: u32, total: &str) -> Order {
    let o = reserved_order(app, cashier, qty).await;
    let cash = json!({ "method": "cash", "amount": money(total), "tendered": money(total) });
    assert_eq!(
        pay(app, cashier, o.id, &Uuid::new_v4().to_string(), &cash)
            .await
            .status(),
        201
    );
    o
}

async fn refunds_restock_and_never_exceed_what_was_paid(app: TestApp) {
    let manager = seed(&app, 10).await;
    let cashier = app.user(Role::Cashier).await;
    let o = paid_cash_order(&app, cashier.token(), 3, "7.50").await;
    let one = json!({ "lines": [{ "sku": "SKU-1", "qty": 1 }], "reason": "damaged" });
    error_body(
        refund(&app, cashier.token(), o.id, "r-0", &one).await,
        403,
        "forbidden",
    )
    .await;

    let first = refund(&app, &manager, o.id, "r-1", &one).await;
    assert_eq!(first.status(), 201);
    let r: Refund = first.json().await.unwrap();
    assert_eq!(
        (r.amount.to_string(), r.cash.to_string()),
        ("2.50 EUR".into(), "2.50 EUR".into())
    );
    assert_eq!(
        r.order_status,
        OrderStatus::Paid,
        "a partial refund keeps the order PAID"
    );
    let replay = refund(&app, &manager, o.id, "r-1", &one).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        stock(&app, &manager, "SKU-1").await.on_hand,
        8,
        "one unit came back"
    );

    let three = json!({ "lines": [{ "sku": "SKU-1", "qty": 3 }], "reason": "all" });
    error_body(
        refund(&app, &manager, o.id, "r-2", &three).await,
        422,
        "return_exceeds_sold",
    )
    .await;
    let goodwill = json!({ "amount": money("5.01"), "reason": "goodwill" });
    error_body(
        refund(&app, &manager, o.id, "r-3", &goodwill).await,
        422,
        "refund_exceeds_paid",
    )
    .await;
    let both =
        json!({ "lines": [{ "sku": "SKU-1", "qty": 1 }], "amount": money("1.00"), "reason": "x" });
    error_body(
        refund(&app, &manager, o.id, "r-4", &both).await,
        422,
        "lines_or_amount",
    )
    .await;

    let rest = json!({ "lines": [{ "sku": "SKU-1", "qty": 2 }], "reason": "changed mind" });
    let last: Refund = refund(&app, &manager, o.id, "r-5", &rest)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(last.amount.to_string(), "5.00 EUR");
    assert_eq!(last.order_status, OrderStatus::Refunded);
    let after = get_order(&app, &manager, o.id).await;
    assert_eq!(
        (after.refunded.to_string(), after.status),
        ("7.50 EUR".into(), OrderStatus::Refunded)
    );
    let once_more = json!({ "amount": money("0.01"), "reason": "more" });
    error_body(
        refund(&app, &manager, o.id, "r-6", &once_more).await,
        409,
        "illegal_transition",
    )
    .await;
    assert_eq!(stock(&app, &manager, "SKU-1").await.on_hand, 10);
    assert_ledger_balanced(&app, &manager, "SKU-1").await;
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM events WHERE type = 'order.refunded' AND aggregate_id = '{}'",
                o.id
            )
        )
        .await,
        1
    );
}

async fn a_card_refund_goes_back_through_the_processor(app: TestApp) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 2).await;
    let paid = pay(
        &app,
        customer.token(),
        o.id,
        "p",
        &card("5.00", "pm_card_visa"),
    )
    .await;
    let intent = paid.json::<Payment>().await.unwrap().processor_ref.unwrap();
    let body = json!({ "lines": [{ "sku": "SKU-1", "qty": 1 }], "reason": "too big" });
    let r: Refund = refund(&app, &manager, o.id, "cr-1", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r.card.to_string(), r.cash.to_string()),
        ("2.50 EUR".into(), "0.00 EUR".into())
    );
    let sim = app.sim.as_ref().unwrap();
    let refunded_at_processor = || {
        sim.emitted_events()
            .iter()
            .filter(|e| {
                e.r#type == "charge.refunded" && e.data.object["payment_intent"] == intent.as_str()
            })
            .map(|e| e.data.object["amount_refunded"].as_i64().unwrap())
            .max()
    };
    assert_eq!(refunded_at_processor(), Some(250));
    let replay = refund(&app, &manager, o.id, "cr-1", &body).await;
    assert_eq!(replay.status(), 201);
    assert_eq!(
        refunded_at_processor(),
        Some(250),
        "a replay refunds nothing more"
    );
}

async fn concurrent_refunds_never_give_back_more_than_was_paid(app: TestApp) {
    let manager = seed(&app, 10).await;
    let cashier = app.user(Role::Cashier).await;
    let o = paid_cash_order(&app, cashier.token(), 2, "5.00").await;
    let body = json!({ "amount": money("1.00"), "reason": "storm" });
    let statuses = refund_storm(&app, &manager, o.id, 12, &body).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        5,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [201, 409, 422].contains(s)),
        "{statuses:?}"
    );
    let after = get_order(&app, &manager, o.id).await;
    assert_eq!(
        (after.refunded.to_string(), after.status),
        ("5.00 EUR".into(), OrderStatus::Refunded)
    );
}

story_with!(reservations_of_300_ms: an_unpaid_order_is_cancelled_when_its_reservation_expires);
story_with!(reservations_of_300_ms_and_a_slow_processor: a_card_payment_in_flight_holds_an_expired_order_until_it_pays);

fn reservations_of_300_ms_and_a_slow_processor(c: &mut kassa_central::Config) {
    reservations_of_300_ms(c);
    c.processor_timeout = Duration::from_millis(800);
}

/// A declined (or abandoned) payment leaves the order RESERVED until its reservation expires;
/// then it is CANCELLED and its stock released.
async fn an_unpaid_order_is_cancelled_when_its_reservation_expires(app: TestApp) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 3).await;
    let declined = card("7.50", "pm_card_chargeDeclined");
    error_body(
        pay(&app, customer.token(), o.id, "x-1", &declined).await,
        402,
        "card_declined",
    )
    .await;
    assert_eq!(stock(&app, &manager, "SKU-1").await.reserved, 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        kassa_central::stock::sweep_expired(&app.state)
            .await
            .unwrap(),
        1
    );
    let after = get_order(&app, customer.token(), o.id).await;
    assert_eq!(after.status, OrderStatus::Cancelled);
    let level = stock(&app, &manager, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved), (10, 0));
    let late = pay(
        &app,
        customer.token(),
        o.id,
        "x-2",
        &card("7.50", "pm_card_visa"),
    )
    .await;
    error_body(late, 409, "illegal_transition").await;
    assert_ledger_balanced(&app, &manager, "SKU-1").await;
}

/// A card payment still in flight when the order's reservation runs out: the expiry waits, and
/// the late success pays the order (nothing is cancelled with money in it, nothing refunded).
async fn a_card_payment_in_flight_holds_an_expired_order_until_it_pays(app: TestApp) {
    let manager = seed(&app, 10).await;
    let customer = app.user(Role::Customer).await;
    let o = reserved_order(&app, customer.token(), 1).await;
    // Approved at once, but the answer hangs and the webhook comes 2 s later.
    let slow = card("2.50", "pm_sim_timeout__late");
    error_body(
        pay(&app, customer.token(), o.id, "o-1", &slow).await,
        502,
        "processor_unavailable",
    )
    .await;
    assert_eq!(
        kassa_central::stock::sweep_expired(&app.state)
            .await
            .unwrap(),
        0,
        "the expiry waits for the payment in flight"
    );
    eventually("the late success pays the order", || async {
        get_order(&app, customer.token(), o.id).await.status == OrderStatus::Paid
    })
    .await;
    assert_eq!(
        kassa_central::stock::sweep_expired(&app.state)
            .await
            .unwrap(),
        0
    );
    let sim = app.sim.as_ref().unwrap();
    assert!(!sim
        .emitted_events()
        .iter()
        .any(|e| e.r#type == "charge.refunded"));
    let level = stock(&app, &manager, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved), (9, 0));
    assert_ledger_balanced(&app, &manager, "SKU-1").await;
}

async fn a_refund_made_under_the_callers_id_is_listed_with_its_state_once(app: TestApp) {
    let manager = seed(&app, 10).await;
    let cashier = app.user(Role::Cashier).await;
    let o = paid_cash_order(&app, cashier.token(), 3, "7.50").await;
    let list = |token: String| {
        let app = &app;
        async move {
            let response = app
                .get(&format!("/v1/orders/{}/refunds", o.id), &token)
                .await;
            assert_eq!(response.status(), 200);
            response.json::<Vec<Refund>>().await.unwrap()
        }
    };
    assert!(list(cashier.token().to_owned()).await.is_empty());

    let id = Uuid::now_v7();
    let one = json!({ "id": id, "lines": [{ "sku": "SKU-1", "qty": 1 }], "reason": "damaged" });
    let made: Refund = refund(&app, &manager, o.id, "own-1", &one)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(made.id, id, "the caller's id");
    let replay = refund(&app, &manager, o.id, "own-1", &one).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    // The same id under another key is another refund's: refused, nothing given back.
    error_body(
        refund(&app, &manager, o.id, "own-2", &one).await,
        409,
        "refund_exists",
    )
    .await;
    // Refused for good: nothing is kept to list.
    let too_many =
        json!({ "id": Uuid::now_v7(), "lines": [{ "sku": "SKU-1", "qty": 3 }], "reason": "all" });
    error_body(
        refund(&app, &manager, o.id, "own-3", &too_many).await,
        422,
        "return_exceeds_sold",
    )
    .await;

    let listed = list(cashier.token().to_owned()).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].status, PaymentStatus::Succeeded);
    assert_eq!(
        (listed[0].amount.to_string(), listed[0].cash.to_string()),
        ("2.50 EUR".into(), "2.50 EUR".into())
    );
    assert_eq!(listed[0].lines, made.lines);
    assert_eq!(
        get_order(&app, &manager, o.id).await.refunded.to_string(),
        "2.50 EUR"
    );
    assert_eq!(stock(&app, &manager, "SKU-1").await.on_hand, 8);
    let unknown = app
        .get(
            &format!("/v1/orders/{}/refunds", Uuid::now_v7()),
            cashier.token(),
        )
        .await;
    assert_eq!(unknown.status(), 404);
}
