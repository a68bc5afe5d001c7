//! A till's retries (issue 10, points 6 and 7): a retry is the same request whoever is signed in
//! at that till (card payments, refunds, stock adjustments, offline batches), never a replay of
//! another till's request; and an offline batch that carries an order this till created online
//! finishes that sale once, whether the order was paid, still reserved or cancelled by expiry.

use std::time::Duration;

use kassa_central::Config;
use kassa_domain::api::{Order, Payment, RegisterCreated};
use kassa_domain::{OrderStatus, Role};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::approvals::pair;
use crate::checkout::{assert_ledger_balanced, count, order, seed, stock};
use crate::helpers::TestApp;
use crate::payments::{card, get_order, money, pay, refund};
use crate::sync::{offline_order, sign_in_at, sync};
use crate::{story, story_with};

story!(
    a_card_payment_retried_by_another_cashier_at_the_till_charges_once,
    a_refund_retried_by_another_manager_at_the_till_gives_back_once,
    a_stock_adjustment_retried_by_another_manager_at_the_till_moves_stock_once,
    an_offline_batch_retried_under_another_cashier_at_the_till_applies_each_order_once,
    the_same_key_from_another_till_is_another_request,
    an_offline_batch_for_the_tills_own_paid_online_order_answers_with_that_order,
    an_offline_batch_for_the_tills_own_reserved_online_order_completes_it_at_till_prices,
);
story_with!(short_reservations: an_offline_batch_revives_the_tills_own_order_cancelled_by_expiry);

fn short_reservations(c: &mut Config) {
    c.reservation_ttl = Duration::from_millis(300);
}

/// A paired till at STORE-1 and two users of `role` signed in at it, one after the other:
/// (till, first's token, second's token).
async fn till_with_two(
    app: &TestApp,
    admin: &str,
    role: Role,
) -> (RegisterCreated, String, String) {
    let till = pair(app, admin, "Till 7").await;
    let (_, first) = sign_in_at(app, &till, role).await;
    let (_, second) = sign_in_at(app, &till, role).await;
    (till, first, second)
}

/// An order of `qty` × SKU-1 (2.50 each) made under `key`.
async fn placed(app: &TestApp, token: &str, key: &str, qty: u32) -> Order {
    let body = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": qty }] });
    let response = order(app, token, key, &body).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// The order's intents at the processor simulator: (how many, what they hold in total).
fn charges(app: &TestApp, id: Uuid) -> (usize, i64) {
    let intents = app.sim.as_ref().unwrap().intents_of_order(&id.to_string());
    (intents.len(), intents.iter().map(|i| i.held_minor()).sum())
}

/// Ledger rows that took `sku` out of STORE-1 (a sale is one, whatever the retries).
async fn outgoing_rows(app: &TestApp, sku: &str) -> i64 {
    count(
        app,
        &format!("SELECT COUNT(*) FROM stock_ledger WHERE sku = '{sku}' AND delta < 0"),
    )
    .await
}

async fn payment_rows(app: &TestApp, id: Uuid) -> i64 {
    count(
        app,
        &format!("SELECT COUNT(*) FROM payments WHERE order_id = '{id}'"),
    )
    .await
}

async fn a_card_payment_retried_by_another_cashier_at_the_till_charges_once(app: TestApp) {
    let admin = seed(&app, 10).await;
    let (_, first, second) = till_with_two(&app, &admin, Role::Cashier).await;
    let o = placed(&app, &first, "till-7-sale", 2).await;
    let visa = card("5.00", "pm_card_visa");
    let paid = pay(&app, &first, o.id, "till-7-card", &visa).await;
    assert_eq!(paid.status(), 201);
    let paid: Payment = paid.json().await.unwrap();
    // The first cashier signs out before the answer arrives; the next retries the same key.
    let retry = pay(&app, &second, o.id, "till-7-card", &visa).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.json::<Payment>().await.unwrap().id, paid.id);
    assert_eq!(charges(&app, o.id), (1, 500), "one charge at the processor");
    assert_eq!(payment_rows(&app, o.id).await, 1);
    let after = get_order(&app, &admin, o.id).await;
    assert_eq!(
        (after.status, after.paid.to_string()),
        (OrderStatus::Paid, "5.00 EUR".into())
    );
}

async fn a_refund_retried_by_another_manager_at_the_till_gives_back_once(app: TestApp) {
    let admin = seed(&app, 10).await;
    let (till, first, second) = till_with_two(&app, &admin, Role::Manager).await;
    let (_, cashier) = sign_in_at(&app, &till, Role::Cashier).await;
    let o = placed(&app, &cashier, "till-7-sale", 2).await;
    let visa = card("5.00", "pm_card_visa");
    assert_eq!(
        pay(&app, &cashier, o.id, "till-7-card", &visa)
            .await
            .status(),
        201
    );
    let body = json!({ "amount": money("3.00"), "reason": "goodwill" });
    let given = refund(&app, &first, o.id, "till-7-refund", &body).await;
    assert_eq!(given.status(), 201);
    let given: Value = given.json().await.unwrap();
    let retry = refund(&app, &second, o.id, "till-7-refund", &body).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.json::<Value>().await.unwrap()["id"], given["id"]);
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM refunds WHERE order_id = '{}'", o.id)
        )
        .await,
        1
    );
    assert_eq!(
        charges(&app, o.id),
        (1, 200),
        "3.00 of 5.00 given back once"
    );
    let after = get_order(&app, &admin, o.id).await;
    assert_eq!(after.refunded.to_string(), "3.00 EUR");
}

async fn a_stock_adjustment_retried_by_another_manager_at_the_till_moves_stock_once(app: TestApp) {
    let admin = seed(&app, 10).await;
    let (_, first, second) = till_with_two(&app, &admin, Role::Manager).await;
    let body = json!({ "sku": "SKU-1", "location": "STORE-1", "delta": -3, "reason": "adjustment",
        "note": "dropped a crate" });
    let adjust = |token: String| {
        let (app, body) = (&app, &body);
        async move {
            app.client
                .post(app.url("/v1/stock/adjustments"))
                .bearer_auth(token)
                .header("idempotency-key", "till-7-adjust")
                .json(body)
                .send()
                .await
                .unwrap()
        }
    };
    let done = adjust(first).await;
    assert_eq!(done.status(), 201, "{}", done.text().await.unwrap());
    let retry = adjust(second).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(stock(&app, &admin, "SKU-1").await.on_hand, 7, "moved once");
    assert_eq!(outgoing_rows(&app, "SKU-1").await, 1);
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

async fn an_offline_batch_retried_under_another_cashier_at_the_till_applies_each_order_once(
    app: TestApp,
) {
    let admin = seed(&app, 10).await;
    let (_, first, second) = till_with_two(&app, &admin, Role::Cashier).await;
    let batch: Vec<Value> = (0..3)
        .map(|_| offline_order(Uuid::now_v7(), &[("SKU-1", 1, "2.50")], "2.50"))
        .collect();
    let (status, sent) = sync(&app, &first, &batch).await;
    assert_eq!(status, 200);
    let (status, again) = sync(&app, &second, &batch).await;
    assert_eq!(status, 200);
    let (sent, again): (Value, Value) = (
        serde_json::from_slice(&sent).unwrap(),
        serde_json::from_slice(&again).unwrap(),
    );
    assert_eq!(sent, again, "the retry answers as the first try did");
    for result in again["results"].as_array().unwrap() {
        assert_eq!(result["outcome"], "accepted", "{result}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 3);
    assert_eq!(stock(&app, &admin, "SKU-1").await.on_hand, 7);
    assert_eq!(outgoing_rows(&app, "SKU-1").await, 3);
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

async fn the_same_key_from_another_till_is_another_request(app: TestApp) {
    let admin = seed(&app, 10).await;
    let here = pair(&app, &admin, "Till 7").await;
    let there = pair(&app, &admin, "Till 8").await;
    let (_, at_here) = sign_in_at(&app, &here, Role::Cashier).await;
    let (_, at_there) = sign_in_at(&app, &there, Role::Cashier).await;
    // Both tills number their sales the same way: each key is its till's own.
    let a = placed(&app, &at_here, "sale-1", 1).await;
    let b = placed(&app, &at_there, "sale-1", 1).await;
    assert_ne!(a.id, b.id, "not a replay of the other till's order");
    assert_eq!(b.register_id, Some(there.register_id));
    assert_eq!(stock(&app, &admin, "SKU-1").await.reserved, 2);
    let visa = card("2.50", "pm_card_visa");
    let paid_a: Payment = pay(&app, &at_here, a.id, "pay-1", &visa)
        .await
        .json()
        .await
        .unwrap();
    let paid_b = pay(&app, &at_there, b.id, "pay-1", &visa).await;
    assert_eq!(paid_b.status(), 201, "{}", paid_b.text().await.unwrap());
    let paid_b: Payment = paid_b.json().await.unwrap();
    assert_ne!(paid_a.id, paid_b.id);
    assert_eq!(
        (charges(&app, a.id), charges(&app, b.id)),
        ((1, 250), (1, 250))
    );
    for id in [a.id, b.id] {
        assert_eq!(get_order(&app, &admin, id).await.status, OrderStatus::Paid);
    }
}

/// A till with a cashier signed in, and an online order of 2 × SKU-1 (2.50 each) it made under
/// a client-chosen id: (cashier's token, the order).
async fn online_at_till(app: &TestApp, admin: &str) -> (String, Order) {
    let till = pair(app, admin, "Till 7").await;
    let (_, cashier) = sign_in_at(app, &till, Role::Cashier).await;
    let id = Uuid::now_v7();
    let body = json!({ "id": id, "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 2 }] });
    let response = order(app, &cashier, &format!("sale-{id}"), &body).await;
    assert_eq!(response.status(), 201);
    let o: Order = response.json().await.unwrap();
    assert_eq!((o.id, o.register_id), (id, Some(till.register_id)));
    (cashier, o)
}

/// Syncs one offline order and returns its (only) result.
async fn sync_one(app: &TestApp, token: &str, offline: &Value) -> Value {
    let (status, body) = sync(app, token, std::slice::from_ref(offline)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    let result = parsed["results"][0].clone();
    assert_eq!(result["outcome"], "accepted", "{result}");
    result
}

/// How many `kind` events order `id` raised.
pub async fn events_of(app: &TestApp, kind: &str, id: Uuid) -> i64 {
    count(
        app,
        &format!("SELECT COUNT(*) FROM events WHERE type = '{kind}' AND aggregate_id = '{id}'"),
    )
    .await
}

async fn an_offline_batch_for_the_tills_own_paid_online_order_answers_with_that_order(
    app: TestApp,
) {
    let admin = seed(&app, 10).await;
    let (cashier, o) = online_at_till(&app, &admin).await;
    // The pay landed but its answer was cut: the till finished the sale offline.
    let cash = json!({ "method": "cash", "amount": money("5.00"), "tendered": money("5.00") });
    assert_eq!(pay(&app, &cashier, o.id, "pay", &cash).await.status(), 201);
    let offline = offline_order(o.id, &[("SKU-1", 2, "2.50")], "5.00");
    let result = sync_one(&app, &cashier, &offline).await;
    assert_eq!(result["order"]["id"], json!(o.id));
    assert_eq!(result["order"]["status"], "PAID");
    assert_eq!(result["order"]["paid"]["amount"], "5.00");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(payment_rows(&app, o.id).await, 1, "paid once");
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM offline_payments WHERE order_id = '{}'",
                o.id
            )
        )
        .await,
        0,
        "the till's cash is not recorded a second time"
    );
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved), (8, 0));
    assert_eq!(outgoing_rows(&app, "SKU-1").await, 1, "one stock movement");
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
    // Sent again, the same answer.
    assert_eq!(sync_one(&app, &cashier, &offline).await, result);
}

async fn an_offline_batch_for_the_tills_own_reserved_online_order_completes_it_at_till_prices(
    app: TestApp,
) {
    let admin = seed(&app, 10).await;
    let (cashier, o) = online_at_till(&app, &admin).await;
    assert_eq!(stock(&app, &admin, "SKU-1").await.reserved, 2);
    // The pay call never reached Central; the till sold at the price it had (2.00).
    let offline = offline_order(o.id, &[("SKU-1", 2, "2.00")], "4.00");
    let result = sync_one(&app, &cashier, &offline).await;
    assert_eq!(result["order"]["status"], "PAID");
    let after = get_order(&app, &admin, o.id).await;
    assert_eq!(
        (
            after.status,
            after.totals.total.to_string(),
            after.paid.to_string()
        ),
        (OrderStatus::Paid, "4.00 EUR".into(), "4.00 EUR".into())
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM offline_payments WHERE order_id = '{}'",
                o.id
            )
        )
        .await,
        1,
        "paid once, by the till's cash"
    );
    assert_eq!(payment_rows(&app, o.id).await, 0);
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!(
        (level.on_hand, level.reserved),
        (8, 0),
        "reservation released, sold once"
    );
    assert_eq!(outgoing_rows(&app, "SKU-1").await, 1);
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
    assert_eq!(events_of(&app, "order.revived_offline", o.id).await, 0);
    assert_eq!(sync_one(&app, &cashier, &offline).await, result);
    assert_eq!(stock(&app, &admin, "SKU-1").await.on_hand, 8);
}

async fn an_offline_batch_revives_the_tills_own_order_cancelled_by_expiry(app: TestApp) {
    let admin = seed(&app, 10).await;
    let (cashier, o) = online_at_till(&app, &admin).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    kassa_central::stock::sweep_expired(&app.state)
        .await
        .unwrap();
    assert_eq!(
        get_order(&app, &admin, o.id).await.status,
        OrderStatus::Cancelled
    );
    assert_eq!(stock(&app, &admin, "SKU-1").await.reserved, 0);
    let offline = offline_order(o.id, &[("SKU-1", 2, "2.50")], "5.00");
    let result = sync_one(&app, &cashier, &offline).await;
    assert_eq!(result["order"]["status"], "PAID");
    let after = get_order(&app, &admin, o.id).await;
    assert_eq!(
        (after.status, after.paid.to_string()),
        (OrderStatus::Paid, "5.00 EUR".into())
    );
    assert_eq!(events_of(&app, "order.revived_offline", o.id).await, 1);
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM offline_payments WHERE order_id = '{}'",
                o.id
            )
        )
        .await,
        1,
        "paid once"
    );
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved), (8, 0), "stock taken once");
    assert_eq!(outgoing_rows(&app, "SKU-1").await, 1);
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
    // The retry of the batch revives nothing twice.
    assert_eq!(sync_one(&app, &cashier, &offline).await, result);
    assert_eq!(events_of(&app, "order.revived_offline", o.id).await, 1);
    assert_eq!(stock(&app, &admin, "SKU-1").await.on_hand, 8);
}
