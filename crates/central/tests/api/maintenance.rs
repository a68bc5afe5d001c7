//! Read-only mode (issue 13, point 5): an admin switches it on at one instance and every
//! instance on the database refuses writes within its refresh, with `503 read_only`,
//! `Retry-After` and the admin's message; reads and signing in go on; nothing is half-written;
//! switched off, the same request goes through.

use std::time::{Duration, Instant};

use kassa_domain::maintenance::{Feature, Features, ReadOnlyMode};
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

// Feature switches (issue 13, point 5): an admin turns recommendations or search facets off on
// one instance; every instance answers 503 `feature_disabled` within its refresh, the rest of
// search and the catalog go on, and switched on again they answer as before.
story_with!(fast_refresh: feature_switches_turn_parts_off_on_every_instance);

async fn switch_feature(app: &TestApp, token: &str, name: &str, enabled: bool) -> u16 {
    app.client
        .put(app.url(&format!("/v1/admin/features/{name}")))
        .bearer_auth(token)
        .json(&json!({ "enabled": enabled }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// GETs `path` on `app` until it answers `wanted`, for at most two seconds; the last answer.
async fn get_until(app: &TestApp, token: &str, path: &str, wanted: u16) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let answer = app.get(path, token).await;
        if answer.status() == wanted || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn feature_switches_turn_parts_off_on_every_instance(a: TestApp) {
    let admin = seed(&a, 10).await;
    let b = TestApp::start((*a.state.config).clone(), None).await;
    let cashier = b.user(Role::Cashier).await;
    let products: serde_json::Value = b
        .get("/v1/products", cashier.token())
        .await
        .json()
        .await
        .unwrap();
    let product = products["items"][0]["id"].as_str().unwrap().to_owned();
    let recommendations = format!("/v1/recommendations/{product}");
    let faceted = "/v1/search?q=&facets=category,brand";
    assert_eq!(b.get(&recommendations, cashier.token()).await.status(), 200);
    assert_eq!(b.get(faceted, cashier.token()).await.status(), 200);

    // Only an admin switches, only a feature that exists.
    assert_eq!(
        switch_feature(&b, cashier.token(), "recommendations", false).await,
        403
    );
    assert_eq!(switch_feature(&a, &admin, "checkout", false).await, 404);
    assert_eq!(
        switch_feature(&a, &admin, "recommendations", false).await,
        200
    );
    let features: Features = b
        .get("/v1/admin/features", cashier.token())
        .await
        .json()
        .await
        .unwrap();
    assert!(!features.enabled(Feature::Recommendations));
    assert!(features.enabled(Feature::SearchFacets));

    // The switching instance at once, the other within its refresh; the feed registers pull
    // is off too, search with facets is not.
    let at_a = a.get(&recommendations, cashier.token()).await;
    error_body(at_a, 503, "feature_disabled").await;
    let at_b = get_until(&b, cashier.token(), &recommendations, 503).await;
    error_body(at_b, 503, "feature_disabled").await;
    let feed = b.get("/v1/recommendations", cashier.token()).await;
    error_body(feed, 503, "feature_disabled").await;
    assert_eq!(b.get(faceted, cashier.token()).await.status(), 200);

    // Facets off (allowed in read-only mode too): faceted search refused, plain search goes on.
    assert_eq!(switch(&a, &admin, true, "Stock count").await.status(), 200);
    assert_eq!(
        switch_feature(&a, &admin, "search_facets", false).await,
        200
    );
    let refused = get_until(&b, cashier.token(), faceted, 503).await;
    error_body(refused, 503, "feature_disabled").await;
    assert_eq!(b.get("/v1/search?q=", cashier.token()).await.status(), 200);
    assert_eq!(switch(&a, &admin, false, "").await.status(), 200);

    // Both on again: answered as before, everywhere.
    assert_eq!(
        switch_feature(&b, &admin, "recommendations", true).await,
        200
    );
    assert_eq!(switch_feature(&b, &admin, "search_facets", true).await, 200);
    assert_eq!(
        get_until(&a, cashier.token(), &recommendations, 200)
            .await
            .status(),
        200
    );
    assert_eq!(
        get_until(&a, cashier.token(), faceted, 200).await.status(),
        200
    );
}

// Load shedding (issue 13, point 5): with 4 places in flight and one reserved, browsing is shed
// at 1 request in flight, other work at 3, checkout and signing in only at 4, each with an
// immediate `503 overloaded` and `Retry-After`; health is never shed; the places come back when
// the requests holding them end, even abandoned ones.
story_with!(four_places: load_shedding_sheds_browsing_first);

fn four_places(config: &mut kassa_central::Config) {
    config.inflight_max = 4;
    config.inflight_reserved_percent = 25;
}

/// An order request whose body never finishes arriving: it holds a place until dropped.
async fn stalled_order(app: &TestApp, token: &str, n: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/orders HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         idempotency-key: stalled-{n}\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\n\r\n{{\"location\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.state.inflight.now() < n {
        assert!(Instant::now() < deadline, "the stalled order never got in");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stream
}

async fn load_shedding_sheds_browsing_first(app: TestApp) {
    seed(&app, 10).await;
    let cashier = app.user(Role::Cashier).await;
    let token = cashier.token();
    assert_eq!(app.get("/v1/products", token).await.status(), 200);

    let first = stalled_order(&app, token, 1).await;
    let shed = app.get("/v1/products", token).await;
    assert_eq!(shed.headers()["retry-after"], "1");
    error_body(shed, 503, "overloaded").await;
    assert_eq!(app.get("/v1/locations", token).await.status(), 200);

    let more = [
        stalled_order(&app, token, 2).await,
        stalled_order(&app, token, 3).await,
    ];
    error_body(app.get("/v1/locations", token).await, 503, "overloaded").await;
    let reserved = app
        .post(
            "/v1/auth/refresh",
            "",
            &json!({ "refresh_token": cashier.tokens.refresh_token }),
        )
        .await;
    assert_eq!(
        reserved.status(),
        200,
        "checkout and signing in keep their share"
    );

    let last = stalled_order(&app, token, 4).await;
    let full = app
        .post(
            "/v1/auth/login",
            "",
            &json!({ "username": "nobody", "password": "x" }),
        )
        .await;
    error_body(full, 503, "overloaded").await;
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kassa_shed_requests_total{class=\"browse\"}"),
        "shed requests are counted by class"
    );

    // Abandoned, the stalled orders give their places back and took nothing.
    drop((first, more, last));
    let back = get_until(&app, token, "/v1/products", 200).await;
    assert_eq!(back.status(), 200);
    assert_eq!(stock(&app, token, "SKU-1").await.reserved, 0);
}
