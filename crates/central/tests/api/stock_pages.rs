//! `GET /v1/stock`: the levels of a location paged by SKU over the whole catalog, so a register's
//! first sync takes a few requests instead of one per SKU.

use kassa_domain::api::{StockLevel, StockPage};
use kassa_domain::Role;
use serde_json::json;

use crate::catalog::{create, ean, product_body};
use crate::checkout::receive;
use crate::helpers::{error_body, TestApp};
use crate::story;

story!(
    stock_pages_walk_the_catalog_in_sku_order_with_every_level,
    stock_pages_refuse_bad_limits_cursors_and_locations,
    an_adjustment_sent_again_with_its_key_moves_stock_once,
);

/// STORE-1 and STORE-2, products P-01 … P-`n` (none stocked); returns the admin's token.
async fn shop(app: &TestApp, n: u32) -> String {
    let admin = app.user(Role::Admin).await;
    for code in ["STORE-1", "STORE-2"] {
        let body = json!({ "code": code, "name": code });
        assert_eq!(
            app.post("/v1/locations", admin.token(), &body)
                .await
                .status(),
            201
        );
    }
    for i in 1..=n {
        let sku = format!("P-{i:02}");
        create(
            app,
            admin.token(),
            &product_body(&sku, &ean(u64::from(i)), "1.00"),
        )
        .await;
    }
    admin.tokens.access_token
}

async fn page(app: &TestApp, token: &str, query: &str) -> StockPage {
    let response = app.get(&format!("/v1/stock?{query}"), token).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn stock_pages_walk_the_catalog_in_sku_order_with_every_level(app: TestApp) {
    let admin = shop(&app, 7).await;
    receive(&app, &admin, "P-03", 5).await;
    receive(&app, &admin, "P-07", 2).await;
    let cashier = app.user(Role::Cashier).await;

    let mut seen: Vec<StockLevel> = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let got = page(
            &app,
            cashier.token(),
            &format!("location=STORE-1&limit=3&after={after}"),
        )
        .await;
        pages += 1;
        assert!(got.items.len() <= 3);
        seen.extend(got.items);
        match got.next_cursor {
            Some(next) => after = next,
            None => break,
        }
        assert!(pages < 10, "the cursor moves forward");
    }
    let skus: Vec<&str> = seen.iter().map(|l| l.sku.as_ref()).collect();
    assert_eq!(
        skus,
        ["P-01", "P-02", "P-03", "P-04", "P-05", "P-06", "P-07"]
    );
    assert_eq!(pages, 3);
    let p3 = &seen[2];
    assert_eq!((p3.on_hand, p3.reserved, p3.available), (5, 0, 5));
    assert_eq!(p3.location, "STORE-1");
    assert_eq!(
        (seen[0].on_hand, seen[0].available),
        (0, 0),
        "never stocked: 0"
    );
    // The same numbers as the one-SKU route.
    let one: StockLevel = app
        .get("/v1/stock/P-07?location=STORE-1", cashier.token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen[6], one);

    // Another location has its own levels; a full last page ends with a cursor, then nothing.
    let other = page(&app, cashier.token(), "location=STORE-2&limit=7").await;
    assert!(other
        .items
        .iter()
        .all(|l| l.on_hand == 0 && l.location == "STORE-2"));
    assert_eq!(other.next_cursor.as_deref(), Some("P-07"));
    let end = page(&app, cashier.token(), "location=STORE-2&limit=7&after=P-07").await;
    assert!(end.items.is_empty());
    assert_eq!(end.next_cursor, None);
    let default = page(&app, cashier.token(), "location=STORE-1").await;
    assert_eq!(default.items.len(), 7, "up to 1000 by default");
}

async fn stock_pages_refuse_bad_limits_cursors_and_locations(app: TestApp) {
    shop(&app, 1).await;
    let cashier = app.user(Role::Cashier).await;
    for (query, status, code) in [
        ("location=STORE-1&limit=0", 400, "invalid_limit"),
        ("location=STORE-1&limit=1001", 400, "invalid_limit"),
        ("location=NOWHERE", 422, "unknown_location"),
    ] {
        let response = app
            .get(&format!("/v1/stock?{query}"), cashier.token())
            .await;
        error_body(response, status, code).await;
    }
    let long = "X".repeat(201);
    let response = app
        .get(
            &format!("/v1/stock?location=STORE-1&after={long}"),
            cashier.token(),
        )
        .await;
    error_body(response, 400, "invalid_cursor").await;
    let response = app.get("/v1/stock?limit=5", cashier.token()).await;
    assert_eq!(response.status(), 400, "location is required");
    let customer = app.user(Role::Customer).await;
    let response = app
        .get("/v1/stock?location=STORE-1", customer.token())
        .await;
    assert_eq!(response.status(), 403);
}

async fn adjust(
    app: &TestApp,
    token: &str,
    key: Option<&str>,
    body: &serde_json::Value,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/v1/stock/adjustments"))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

/// A register resends a queued adjustment whose answer it lost: with the same key the stock
/// moves once and the first answer is replayed; the same key with another body is refused;
/// without a key every request moves stock (the back office's plain use).
async fn an_adjustment_sent_again_with_its_key_moves_stock_once(app: TestApp) {
    let admin = shop(&app, 1).await;
    let receiving =
        json!({ "sku": "P-01", "location": "STORE-1", "delta": 5, "reason": "receiving" });
    let first = adjust(&app, &admin, Some("adjust-1"), &receiving).await;
    assert_eq!(first.status(), 201);
    let first = first.bytes().await.unwrap();
    let again = adjust(&app, &admin, Some("adjust-1"), &receiving).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.bytes().await.unwrap(),
        first,
        "the first answer, byte for byte"
    );
    let level: StockLevel = serde_json::from_slice(&first).unwrap();
    assert_eq!(level.on_hand, 5);

    let other = json!({ "sku": "P-01", "location": "STORE-1", "delta": 7, "reason": "receiving" });
    error_body(
        adjust(&app, &admin, Some("adjust-1"), &other).await,
        422,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(adjust(&app, &admin, None, &receiving).await.status(), 201);
    assert_eq!(adjust(&app, &admin, None, &receiving).await.status(), 201);
    let level: StockLevel = app
        .client
        .get(app.url("/v1/stock/P-01?location=STORE-1"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(level.on_hand, 15, "once with the key, twice without");
    crate::checkout::assert_ledger_balanced(&app, &admin, "P-01").await;
}
