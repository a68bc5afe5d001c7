//! Offline sync stories: a register's batch of offline orders is applied exactly once whatever
//! the retries, short stock becomes a recorded discrepancy (never a refusal, never eating online
//! reservations), and invalid orders are rejected without being remembered.

use std::sync::Arc;

use kassa_domain::api::{DiscrepancyPage, Order, RegisterCreated, TokenResponse};
use kassa_domain::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::checkout::{assert_ledger_balanced, count, order, seed, stock};
use crate::helpers::{error_body, TestApp};
use crate::story;

story!(
    a_batch_sent_three_times_applies_each_order_once,
    a_batch_sent_three_times_at_once_applies_each_order_once,
    short_stock_becomes_a_discrepancy_and_online_reservations_stay_whole,
    a_batch_over_the_limit_is_refused_whole,
    only_staff_signed_in_at_a_register_may_sync,
    a_rejected_order_is_not_kept_and_applies_once_corrected,
    till_prices_and_split_payments_are_kept_as_sold,
    a_full_batch_with_rejections_in_several_commit_groups_keeps_only_the_valid_orders,
);

/// Pairs a register at STORE-1 and signs a new cashier in at it; returns the session's token.
pub async fn register_session(app: &TestApp, admin: &str) -> (String, Uuid) {
    let created = app
        .post(
            "/v1/registers",
            admin,
            &json!({ "location": "STORE-1", "name": "Till 1" }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let register: RegisterCreated = created.json().await.unwrap();
    let (_, token) = sign_in_at(app, &register, Role::Cashier).await;
    (token, register.register_id)
}

/// A new user of `role` signed in at `register`: (username, access token).
pub async fn sign_in_at(app: &TestApp, register: &RegisterCreated, role: Role) -> (String, String) {
    let user = app.user(role).await;
    let login = json!({
        "username": user.username, "password": user.password,
        "register": { "id": register.register_id, "credential": register.credential },
    });
    let response = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: TokenResponse = response.json().await.unwrap();
    (user.username, tokens.access_token)
}

/// An offline order of `lines` (sku, qty, unit price) paid in cash, `paid` tendered in full.
pub fn offline_order(id: Uuid, lines: &[(&str, u32, &str)], paid: &str) -> Value {
    let money = |amount: &str| json!({ "amount": amount, "currency": "EUR" });
    let lines: Vec<Value> = lines
        .iter()
        .map(|(sku, qty, price)| json!({ "sku": sku, "qty": qty, "unit_price": money(price), "discount": null }))
        .collect();
    json!({
        "id": id, "location": "STORE-1", "lines": lines,
        "payments": [{ "method": "cash", "amount": money(paid), "tendered": money("50.00") }],
        "completed_at": "2026-11-30T10:15:00Z", "receipt_no": format!("STORE-1-R1-{}", &id.simple().to_string()[24..]),
    })
}

pub async fn sync(app: &TestApp, token: &str, orders: &[Value]) -> (u16, Vec<u8>) {
    let response = app
        .post("/v1/sync/orders", token, &json!({ "orders": orders }))
        .await;
    (
        response.status().as_u16(),
        response.bytes().await.unwrap().to_vec(),
    )
}

fn results(body: &[u8]) -> Vec<Value> {
    let parsed: Value = serde_json::from_slice(body).unwrap();
    parsed["results"].as_array().unwrap().clone()
}

/// Five orders: SKU-1 from stock, SKU-2 (none on hand) as shortfalls.
fn five_orders() -> Vec<Value> {
    (0..5u32)
        .map(|i| {
            let qty = i + 1;
            let total = format!("{}.00", 4 * qty + 5);
            offline_order(
                Uuid::now_v7(),
                &[("SKU-1", 2, "2.50"), ("SKU-2", qty, "4.00")],
                &total,
            )
        })
        .collect()
}

async fn assert_applied_once(app: &TestApp, admin: &str, orders: &[Value], body: &[u8]) {
    let results = results(body);
    assert_eq!(results.len(), orders.len());
    for (result, sent) in results.iter().zip(orders) {
        assert_eq!(result["outcome"], "accepted", "{result}");
        assert_eq!(result["id"], sent["id"]);
        let order: Order = serde_json::from_value(result["order"].clone()).unwrap();
        assert_eq!(order.status, kassa_domain::OrderStatus::Paid);
        assert_eq!(
            (order.source.as_str(), order.paid),
            ("offline", order.totals.total)
        );
        let id = order.id;
        let events = count(
            app,
            &format!(
                "SELECT COUNT(*) FROM events WHERE aggregate_id = '{id}' AND type LIKE 'order.%'"
            ),
        )
        .await;
        assert_eq!(events, 3, "created, reserved, paid: once each");
    }
    let n = i64::try_from(orders.len()).unwrap();
    assert_eq!(
        count(app, "SELECT COUNT(*) FROM orders WHERE source = 'offline'").await,
        n
    );
    assert_eq!(count(app, "SELECT COUNT(*) FROM offline_payments").await, n);
    assert_eq!(
        count(app, "SELECT COUNT(*) FROM stock_discrepancies").await,
        n
    );
    let sku1 = stock(app, admin, "SKU-1").await;
    assert_eq!(
        sku1.on_hand,
        100 - 2 * n,
        "two units of SKU-1 per order, taken once"
    );
    assert_ledger_balanced(app, admin, "SKU-1").await;
    assert_ledger_balanced(app, admin, "SKU-2").await;
}

async fn a_batch_sent_three_times_applies_each_order_once(app: TestApp) {
    let admin = seed(&app, 100).await;
    let (till, _) = register_session(&app, &admin).await;
    let orders = five_orders();
    let (status, first) = sync(&app, &till, &orders).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&first));
    for _ in 0..2 {
        let (status, again) = sync(&app, &till, &orders).await;
        assert_eq!(status, 200);
        assert_eq!(
            again, first,
            "a retry answers byte for byte what the first did"
        );
    }
    assert_applied_once(&app, &admin, &orders, &first).await;
    let shortfalls: Vec<Value> = results(&first)
        .iter()
        .map(|r| r["shortfalls"].clone())
        .collect();
    assert_eq!(
        shortfalls[2],
        json!([{ "sku": "SKU-2", "location": "STORE-1", "shortfall": 3 }])
    );
}

async fn a_batch_sent_three_times_at_once_applies_each_order_once(app: TestApp) {
    let admin = seed(&app, 100).await;
    let (till, _) = register_session(&app, &admin).await;
    let orders = Arc::new(five_orders());
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (app, till, orders) = (app.clone(), till.clone(), orders.clone());
            tokio::spawn(async move { sync(&app, &till, &orders).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        bodies.push(body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "concurrent retries answer the same bytes"
    );
    assert_applied_once(&app, &admin, &orders, &bodies[0]).await;
}

async fn short_stock_becomes_a_discrepancy_and_online_reservations_stay_whole(app: TestApp) {
    let admin = seed(&app, 5).await;
    let (till, _) = register_session(&app, &admin).await;
    let buyer = app.user(Role::Customer).await;
    let body = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 3 }] });
    let online = order(&app, buyer.token(), "online-1", &body).await;
    assert_eq!(online.status(), 201);
    let online: Order = online.json().await.unwrap();

    let id = Uuid::now_v7();
    let (status, body) = sync(
        &app,
        &till,
        &[offline_order(id, &[("SKU-1", 4, "2.50")], "10.00")],
    )
    .await;
    assert_eq!(status, 200);
    let result = &results(&body)[0];
    assert_eq!(
        result["outcome"], "accepted",
        "a short offline sale is still accepted"
    );
    assert_eq!(
        result["shortfalls"],
        json!([{ "sku": "SKU-1", "location": "STORE-1", "shortfall": 2 }])
    );
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!(
        (level.on_hand, level.reserved, level.available),
        (3, 3, 0),
        "the sale took the 2 available units, not the 3 reserved online"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM events WHERE type = 'stock.discrepancy'"
        )
        .await,
        1
    );
    assert_ledger_balanced(&app, &admin, "SKU-1").await;

    let listed = app
        .get("/v1/stock/discrepancies?location=STORE-1&open=true", &admin)
        .await;
    assert_eq!(listed.status(), 200);
    let page: DiscrepancyPage = listed.json().await.unwrap();
    assert_eq!(page.items.len(), 1);
    let item = &page.items[0];
    assert_eq!(
        (item.order_id, item.shortfall, item.location.as_str()),
        (id, 2, "STORE-1")
    );
    assert_eq!(item.resolved_at, None);
    resolving_a_discrepancy_says_who_and_how(&app, &admin, item.id).await;
    error_body(
        app.get("/v1/stock/discrepancies", &till).await,
        403,
        "forbidden",
    )
    .await;
    error_body(
        app.get("/v1/stock/discrepancies?location=MARS", &admin)
            .await,
        422,
        "unknown_location",
    )
    .await;

    let mut tx = app.state.db.begin_write().await.unwrap();
    kassa_central::orders::record_payment(&app.state, &mut tx, online.id, online.totals.total)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!(
        (level.on_hand, level.reserved),
        (0, 0),
        "the online order got its 3 units"
    );
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

/// A manager settles the shortfall once, with a note; it leaves the open list.
async fn resolving_a_discrepancy_says_who_and_how(app: &TestApp, admin: &str, id: Uuid) {
    let resolve = |id: Uuid, note: &str| {
        let (path, body) = (
            format!("/v1/stock/discrepancies/{id}/resolve"),
            json!({ "note": note }),
        );
        async move { app.post(&path, admin, &body).await }
    };
    error_body(resolve(id, "   ").await, 422, "invalid_note").await;
    error_body(resolve(id, &"x".repeat(501)).await, 422, "invalid_note").await;
    error_body(resolve(Uuid::now_v7(), "recounted").await, 404, "not_found").await;
    let done = resolve(id, " recounted: 2 more were on the shelf ").await;
    assert_eq!(done.status(), 200);
    let done: kassa_domain::api::StockDiscrepancy = done.json().await.unwrap();
    assert!(done.resolved_at.is_some());
    assert_eq!(
        (done.resolved_by.is_some(), done.resolution.as_deref()),
        (true, Some("recounted: 2 more were on the shelf"))
    );
    let again = error_body(resolve(id, "twice").await, 409, "already_resolved").await;
    assert_eq!(
        again["error"]["details"]["resolved_by"],
        json!(done.resolved_by)
    );
    let open: DiscrepancyPage = app
        .get("/v1/stock/discrepancies?location=STORE-1&open=true", admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(open.items.is_empty(), "{open:?}");
    let all: DiscrepancyPage = app
        .get("/v1/stock/discrepancies?location=STORE-1", admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.items, vec![done]);
    assert_eq!(
        count(
            app,
            "SELECT COUNT(*) FROM events WHERE type = 'stock.discrepancy_resolved'"
        )
        .await,
        1
    );
}

async fn a_batch_over_the_limit_is_refused_whole(app: TestApp) {
    let admin = seed(&app, 1000).await;
    let (till, _) = register_session(&app, &admin).await;
    let orders: Vec<Value> = (0..=kassa_domain::api::SYNC_BATCH_ORDERS_MAX)
        .map(|_| offline_order(Uuid::now_v7(), &[("SKU-1", 1, "2.50")], "2.50"))
        .collect();
    let response = app
        .post("/v1/sync/orders", &till, &json!({ "orders": orders }))
        .await;
    let body = error_body(response, 422, "batch_too_large").await;
    assert_eq!(body["error"]["details"]["max"], 100);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM orders").await,
        0,
        "nothing applied"
    );
    let (status, body) = sync(&app, &till, &orders[..100]).await;
    assert_eq!(status, 200);
    assert!(results(&body).iter().all(|r| r["outcome"] == "accepted"));
}

async fn only_staff_signed_in_at_a_register_may_sync(app: TestApp) {
    let admin = seed(&app, 10).await;
    let orders = [offline_order(
        Uuid::now_v7(),
        &[("SKU-1", 1, "2.50")],
        "2.50",
    )];
    let body = json!({ "orders": orders });
    for role in [Role::Cashier, Role::Manager, Role::Admin] {
        let session = app.user(role).await;
        let response = app.post("/v1/sync/orders", session.token(), &body).await;
        error_body(response, 403, "not_a_register").await;
    }
    let customer = app.user(Role::Customer).await;
    error_body(
        app.post("/v1/sync/orders", customer.token(), &body).await,
        403,
        "forbidden",
    )
    .await;
    let response = app
        .client
        .post(app.url("/v1/sync/orders"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 0);
    let (till, _) = register_session(&app, &admin).await;
    assert_eq!(sync(&app, &till, &orders).await.0, 200);
}

async fn a_rejected_order_is_not_kept_and_applies_once_corrected(app: TestApp) {
    let admin = seed(&app, 10).await;
    let (till, _) = register_session(&app, &admin).await;
    let taken_online = Uuid::now_v7();
    let online = json!({ "id": taken_online, "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 1 }] });
    assert_eq!(order(&app, &admin, "online", &online).await.status(), 201);
    let good = offline_order(Uuid::now_v7(), &[("SKU-1", 1, "2.50")], "2.50");
    let unknown = offline_order(Uuid::now_v7(), &[("NO-SUCH", 1, "2.50")], "2.50");
    let underpaid = offline_order(Uuid::now_v7(), &[("SKU-1", 2, "2.50")], "4.00");
    let clash = offline_order(taken_online, &[("SKU-1", 1, "2.50")], "2.50");
    let mut bad_money = offline_order(Uuid::now_v7(), &[("SKU-1", 1, "2.50")], "2.50");
    bad_money["lines"][0]["unit_price"]["amount"] = json!("2.505");
    let batch = [good.clone(), unknown, underpaid.clone(), clash, bad_money];
    let (status, body) = sync(&app, &till, &batch).await;
    assert_eq!(status, 200);
    let first = results(&body);
    let codes: Vec<&str> = first
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or("accepted"))
        .collect();
    assert_eq!(
        codes,
        [
            "accepted",
            "unknown_sku",
            "insufficient_payment",
            "order_exists",
            "invalid_order"
        ]
    );
    assert!(first[1..]
        .iter()
        .all(|r| r["outcome"] == "rejected" && r.get("order").is_none()));
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM offline_orders").await,
        1,
        "rejections are not kept"
    );

    let mut corrected = underpaid;
    corrected["payments"][0]["amount"]["amount"] = json!("5.00");
    let (_, body) = sync(&app, &till, &[good.clone(), corrected]).await;
    let second = results(&body);
    assert_eq!(second[0], first[0], "the accepted order replays as it was");
    assert_eq!(second[1]["outcome"], "accepted", "{}", second[1]);
    assert_eq!(stock(&app, &admin, "SKU-1").await.on_hand, 7);

    let mut changed = good.clone();
    changed["receipt_no"] = json!("STORE-1-R1-999999");
    let (_, body) = sync(&app, &till, &[changed]).await;
    assert_eq!(results(&body)[0]["error"]["code"], "order_id_reused");
    let (other_till, _) = register_session(&app, &admin).await;
    let (_, body) = sync(&app, &other_till, &[good]).await;
    assert_eq!(
        results(&body)[0]["error"]["code"],
        "order_exists",
        "another register cannot reuse the id"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM orders WHERE source = 'offline'").await,
        2
    );
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

async fn till_prices_and_split_payments_are_kept_as_sold(app: TestApp) {
    let admin = seed(&app, 10).await;
    let (till, register_id) = register_session(&app, &admin).await;
    let id = Uuid::now_v7();
    let money = |amount: &str| json!({ "amount": amount, "currency": "EUR" });
    let mut sold = offline_order(id, &[("SKU-1", 3, "2.00")], "1.00");
    sold["lines"][0]["discount"] = money("0.50");
    sold["payments"] = json!([
        { "method": "cash", "amount": money("1.00"), "tendered": money("5.00") },
        { "method": "card_offline", "amount": money("4.50"), "reference": "TERM-7-000123" },
    ]);
    let (status, body) = sync(&app, &till, &[sold]).await;
    assert_eq!(status, 200);
    let result = &results(&body)[0];
    assert_eq!(result["outcome"], "accepted", "{result}");
    let order: Order = serde_json::from_value(result["order"].clone()).unwrap();
    assert_eq!(
        (
            order.totals.total.to_string(),
            order.lines[0].unit_price.to_string()
        ),
        ("5.50 EUR".to_owned(), "2.00 EUR".to_owned()),
        "the till's price (2.00, less 0.50), not the catalog's 2.50"
    );
    assert_eq!(order.register_id, Some(register_id));
    let rows: Vec<(String, i64, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT method, amount_minor, change_minor, reference FROM offline_payments ORDER BY seq",
    )
    .fetch_all(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            ("cash".to_owned(), 100, Some(400), None),
            (
                "card_offline".to_owned(),
                450,
                None,
                Some("TERM-7-000123".to_owned())
            ),
        ]
    );
    let over = offline_order(Uuid::now_v7(), &[("SKU-1", 1, "2.50")], "3.00");
    let (_, body) = sync(&app, &till, &[over]).await;
    assert_eq!(results(&body)[0]["error"]["code"], "overpayment");
}

/// A batch of the most orders, written in several commit groups, with rejected orders in the
/// middle of groups: every valid order is applied once, no rejected one leaves a row, and the
/// whole batch replays identically.
async fn a_full_batch_with_rejections_in_several_commit_groups_keeps_only_the_valid_orders(
    app: TestApp,
) {
    let admin = seed(&app, 1_000).await;
    let (till, _) = register_session(&app, &admin).await;
    let max = kassa_domain::api::SYNC_BATCH_ORDERS_MAX;
    let rejected_at = [7, 30, 31, max - 1];
    let batch: Vec<Value> = (0..max)
        .map(|i| {
            let sku = if rejected_at.contains(&i) {
                "NO-SUCH"
            } else {
                "SKU-1"
            };
            offline_order(Uuid::now_v7(), &[(sku, 1, "2.50")], "2.50")
        })
        .collect();
    let (status, body) = sync(&app, &till, &batch).await;
    assert_eq!(status, 200);
    let first = results(&body);
    for (i, result) in first.iter().enumerate() {
        let expected = if rejected_at.contains(&i) {
            "rejected"
        } else {
            "accepted"
        };
        assert_eq!(result["outcome"], expected, "order {i}: {result}");
    }
    let valid = i64::try_from(max - rejected_at.len()).unwrap();
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM offline_orders").await,
        valid
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM orders WHERE source = 'offline'").await,
        valid
    );
    assert_eq!(stock(&app, &admin, "SKU-1").await.on_hand, 1_000 - valid);
    let (_, again) = sync(&app, &till, &batch).await;
    assert_eq!(again, body, "the batch replays byte for byte");
    assert_eq!(stock(&app, &admin, "SKU-1").await.on_hand, 1_000 - valid);
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}
