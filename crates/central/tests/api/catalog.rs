//! Catalog stories: create, read with ETag, update with If-Match, conflicts, validation, and the
//! delta feed under concurrent writers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kassa_domain::api::{Product, ProductPage};
use kassa_domain::Role;
use serde_json::{json, Value};

use crate::helpers::{error_body, TestApp};
use crate::story;

story!(
    a_manager_creates_reads_and_updates_a_product_with_its_version,
    a_stale_if_match_gets_412_with_the_current_row_and_a_missing_one_428,
    bad_product_input_gets_a_clear_4xx_and_writes_nothing,
    the_delta_feed_under_concurrent_updates_never_skips_or_repeats_a_change,
    archived_products_stay_in_the_feed,
);

pub fn product_body(sku: &str, barcode: &str, price: &str) -> Value {
    json!({
        "sku": sku, "barcodes": [barcode], "name": format!("Product {sku}"),
        "description": "A thing", "category": "Snacks", "brand": "Acme",
        "price": { "amount": price, "currency": "EUR" }, "tax_class": "reduced",
        "attributes": { "colour": "red" }
    })
}

/// The EAN-13 with body `20` + `n` padded to 12 digits.
pub fn ean(n: u64) -> String {
    kassa_domain::Barcode::ean13_from_body(&format!("20{n:010}"))
        .unwrap()
        .to_string()
}

pub async fn create(app: &TestApp, token: &str, body: &Value) -> Product {
    let response = app.post("/v1/products", token, body).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

pub async fn put(
    app: &TestApp,
    token: &str,
    id: uuid::Uuid,
    if_match: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = app
        .client
        .put(app.url(&format!("/v1/products/{id}")))
        .bearer_auth(token)
        .json(body);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    request.send().await.unwrap()
}

async fn a_manager_creates_reads_and_updates_a_product_with_its_version(app: TestApp) {
    let manager = app.user(Role::Manager).await;
    let created = app
        .post(
            "/v1/products",
            manager.token(),
            &product_body("SKU-1", &ean(1), "2.50"),
        )
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["etag"], "\"1\"");
    let product: Product = created.json().await.unwrap();
    assert_eq!(product.version, 1);
    assert_eq!(product.price.to_minor(), 250);

    let fetched = app
        .get(&format!("/v1/products/{}", product.id), manager.token())
        .await;
    assert_eq!(fetched.headers()["etag"], "\"1\"");
    assert_eq!(fetched.json::<Product>().await.unwrap(), product);

    let updated = put(
        &app,
        manager.token(),
        product.id,
        Some("\"1\""),
        &product_body("SKU-1", &ean(1), "2.75"),
    )
    .await;
    assert_eq!(updated.status(), 200);
    assert_eq!(updated.headers()["etag"], "\"2\"");
    let updated: Product = updated.json().await.unwrap();
    assert_eq!((updated.version, updated.price.to_minor()), (2, 275));
    assert!(updated.change_seq > product.change_seq);

    let cashier = app.user(Role::Cashier).await;
    error_body(
        app.post(
            "/v1/products",
            cashier.token(),
            &product_body("SKU-2", &ean(2), "1.00"),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let missing = app
        .get(
            &format!("/v1/products/{}", uuid::Uuid::now_v7()),
            manager.token(),
        )
        .await;
    error_body(missing, 404, "not_found").await;
}

async fn a_stale_if_match_gets_412_with_the_current_row_and_a_missing_one_428(app: TestApp) {
    let manager = app.user(Role::Manager).await;
    let product = create(
        &app,
        manager.token(),
        &product_body("SKU-1", &ean(1), "2.50"),
    )
    .await;
    let first = put(
        &app,
        manager.token(),
        product.id,
        Some("\"1\""),
        &product_body("SKU-1", &ean(1), "3.00"),
    )
    .await;
    assert_eq!(first.status(), 200);
    // A second manager edited offline from version 1.
    let stale = put(
        &app,
        manager.token(),
        product.id,
        Some("\"1\""),
        &product_body("SKU-1", &ean(1), "9.99"),
    )
    .await;
    let body = error_body(stale, 412, "version_conflict").await;
    let current: Product =
        serde_json::from_value(body["error"]["details"]["current"].clone()).unwrap();
    assert_eq!((current.version, current.price.to_minor()), (2, 300));

    let unconditional = put(
        &app,
        manager.token(),
        product.id,
        None,
        &product_body("SKU-1", &ean(1), "9.99"),
    )
    .await;
    error_body(unconditional, 428, "precondition_required").await;
    let garbage = put(
        &app,
        manager.token(),
        product.id,
        Some("yesterday"),
        &product_body("SKU-1", &ean(1), "9.99"),
    )
    .await;
    error_body(garbage, 400, "invalid_if_match").await;
    let fetched: Product = app
        .get(&format!("/v1/products/{}", product.id), manager.token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        fetched.price.to_minor(),
        300,
        "refused writes change nothing"
    );
}

async fn bad_product_input_gets_a_clear_4xx_and_writes_nothing(app: TestApp) {
    let manager = app.user(Role::Manager).await;
    let token = manager.token();
    let bad_check_digit = product_body("SKU-1", "4006381333932", "1.00");
    let body = error_body(
        app.post("/v1/products", token, &bad_check_digit).await,
        422,
        "invalid_body",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("check digit"),
        "{body}"
    );

    let mut unknown_field = product_body("SKU-1", &ean(1), "1.00");
    unknown_field["colour"] = json!("red");
    error_body(
        app.post("/v1/products", token, &unknown_field).await,
        422,
        "invalid_body",
    )
    .await;

    let mut wrong_type = product_body("SKU-1", &ean(1), "1.00");
    wrong_type["name"] = json!(42);
    error_body(
        app.post("/v1/products", token, &wrong_type).await,
        422,
        "invalid_body",
    )
    .await;

    error_body(
        app.post(
            "/v1/products",
            token,
            &product_body("SKU-1", &ean(1), "1.001"),
        )
        .await,
        422,
        "invalid_body",
    )
    .await;
    error_body(
        app.post(
            "/v1/products",
            token,
            &product_body("SKU-1", &ean(1), "-1.00"),
        )
        .await,
        422,
        "invalid_product",
    )
    .await;
    let mut blank_name = product_body("SKU-1", &ean(1), "1.00");
    blank_name["name"] = json!("   ");
    error_body(
        app.post("/v1/products", token, &blank_name).await,
        422,
        "invalid_product",
    )
    .await;

    let syntax = app
        .client
        .post(app.url("/v1/products"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("{\"sku\": ")
        .send()
        .await
        .unwrap();
    error_body(syntax, 400, "invalid_json").await;
    let huge = app
        .client
        .post(app.url("/v1/products"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(format!("{{\"name\": \"{}\"}}", "x".repeat(300 * 1024)))
        .send()
        .await
        .unwrap();
    error_body(huge, 413, "payload_too_large").await;

    let page: ProductPage = app.get("/v1/products", token).await.json().await.unwrap();
    assert!(page.items.is_empty(), "no refused request wrote a product");

    create(&app, token, &product_body("SKU-1", &ean(1), "1.00")).await;
    error_body(
        app.post(
            "/v1/products",
            token,
            &product_body("SKU-1", &ean(2), "1.00"),
        )
        .await,
        409,
        "sku_taken",
    )
    .await;
    error_body(
        app.post(
            "/v1/products",
            token,
            &product_body("SKU-2", &ean(1), "1.00"),
        )
        .await,
        409,
        "barcode_taken",
    )
    .await;
}

async fn page(app: &TestApp, token: &str, since: &str, limit: u32) -> ProductPage {
    let response = app
        .get(&format!("/v1/products?since={since}&limit={limit}"), token)
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn the_delta_feed_under_concurrent_updates_never_skips_or_repeats_a_change(app: TestApp) {
    const PRODUCTS: u64 = 12;
    const WRITERS: usize = 6;
    const UPDATES_PER_WRITER: usize = 15;
    let app = Arc::new(app);
    let manager = app.user(Role::Manager).await;
    let token = Arc::new(manager.tokens.access_token.clone());
    let mut ids = Vec::new();
    for n in 0..PRODUCTS {
        ids.push(
            create(
                &app,
                &token,
                &product_body(&format!("SKU-{n}"), &ean(n), "1.00"),
            )
            .await
            .id,
        );
    }
    let ids = Arc::new(ids);

    // Writers: read the current version, PUT with If-Match, retry on 412.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (app, token, ids) = (app.clone(), token.clone(), ids.clone());
        writers.push(tokio::spawn(async move {
            let mut acked: Vec<(uuid::Uuid, i64)> = Vec::new();
            for i in 0..UPDATES_PER_WRITER {
                let n = (w * 7 + i * 3) % ids.len();
                loop {
                    let current: Product = app
                        .get(&format!("/v1/products/{}", ids[n]), &token)
                        .await
                        .json()
                        .await
                        .unwrap();
                    let body = product_body(
                        &format!("SKU-{n}"),
                        &ean(n as u64),
                        &format!("{}.{:02}", w + 1, i),
                    );
                    let tag = format!("\"{}\"", current.version);
                    let response = put(&app, &token, ids[n], Some(&tag), &body).await;
                    match response.status().as_u16() {
                        200 => {
                            let p: Product = response.json().await.unwrap();
                            acked.push((p.id, p.version));
                            break;
                        }
                        412 => continue,
                        other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
                    }
                }
            }
            acked
        }));
    }

    // A reader follows the feed while the writers run, with small pages.
    let reader = {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move {
            let mut cursor = "0".to_owned();
            let mut seen: Vec<(uuid::Uuid, i64, i64)> = Vec::new();
            for _ in 0..400 {
                let page = page(&app, &token, &cursor, 5).await;
                seen.extend(page.items.iter().map(|p| (p.id, p.version, p.change_seq)));
                cursor = page.next_cursor;
                tokio::task::yield_now().await;
            }
            (seen, cursor)
        })
    };
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    let (mut seen, mut cursor) = reader.await.unwrap();
    loop {
        let page = page(&app, &token, &cursor, 50).await;
        if page.items.is_empty() {
            break;
        }
        seen.extend(page.items.iter().map(|p| (p.id, p.version, p.change_seq)));
        cursor = page.next_cursor;
    }

    let seqs: Vec<i64> = seen.iter().map(|s| s.2).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "the feed repeated or reordered a change: {seqs:?}"
    );
    let pairs: HashSet<(uuid::Uuid, i64)> = seen.iter().map(|s| (s.0, s.1)).collect();
    assert_eq!(pairs.len(), seen.len(), "a change was delivered twice");
    let mut last_acked: HashMap<uuid::Uuid, i64> = HashMap::new();
    for (id, version) in &acked {
        let entry = last_acked.entry(*id).or_default();
        *entry = (*entry).max(*version);
    }
    assert_eq!(acked.len(), WRITERS * UPDATES_PER_WRITER);
    for (id, version) in last_acked {
        assert!(
            pairs.contains(&(id, version)),
            "the feed skipped the final version {version} of {id}"
        );
    }
}

async fn archived_products_stay_in_the_feed(app: TestApp) {
    let manager = app.user(Role::Manager).await;
    let product = create(
        &app,
        manager.token(),
        &product_body("SKU-1", &ean(1), "1.00"),
    )
    .await;
    let cursor = page(&app, manager.token(), "0", 10).await.next_cursor;
    let mut archived = product_body("SKU-1", &ean(1), "1.00");
    archived["archived"] = json!(true);
    assert_eq!(
        put(&app, manager.token(), product.id, Some("\"1\""), &archived)
            .await
            .status(),
        200
    );
    let delta = page(&app, manager.token(), &cursor, 10).await;
    assert_eq!(delta.items.len(), 1);
    assert!(
        delta.items[0].archived,
        "clients learn of archiving through the feed"
    );
    let empty = page(&app, manager.token(), &delta.next_cursor, 10).await;
    assert!(empty.items.is_empty());
    assert_eq!(empty.next_cursor, delta.next_cursor);
    error_body(
        app.get("/v1/products?since=abc", manager.token()).await,
        400,
        "invalid_cursor",
    )
    .await;
}
