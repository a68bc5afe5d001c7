//! Anonymous browsing (issue 13, point 1): products, search and recommendations answer without a
//! token, rate limited per client address; their answers carry an ETag (If-None-Match → 304) and
//! Cache-Control that lets a CDN keep what visitors see, never what a signed-in caller sees.

use kassa_domain::api::{Product, ProductPage};
use kassa_domain::Role;
use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};

use crate::catalog::{product_body, put as put_product};
use crate::checkout::seed;
use crate::helpers::{error_body, TestApp};
use crate::{story, story_with};

story!(anyone_browses_the_catalog_and_caches_keep_only_what_visitors_see);
story_with!(one_per_second: anonymous_browsing_is_rate_limited_per_address);

fn one_per_second(config: &mut kassa_central::Config) {
    config.anonymous_requests_per_second = 1;
    config.anonymous_requests_burst = 3;
}

async fn anonymous(app: &TestApp, path: &str, if_none_match: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(tag) = if_none_match {
        request = request.header(IF_NONE_MATCH, tag);
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    response.headers()[name].to_str().unwrap().to_owned()
}

async fn anyone_browses_the_catalog_and_caches_keep_only_what_visitors_see(app: TestApp) {
    let admin = seed(&app, 5).await;
    kassa_central::search::index::refresh(&app.state.search, &app.state.db)
        .await
        .unwrap();

    // The feed, to anyone; a CDN may keep it for 30 s, and revalidates it with its ETag.
    let feed = anonymous(&app, "/v1/products", None).await;
    assert_eq!(feed.status(), 200);
    assert_eq!(
        header(&feed, CACHE_CONTROL),
        "public, max-age=30, stale-while-revalidate=120"
    );
    let feed_tag = header(&feed, ETAG);
    let page: ProductPage = feed.json().await.unwrap();
    let product = page
        .items
        .iter()
        .find(|p| p.sku.as_str() == "SKU-1")
        .unwrap();
    let unchanged = anonymous(&app, "/v1/products", Some(&feed_tag)).await;
    assert_eq!(unchanged.status(), 304);
    assert!(
        unchanged.bytes().await.unwrap().is_empty(),
        "a 304 has no body"
    );

    // One product: its ETag is its version, as If-Match takes it.
    let path = format!("/v1/products/{}", product.id);
    let one = anonymous(&app, &path, None).await;
    assert_eq!(
        header(&one, CACHE_CONTROL),
        "public, max-age=60, stale-while-revalidate=300"
    );
    let tag = header(&one, ETAG);
    assert_eq!(tag, format!("\"{}\"", product.version));
    assert_eq!(anonymous(&app, &path, Some(&tag)).await.status(), 304);
    // Changed, the instance that changed it never answers 304 to the old version.
    let mut body = product_body("SKU-1", product.barcodes[0].as_ref(), "2.75");
    body["name"] = "Renamed".into();
    let updated = put_product(&app, &admin, product.id, Some(&tag), &body).await;
    assert_eq!(updated.status(), 200);
    let fresh = anonymous(&app, &path, Some(&tag)).await;
    assert_eq!(fresh.status(), 200);
    assert_ne!(header(&fresh, ETAG), tag);
    let fresh: Product = fresh.json().await.unwrap();
    assert_eq!(fresh.name, "Renamed");
    assert_ne!(
        anonymous(&app, "/v1/products", Some(&feed_tag))
            .await
            .status(),
        304,
        "the feed changed too"
    );

    // Search and recommendations, to anyone; re-ranking for a user needs that user.
    let found = anonymous(&app, "/v1/search?q=Product", None).await;
    assert_eq!(found.status(), 200);
    assert!(header(&found, CACHE_CONTROL).starts_with("public"));
    let found_tag = header(&found, ETAG);
    let again = anonymous(&app, "/v1/search?q=Product", Some(&found_tag)).await;
    assert_eq!(again.status(), 304);
    let recs = format!("/v1/recommendations/{}", product.id);
    let recommended = anonymous(&app, &recs, None).await;
    assert_eq!(recommended.status(), 200);
    assert_eq!(
        header(&recommended, CACHE_CONTROL),
        "public, max-age=300, stale-while-revalidate=3600"
    );
    let for_user = anonymous(&app, &format!("{recs}?user={}", product.id), None).await;
    error_body(for_user, 401, "unauthorized").await;

    // Nothing else opens without a token: stock counts stay with staff.
    let stock = anonymous(&app, "/v1/stock/SKU-1?location=STORE-1", None).await;
    error_body(stock, 401, "unauthorized").await;

    // Signed in: the same answer, never for a shared cache; a bad token is still refused.
    let cashier = app.user(Role::Cashier).await;
    let signed_in = app.get(&path, cashier.token()).await;
    assert_eq!(signed_in.status(), 200);
    assert_eq!(header(&signed_in, CACHE_CONTROL), "private, no-cache");
    let forged = app.get(&path, "not-a-token").await;
    error_body(forged, 401, "unauthorized").await;
}

async fn anonymous_browsing_is_rate_limited_per_address(app: TestApp) {
    seed(&app, 0).await;
    for _ in 0..3 {
        assert_eq!(anonymous(&app, "/v1/products", None).await.status(), 200);
    }
    let refused = anonymous(&app, "/v1/products", None).await;
    assert!(refused.headers().contains_key("retry-after"));
    error_body(refused, 429, "rate_limited").await;
    // A signed-in caller has a budget of their own.
    let customer = app.user(Role::Customer).await;
    assert_eq!(
        app.get("/v1/products", customer.token()).await.status(),
        200
    );
}

// The answer caches (issue 13, point 2): product answers are kept in each instance's memory; the
// instance that changes a product answers the new version at once, another instance once its
// refresher has read the change feed; search answers are kept per index generation, so they
// are never staler than the index.
story!(cached_answers_follow_the_change_feed_on_every_instance);

async fn get_product(app: &TestApp, id: uuid::Uuid) -> Product {
    let answer = anonymous(app, &format!("/v1/products/{id}"), None).await;
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

async fn cached_answers_follow_the_change_feed_on_every_instance(a: TestApp) {
    let admin = seed(&a, 5).await;
    let b = TestApp::start((*a.state.config).clone(), None).await;
    for app in [&a, &b] {
        kassa_central::search::spawn_refresher(
            app.state.clone(),
            std::time::Duration::from_millis(100),
        );
    }
    let page: ProductPage = anonymous(&a, "/v1/products", None)
        .await
        .json()
        .await
        .unwrap();
    let id = page
        .items
        .iter()
        .find(|p| p.sku.as_str() == "SKU-1")
        .unwrap()
        .id;
    let v1 = get_product(&a, id).await;
    assert_eq!(get_product(&b, id).await, v1);

    // Kept in memory: a row changed behind Central's back (no new version, no feed entry) is
    // not read again; the kept answer is served.
    let changed = sqlx::query("UPDATE products SET description = 'behind the back' WHERE id = $1")
        .bind(id.to_string())
        .execute(a.state.db.pool())
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    assert_eq!(get_product(&a, id).await.description, v1.description);

    // Changed at A: A answers the new version at once, B within its refresher's lag.
    let mut body = product_body("SKU-1", &crate::catalog::ean(1), "2.50");
    body["name"] = "Espresso cup".into();
    let tag = format!("\"{}\"", v1.version);
    let updated = put_product(&a, &admin, id, Some(&tag), &body).await;
    assert_eq!(updated.status(), 200);
    let v2 = get_product(&a, id).await;
    assert_eq!(
        (v2.version, v2.name.as_str()),
        (v1.version + 1, "Espresso cup")
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while get_product(&b, id).await.version != v2.version {
        assert!(
            std::time::Instant::now() < deadline,
            "B never followed the feed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Search: the new name is found once the index has it, through the cache as well.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let found: serde_json::Value = anonymous(&b, "/v1/search?q=espresso", None)
            .await
            .json()
            .await
            .unwrap();
        if found["hits"].as_array().is_some_and(|h| !h.is_empty()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "search never found the new name"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let metrics = a
        .client
        .get(a.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("kassa_cache_requests_total{cache=\"products\",outcome=\"hit\"}"));
    assert!(metrics.contains("kassa_cache_requests_total{cache=\"search\",outcome=\"miss\"}"));
}
