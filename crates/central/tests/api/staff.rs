//! Staff at the tills: PINs (who may set whose, sign-in only with a register's credential, the
//! lockout after wrong PINs) and the manager who approved a line discount, stored on the order.

use kassa_domain::api::{Order, RegisterCreated};
use kassa_domain::Role;
use reqwest::Response;
use serde_json::{json, Value};

use crate::catalog::{create, ean, product_body};
use crate::helpers::{error_body, Session, TestApp};
use crate::{story, story_with};

story_with!(a_request_rate_of_1_per_second_and_3_at_once: each_register_has_its_own_request_rate);

fn a_request_rate_of_1_per_second_and_3_at_once(c: &mut kassa_central::Config) {
    c.user_requests_per_second = 1;
    c.user_requests_burst = 3;
}

story!(
    who_may_set_whose_pin,
    a_pin_signs_in_only_with_a_register_credential,
    wrong_pins_in_a_row_lock_pin_sign_in_but_not_the_password,
    the_approving_manager_is_stored_on_the_order_line,
    a_register_signs_itself_in_to_sync_and_may_do_nothing_else,
    register_is_no_role_for_a_user,
    the_demo_staff_sign_in_at_a_register_with_their_pins,
);

/// STORE-1 and a register paired there.
async fn paired_register(app: &TestApp, admin: &Session) -> RegisterCreated {
    let location = app
        .post(
            "/v1/locations",
            admin.token(),
            &json!({ "code": "STORE-1", "name": "One" }),
        )
        .await;
    assert_eq!(location.status(), 201);
    app.post(
        "/v1/registers",
        admin.token(),
        &json!({ "location": "STORE-1", "name": "Till 1" }),
    )
    .await
    .json()
    .await
    .unwrap()
}

async fn set_pin(app: &TestApp, token: &str, username: &str, pin: &str) -> Response {
    app.client
        .put(app.url(&format!("/v1/users/{username}/pin")))
        .bearer_auth(token)
        .json(&json!({ "pin": pin }))
        .send()
        .await
        .unwrap()
}

async fn login(app: &TestApp, body: Value) -> Response {
    app.client
        .post(app.url("/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn pin_login(username: &str, pin: &str, register: &RegisterCredentialJson) -> Value {
    json!({ "username": username, "pin": pin, "register": register.0 })
}

struct RegisterCredentialJson(Value);

fn credential(register: &RegisterCreated) -> RegisterCredentialJson {
    RegisterCredentialJson(json!({ "id": register.register_id, "credential": register.credential }))
}

async fn who_may_set_whose_pin(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let other_manager = app.user(Role::Manager).await;
    let cashier = app.user(Role::Cashier).await;

    assert_eq!(
        set_pin(&app, manager.token(), &cashier.username, "1234")
            .await
            .status(),
        204
    );
    assert_eq!(
        set_pin(&app, manager.token(), &manager.username, "987654")
            .await
            .status(),
        204
    );
    let refused = set_pin(&app, manager.token(), &admin.username, "1234").await;
    error_body(refused, 403, "pin_not_allowed").await;
    let refused = set_pin(&app, manager.token(), &other_manager.username, "1234").await;
    error_body(refused, 403, "pin_not_allowed").await;
    for target in [&admin, &other_manager, &cashier] {
        assert_eq!(
            set_pin(&app, admin.token(), &target.username, "24680")
                .await
                .status(),
            204
        );
    }
    error_body(
        set_pin(&app, cashier.token(), &cashier.username, "1234").await,
        403,
        "forbidden",
    )
    .await;
    for bad in ["123", "123456789", "12a4", "", " 1234"] {
        let response = set_pin(&app, admin.token(), &cashier.username, bad).await;
        error_body(response, 422, "invalid_pin").await;
    }
    error_body(
        set_pin(&app, admin.token(), "nobody", "1234").await,
        404,
        "not_found",
    )
    .await;
}

async fn a_pin_signs_in_only_with_a_register_credential(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let cashier = app.user(Role::Cashier).await;
    let register = paired_register(&app, &admin).await;
    let till = credential(&register);
    assert_eq!(
        set_pin(&app, admin.token(), &cashier.username, "4321")
            .await
            .status(),
        204
    );

    let ok = login(&app, pin_login(&cashier.username, "4321", &till)).await;
    assert_eq!(ok.status(), 200);
    let tokens: kassa_domain::api::TokenResponse = ok.json().await.unwrap();
    assert_eq!(tokens.role, Role::Cashier);
    let caller = app
        .state
        .auth
        .authenticate(&app.state.db, &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(caller.register_id, Some(register.register_id));

    let no_register = login(&app, json!({ "username": cashier.username, "pin": "4321" })).await;
    error_body(no_register, 422, "register_required").await;
    let forged =
        RegisterCredentialJson(json!({ "id": register.register_id, "credential": "forged" }));
    error_body(
        login(&app, pin_login(&cashier.username, "4321", &forged)).await,
        401,
        "unauthorized",
    )
    .await;
    error_body(
        login(&app, pin_login(&cashier.username, "0000", &till)).await,
        401,
        "unauthorized",
    )
    .await;
    let both = json!({ "username": cashier.username, "pin": "4321", "password": cashier.password });
    error_body(login(&app, both).await, 422, "invalid_login").await;
    error_body(
        login(&app, json!({ "username": cashier.username })).await,
        422,
        "invalid_login",
    )
    .await;
    // Someone without a PIN cannot sign in with one.
    error_body(
        login(&app, pin_login(&admin.username, "4321", &till)).await,
        401,
        "unauthorized",
    )
    .await;
}

async fn wrong_pins_in_a_row_lock_pin_sign_in_but_not_the_password(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let cashier = app.user(Role::Cashier).await;
    let register = paired_register(&app, &admin).await;
    let till = credential(&register);
    assert_eq!(
        set_pin(&app, admin.token(), &cashier.username, "4321")
            .await
            .status(),
        204
    );
    // Wrong PINs not in a row do not add up: a right one starts the count again.
    for _ in 0..4 {
        let wrong = login(&app, pin_login(&cashier.username, "1111", &till)).await;
        assert_eq!(wrong.status(), 401);
    }
    let right = login(&app, pin_login(&cashier.username, "4321", &till)).await;
    assert_eq!(right.status(), 200);
    for _ in 0..kassa_central::auth::PIN_FAILURES_MAX {
        let wrong = login(&app, pin_login(&cashier.username, "1111", &till)).await;
        assert_eq!(wrong.status(), 401);
    }
    let locked = login(&app, pin_login(&cashier.username, "4321", &till)).await;
    let retry_after: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= kassa_central::auth::PIN_LOCKOUT.as_secs());
    error_body(locked, 423, "pin_locked").await;
    // The password still works, at the register too.
    let password =
        json!({ "username": cashier.username, "password": cashier.password, "register": till.0 });
    assert_eq!(login(&app, password).await.status(), 200);

    // When the lock has run out, the right PIN works again.
    sqlx::query("UPDATE users SET pin_locked_until = 1 WHERE username = $1")
        .bind(&cashier.username)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let again = login(&app, pin_login(&cashier.username, "4321", &till)).await;
    assert_eq!(again.status(), 200);
    // A new PIN set by a manager lifts a lock at once.
    for _ in 0..kassa_central::auth::PIN_FAILURES_MAX {
        login(&app, pin_login(&cashier.username, "1111", &till)).await;
    }
    assert_eq!(
        login(&app, pin_login(&cashier.username, "4321", &till))
            .await
            .status(),
        423
    );
    assert_eq!(
        set_pin(&app, admin.token(), &cashier.username, "5555")
            .await
            .status(),
        204
    );
    assert_eq!(
        login(&app, pin_login(&cashier.username, "5555", &till))
            .await
            .status(),
        200
    );
}

async fn the_approving_manager_is_stored_on_the_order_line(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let register = paired_register(&app, &admin).await;
    // The cashier sells at the till; the manager approves there (Central grants the approval).
    let at_till = |user: &Session| {
        json!({ "username": user.username, "password": user.password,
            "register": credential(&register).0 })
    };
    let cashier_user = app.user(Role::Cashier).await;
    let boss = app.user(Role::Manager).await;
    let cashier = login_at(&app, "/v1/auth/login", at_till(&cashier_user))
        .await
        .json::<kassa_domain::api::TokenResponse>()
        .await
        .unwrap();
    let boss_token = login_at(&app, "/v1/auth/login", at_till(&boss))
        .await
        .json::<kassa_domain::api::TokenResponse>()
        .await
        .unwrap();
    let approval: kassa_domain::approval::GrantedApproval = app
        .post("/v1/approvals", &boss_token.access_token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let cashier = Session {
        username: cashier_user.username.clone(),
        password: cashier_user.password.clone(),
        tokens: cashier,
    };
    create(
        &app,
        admin.token(),
        &product_body("SKU-A", &ean(1), "10.00"),
    )
    .await;
    create(&app, admin.token(), &product_body("SKU-B", &ean(2), "5.00")).await;
    for sku in ["SKU-A", "SKU-B"] {
        let stocked =
            json!({ "sku": sku, "location": "STORE-1", "delta": 10, "reason": "receiving" });
        assert_eq!(
            app.post("/v1/stock/adjustments", admin.token(), &stocked)
                .await
                .status(),
            201
        );
    }
    let eur = |a: &str| json!({ "amount": a, "currency": "EUR" });
    let body = json!({ "location": "STORE-1", "lines": [
        { "sku": "SKU-A", "qty": 1, "discount": eur("5.00"), "discount_approved_by": boss.username,
          "discount_approval": { "id": approval.id } },
        { "sku": "SKU-B", "qty": 1, "discount": eur("0.10") },
    ] });
    let created = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(cashier.token())
        .header("idempotency-key", "approved-discount-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let order: Order = created.json().await.unwrap();
    assert_eq!(
        order.lines[0].discount_approved_by.as_deref(),
        Some(boss.username.as_str())
    );
    assert_eq!(order.lines[1].discount_approved_by, None);
    let read: Order = app
        .get(&format!("/v1/orders/{}", order.id), admin.token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read.lines, order.lines);

    let bad = json!({ "location": "STORE-1", "lines": [
        { "sku": "SKU-A", "qty": 1, "discount": eur("5.00"), "discount_approved_by": "not a name!" },
    ] });
    let refused = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(cashier.token())
        .header("idempotency-key", "approved-discount-2")
        .json(&bad)
        .send()
        .await
        .unwrap();
    error_body(refused, 422, "invalid_approver").await;
}

async fn device_login(app: &TestApp, id: uuid::Uuid, credential: &str) -> Response {
    login_at(
        app,
        "/v1/auth/device",
        json!({ "register": { "id": id, "credential": credential } }),
    )
    .await
}

/// Two tills paired by one manager sync at once: neither waits for the other or for the manager.
async fn each_register_has_its_own_request_rate(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let first = paired_register(&app, &admin).await;
    let second: RegisterCreated = app
        .post(
            "/v1/registers",
            admin.token(),
            &json!({ "location": "STORE-1", "name": "Till 2" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let limited = app.get("/v1/products", admin.token()).await;
    error_body(limited, 429, "rate_limited").await;
    for register in [&first, &second] {
        let tokens: kassa_domain::api::TokenResponse =
            device_login(&app, register.register_id, &register.credential)
                .await
                .json()
                .await
                .unwrap();
        for _ in 0..3 {
            let page = app.get("/v1/products?since=&limit=10", &tokens.access_token);
            assert_eq!(page.await.status(), 200);
        }
        let over = app.get("/v1/products?since=&limit=10", &tokens.access_token);
        error_body(over.await, 429, "rate_limited").await;
    }
}

async fn login_at(app: &TestApp, path: &str, body: Value) -> Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn a_register_signs_itself_in_to_sync_and_may_do_nothing_else(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let register = paired_register(&app, &admin).await;
    let product = create(
        &app,
        admin.token(),
        &product_body("SKU-A", &ean(1), "10.00"),
    )
    .await;
    error_body(
        device_login(&app, register.register_id, "forged").await,
        401,
        "unauthorized",
    )
    .await;
    error_body(
        device_login(&app, uuid::Uuid::now_v7(), &register.credential).await,
        401,
        "unauthorized",
    )
    .await;
    let answer = device_login(&app, register.register_id, &register.credential).await;
    assert_eq!(answer.status(), 200);
    let tokens: kassa_domain::api::TokenResponse = answer.json().await.unwrap();
    assert_eq!(tokens.role, Role::Register);
    let device = tokens.access_token.as_str();

    for path in [
        "/v1/products?since=&limit=10".to_owned(),
        format!("/v1/products/{}", product.id),
        "/v1/stock/SKU-A?location=STORE-1".to_owned(),
        "/v1/recommendations?since=&limit=10".to_owned(),
        // Its store's time zone.
        "/v1/locations".to_owned(),
    ] {
        assert_eq!(app.get(&path, device).await.status(), 200, "GET {path}");
    }
    for path in [
        "/v1/orders".to_owned(),
        "/v1/stock/discrepancies?location=STORE-1".to_owned(),
        format!("/v1/recommendations/{}", product.id),
    ] {
        error_body(app.get(&path, device).await, 403, "forbidden").await;
    }
    let order = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-A", "qty": 1 }] });
    let refused = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(device)
        .header("idempotency-key", "device-order-1")
        .json(&order)
        .send()
        .await
        .unwrap();
    error_body(refused, 403, "forbidden").await;
    let money = json!({ "amount": "10.00", "currency": "EUR" });
    let sale = json!({ "orders": [{
        "id": uuid::Uuid::now_v7(), "location": "STORE-1",
        "lines": [{ "sku": "SKU-A", "qty": 1, "unit_price": money }],
        "payments": [{ "method": "cash", "amount": money, "tendered": money }],
        "completed_at": "2026-11-30T10:00:00Z", "receipt_no": "STORE-1-R1-000001",
    }] });
    let synced = app.post("/v1/sync/orders", device, &sale).await;
    assert_eq!(synced.status(), 200);

    // Refreshing keeps the device's role.
    let refreshed = login_at(
        &app,
        "/v1/auth/refresh",
        json!({ "refresh_token": tokens.refresh_token }),
    )
    .await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: kassa_domain::api::TokenResponse = refreshed.json().await.unwrap();
    assert_eq!(refreshed.role, Role::Register);
    error_body(
        app.get("/v1/orders", &refreshed.access_token).await,
        403,
        "forbidden",
    )
    .await;
    let logout = app
        .post("/v1/auth/logout", &refreshed.access_token, &json!({}))
        .await;
    assert_eq!(logout.status(), 204);
    error_body(
        app.get("/v1/products?since=", &refreshed.access_token)
            .await,
        401,
        "unauthorized",
    )
    .await;
}

async fn register_is_no_role_for_a_user(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let body = json!({ "username": "till", "password": "long enough pw", "role": "register" });
    error_body(
        app.post("/v1/users", admin.token(), &body).await,
        422,
        "invalid_role",
    )
    .await;
}

/// The demo store gives the manager and the cashier PINs (the README lists them); loading it
/// again keeps them.
async fn the_demo_staff_sign_in_at_a_register_with_their_pins(app: TestApp) {
    kassa_central::demo::load(&app.state.db).await.unwrap();
    kassa_central::demo::load(&app.state.db).await.unwrap();
    let admin: Value = login(
        &app,
        json!({ "username": "admin", "password": "admin-pass-1" }),
    )
    .await
    .json()
    .await
    .unwrap();
    let register: RegisterCreated = app
        .post(
            "/v1/registers",
            admin["access_token"].as_str().unwrap(),
            &json!({ "location": "STORE-1", "name": "Till 1" }),
        )
        .await
        .json()
        .await
        .unwrap();
    for (username, pin) in kassa_central::demo::DEMO_PINS {
        let signed_in = login(&app, pin_login(username, pin, &credential(&register))).await;
        assert_eq!(signed_in.status(), 200, "{username}");
        let body: Value = signed_in.json().await.unwrap();
        assert_eq!(body["role"], username);
    }
}
