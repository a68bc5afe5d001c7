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
