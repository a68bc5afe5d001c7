//! Cash rounding stories: a location's increment set by a manager and shown with the location;
//! the final cash due of a sale (online payment or offline batch) rounded by that rule and the
//! difference kept on the order (paid = total + rounding); a rounding the rule does not make,
//! or one on a card payment, refused; a location without rounding unchanged.

use kassa_domain::api::{Location, Order};
use kassa_domain::{OrderStatus, Role};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::catalog::{create, ean, product_body};
use crate::checkout::{order, receive, seed};
use crate::helpers::{error_body, TestApp};
use crate::payments::{card, get_order, money, pay, refund};
use crate::story;
use crate::sync::{offline_order, register_session, sync};

story!(
    a_manager_sets_a_locations_cash_rounding_and_a_bad_increment_is_refused,
    a_cash_payment_online_is_rounded_by_the_locations_rule_and_kept_on_the_order,
    a_wrong_rounding_or_a_rounded_card_payment_is_refused,
    a_location_without_rounding_takes_exact_cash_only,
    an_offline_cash_sale_and_a_split_sale_carry_their_rounding,
);

/// Sets STORE-1's cash rounding (manager) and returns the location.
async fn round_store(app: &TestApp, token: &str, minor: i64) -> Location {
    let body = json!({ "location": "STORE-1", "cash_rounding": minor });
    let response = app
        .client
        .put(app.url("/v1/settings/cash-rounding"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// STORE-1 with SKU-1 (2.50), SKU-R (3.02) and SKU-U (3.03) in stock; the admin's token.
async fn shop(app: &TestApp) -> String {
    let admin = seed(app, 10).await;
    create(app, &admin, &product_body("SKU-R", &ean(31), "3.02")).await;
    create(app, &admin, &product_body("SKU-U", &ean(32), "3.03")).await;
    receive(app, &admin, "SKU-R", 10).await;
    receive(app, &admin, "SKU-U", 10).await;
    admin
}

async fn reserved(app: &TestApp, token: &str, lines: Value) -> Order {
    let body = json!({ "location": "STORE-1", "lines": lines });
    let response = order(app, token, &Uuid::new_v4().to_string(), &body).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn rounded_cash(amount: &str, rounding: &str, tendered: &str) -> Value {
    json!({
        "method": "cash", "amount": money(amount), "tendered": money(tendered),
        "cash_rounding": money(rounding),
    })
}

fn eur(amount: &str) -> kassa_domain::Money {
    kassa_domain::Money::parse(amount, kassa_domain::Currency::EUR).unwrap()
}

async fn a_manager_sets_a_locations_cash_rounding_and_a_bad_increment_is_refused(app: TestApp) {
    let admin = seed(&app, 0).await;
    let manager = app.user(Role::Manager).await;
    let set = round_store(&app, manager.token(), 5).await;
    assert_eq!(set.cash_rounding.increment_minor(), 5);
    let listed: Vec<Location> = app.get("/v1/locations", &admin).await.json().await.unwrap();
    let store = listed.iter().find(|l| l.code == "STORE-1").unwrap();
    assert_eq!(
        store.cash_rounding.increment_minor(),
        5,
        "shown with the location"
    );
    for bad in [3, 7, -5, 20_000] {
        let body = json!({ "location": "STORE-1", "cash_rounding": bad });
        let response = app
            .client
            .put(app.url("/v1/settings/cash-rounding"))
            .bearer_auth(manager.token())
            .json(&body)
            .send()
            .await
            .unwrap();
        error_body(response, 422, "invalid_cash_rounding").await;
    }
    let body = json!({ "location": "NOWHERE", "cash_rounding": 5 });
    let response = app
        .client
        .put(app.url("/v1/settings/cash-rounding"))
        .bearer_auth(manager.token())
        .json(&body)
        .send()
        .await
        .unwrap();
    error_body(response, 422, "unknown_location").await;
    let kept: Vec<Location> = app.get("/v1/locations", &admin).await.json().await.unwrap();
    assert_eq!(
        kept[0].cash_rounding.increment_minor(),
        5,
        "a refusal changes nothing"
    );
    // Set when the location is made, too.
    let made = app
        .post(
            "/v1/locations",
            &admin,
            &json!({ "code": "SE-1", "name": "Stockholm", "cash_rounding": 100 }),
        )
        .await;
    assert_eq!(made.status(), 201);
    let made: Location = made.json().await.unwrap();
    assert_eq!(made.cash_rounding.increment_minor(), 100);
    let refused = app
        .post(
            "/v1/locations",
            &admin,
            &json!({ "code": "BAD-1", "name": "Bad", "cash_rounding": 7 }),
        )
        .await;
    error_body(refused, 422, "invalid_cash_rounding").await;
    assert_eq!(
        round_store(&app, manager.token(), 0)
            .await
            .cash_rounding
            .increment_minor(),
        0
    );
}

async fn a_cash_payment_online_is_rounded_by_the_locations_rule_and_kept_on_the_order(
    app: TestApp,
) {
    let admin = shop(&app).await;
    round_store(&app, &admin, 5).await;
    let cashier = app.user(Role::Cashier).await;
    // 3.02 is paid as 3.00 (rounding −0.02), with change from the rounded due.
    let o = reserved(&app, cashier.token(), json!([{ "sku": "SKU-R", "qty": 1 }])).await;
    let paid = pay(
        &app,
        cashier.token(),
        o.id,
        "round-1",
        &rounded_cash("3.00", "-0.02", "5.00"),
    )
    .await;
    assert_eq!(paid.status(), 201);
    let payment: Value = paid.json().await.unwrap();
    assert_eq!(payment["change"], money("2.00"));
    assert_eq!(payment["order_status"], "PAID");
    let o = get_order(&app, cashier.token(), o.id).await;
    assert_eq!(o.status, OrderStatus::Paid);
    assert_eq!((o.totals.total, o.paid), (eur("3.02"), eur("3.00")));
    assert_eq!(o.cash_rounding, Some(eur("-0.02")));
    // 3.03 is paid as 3.05 (rounding +0.02).
    let up = reserved(&app, cashier.token(), json!([{ "sku": "SKU-U", "qty": 1 }])).await;
    let paid = pay(
        &app,
        cashier.token(),
        up.id,
        "round-2",
        &rounded_cash("3.05", "0.02", "3.05"),
    )
    .await;
    assert_eq!(paid.status(), 201);
    let up = get_order(&app, cashier.token(), up.id).await;
    assert_eq!(
        (up.status, up.paid, up.cash_rounding),
        (OrderStatus::Paid, eur("3.05"), Some(eur("0.02")))
    );
    // Cash in two parts: the first exact, only the final one rounded (6.05 − 1.00 = 5.05 is
    // already on the increment: 2 × 3.02 = 6.04 − 1.00 = 5.04 → 5.05).
    let two = reserved(&app, cashier.token(), json!([{ "sku": "SKU-R", "qty": 2 }])).await;
    let exact = json!({ "method": "cash", "amount": money("1.00"), "tendered": money("1.00") });
    assert_eq!(
        pay(&app, cashier.token(), two.id, "round-3", &exact)
            .await
            .status(),
        201
    );
    let last = pay(
        &app,
        cashier.token(),
        two.id,
        "round-4",
        &rounded_cash("5.05", "0.01", "10.00"),
    )
    .await;
    assert_eq!(last.status(), 201);
    let two = get_order(&app, cashier.token(), two.id).await;
    assert_eq!(
        (two.status, two.paid, two.cash_rounding),
        (OrderStatus::Paid, eur("6.05"), Some(eur("0.01")))
    );
    // The rounding is in the order's paid event.
    let (paid_event,): (String,) = sqlx::query_as(
        "SELECT payload FROM events WHERE type = 'order.paid' AND aggregate_id = $1",
    )
    .bind(o.id.to_string())
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    let paid_event: Value = serde_json::from_str(&paid_event).unwrap();
    assert_eq!(paid_event["cash_rounding"], money("-0.02"), "{paid_event}");
    // Returning the goods gives back what was paid (3.00), not the exact total (3.02).
    let back = json!({ "lines": [{ "sku": "SKU-R", "qty": 1 }], "reason": "changed mind" });
    let refunded = refund(&app, &admin, o.id, "back-1", &back).await;
    assert_eq!(refunded.status(), 201, "{}", refunded.text().await.unwrap());
    let o = get_order(&app, &admin, o.id).await;
    assert_eq!((o.status, o.refunded), (OrderStatus::Refunded, eur("3.00")));
    // Rounded up (6.04 paid 6.05): two returns of one each, the last gives back the rest.
    let back = json!({ "lines": [{ "sku": "SKU-R", "qty": 1 }], "reason": "changed mind" });
    let first = refund(&app, &admin, two.id, "back-2", &back).await;
    assert_eq!(first.status(), 201, "{}", first.text().await.unwrap());
    let second = refund(&app, &admin, two.id, "back-3", &back).await;
    assert_eq!(second.status(), 201, "{}", second.text().await.unwrap());
    let two = get_order(&app, &admin, two.id).await;
    assert_eq!(
        (two.status, two.refunded),
        (OrderStatus::Refunded, eur("6.05"))
    );
}

async fn a_wrong_rounding_or_a_rounded_card_payment_is_refused(app: TestApp) {
    let admin = shop(&app).await;
    round_store(&app, &admin, 5).await;
    let cashier = app.user(Role::Cashier).await;
    let o = reserved(&app, cashier.token(), json!([{ "sku": "SKU-R", "qty": 1 }])).await;
    // Not what the rule makes of 3.02 (−0.02): refused whatever the amount.
    for (i, (amount, rounding)) in [("3.05", "0.03"), ("3.01", "-0.01"), ("2.95", "-0.07")]
        .into_iter()
        .enumerate()
    {
        let refused = pay(
            &app,
            cashier.token(),
            o.id,
            &format!("bad-{i}"),
            &rounded_cash(amount, rounding, "5.00"),
        )
        .await;
        error_body(refused, 422, "invalid_cash_rounding").await;
    }
    // The right rounding with an amount that does not match it.
    let refused = pay(
        &app,
        cashier.token(),
        o.id,
        "bad-amount",
        &rounded_cash("3.05", "-0.02", "5.00"),
    )
    .await;
    error_body(refused, 422, "invalid_amount").await;
    // A card pays its exact amount: a rounding on it is refused.
    let mut rounded_card = card("3.00", "pm_card_visa");
    rounded_card["cash_rounding"] = money("-0.02");
    let refused = pay(&app, cashier.token(), o.id, "bad-card", &rounded_card).await;
    error_body(refused, 422, "rounding_not_cash").await;
    let o = get_order(&app, cashier.token(), o.id).await;
    assert_eq!(
        (o.status, o.paid, o.cash_rounding),
        (OrderStatus::Reserved, eur("0.00"), None)
    );
    // A rounding on a part that is not the last: refused (only the final cash due rounds).
    let two = reserved(&app, cashier.token(), json!([{ "sku": "SKU-R", "qty": 2 }])).await;
    let early = pay(
        &app,
        cashier.token(),
        two.id,
        "early",
        &rounded_cash("3.00", "-0.02", "3.00"),
    )
    .await;
    assert_eq!(early.status().as_u16(), 422);
    // A card part stays exact, and the cash rest is rounded: card 3.02 + cash 3.00.
    let by_card = pay(
        &app,
        cashier.token(),
        two.id,
        "card-part",
        &card("3.02", "pm_card_visa"),
    )
    .await;
    assert_eq!(by_card.status(), 201, "{}", by_card.text().await.unwrap());
    let rest = pay(
        &app,
        cashier.token(),
        two.id,
        "cash-rest",
        &rounded_cash("3.00", "-0.02", "3.00"),
    )
    .await;
    assert_eq!(rest.status(), 201);
    let two = get_order(&app, cashier.token(), two.id).await;
    assert_eq!(
        (two.status, two.paid, two.cash_rounding),
        (OrderStatus::Paid, eur("6.02"), Some(eur("-0.02")))
    );
}

async fn a_location_without_rounding_takes_exact_cash_only(app: TestApp) {
    let admin = shop(&app).await;
    let cashier = app.user(Role::Cashier).await;
    let o = reserved(&app, cashier.token(), json!([{ "sku": "SKU-R", "qty": 1 }])).await;
    let refused = pay(
        &app,
        cashier.token(),
        o.id,
        "none-1",
        &rounded_cash("3.00", "-0.02", "5.00"),
    )
    .await;
    error_body(refused, 422, "invalid_cash_rounding").await;
    let exact = json!({ "method": "cash", "amount": money("3.02"), "tendered": money("5.00") });
    let paid = pay(&app, cashier.token(), o.id, "none-2", &exact).await;
    assert_eq!(paid.status(), 201);
    let payment: Value = paid.json().await.unwrap();
    assert_eq!(payment["change"], money("1.98"));
    let o = get_order(&app, cashier.token(), o.id).await;
    assert_eq!(
        (o.status, o.paid, o.cash_rounding),
        (OrderStatus::Paid, eur("3.02"), None)
    );
    let wire = app.get(&format!("/v1/orders/{}", o.id), &admin).await;
    let wire: Value = wire.json().await.unwrap();
    assert!(
        wire.get("cash_rounding").is_none(),
        "no rounding, no field: {wire}"
    );
    // Exact cash is also taken where a rule is set.
    round_store(&app, &admin, 5).await;
    let o = reserved(&app, cashier.token(), json!([{ "sku": "SKU-R", "qty": 1 }])).await;
    assert_eq!(
        pay(&app, cashier.token(), o.id, "none-3", &exact)
            .await
            .status(),
        201
    );
    let o = get_order(&app, cashier.token(), o.id).await;
    assert_eq!(
        (o.status, o.paid, o.cash_rounding),
        (OrderStatus::Paid, eur("3.02"), None)
    );
}

fn results(body: &[u8]) -> Vec<Value> {
    let parsed: Value = serde_json::from_slice(body).unwrap();
    parsed["results"].as_array().unwrap().clone()
}

async fn an_offline_cash_sale_and_a_split_sale_carry_their_rounding(app: TestApp) {
    let admin = seed(&app, 10).await;
    let (till, _) = register_session(&app, &admin).await;
    // Before the store rounds: a rounded offline sale is refused, nothing kept.
    let mut early = offline_order(Uuid::now_v7(), &[("SKU-1", 1, "3.02")], "3.00");
    early["cash_rounding"] = money("-0.02");
    let (status, body) = sync(&app, &till, &[early]).await;
    assert_eq!(status, 200);
    assert_eq!(results(&body)[0]["error"]["code"], "invalid_cash_rounding");
    round_store(&app, &admin, 5).await;
    let mut cash = offline_order(Uuid::now_v7(), &[("SKU-1", 1, "3.02")], "3.00");
    cash["cash_rounding"] = money("-0.02");
    let mut split = offline_order(Uuid::now_v7(), &[("SKU-1", 1, "13.02")], "3.00");
    split["cash_rounding"] = money("-0.02");
    split["payments"] = json!([
        { "method": "card_offline", "amount": money("10.00"), "reference": "TERM-1-000001" },
        { "method": "cash", "amount": money("3.00"), "tendered": money("5.00") },
    ]);
    let mut wrong = offline_order(Uuid::now_v7(), &[("SKU-1", 1, "3.02")], "3.05");
    wrong["cash_rounding"] = money("0.03");
    let mut card_last = split.clone();
    card_last["id"] = json!(Uuid::now_v7());
    card_last["receipt_no"] = json!("STORE-1-R1-CARDLAST");
    card_last["payments"] = json!([
        { "method": "cash", "amount": money("3.00"), "tendered": money("5.00") },
        { "method": "card_offline", "amount": money("10.00"), "reference": "TERM-1-000002" },
    ]);
    let mut unrounded = offline_order(Uuid::now_v7(), &[("SKU-1", 1, "3.02")], "3.00");
    unrounded["receipt_no"] = json!("STORE-1-R1-UNROUNDED");
    let (status, body) = sync(&app, &till, &[cash, split, wrong, card_last, unrounded]).await;
    assert_eq!(status, 200);
    let results = results(&body);
    let codes: Vec<&str> = results
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or("accepted"))
        .collect();
    assert_eq!(
        codes,
        [
            "accepted",
            "accepted",
            "invalid_cash_rounding",
            "rounding_not_cash",
            "insufficient_payment"
        ]
    );
    let cash: Order = serde_json::from_value(results[0]["order"].clone()).unwrap();
    assert_eq!(
        (cash.status, cash.totals.total, cash.paid),
        (OrderStatus::Paid, eur("3.02"), eur("3.00"))
    );
    assert_eq!(cash.cash_rounding, Some(eur("-0.02")));
    let split: Order = serde_json::from_value(results[1]["order"].clone()).unwrap();
    assert_eq!(
        (split.totals.total, split.paid, split.cash_rounding),
        (eur("13.02"), eur("13.00"), Some(eur("-0.02")))
    );
    let stored = get_order(&app, &admin, split.id).await;
    assert_eq!(
        stored.cash_rounding,
        Some(eur("-0.02")),
        "kept on the order"
    );
}
