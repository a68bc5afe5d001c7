//! Read-only mode (issue 13, point 5): an admin switches it on at one instance and every
//! instance on the database refuses writes within its refresh, with `503 read_only`,
//! `Retry-After` and the admin's message; reads and signing in go on; nothing is half-written;
//! switched off, the same request goes through.

use std::time::{Duration, Instant};

use kassa_domain::maintenance::ReadOnlyMode;
use kassa_domain::Role;
use serde_json::json;

use crate::checkout::{one_unit, order, seed, stock};
use crate::helpers::{error_body, TestApp};
use crate::story_with;

story_with!(fast_refresh: read_only_mode_stops_writes_on_every_instance_and_nothing_else);

fn fast_refresh(config: &mut kassa_central::Config) {
    config.read_only_refresh = Duration::from_millis(200);
}

async fn switch(app: &TestApp, token: &str, enabled: bool, message: &str) -> reqwest::Response {
    app.client
        .put(app.url("/v1/admin/read-only"))
        .bearer_auth(token)
        .json(&json!({ "enabled": enabled, "message": message }))
        .send()
        .await
        .unwrap()
}

/// Places the same order (same key) on `app` until it is answered with `wanted`, for at most
/// two seconds (ten refreshes); returns the last answer.
async fn order_until(app: &TestApp, token: &str, wanted: u16) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let answer = order(app, token, "read-only-1", &one_unit("SKU-1")).await;
        if answer.status() == wanted || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn read_only_mode_stops_writes_on_every_instance_and_nothing_else(a: TestApp) {
    let admin = seed(&a, 10).await;
    let b = TestApp::start((*a.state.config).clone(), None).await;
    let cashier = b.user(Role::Cashier).await;
    let customer = b.user(Role::Customer).await;
    let manager = b.user(Role::Manager).await;

    // Only an admin switches it; anyone signed in reads it.
    let refused = switch(&b, cashier.token(), true, "no").await;
    error_body(refused, 403, "forbidden").await;
    let message = "Stock count until 07:00";
    let on = switch(&a, &admin, true, message).await;
    assert_eq!(on.status(), 200);
    let shown: ReadOnlyMode = b
        .get("/v1/admin/read-only", customer.token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown,
        ReadOnlyMode {
            enabled: true,
            message: message.into()
        }
    );

    // The instance that switched refuses at once; the other within its refresh.
    let at_a = order(&a, cashier.token(), "read-only-a", &one_unit("SKU-1")).await;
    assert_eq!(at_a.status(), 503);
    let at_b = order_until(&b, cashier.token(), 503).await;
    assert_eq!(at_b.headers()["retry-after"], "30");
    let body = error_body(at_b, 503, "read_only").await;
    assert_eq!(body["error"]["message"], message);

    // Reads, signing in, refreshing and signing out go on.
    assert_eq!(b.get("/v1/products", cashier.token()).await.status(), 200);
    let level = stock(&b, cashier.token(), "SKU-1").await;
    assert_eq!(level.reserved, 0, "a refused order took nothing");
    let refreshed = b
        .post(
            "/v1/auth/refresh",
            "",
            &json!({ "refresh_token": manager.tokens.refresh_token }),
        )
        .await;
    assert_eq!(refreshed.status(), 200);

    // Off again (from the other instance): the same request, same key, goes through once.
    assert_eq!(switch(&b, &admin, false, "").await.status(), 200);
    let placed = order_until(&a, cashier.token(), 201).await;
    assert_eq!(placed.status(), 201, "{}", placed.text().await.unwrap());
    let again = order(&a, cashier.token(), "read-only-1", &one_unit("SKU-1")).await;
    assert_eq!(again.status(), 201, "the retry is the stored answer");
    assert_eq!(stock(&a, cashier.token(), "SKU-1").await.reserved, 1);
}
