//! Checkout stories: stock never oversold under a flash sale, idempotency keys with Stripe's
//! semantics, the ledger, reservation expiry, and the order state machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kassa_domain::api::{Order, StockLevel};
use kassa_domain::{OrderStatus, Role};
use serde_json::{json, Value};

use crate::catalog::{create, ean, product_body};
use crate::helpers::{error_body, TestApp};
use crate::{story, story_with};
use kassa_central::Config;

story!(
    a_flash_sale_of_100_units_to_500_buyers_reserves_exactly_100,
    one_idempotency_key_gives_one_order_whatever_the_storm,
    idempotency_keys_follow_stripes_rules,
    stock_movements_balance_the_ledger_and_low_stock_raises_an_event,
    an_order_with_one_short_line_reserves_nothing_and_names_that_line,
    orders_move_only_along_the_state_machine,
    reservations_hold_and_release_stock,
    customers_see_only_their_own_orders,
);

/// A location `STORE-1`, product `SKU-1` with `units` on hand; returns a manager session token.
pub async fn seed(app: &TestApp, units: i64) -> String {
    let admin = app.user(Role::Admin).await;
    let status = app
        .post(
            "/v1/locations",
            admin.token(),
            &json!({ "code": "STORE-1", "name": "One" }),
        )
        .await
        .status();
    assert_eq!(status, 201);
    create(app, admin.token(), &product_body("SKU-1", &ean(1), "2.50")).await;
    create(app, admin.token(), &product_body("SKU-2", &ean(2), "4.00")).await;
    if units > 0 {
        receive(app, admin.token(), "SKU-1", units).await;
    }
    admin.tokens.access_token
}

pub async fn receive(app: &TestApp, token: &str, sku: &str, units: i64) {
    let body = json!({ "sku": sku, "location": "STORE-1", "delta": units, "reason": "receiving" });
    let response = app.post("/v1/stock/adjustments", token, &body).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

pub async fn stock(app: &TestApp, token: &str, sku: &str) -> StockLevel {
    app.get(&format!("/v1/stock/{sku}?location=STORE-1"), token)
        .await
        .json()
        .await
        .unwrap()
}

pub async fn order(app: &TestApp, token: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/orders"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub fn one_unit(sku: &str) -> Value {
    json!({ "location": "STORE-1", "lines": [{ "sku": sku, "qty": 1 }] })
}

/// Asserts the ledger sums to on_hand for (sku, STORE-1).
pub async fn assert_ledger_balanced(app: &TestApp, token: &str, sku: &str) {
    let level = stock(app, token, sku).await;
    let location = kassa_central::store::locations::find_by_code(&app.state.db, "STORE-1")
        .await
        .unwrap()
        .unwrap();
    let sum = kassa_central::store::stock::ledger_sum(&app.state.db, sku, &location.id.to_string())
        .await
        .unwrap();
    assert_eq!(
        sum, level.on_hand,
        "the stock ledger must sum to on_hand for {sku}"
    );
}

pub async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
}

async fn a_flash_sale_of_100_units_to_500_buyers_reserves_exactly_100(app: TestApp) {
    let manager = seed(&app, 100).await;
    let app = Arc::new(app);
    let mut buyers = Vec::new();
    for _ in 0..10 {
        buyers.push(app.user(Role::Customer).await.tokens.access_token);
    }
    let selling = Arc::new(AtomicBool::new(true));
    let observer = {
        let (app, manager, selling) = (app.clone(), manager.clone(), selling.clone());
        tokio::spawn(async move {
            let mut looks = 0;
            while selling.load(Ordering::Relaxed) {
                let level = stock(&app, &manager, "SKU-1").await;
                assert!(
                    level.available >= 0 && level.reserved <= level.on_hand,
                    "oversold: {level:?}"
                );
                looks += 1;
            }
            looks
        })
    };
    let mut tasks = Vec::new();
    for i in 0..500 {
        let (app, token) = (app.clone(), buyers[i % buyers.len()].clone());
        tasks.push(tokio::spawn(async move {
            let response = order(&app, &token, &format!("buy-{i}"), &one_unit("SKU-1")).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }));
    }
    let mut reserved = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            201 => {
                assert_eq!(body["status"], "RESERVED");
                reserved += 1;
            }
            409 => assert_eq!(body["error"]["code"], "insufficient_stock", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    selling.store(false, Ordering::Relaxed);
    assert!(
        observer.await.unwrap() > 0,
        "the observer looked at least once"
    );
    assert_eq!(reserved, 100, "exactly the 100 units on hand are sold");
    let level = stock(&app, &manager, "SKU-1").await;
    assert_eq!(
        (level.on_hand, level.reserved, level.available),
        (100, 100, 0)
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM orders WHERE status = 'RESERVED'"
        )
        .await,
        100
    );
    assert_ledger_balanced(&app, &manager, "SKU-1").await;
}

async fn one_idempotency_key_gives_one_order_whatever_the_storm(app: TestApp) {
    let manager = seed(&app, 10).await;
    let app = Arc::new(app);
    let cashier = app.user(Role::Cashier).await.tokens.access_token;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (app, token) = (app.clone(), cashier.clone());
        tasks.push(tokio::spawn(async move {
            let response = order(&app, &token, "storm-key", &one_unit("SKU-1")).await;
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap())
        }));
    }
    let mut bodies = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        // The key is claimed in the order's own transaction: a concurrent retry waits for it
        // and replays its answer instead of being told to come back (409 in flight).
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        bodies.push(body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every success carries the same bytes"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM orders").await,
        1,
        "one key, one order"
    );
    assert_eq!(stock(&app, &manager, "SKU-1").await.reserved, 1);

    let replay = order(&app, &cashier, "storm-key", &one_unit("SKU-1")).await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        replay.bytes().await.unwrap(),
        bodies[0],
        "the replay is byte-identical"
    );
}

async fn idempotency_keys_follow_stripes_rules(app: TestApp) {
    let _manager = seed(&app, 10).await;
    let cashier = app.user(Role::Cashier).await;
    let other = app.user(Role::Cashier).await;
    let first = order(&app, cashier.token(), "k-1", &one_unit("SKU-1")).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Order = first.json().await.unwrap();

    let reused = order(
        &app,
        cashier.token(),
        "k-1",
        &json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 2 }] }),
    )
    .await;
    error_body(reused, 422, "idempotency_key_reused").await;

    let scoped = order(&app, other.token(), "k-1", &one_unit("SKU-1")).await;
    assert_eq!(scoped.status(), 201, "keys are scoped to the caller");
    assert_ne!(scoped.json::<Order>().await.unwrap().id, first.id);

    let missing = app
        .post("/v1/orders", cashier.token(), &one_unit("SKU-1"))
        .await;
    error_body(missing, 400, "missing_idempotency_key").await;
    let long = order(&app, cashier.token(), &"k".repeat(256), &one_unit("SKU-1")).await;
    error_body(long, 400, "invalid_idempotency_key").await;

    // A request that fails validation stores nothing: the same key then works.
    let invalid = order(&app, cashier.token(), "k-2", &one_unit("NO-SUCH-SKU")).await;
    error_body(invalid, 422, "unknown_sku").await;
    let valid = order(&app, cashier.token(), "k-2", &one_unit("SKU-1")).await;
    assert_eq!(valid.status(), 201);
    assert!(valid.headers().get("idempotent-replayed").is_none());

    // A request still in flight under the same key: 409.
    let body = one_unit("SKU-2");
    let parsed: kassa_domain::api::CreateOrder = serde_json::from_value(body.clone()).unwrap();
    let hash = kassa_central::idempotency::fingerprint(
        "POST /v1/orders",
        &serde_json::to_value(&parsed).unwrap(),
    );
    let user_id = app
        .state
        .auth
        .authenticate(&app.state.db, cashier.token())
        .await
        .unwrap()
        .user_id;
    let scope = format!("user:{user_id}");
    assert!(
        kassa_central::store::idempotency::claim(&app.state.db, &scope, "k-3", &hash)
            .await
            .unwrap()
            .is_some()
    );
    error_body(
        order(&app, cashier.token(), "k-3", &body).await,
        409,
        "idempotency_in_flight",
    )
    .await;

    // An order id supplied by the client is unique.
    let id = uuid::Uuid::now_v7();
    let with_id =
        json!({ "id": id, "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 1 }] });
    let made: Order = order(&app, cashier.token(), "k-4", &with_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(made.id, id);
    error_body(
        order(&app, cashier.token(), "k-5", &with_id).await,
        409,
        "order_exists",
    )
    .await;
}

async fn stock_movements_balance_the_ledger_and_low_stock_raises_an_event(app: TestApp) {
    let manager = seed(&app, 10).await;
    let threshold = json!({ "location": "STORE-1", "threshold": 5 });
    let set = app
        .client
        .put(app.url("/v1/stock/SKU-1/threshold"))
        .bearer_auth(&manager)
        .json(&threshold)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let adjust = |delta: i64, reason: &str| json!({ "sku": "SKU-1", "location": "STORE-1", "delta": delta, "reason": reason });
    assert_eq!(
        app.post("/v1/stock/adjustments", &manager, &adjust(-3, "adjustment"))
            .await
            .status(),
        201
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM events WHERE type = 'stock.low'").await,
        0,
        "7 left, threshold 5"
    );
    let cashier = app.user(Role::Cashier).await;
    for i in 0..3 {
        assert_eq!(
            order(&app, cashier.token(), &format!("o{i}"), &one_unit("SKU-1"))
                .await
                .status(),
            201
        );
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM events WHERE type = 'stock.low'").await,
        1,
        "crossing below 5 once"
    );
    let level = stock(&app, &manager, "SKU-1").await;
    assert_eq!(
        (
            level.on_hand,
            level.reserved,
            level.available,
            level.low_threshold
        ),
        (7, 3, 4, Some(5))
    );

    let too_much = app
        .post(
            "/v1/stock/adjustments",
            &manager,
            &adjust(-5, "count_correction"),
        )
        .await;
    error_body(too_much, 409, "insufficient_stock").await;
    assert_eq!(
        app.post(
            "/v1/stock/adjustments",
            &manager,
            &adjust(-4, "count_correction")
        )
        .await
        .status(),
        201
    );
    error_body(
        app.post("/v1/stock/adjustments", &manager, &adjust(-1, "receiving"))
            .await,
        422,
        "invalid_delta",
    )
    .await;
    error_body(
        app.post("/v1/stock/adjustments", &manager, &adjust(1, "sale"))
            .await,
        422,
        "invalid_reason",
    )
    .await;
    let unknown_location =
        json!({ "sku": "SKU-1", "location": "MARS", "delta": 1, "reason": "receiving" });
    error_body(
        app.post("/v1/stock/adjustments", &manager, &unknown_location)
            .await,
        422,
        "unknown_location",
    )
    .await;
    error_body(
        app.post(
            "/v1/stock/adjustments",
            cashier.token(),
            &adjust(1, "receiving"),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_ledger_balanced(&app, &manager, "SKU-1").await;
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM stock_ledger").await,
        3,
        "receiving, adjustment, count correction"
    );
}

async fn an_order_with_one_short_line_reserves_nothing_and_names_that_line(app: TestApp) {
    let manager = seed(&app, 5).await;
    receive(&app, &manager, "SKU-2", 1).await;
    let cashier = app.user(Role::Cashier).await;
    let body = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 2 }, { "sku": "SKU-2", "qty": 3 }] });
    let short = error_body(
        order(&app, cashier.token(), "short", &body).await,
        409,
        "insufficient_stock",
    )
    .await;
    assert_eq!(
        short["error"]["details"]["lines"],
        json!([{ "sku": "SKU-2", "requested": 3, "available": 1 }])
    );
    assert_eq!(
        stock(&app, &manager, "SKU-1").await.reserved,
        0,
        "all or nothing"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM orders").await,
        0,
        "no half-written order"
    );
    let replayed = order(&app, cashier.token(), "short", &body).await;
    assert_eq!(
        replayed.headers()["idempotent-replayed"],
        "true",
        "an executed request's 409 is kept, like Stripe"
    );
    let bad_qty = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 0 }] });
    error_body(
        order(&app, cashier.token(), "q0", &bad_qty).await,
        422,
        "invalid_quantity",
    )
    .await;
    let dup = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 1 }, { "sku": "SKU-1", "qty": 1 }] });
    error_body(
        order(&app, cashier.token(), "dup", &dup).await,
        422,
        "duplicate_sku",
    )
    .await;
}

async fn orders_move_only_along_the_state_machine(app: TestApp) {
    let manager = seed(&app, 5).await;
    let cashier = app.user(Role::Cashier).await;
    let created: Order = order(&app, cashier.token(), "sm", &one_unit("SKU-1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created.status, OrderStatus::Reserved);
    assert_eq!(created.totals.total.to_minor(), 250);
    assert!(created.reservation_expires_at.is_some());

    let fulfill = app
        .post(
            &format!("/v1/orders/{}/fulfill", created.id),
            cashier.token(),
            &json!({}),
        )
        .await;
    let body = error_body(fulfill, 409, "illegal_transition").await;
    assert_eq!(body["error"]["details"]["status"], "RESERVED");

    let cancelled = app
        .post(
            &format!("/v1/orders/{}/cancel", created.id),
            cashier.token(),
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        cancelled.json::<Order>().await.unwrap().status,
        OrderStatus::Cancelled
    );
    assert_eq!(
        stock(&app, &manager, "SKU-1").await.reserved,
        0,
        "cancelling releases the stock"
    );
    let again = app
        .post(
            &format!("/v1/orders/{}/cancel", created.id),
            cashier.token(),
            &json!({}),
        )
        .await;
    let body = error_body(again, 409, "illegal_transition").await;
    assert_eq!(body["error"]["details"]["status"], "CANCELLED");
    let events: Vec<String> =
        sqlx::query_scalar("SELECT type FROM events WHERE aggregate_type = 'order' ORDER BY seq")
            .fetch_all(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(
        events,
        ["order.created", "order.reserved", "order.cancelled"]
    );
}

async fn reservations_hold_and_release_stock(app: TestApp) {
    let manager = seed(&app, 5).await;
    let customer = app.user(Role::Customer).await;
    let hold = |key: &'static str, qty: u32| {
        app.client
            .post(app.url("/v1/reservations"))
            .bearer_auth(customer.token())
            .header("idempotency-key", key)
            .json(&json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": qty }], "ttl_s": 60 }))
            .send()
    };
    let held: Value = hold("r1", 3).await.unwrap().json().await.unwrap();
    assert_eq!(stock(&app, &manager, "SKU-1").await.available, 2);
    error_body(hold("r2", 3).await.unwrap(), 409, "insufficient_stock").await;
    let id = held["id"].as_str().unwrap();
    let other = app.user(Role::Customer).await;
    let foreign = app
        .client
        .delete(app.url(&format!("/v1/reservations/{id}")))
        .bearer_auth(other.token())
        .send()
        .await
        .unwrap();
    error_body(foreign, 404, "not_found").await;
    let released = app
        .client
        .delete(app.url(&format!("/v1/reservations/{id}")))
        .bearer_auth(customer.token())
        .send()
        .await
        .unwrap();
    assert_eq!(released.status(), 204);
    assert_eq!(stock(&app, &manager, "SKU-1").await.available, 5);
    let twice = app
        .client
        .delete(app.url(&format!("/v1/reservations/{id}")))
        .bearer_auth(customer.token())
        .send()
        .await
        .unwrap();
    error_body(twice, 409, "reservation_ended").await;
}

async fn customers_see_only_their_own_orders(app: TestApp) {
    let _manager = seed(&app, 10).await;
    let alice = app.user(Role::Customer).await;
    let bob = app.user(Role::Customer).await;
    let cashier = app.user(Role::Cashier).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let o: Order = order(&app, alice.token(), &format!("a{i}"), &one_unit("SKU-1"))
            .await
            .json()
            .await
            .unwrap();
        ids.push(o.id);
    }
    order(&app, bob.token(), "b0", &one_unit("SKU-1")).await;
    let mine: Value = app
        .get("/v1/orders?limit=2", alice.token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    let cursor = mine["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(&format!("/v1/orders?limit=2&after={cursor}"), alice.token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["id"], ids[2].to_string());
    error_body(
        app.get(&format!("/v1/orders/{}", ids[0]), bob.token())
            .await,
        404,
        "not_found",
    )
    .await;
    let all: Value = app
        .get("/v1/orders?status=RESERVED", cashier.token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        4,
        "staff see every order"
    );
    error_body(
        app.get("/v1/orders?status=LOST", cashier.token()).await,
        400,
        "invalid_status",
    )
    .await;
}

story_with!(reservations_of_300_ms: expired_reservations_are_released_exactly_once_by_racing_sweepers);

pub fn reservations_of_300_ms(c: &mut Config) {
    c.reservation_ttl = Duration::from_millis(300);
}

async fn expired_reservations_are_released_exactly_once_by_racing_sweepers(app: TestApp) {
    let manager = seed(&app, 5).await;
    let cashier = app.user(Role::Cashier).await;
    for i in 0..4 {
        assert_eq!(
            order(&app, cashier.token(), &format!("e{i}"), &one_unit("SKU-1"))
                .await
                .status(),
            201
        );
    }
    assert_eq!(stock(&app, &manager, "SKU-1").await.reserved, 4);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (a, b) = tokio::join!(
        kassa_central::stock::sweep_expired(&app.state),
        kassa_central::stock::sweep_expired(&app.state)
    );
    assert_eq!(
        a.unwrap() + b.unwrap(),
        4,
        "each reservation is released by exactly one sweeper"
    );
    assert_eq!(
        kassa_central::stock::sweep_expired(&app.state)
            .await
            .unwrap(),
        0
    );
    let level = stock(&app, &manager, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved), (5, 0));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM events WHERE type = 'reservation.expired'"
        )
        .await,
        4
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED'"
        )
        .await,
        4
    );
    assert_ledger_balanced(&app, &manager, "SKU-1").await;
}

story_with!(requests_cut_after_3_ms: cancelled_requests_leave_no_transaction_open);

fn requests_cut_after_3_ms(c: &mut Config) {
    c.request_timeout = Duration::from_millis(3);
}

/// Requests cancelled at random moments (here by Central's own request timeout, set to a few
/// milliseconds, so handlers are dropped wherever they are: beginning, inside or committing a
/// transaction) leave no transaction open behind them: every pooled connection can still
/// write, and the books add up.
async fn cancelled_requests_leave_no_transaction_open(app: TestApp) {
    let db = &app.state.db;
    let location = kassa_central::store::locations::insert(db, "STORE-1", "One")
        .await
        .unwrap()
        .unwrap();
    let sku = kassa_domain::Sku::parse("SKU-1").unwrap();
    let product = serde_json::from_value(product_body("SKU-1", &ean(1), "2.50")).unwrap();
    kassa_central::store::catalog::insert(db, &product)
        .await
        .unwrap();
    let location_id = location.id.to_string();
    let mut tx = db.begin_write().await.unwrap();
    let receive = kassa_central::store::stock::Movement {
        sku: sku.as_ref(),
        location_id: &location_id,
        delta: 1000,
        reason: kassa_domain::api::StockReason::Receiving,
        reference: None,
        note: None,
        created_by: None,
    };
    kassa_central::store::stock::move_on_hand(&mut tx, &receive)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let user =
        kassa_central::store::users::insert(db, &"cutter".parse().unwrap(), "x", Role::Cashier)
            .await
            .unwrap();
    let token = app
        .state
        .auth
        .start_session(db, user.id, Role::Cashier, None)
        .await
        .unwrap()
        .access_token;
    let tasks: Vec<_> = (0..150)
        .map(|i| {
            let (client, url, token) = (app.client.clone(), app.url("/v1/orders"), token.clone());
            tokio::spawn(async move {
                let _ = client
                    .post(url)
                    .bearer_auth(token)
                    .header("idempotency-key", format!("cut-{i}"))
                    .json(&one_unit("SKU-1"))
                    .send()
                    .await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // More writes than the pool has connections: each must begin, write and commit.
    for i in 0..24 {
        let mut tx = tokio::time::timeout(Duration::from_secs(10), db.begin_write())
            .await
            .expect("a write transaction begins")
            .unwrap_or_else(|e| panic!("write {i} could not begin: {e:#}"));
        sqlx::query("UPDATE stock SET updated_at = updated_at WHERE sku = 'SKU-1'")
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("write {i} failed: {e}"));
        tx.commit()
            .await
            .unwrap_or_else(|e| panic!("write {i} could not commit: {e}"));
    }
    let reserved: i64 = sqlx::query_scalar("SELECT reserved FROM stock WHERE sku = 'SKU-1'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let ordered = count(
        &app,
        "SELECT COUNT(*) FROM orders WHERE status = 'RESERVED'",
    )
    .await;
    assert_eq!(
        reserved, ordered,
        "every reservation belongs to an order that exists"
    );
    let ledger = kassa_central::store::stock::ledger_sum(db, "SKU-1", &location_id)
        .await
        .unwrap();
    let on_hand: i64 = sqlx::query_scalar("SELECT on_hand FROM stock WHERE sku = 'SKU-1'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(ledger, on_hand);
}

/// sqlx 0.8 opens `BEGIN IMMEDIATE` and then awaits a lock before handing out the transaction:
/// a begin cancelled at that await leaves the pooled connection inside a transaction nobody
/// owns, and later "transactions" on it are savepoints that never commit. Central begins in a
/// task of its own, so however often a begin is cancelled, every later commit is durable and
/// visible to another connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_begins_never_leave_a_connection_inside_a_transaction() {
    use kassa_central::store::{Db as Store, PoolLimits};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("central.db").display());
    let db = Store::connect(&url, &PoolLimits::default()).await.unwrap();
    db.migrate().await.unwrap();
    for i in 0..3000u64 {
        let wait = Duration::from_micros(i % 400);
        let _ = tokio::time::timeout(wait, db.begin_write()).await;
        if i % 2 == 0 {
            let _ = tokio::time::timeout(wait, db.begin_write_relaxed()).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 0..40 {
        let mut tx = tokio::time::timeout(Duration::from_secs(10), db.begin_write())
            .await
            .expect("a write transaction begins")
            .unwrap();
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, 'x')")
            .bind(format!("probe-{n}"))
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let other = Store::connect(&url, &PoolLimits::default()).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM settings WHERE name LIKE 'probe-%'")
        .fetch_one(other.pool())
        .await
        .unwrap();
    assert_eq!(seen, 40, "every commit is visible to another connection");
}
