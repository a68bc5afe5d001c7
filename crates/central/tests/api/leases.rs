//! Stock lease stories (issue 16): a register's lease holds stock for it at Central (leased
//! units are reserved, so nobody else takes them), its synced offline sales take their units
//! from the lease first (no shortfall within it), and a lease is granted, consumed and ended
//! exactly once under retries, duplicate batches, racing sweepers and concurrent checkouts.

use std::time::Duration;

use kassa_domain::api::RegisterCreated;
use kassa_domain::lease::{Lease, LeaseList, LeaseSettings};
use kassa_domain::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::checkout::{assert_ledger_balanced, count, order, receive, seed, stock};
use crate::helpers::{error_body, TestApp};
use crate::story;
use crate::sync::{offline_order, sign_in_at, sync};

story!(
    a_lease_grants_up_to_what_is_available_and_holds_it_from_everyone_else,
    only_a_registers_own_session_or_a_manager_may_lease_and_only_at_its_location,
    a_retried_lease_request_returns_the_same_lease,
    online_orders_racing_lease_grants_never_oversell,
    an_expired_lease_is_released_exactly_once_by_racing_sweepers,
    a_lease_resizes_within_available_and_is_released_once,
    offline_sales_within_the_lease_leave_no_shortfall,
    offline_sales_past_the_lease_record_a_shortfall_for_the_excess_only,
    a_duplicate_sync_batch_consumes_the_lease_once,
    lease_settings_are_a_managers_per_location,
    a_registers_online_order_draws_on_its_own_lease_first_and_once,
    concurrent_online_orders_at_a_register_take_its_lease_exactly_once,
    a_sale_past_its_lease_takes_available_then_the_other_tills_leases_before_a_shortfall,
    a_duplicate_batch_takes_another_tills_lease_once,
);

/// Pairs a register at `location`.
pub async fn pair(app: &TestApp, admin: &str, location: &str) -> RegisterCreated {
    let created = app
        .post(
            "/v1/registers",
            admin,
            &json!({ "location": location, "name": "Till" }),
        )
        .await;
    assert_eq!(created.status(), 201);
    created.json().await.unwrap()
}

/// The register's own device session.
pub async fn device(app: &TestApp, register: &RegisterCreated) -> String {
    let body =
        json!({ "register": { "id": register.register_id, "credential": register.credential } });
    let response = app
        .client
        .post(app.url("/v1/auth/device"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: kassa_domain::api::TokenResponse = response.json().await.unwrap();
    tokens.access_token
}

pub async fn lease_request(
    app: &TestApp,
    token: &str,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url("/v1/stock/leases"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn lease_body(lines: &[(&str, u32)], ttl_s: u64) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(sku, qty)| json!({ "sku": sku, "qty": qty }))
        .collect();
    json!({ "location": "STORE-1", "lines": lines, "ttl_s": ttl_s })
}

/// Leases `lines` for the device's register for an hour; asserts 201.
pub async fn lease(app: &TestApp, token: &str, lines: &[(&str, u32)]) -> Lease {
    let response = lease_request(
        app,
        token,
        &Uuid::new_v4().to_string(),
        &lease_body(lines, 3600),
    )
    .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

fn line<'a>(lease: &'a Lease, sku: &str) -> &'a kassa_domain::lease::LeaseLine {
    lease
        .lines
        .iter()
        .find(|l| l.sku.as_ref() == sku)
        .unwrap_or_else(|| panic!("no line {sku} in {lease:?}"))
}

async fn get_lease(app: &TestApp, token: &str, id: Uuid) -> Lease {
    let response = app.get(&format!("/v1/stock/leases/{id}"), token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The units active leases hold of SKU-1 at STORE-1, summed from the lease lines.
async fn leased(app: &TestApp) -> i64 {
    count(
        app,
        "SELECT CAST(COALESCE(SUM(ll.remaining), 0) AS BIGINT) FROM stock_lease_lines ll \
         JOIN stock_leases s ON s.id = ll.lease_id WHERE s.status = 'active' AND ll.sku = 'SKU-1'",
    )
    .await
}

fn results(body: &[u8]) -> Vec<Value> {
    let parsed: Value = serde_json::from_slice(body).unwrap();
    parsed["results"].as_array().unwrap().clone()
}

async fn a_lease_grants_up_to_what_is_available_and_holds_it_from_everyone_else(app: TestApp) {
    let admin = seed(&app, 10).await;
    let register = pair(&app, &admin, "STORE-1").await;
    let till = device(&app, &register).await;
    let granted = lease(&app, &till, &[("SKU-1", 6), ("SKU-2", 3)]).await;
    assert_eq!(granted.status, "active");
    assert_eq!(granted.register, register.register_id);
    let sku1 = line(&granted, "SKU-1");
    assert_eq!((sku1.requested, sku1.granted, sku1.remaining), (6, 6, 6));
    // None of SKU-2 on hand: the line says so, nothing is reserved.
    let sku2 = line(&granted, "SKU-2");
    assert_eq!((sku2.requested, sku2.granted, sku2.remaining), (3, 0, 0));
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved, level.available), (10, 6, 4));
    // The shop cannot take the leased units…
    let cashier = app.user(Role::Cashier).await;
    let five = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 5 }] });
    error_body(
        order(&app, cashier.token(), "five", &five).await,
        409,
        "insufficient_stock",
    )
    .await;
    let four = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 4 }] });
    assert_eq!(
        order(&app, cashier.token(), "four", &four).await.status(),
        201
    );
    // …nor another till: it is granted what is left, nothing.
    let other = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let nothing = lease(&app, &other, &[("SKU-1", 10)]).await;
    assert_eq!(line(&nothing, "SKU-1").granted, 0);
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!(
        (level.on_hand, level.reserved, level.available),
        (10, 10, 0)
    );
    // The register and a manager read it back.
    assert_eq!(get_lease(&app, &till, granted.id).await, granted);
    assert_eq!(get_lease(&app, &admin, granted.id).await, granted);
    let mine: LeaseList = app
        .get("/v1/stock/leases?active=true", &till)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine.items, vec![granted.clone()]);
    let by_manager: LeaseList = app
        .get(
            &format!("/v1/stock/leases?register={}", register.register_id),
            &admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_manager.items, vec![granted]);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM events WHERE type = 'lease.granted'"
        )
        .await,
        2
    );
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

async fn only_a_registers_own_session_or_a_manager_may_lease_and_only_at_its_location(
    app: TestApp,
) {
    let admin = seed(&app, 10).await;
    let other_store = json!({ "code": "STORE-2", "name": "Two" });
    assert_eq!(
        app.post("/v1/locations", &admin, &other_store)
            .await
            .status(),
        201
    );
    let register = pair(&app, &admin, "STORE-1").await;
    let till = device(&app, &register).await;
    let body = lease_body(&[("SKU-1", 2)], 60);
    // A cashier, at the till or not, may not lease.
    let (_, cashier_at_till) = sign_in_at(&app, &register, Role::Cashier).await;
    error_body(
        lease_request(&app, &cashier_at_till, "c1", &body).await,
        403,
        "forbidden",
    )
    .await;
    let cashier = app.user(Role::Cashier).await;
    error_body(
        lease_request(&app, cashier.token(), "c2", &body).await,
        403,
        "forbidden",
    )
    .await;
    let customer = app.user(Role::Customer).await;
    error_body(
        lease_request(&app, customer.token(), "c3", &body).await,
        403,
        "forbidden",
    )
    .await;
    // A register leases at its own location, for itself only.
    let mut elsewhere = body.clone();
    elsewhere["location"] = json!("STORE-2");
    error_body(
        lease_request(&app, &till, "t1", &elsewhere).await,
        403,
        "wrong_location",
    )
    .await;
    let second = pair(&app, &admin, "STORE-2").await;
    let mut for_other = body.clone();
    for_other["register"] = json!(second.register_id);
    error_body(
        lease_request(&app, &till, "t2", &for_other).await,
        403,
        "other_register",
    )
    .await;
    // A manager names the register, at that register's location.
    error_body(
        lease_request(&app, &admin, "m1", &body).await,
        422,
        "missing_register",
    )
    .await;
    let mut managed = body.clone();
    managed["register"] = json!(second.register_id);
    error_body(
        lease_request(&app, &admin, "m2", &managed).await,
        403,
        "wrong_location",
    )
    .await;
    managed["register"] = json!(register.register_id);
    let by_manager = lease_request(&app, &admin, "m3", &managed).await;
    assert_eq!(by_manager.status(), 201);
    let by_manager: Lease = by_manager.json().await.unwrap();
    assert_eq!(by_manager.register, register.register_id);
    // Bad input is a 4xx with its code, and nothing is held.
    let no_key = app.post("/v1/stock/leases", &till, &body).await;
    error_body(no_key, 400, "missing_idempotency_key").await;
    let mut bad_ttl = body.clone();
    bad_ttl["ttl_s"] = json!(0);
    error_body(
        lease_request(&app, &till, "b1", &bad_ttl).await,
        422,
        "invalid_ttl",
    )
    .await;
    let unknown = lease_body(&[("NO-SUCH", 1)], 60);
    error_body(
        lease_request(&app, &till, "b2", &unknown).await,
        422,
        "unknown_sku",
    )
    .await;
    let zero = lease_body(&[("SKU-1", 0)], 60);
    error_body(
        lease_request(&app, &till, "b3", &zero).await,
        422,
        "invalid_quantity",
    )
    .await;
    assert_eq!(stock(&app, &admin, "SKU-1").await.reserved, 2);
    // Another register's device sees neither the lease nor its list; a cashier neither.
    let other_till = device(&app, &second).await;
    let hidden = app
        .get(&format!("/v1/stock/leases/{}", by_manager.id), &other_till)
        .await;
    error_body(hidden, 404, "not_found").await;
    let list = app
        .get(
            &format!("/v1/stock/leases?register={}", register.register_id),
            &other_till,
        )
        .await;
    error_body(list, 403, "other_register").await;
    let by_cashier = app
        .get(
            &format!("/v1/stock/leases/{}", by_manager.id),
            cashier.token(),
        )
        .await;
    error_body(by_cashier, 403, "forbidden").await;
    let release = app
        .client
        .delete(app.url(&format!("/v1/stock/leases/{}", by_manager.id)))
        .bearer_auth(&other_till)
        .send()
        .await
        .unwrap();
    error_body(release, 404, "not_found").await;
    assert_eq!(stock(&app, &admin, "SKU-1").await.reserved, 2);
}

async fn a_retried_lease_request_returns_the_same_lease(app: TestApp) {
    let admin = seed(&app, 10).await;
    let till = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let body = lease_body(&[("SKU-1", 3)], 600);
    let first = lease_request(&app, &till, "lease-1", &body).await;
    assert_eq!(first.status(), 201);
    let first = first.bytes().await.unwrap();
    let again = lease_request(&app, &till, "lease-1", &body).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.bytes().await.unwrap(), first);
    // The same key at once, many times: still one lease.
    let storm = lease_body(&[("SKU-1", 2)], 600);
    let tries = (0..8).map(|_| {
        let (app, till, storm) = (&app, till.clone(), storm.clone());
        async move {
            lease_request(app, &till, "lease-2", &storm)
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(tries).await;
    assert!(
        statuses.iter().all(|s| matches!(s, 201 | 409)),
        "{statuses:?}"
    );
    // A different body under a used key is refused.
    error_body(
        lease_request(&app, &till, "lease-1", &storm).await,
        422,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM stock_leases").await, 2);
    assert_eq!(stock(&app, &admin, "SKU-1").await.reserved, 5);
    assert_eq!(leased(&app).await, 5);
}

async fn online_orders_racing_lease_grants_never_oversell(app: TestApp) {
    let admin = seed(&app, 50).await;
    let cashier = app.user(Role::Cashier).await;
    let mut tills = Vec::new();
    for _ in 0..3 {
        tills.push(device(&app, &pair(&app, &admin, "STORE-1").await).await);
    }
    let mut tasks = Vec::new();
    let app = std::sync::Arc::new(app);
    for i in 0..60 {
        let (shared, token) = (app.clone(), cashier.tokens.access_token.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 1 }] });
            let status = order(&shared, &token, &format!("o{i}"), &body)
                .await
                .status()
                .as_u16();
            assert!(matches!(status, 201 | 409), "order answered {status}");
            i64::from(status == 201)
        }));
        if i % 20 == 10 {
            let (app, token) = (app.clone(), tills[i / 20].clone());
            tasks.push(tokio::spawn(async move {
                let response =
                    lease_request(&app, &token, "race", &lease_body(&[("SKU-1", 20)], 600)).await;
                assert_eq!(response.status(), 201);
                let lease: Lease = response.json().await.unwrap();
                line(&lease, "SKU-1").granted
            }));
        }
    }
    let mut taken = 0;
    for task in tasks {
        taken += task.await.unwrap();
    }
    // Demand (60 + 60) is above the 50 on hand: every unit went to an order or a lease, once.
    assert_eq!(taken, 50, "orders and leases took exactly what was on hand");
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!(
        (level.on_hand, level.reserved, level.available),
        (50, 50, 0)
    );
    let ordered = count(
        &app,
        "SELECT COUNT(*) FROM orders WHERE status = 'RESERVED'",
    )
    .await;
    assert_eq!(ordered + leased(&app).await, 50);
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

async fn an_expired_lease_is_released_exactly_once_by_racing_sweepers(app: TestApp) {
    let admin = seed(&app, 10).await;
    let till = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let short = |key: &'static str, ttl_s: u64| {
        let (app, till) = (&app, till.clone());
        async move {
            let response =
                lease_request(app, &till, key, &lease_body(&[("SKU-1", 3)], ttl_s)).await;
            assert_eq!(response.status(), 201);
            response.json::<Lease>().await.unwrap()
        }
    };
    let expiring = short("expiring", 1).await;
    let renewed = short("renewed", 1).await;
    assert_eq!(stock(&app, &admin, "SKU-1").await.reserved, 6);
    // Renewed before it ran out: the sweepers leave it alone.
    let renew = app
        .client
        .put(app.url(&format!("/v1/stock/leases/{}", renewed.id)))
        .bearer_auth(&till)
        .json(&json!({ "ttl_s": 3600 }))
        .send()
        .await
        .unwrap();
    assert_eq!(renew.status(), 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (a, b) = tokio::join!(
        kassa_central::stock::leases::sweep_expired(&app.state),
        kassa_central::stock::leases::sweep_expired(&app.state)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1, "one sweeper ends it");
    assert_eq!(
        kassa_central::stock::leases::sweep_expired(&app.state)
            .await
            .unwrap(),
        0
    );
    let ended = get_lease(&app, &till, expiring.id).await;
    assert_eq!(ended.status, "expired");
    let l = line(&ended, "SKU-1");
    assert_eq!((l.granted, l.released, l.remaining), (3, 3, 0));
    assert_eq!(get_lease(&app, &till, renewed.id).await.status, "active");
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved), (10, 3));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM events WHERE type = 'lease.expired'"
        )
        .await,
        1
    );
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

async fn put(app: &TestApp, token: &str, id: Uuid, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/v1/stock/leases/{id}")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn delete(app: &TestApp, token: &str, id: Uuid) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/v1/stock/leases/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn a_lease_resizes_within_available_and_is_released_once(app: TestApp) {
    let admin = seed(&app, 10).await;
    receive(&app, &admin, "SKU-2", 4).await;
    let till = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let held = lease(&app, &till, &[("SKU-1", 4)]).await;
    // Grow SKU-1 past what is on hand (capped at 10) and add SKU-2.
    let grown = put(
        &app,
        &till,
        held.id,
        &json!({ "ttl_s": 600, "lines": [
        { "sku": "SKU-1", "qty": 12 }, { "sku": "SKU-2", "qty": 3 } ] }),
    )
    .await;
    assert_eq!(grown.status(), 200);
    let grown: Lease = grown.json().await.unwrap();
    let l = line(&grown, "SKU-1");
    assert_eq!((l.requested, l.granted, l.remaining), (12, 10, 10));
    assert_eq!(line(&grown, "SKU-2").remaining, 3);
    // Shrink SKU-1 to 2, leave SKU-2 out: given back.
    let shrunk: Lease = put(
        &app,
        &till,
        held.id,
        &json!({ "ttl_s": 600, "lines": [{ "sku": "SKU-1", "qty": 2 }] }),
    )
    .await
    .json()
    .await
    .unwrap();
    let l = line(&shrunk, "SKU-1");
    assert_eq!((l.granted, l.released, l.remaining), (10, 8, 2));
    let l = line(&shrunk, "SKU-2");
    assert_eq!((l.granted, l.released, l.remaining), (3, 3, 0));
    assert_eq!(stock(&app, &admin, "SKU-1").await.reserved, 2);
    assert_eq!(stock(&app, &admin, "SKU-2").await.reserved, 0);
    error_body(
        put(&app, &till, held.id, &json!({ "ttl_s": 0 })).await,
        422,
        "invalid_ttl",
    )
    .await;
    // Released once: the rest goes back; a second release and a renewal are refused.
    let released = delete(&app, &till, held.id).await;
    assert_eq!(released.status(), 200);
    let released: Lease = released.json().await.unwrap();
    assert_eq!(released.status, "released");
    assert_eq!(line(&released, "SKU-1").remaining, 0);
    let again = error_body(delete(&app, &till, held.id).await, 409, "lease_ended").await;
    assert_eq!(again["error"]["details"]["status"], "released");
    error_body(
        put(&app, &till, held.id, &json!({ "ttl_s": 60 })).await,
        409,
        "lease_ended",
    )
    .await;
    let unknown = delete(&app, &till, Uuid::now_v7()).await;
    error_body(unknown, 404, "not_found").await;
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved), (10, 0));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM events WHERE type = 'lease.released'"
        )
        .await,
        1
    );
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
    assert_ledger_balanced(&app, &admin, "SKU-2").await;
}

/// Sells `qty` of SKU-1 offline at 2.50 a unit.
fn sale(qty: u32) -> Value {
    let total = format!("{:.2}", 2.5 * f64::from(qty));
    offline_order(Uuid::now_v7(), &[("SKU-1", qty, "2.50")], &total)
}

async fn offline_sales_within_the_lease_leave_no_shortfall(app: TestApp) {
    let admin = seed(&app, 10).await;
    let register = pair(&app, &admin, "STORE-1").await;
    let till = device(&app, &register).await;
    let held = lease(&app, &till, &[("SKU-1", 6)]).await;
    // The shop takes the rest online: nothing is available any more.
    let cashier = app.user(Role::Cashier).await;
    let four = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 4 }] });
    assert_eq!(
        order(&app, cashier.token(), "four", &four).await.status(),
        201
    );
    assert_eq!(stock(&app, &admin, "SKU-1").await.available, 0);
    // The till sold 5 offline: all from its lease.
    let (status, body) = sync(&app, &till, &[sale(2), sale(3)]).await;
    assert_eq!(status, 200);
    for result in results(&body) {
        assert_eq!(result["outcome"], "accepted", "{result}");
        assert_eq!(result["shortfalls"], json!([]), "{result}");
    }
    let after = get_lease(&app, &till, held.id).await;
    let l = line(&after, "SKU-1");
    assert_eq!((l.granted, l.consumed, l.remaining), (6, 5, 1));
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved, level.available), (5, 5, 0));
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM stock_discrepancies").await,
        0
    );
    // Another till of the shelf sells 2 with nothing available: its first unit is the one this
    // lease still held (the tills share the shelf), the second is short.
    let other = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let (_, body) = sync(&app, &other, &[sale(2)]).await;
    assert_eq!(results(&body)[0]["shortfalls"][0]["shortfall"], 1);
    assert_eq!(
        line(&get_lease(&app, &till, held.id).await, "SKU-1").remaining,
        0
    );
    // The online order's 4 are never taken.
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved, level.available), (4, 4, 0));
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

async fn offline_sales_past_the_lease_record_a_shortfall_for_the_excess_only(app: TestApp) {
    let admin = seed(&app, 10).await;
    let till = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let held = lease(&app, &till, &[("SKU-1", 6)]).await;
    let cashier = app.user(Role::Cashier).await;
    let four = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 4 }] });
    assert_eq!(
        order(&app, cashier.token(), "four", &four).await.status(),
        201
    );
    let (status, body) = sync(&app, &till, &[sale(8)]).await;
    assert_eq!(status, 200);
    let result = &results(&body)[0];
    assert_eq!(result["outcome"], "accepted");
    assert_eq!(
        result["shortfalls"],
        json!([{ "sku": "SKU-1", "location": "STORE-1", "shortfall": 2 }])
    );
    let l = line(&get_lease(&app, &till, held.id).await, "SKU-1").clone();
    assert_eq!((l.consumed, l.remaining), (6, 0));
    // The online order's 4 stay whole.
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved, level.available), (4, 4, 0));
    assert_eq!(
        count(
            &app,
            "SELECT CAST(SUM(shortfall) AS BIGINT) FROM stock_discrepancies"
        )
        .await,
        2
    );
    // Released after use: nothing is left to give back.
    let released: Lease = delete(&app, &till, held.id).await.json().await.unwrap();
    assert_eq!(line(&released, "SKU-1").released, 0);
    assert_eq!(stock(&app, &admin, "SKU-1").await.reserved, 4);
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

async fn a_duplicate_sync_batch_consumes_the_lease_once(app: TestApp) {
    let admin = seed(&app, 10).await;
    let till = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let held = lease(&app, &till, &[("SKU-1", 6)]).await;
    let batch = vec![sale(2), sale(2)];
    let (status, first) = sync(&app, &till, &batch).await;
    assert_eq!(status, 200);
    let (_, again) = sync(&app, &till, &batch).await;
    assert_eq!(again, first, "a retry replays the first answer");
    // And the same batch several times at once.
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (app, till, batch) = (app.clone(), till.clone(), batch.clone());
            tokio::spawn(async move { sync(&app, &till, &batch).await })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, first);
    }
    let l = line(&get_lease(&app, &till, held.id).await, "SKU-1").clone();
    assert_eq!((l.consumed, l.remaining), (4, 2));
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved), (6, 2));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM events WHERE type = 'lease.consumed'"
        )
        .await,
        2
    );
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

async fn lease_settings_are_a_managers_per_location(app: TestApp) {
    let admin = seed(&app, 1).await;
    let till = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let read: LeaseSettings = app
        .get("/v1/settings/leases?location=STORE-1", &till)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, LeaseSettings::default_for("STORE-1"));
    assert!(!read.set_by_manager, "the defaults are nobody's decision");
    let wanted = json!({ "location": "STORE-1", "horizon_s": 7200, "cap_percent": 40,
        "floor_units": 5, "top_sellers": 20, "beyond": "approval" });
    let put = |token: String, body: Value| {
        let app = &app;
        async move {
            app.client
                .put(app.url("/v1/settings/leases"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let cashier = app.user(Role::Cashier).await;
    error_body(
        put(cashier.tokens.access_token.clone(), wanted.clone()).await,
        403,
        "forbidden",
    )
    .await;
    error_body(put(till.clone(), wanted.clone()).await, 403, "forbidden").await;
    let mut bad = wanted.clone();
    bad["cap_percent"] = json!(0);
    error_body(put(admin.clone(), bad).await, 422, "invalid_lease_settings").await;
    assert_eq!(put(admin.clone(), wanted.clone()).await.status(), 200);
    let mut wanted = wanted;
    wanted["set_by_manager"] = json!(true);
    let read: Value = app
        .get("/v1/settings/leases?location=STORE-1", &till)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, wanted);
    let unknown = app.get("/v1/settings/leases?location=NOPE", &till).await;
    error_body(unknown, 422, "unknown_location").await;
}

/// The reservation of an order, as (status, units of SKU-1).
async fn reservation_of(app: &TestApp, order_id: &str) -> (String, i64) {
    let row: (String, i64) = sqlx::query_as(
        "SELECT r.status, CAST(SUM(l.qty) AS BIGINT) FROM reservations r \
         JOIN reservation_lines l ON l.reservation_id = r.id \
         WHERE r.order_id = $1 GROUP BY r.status",
    )
    .bind(order_id)
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    row
}

async fn a_registers_online_order_draws_on_its_own_lease_first_and_once(app: TestApp) {
    let admin = seed(&app, 10).await;
    let register = pair(&app, &admin, "STORE-1").await;
    let till = device(&app, &register).await;
    let (_, at_till) = sign_in_at(&app, &register, Role::Cashier).await;
    let held = lease(&app, &till, &[("SKU-1", 6)]).await;
    assert_eq!(stock(&app, &admin, "SKU-1").await.available, 4);
    // The till sells 8 online: its 6 leased units move to the order, 2 come from available.
    let eight = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 8 }] });
    let first = order(&app, &at_till, "eight", &eight).await;
    assert_eq!(first.status(), 201, "{}", first.text().await.unwrap());
    let first: Value = first.json().await.unwrap();
    let l = line(&get_lease(&app, &till, held.id).await, "SKU-1").clone();
    assert_eq!((l.granted, l.consumed, l.remaining), (6, 6, 0));
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved, level.available), (10, 8, 2));
    let order_id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(reservation_of(&app, &order_id).await, ("active".into(), 8));
    // A retry with the same key replays the order and takes nothing more.
    let again: Value = order(&app, &at_till, "eight", &eight)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(
        line(&get_lease(&app, &till, held.id).await, "SKU-1").remaining,
        0
    );
    assert_eq!(stock(&app, &admin, "SKU-1").await.reserved, 8);
    // An order that is short is refused whole and leaves the lease as it was.
    let second = lease(&app, &till, &[("SKU-1", 1)]).await;
    let three = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 3 }] });
    let refused = order(&app, &at_till, "three", &three).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(
        line(&get_lease(&app, &till, second.id).await, "SKU-1").remaining,
        1
    );
    // A cashier's order elsewhere than at the till does not touch the till's lease.
    let cashier = app.user(Role::Cashier).await;
    let one = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 1 }] });
    assert_eq!(
        order(&app, cashier.token(), "one", &one).await.status(),
        201
    );
    assert_eq!(
        line(&get_lease(&app, &till, second.id).await, "SKU-1").remaining,
        1
    );
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!(
        (level.on_hand, level.reserved, level.available),
        (10, 10, 0)
    );
    // Cancelling the till's order gives its 8 units back to available, as for any order.
    let cancelled = app
        .post(
            &format!("/v1/orders/{order_id}/cancel"),
            &at_till,
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        reservation_of(&app, &order_id).await,
        ("released".into(), 8)
    );
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved, level.available), (10, 2, 8));
    assert_eq!(leased(&app).await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM events WHERE type = 'lease.consumed'"
        )
        .await,
        1
    );
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

async fn concurrent_online_orders_at_a_register_take_its_lease_exactly_once(app: TestApp) {
    let admin = seed(&app, 20).await;
    let register = pair(&app, &admin, "STORE-1").await;
    let till = device(&app, &register).await;
    let (_, at_till) = sign_in_at(&app, &register, Role::Cashier).await;
    let held = lease(&app, &till, &[("SKU-1", 10)]).await;
    let app = std::sync::Arc::new(app);
    // 30 orders of one unit, each sent twice at once with its key: 20 units exist.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (app, till) = (app.clone(), at_till.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 1 }] });
            let response = order(&app, &till, &format!("o{}", i % 30), &body).await;
            let status = response.status().as_u16();
            assert!(
                matches!(status, 201 | 409),
                "order answered {status}: {}",
                response.text().await.unwrap()
            );
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let reserved_orders = count(
        &app,
        "SELECT COUNT(*) FROM orders WHERE status = 'RESERVED'",
    )
    .await;
    assert_eq!(reserved_orders, 20, "every unit went to one order");
    let l = line(&get_lease(&app, &till, held.id).await, "SKU-1").clone();
    assert_eq!((l.consumed, l.remaining), (10, 0));
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!(
        (level.on_hand, level.reserved, level.available),
        (20, 20, 0)
    );
    assert_eq!(
        count(
            &app,
            "SELECT CAST(COALESCE(SUM(l.qty), 0) AS BIGINT) FROM reservation_lines l \
             JOIN reservations r ON r.id = l.reservation_id WHERE r.status = 'active'"
        )
        .await,
        20
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM events WHERE type = 'lease.consumed'"
        )
        .await,
        10
    );
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

async fn a_sale_past_its_lease_takes_available_then_the_other_tills_leases_before_a_shortfall(
    app: TestApp,
) {
    let admin = seed(&app, 11).await;
    let a = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let b = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let c = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let lease_a = lease(&app, &a, &[("SKU-1", 4)]).await;
    let lease_b = lease(&app, &b, &[("SKU-1", 2)]).await;
    let lease_c = lease(&app, &c, &[("SKU-1", 2)]).await;
    // The web shop holds 1; 2 are left available.
    let cashier = app.user(Role::Cashier).await;
    let one = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 1 }] });
    assert_eq!(
        order(&app, cashier.token(), "web", &one).await.status(),
        201
    );
    assert_eq!(stock(&app, &admin, "SKU-1").await.available, 2);
    // Till A sells 9 offline: 4 from its lease, 2 available, 3 from B's and C's leases.
    let (status, body) = sync(&app, &a, &[sale(9)]).await;
    assert_eq!(status, 200);
    assert_eq!(results(&body)[0]["outcome"], "accepted");
    assert_eq!(results(&body)[0]["shortfalls"], json!([]));
    let taken_b = line(&get_lease(&app, &b, lease_b.id).await, "SKU-1").clone();
    let taken_c = line(&get_lease(&app, &c, lease_c.id).await, "SKU-1").clone();
    assert_eq!(taken_b.consumed + taken_c.consumed, 3);
    assert_eq!(taken_b.remaining + taken_c.remaining, 1);
    let l = line(&get_lease(&app, &a, lease_a.id).await, "SKU-1").clone();
    assert_eq!((l.consumed, l.remaining), (4, 0));
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved, level.available), (2, 2, 0));
    // A sells 3 more: the last leased unit of the shelf, then 2 short. The web order's unit
    // is never taken.
    let (_, body) = sync(&app, &a, &[sale(3)]).await;
    assert_eq!(
        results(&body)[0]["shortfalls"],
        json!([{ "sku": "SKU-1", "location": "STORE-1", "shortfall": 2 }])
    );
    assert_eq!(leased(&app).await, 0);
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved, level.available), (1, 1, 0));
    assert_eq!(
        count(
            &app,
            "SELECT CAST(SUM(shortfall) AS BIGINT) FROM stock_discrepancies"
        )
        .await,
        2
    );
    // B's register learns it on its next renew: its lease holds nothing more.
    let renewed = put(&app, &b, lease_b.id, &json!({ "ttl_s": 600 })).await;
    assert_eq!(renewed.status(), 200);
    let renewed: Lease = renewed.json().await.unwrap();
    assert_eq!(line(&renewed, "SKU-1").remaining, 0);
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}

async fn a_duplicate_batch_takes_another_tills_lease_once(app: TestApp) {
    let admin = seed(&app, 10).await;
    let a = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let b = device(&app, &pair(&app, &admin, "STORE-1").await).await;
    let lease_b = lease(&app, &b, &[("SKU-1", 8)]).await;
    // A holds no lease; 2 are available; A sold 2 + 3 offline.
    let batch = vec![sale(2), sale(3)];
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (app, a, batch) = (app.clone(), a.clone(), batch.clone());
            tokio::spawn(async move { sync(&app, &a, &batch).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200);
        answers.push(body);
    }
    let (_, again) = sync(&app, &a, &batch).await;
    assert!(
        answers.iter().all(|b| *b == again),
        "every copy has one answer"
    );
    for result in results(&again) {
        assert_eq!(result["shortfalls"], json!([]), "{result}");
    }
    let l = line(&get_lease(&app, &b, lease_b.id).await, "SKU-1").clone();
    assert_eq!((l.consumed, l.remaining), (3, 5));
    let level = stock(&app, &admin, "SKU-1").await;
    assert_eq!((level.on_hand, level.reserved, level.available), (5, 5, 0));
    assert_ledger_balanced(&app, &admin, "SKU-1").await;
}
