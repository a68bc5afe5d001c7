//! Recommendation stories: planted co-purchase pairs come out on top, re-ranking for a user
//! (bought items dropped, their categories boosted), stock and archive filters, and incremental
//! updates from new paid orders between batch runs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kassa_domain::api::{CopurchasePage, Order, Product, Recommendations};
use kassa_domain::Role;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::catalog::{create, ean, product_body};
use crate::checkout::{order, receive};
use crate::helpers::{error_body, TestApp};
use crate::{story, story_with};

story!(
    planted_partners_are_in_each_products_top_k,
    recommendations_drop_what_the_user_bought_and_boost_their_categories,
    out_of_stock_and_archived_products_are_not_recommended,
    the_demo_history_loads_once_and_recommends_croissants_with_coffee,
);

/// A store `STORE-1` with one product per `(sku, category)`, 1,000 units of each; returns the
/// admin's token and the products by SKU.
async fn shop(app: &TestApp, products: &[(&str, &str)]) -> (String, HashMap<String, Product>) {
    let admin = app.user(Role::Admin).await;
    let token = admin.tokens.access_token;
    let location = json!({ "code": "STORE-1", "name": "One" });
    assert_eq!(
        app.post("/v1/locations", &token, &location).await.status(),
        201
    );
    let mut by_sku = HashMap::new();
    for (i, (sku, category)) in products.iter().enumerate() {
        let mut body = product_body(sku, &ean(500 + i as u64), "1.00");
        body["category"] = json!(category);
        let product = create(app, &token, &body).await;
        receive(app, &token, sku, 1_000).await;
        by_sku.insert((*sku).to_owned(), product);
    }
    (token, by_sku)
}

/// Places an order for one of each SKU as `token` and pays it in full in-process.
async fn paid_order(app: &TestApp, token: &str, skus: &[&str]) -> Uuid {
    let lines: Vec<Value> = skus.iter().map(|s| json!({ "sku": s, "qty": 1 })).collect();
    let body = json!({ "location": "STORE-1", "lines": lines });
    let response = order(app, token, &Uuid::new_v4().to_string(), &body).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let placed: Order = response.json().await.unwrap();
    let mut tx = app.state.db.begin_write().await.unwrap();
    kassa_central::orders::record_payment(&app.state, &mut tx, placed.id, placed.totals.total)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    placed.id
}

async fn batch(app: &TestApp) -> kassa_central::recommend::BatchReport {
    kassa_central::recommend::run_batch(&app.state.db, &app.state.recommender)
        .await
        .unwrap()
}

async fn recommended(app: &TestApp, token: &str, product: &Product, query: &str) -> Vec<String> {
    let response = app
        .get(&format!("/v1/recommendations/{}{query}", product.id), token)
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let body: Recommendations = response.json().await.unwrap();
    assert_eq!(body.product_id, product.id);
    body.items.into_iter().map(|i| i.sku.to_string()).collect()
}

async fn planted_partners_are_in_each_products_top_k(app: TestApp) {
    let skus: Vec<String> = (0..20).map(|i| format!("P-{i:02}")).collect();
    let catalog: Vec<(&str, &str)> = skus.iter().map(|s| (s.as_str(), "Snacks")).collect();
    let (token, products) = shop(&app, &catalog).await;
    let mut rng = StdRng::seed_from_u64(5);
    // Planted: P-00 with P-01, P-02 with P-03, … each pair in 12 orders, among 200 random ones.
    let mut baskets: Vec<Vec<&str>> = Vec::new();
    for _ in 0..200 {
        let size = rng.gen_range(1..=4);
        baskets.push(
            skus.choose_multiple(&mut rng, size)
                .map(String::as_str)
                .collect(),
        );
    }
    for pair in skus.chunks(2) {
        for _ in 0..12 {
            baskets.push(vec![pair[0].as_str(), pair[1].as_str()]);
        }
    }
    baskets.shuffle(&mut rng);
    for basket in &baskets {
        paid_order(&app, &token, basket).await;
    }

    let report = batch(&app).await;
    assert_eq!(report.orders, baskets.len() as u64);
    assert_eq!(report.lists, 20);
    let customer = app.user(Role::Customer).await;
    for pair in skus.chunks(2) {
        for (me, partner) in [(&pair[0], &pair[1]), (&pair[1], &pair[0])] {
            let items = recommended(&app, customer.token(), &products[me.as_str()], "").await;
            assert!(
                items.iter().take(10).any(|s| s == partner),
                "{partner} must be in the top 10 of {me}: {items:?}"
            );
            assert_eq!(&items[0], partner, "the planted partner of {me} leads");
        }
    }
    let stored_max: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(c), 0) AS BIGINT) FROM \
         (SELECT COUNT(*) AS c FROM copurchase_scores GROUP BY product_id) t",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert!(stored_max <= 10, "at most top_k stored per product");

    // The register's feed: every list once; a batch over the same orders changes nothing.
    let page: CopurchasePage = app
        .get("/v1/recommendations?limit=500", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page.items.len(), 20);
    assert_eq!(batch(&app).await.lists_changed, 0);
    let after: CopurchasePage = app
        .get(
            &format!("/v1/recommendations?since={}", page.next_cursor),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(after.items.is_empty());
}

async fn recommendations_drop_what_the_user_bought_and_boost_their_categories(app: TestApp) {
    let (token, p) = shop(
        &app,
        &[
            ("X", "Snacks"),
            ("Y", "Bakery"),
            ("Z", "Dairy"),
            ("W", "Dairy"),
        ],
    )
    .await;
    // cosine(X,Y) = 4/sqrt(7·4) ≈ 0.76 beats cosine(X,Z) = 3/sqrt(7·3) ≈ 0.65, but not 1.5×.
    for _ in 0..4 {
        paid_order(&app, &token, &["X", "Y"]).await;
    }
    for _ in 0..3 {
        paid_order(&app, &token, &["X", "Z"]).await;
    }
    let alice = app.user(Role::Customer).await;
    let bob = app.user(Role::Customer).await;
    let alice_id = user_id(&app, alice.token()).await;
    paid_order(&app, alice.token(), &["Y"]).await;
    paid_order(&app, bob.token(), &["W"]).await;
    let bob_id = user_id(&app, bob.token()).await;
    batch(&app).await;

    assert_eq!(
        recommended(&app, alice.token(), &p["X"], "").await,
        ["Y", "Z"]
    );
    let mine = format!("?user={alice_id}");
    assert_eq!(
        recommended(&app, alice.token(), &p["X"], &mine).await,
        ["Z"]
    );
    // Bob bought dairy: Z (dairy) is boosted past Y.
    let bobs = format!("?user={bob_id}");
    assert_eq!(
        recommended(&app, bob.token(), &p["X"], &bobs).await,
        ["Z", "Y"]
    );
    // Staff (a register looking up a loyalty customer) may ask for anyone; customers may not.
    let cashier = app.user(Role::Cashier).await;
    assert_eq!(
        recommended(&app, cashier.token(), &p["X"], &mine).await,
        ["Z"]
    );
    let response = app
        .get(
            &format!("/v1/recommendations/{}{mine}", p["X"].id),
            bob.token(),
        )
        .await;
    error_body(response, 403, "forbidden").await;
    assert_eq!(
        recommended(&app, alice.token(), &p["X"], "?limit=1").await,
        ["Y"]
    );
    let response = app
        .get(
            &format!("/v1/recommendations/{}", Uuid::now_v7()),
            bob.token(),
        )
        .await;
    error_body(response, 404, "not_found").await;
}

async fn user_id(app: &TestApp, token: &str) -> Uuid {
    app.state
        .auth
        .authenticate(&app.state.db, token)
        .await
        .unwrap()
        .user_id
}

async fn out_of_stock_and_archived_products_are_not_recommended(app: TestApp) {
    let (token, p) = shop(
        &app,
        &[
            ("X", "Snacks"),
            ("Y", "Snacks"),
            ("Z", "Snacks"),
            ("V", "Snacks"),
        ],
    )
    .await;
    for (partner, times) in [("Y", 4), ("Z", 3), ("V", 2)] {
        for _ in 0..times {
            paid_order(&app, &token, &["X", partner]).await;
        }
    }
    batch(&app).await;
    assert_eq!(
        recommended(&app, &token, &p["X"], "").await,
        ["Y", "Z", "V"]
    );

    // Y sells out (everything left is held by an unpaid order), Z is archived.
    let left = crate::checkout::stock(&app, &token, "Y").await.available;
    let body = json!({ "location": "STORE-1", "lines": [{ "sku": "Y", "qty": left }] });
    let held = order(&app, &token, &Uuid::new_v4().to_string(), &body).await;
    assert_eq!(held.status(), 201);
    let mut archived = product_body("Z", p["Z"].barcodes[0].as_ref(), "1.00");
    archived["archived"] = json!(true);
    let response = app
        .client
        .put(app.url(&format!("/v1/products/{}", p["Z"].id)))
        .bearer_auth(&token)
        .header("if-match", format!("\"{}\"", p["Z"].version))
        .json(&archived)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(recommended(&app, &token, &p["X"], "").await, ["V"]);

    // Restocked, Y is back.
    receive(&app, &token, "Y", 5).await;
    assert_eq!(recommended(&app, &token, &p["X"], "").await, ["Y", "V"]);
}

story_with!(fast_tick: new_paid_orders_update_recommendations_without_a_batch);

fn fast_tick(config: &mut kassa_central::Config) {
    config.recommend_tick = Duration::from_millis(100);
}

async fn new_paid_orders_update_recommendations_without_a_batch(app: TestApp) {
    let (token, p) = shop(
        &app,
        &[
            ("X", "Snacks"),
            ("Y", "Snacks"),
            ("A", "Snacks"),
            ("B", "Snacks"),
        ],
    )
    .await;
    for _ in 0..3 {
        paid_order(&app, &token, &["X", "Y"]).await;
    }
    batch(&app).await;
    let computed_at: i64 =
        sqlx::query_scalar("SELECT computed_at FROM recommend_state WHERE id = 1")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert!(recommended(&app, &token, &p["A"], "").await.is_empty());

    let updater = kassa_central::recommend::spawn_updater(app.state.clone());
    for _ in 0..2 {
        paid_order(&app, &token, &["A", "B"]).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = recommended(&app, &token, &p["A"], "").await;
        let b = recommended(&app, &token, &p["B"], "").await;
        if a == ["B"] && b == ["A"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A and B must recommend each other within 10 s: {a:?} {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still the same batch; the old pair is untouched.
    let still: i64 = sqlx::query_scalar("SELECT computed_at FROM recommend_state WHERE id = 1")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(still, computed_at, "no batch ran");
    assert_eq!(recommended(&app, &token, &p["X"], "").await, ["Y"]);
    updater.abort();
}

async fn the_demo_history_loads_once_and_recommends_croissants_with_coffee(app: TestApp) {
    for _ in 0..2 {
        kassa_central::demo::load(&app.state.db).await.unwrap();
        kassa_central::demo::load_order_history(&app.state)
            .await
            .unwrap();
    }
    let paid: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = 'PAID'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(paid, 64, "loading the demo twice adds nothing");
    batch(&app).await;
    let coffee = kassa_central::store::catalog::changed_since(&app.state.db, 0, 500)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.name == "Coffee")
        .unwrap();
    let customer = app.user(Role::Customer).await;
    let items = recommended(&app, customer.token(), &coffee, "").await;
    assert_eq!(
        items.first().map(String::as_str),
        Some("DEMO-0036"),
        "{items:?}"
    );
}
