//! Auth stories: passwords, token expiry, logout, refresh rotation and reuse, rate limits, users,
//! registers.

use std::time::Duration;

use kassa_domain::Role;
use serde_json::json;

use crate::helpers::{error_body, Db, TestApp};
use crate::story;

story!(
    a_wrong_password_or_unknown_user_gets_the_same_401,
    a_logged_out_access_token_fails_on_the_very_next_request,
    refresh_rotates_and_reusing_an_old_refresh_token_revokes_the_session,
    admins_create_users_who_can_then_sign_in,
    a_paired_register_signs_in_with_its_credential,
);

async fn a_wrong_password_or_unknown_user_gets_the_same_401(app: TestApp) {
    let user = app.user(Role::Cashier).await;
    let wrong = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({ "username": user.username, "password": "not the password" }))
        .send()
        .await
        .unwrap();
    let wrong = error_body(wrong, 401, "unauthorized").await;
    let unknown = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({ "username": "nobody-here", "password": "whatever123" }))
        .send()
        .await
        .unwrap();
    let unknown = error_body(unknown, 401, "unauthorized").await;
    assert_eq!(
        wrong, unknown,
        "the two failures must not tell an attacker which usernames exist"
    );
}

async fn a_logged_out_access_token_fails_on_the_very_next_request(app: TestApp) {
    let user = app.user(Role::Cashier).await;
    assert_eq!(app.get("/v1/products", user.token()).await.status(), 200);
    let logout = app
        .client
        .post(app.url("/v1/auth/logout"))
        .bearer_auth(user.token())
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    error_body(
        app.get("/v1/products", user.token()).await,
        401,
        "unauthorized",
    )
    .await;
    let refresh = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .json(&json!({ "refresh_token": user.tokens.refresh_token }))
        .send()
        .await
        .unwrap();
    error_body(refresh, 401, "unauthorized").await;
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/refresh"))
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap()
}

async fn refresh_rotates_and_reusing_an_old_refresh_token_revokes_the_session(app: TestApp) {
    let user = app.user(Role::Manager).await;
    let first = refresh(&app, &user.tokens.refresh_token).await;
    assert_eq!(first.status(), 200);
    let second: kassa_domain::api::TokenResponse = first.json().await.unwrap();
    assert_ne!(
        second.refresh_token, user.tokens.refresh_token,
        "refresh must rotate the token"
    );
    assert_eq!(
        app.get("/v1/products", &second.access_token).await.status(),
        200
    );

    // The old token again: a thief or a replay. The whole session ends.
    error_body(
        refresh(&app, &user.tokens.refresh_token).await,
        401,
        "unauthorized",
    )
    .await;
    error_body(
        refresh(&app, &second.refresh_token).await,
        401,
        "unauthorized",
    )
    .await;
    error_body(
        app.get("/v1/products", &second.access_token).await,
        401,
        "unauthorized",
    )
    .await;
}

async fn admins_create_users_who_can_then_sign_in(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let body =
        json!({ "username": "new.cashier", "password": "long enough pw", "role": "cashier" });
    let created = app.post("/v1/users", admin.token(), &body).await;
    assert_eq!(created.status(), 201);
    let user: serde_json::Value = created.json().await.unwrap();
    assert_eq!(user["role"], "cashier");
    assert!(user.get("password_hash").is_none() && user.get("password").is_none());
    let tokens = app.login("new.cashier", "long enough pw").await;
    assert_eq!(tokens.role, Role::Cashier);

    error_body(
        app.post("/v1/users", admin.token(), &body).await,
        409,
        "username_taken",
    )
    .await;
    let weak = json!({ "username": "weak.one", "password": "short", "role": "cashier" });
    error_body(
        app.post("/v1/users", admin.token(), &weak).await,
        422,
        "invalid_password",
    )
    .await;
    let bad_role =
        json!({ "username": "weird.one", "password": "long enough pw", "role": "overlord" });
    error_body(
        app.post("/v1/users", admin.token(), &bad_role).await,
        422,
        "invalid_body",
    )
    .await;
}

async fn a_paired_register_signs_in_with_its_credential(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let cashier = app.user(Role::Cashier).await;
    let location = app
        .post(
            "/v1/locations",
            admin.token(),
            &json!({ "code": "STORE-9", "name": "Nine" }),
        )
        .await;
    assert_eq!(location.status(), 201);
    let unknown = app
        .post(
            "/v1/registers",
            manager.token(),
            &json!({ "location": "NOPE", "name": "Till" }),
        )
        .await;
    error_body(unknown, 422, "unknown_location").await;
    let paired = app
        .post(
            "/v1/registers",
            manager.token(),
            &json!({ "location": "STORE-9", "name": "Till 1" }),
        )
        .await;
    assert_eq!(paired.status(), 201);
    let paired: kassa_domain::api::RegisterCreated = paired.json().await.unwrap();

    let login = |credential: String| {
        app.client
            .post(app.url("/v1/auth/login"))
            .json(&json!({
                "username": cashier.username, "password": cashier.password,
                "register": { "id": paired.register_id, "credential": credential }
            }))
            .send()
    };
    assert_eq!(
        login(paired.credential.clone()).await.unwrap().status(),
        200
    );
    error_body(login("forged".into()).await.unwrap(), 401, "unauthorized").await;
}

#[tokio::test]
async fn an_expired_access_token_is_refused() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.access_token_ttl = Duration::from_secs(1))
        .await
        .unwrap();
    let user = app.user(Role::Cashier).await;
    assert_eq!(app.get("/v1/products", user.token()).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let body = error_body(
        app.get("/v1/products", user.token()).await,
        401,
        "unauthorized",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_username_and_per_address() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.login_per_username_per_minute = 3;
        c.login_per_ip_per_minute = 6;
    })
    .await
    .unwrap();
    let attempt = |username: &'static str| {
        app.client
            .post(app.url("/v1/auth/login"))
            .json(&json!({ "username": username, "password": "guessing123" }))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt("victim").await.unwrap().status(), 401);
    }
    let limited = attempt("victim").await.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "Retry-After must say when to come back");
    error_body(limited, 429, "rate_limited").await;

    // The same address trying other usernames hits the per-address limit (4 attempts used).
    assert_eq!(attempt("other-1").await.unwrap().status(), 401);
    assert_eq!(attempt("other-2").await.unwrap().status(), 401);
    error_body(attempt("other-3").await.unwrap(), 429, "rate_limited").await;
}

#[tokio::test]
async fn each_user_has_a_request_rate_limit() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.user_requests_per_second = 1;
        c.user_requests_burst = 3;
    })
    .await
    .unwrap();
    let heavy = app.user(Role::Cashier).await;
    let other = app.user(Role::Cashier).await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/products", heavy.token()).await.status(), 200);
    }
    let limited = app.get("/v1/products", heavy.token()).await;
    assert!(limited.headers().contains_key("retry-after"));
    error_body(limited, 429, "rate_limited").await;
    assert_eq!(
        app.get("/v1/products", other.token()).await.status(),
        200,
        "limits are per user"
    );
}
