//! Search stories: on random catalogs the hits and facet counts equal a ground truth computed by
//! plain SQL; updates become searchable within the refresh interval; typos are forgiven; exact
//! SKU and barcode matches rank first; bad parameters are 400s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kassa_domain::api::{Product, SearchResponse};
use kassa_domain::Role;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::catalog::{create, ean};
use crate::helpers::{error_body, TestApp};
use crate::story;

story!(
    hits_and_facets_equal_the_sql_ground_truth_on_random_catalogs,
    an_update_is_searchable_within_the_refresh_interval,
    typos_are_forgiven_and_exact_sku_or_barcode_ranks_first,
    bad_search_parameters_are_400s,
);

/// Words far apart (edit distance ≥ 3), so a typo-tolerant match never crosses between them.
const WORDS: [&str; 8] = [
    "apple", "brick", "cloud", "dwarf", "ember", "frost", "grape", "honey",
];
const CATEGORIES: [&str; 3] = ["Bakery", "Dairy", "Garden"];
const BRANDS: [&str; 3] = ["Nordlicht", "Verde", "Zenith"];

async fn refresh(app: &TestApp) {
    kassa_central::search::index::refresh(&app.state.search, &app.state.db)
        .await
        .unwrap();
}

async fn search(app: &TestApp, token: &str, query: &str) -> SearchResponse {
    let response = app.get(&format!("/v1/search?{query}"), token).await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

async fn location(app: &TestApp, admin: &str) {
    let body = json!({ "code": "STORE-1", "name": "One" });
    assert_eq!(app.post("/v1/locations", admin, &body).await.status(), 201);
}

async fn random_catalog(app: &TestApp, admin: &str, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for n in 0..40u64 {
        let (a, b) = (WORDS[rng.gen_range(0..8)], WORDS[rng.gen_range(0..8)]);
        let sku = format!("R-{n:03}");
        let body = json!({
            "sku": sku, "barcodes": [ean(1000 + n)], "name": format!("{a} {b}"),
            "description": "plain", "category": CATEGORIES[rng.gen_range(0..3)],
            "brand": BRANDS[rng.gen_range(0..3)],
            "price": { "amount": format!("{}.{:02}", rng.gen_range(0..70), rng.gen_range(0..100)), "currency": "EUR" },
            "tax_class": "reduced", "attributes": {}
        });
        create(app, admin, &body).await;
        let units = rng.gen_range(0..3);
        if units > 0 {
            let adj =
                json!({ "sku": sku, "location": "STORE-1", "delta": units, "reason": "receiving" });
            assert_eq!(
                app.post("/v1/stock/adjustments", admin, &adj)
                    .await
                    .status(),
                201
            );
        }
    }
}

/// One case of the ground truth: the filters as SQL and as a query string.
struct Case {
    word: Option<&'static str>,
    category: Option<&'static str>,
    brand: Option<&'static str>,
    price: Option<(i64, i64)>,
    in_stock: bool,
}

impl Case {
    fn query(&self) -> String {
        let mut q = vec![
            "facets=category,brand,price".to_owned(),
            "page_size=50".to_owned(),
        ];
        if let Some(w) = self.word {
            q.push(format!("q={w}"));
        }
        if let Some(c) = self.category {
            q.push(format!("category={c}"));
        }
        if let Some(b) = self.brand {
            q.push(format!("brand={b}"));
        }
        if let Some((lo, hi)) = self.price {
            q.push(format!(
                "min_price={}.{:02}&max_price={}.{:02}",
                lo / 100,
                lo % 100,
                hi / 100,
                hi % 100
            ));
        }
        if self.in_stock {
            q.push("in_stock=true".into());
        }
        q.join("&")
    }

    /// SQL conditions, leaving out the facet named `except`.
    fn sql(&self, except: &str) -> String {
        let mut w = vec!["p.archived = 0".to_owned()];
        if let Some(word) = self.word {
            w.push(format!("(' ' || p.name || ' ') LIKE '% {word} %'"));
        }
        if let (Some(c), false) = (self.category, except == "category") {
            w.push(format!("p.category = '{c}'"));
        }
        if let (Some(b), false) = (self.brand, except == "brand") {
            w.push(format!("p.brand = '{b}'"));
        }
        if let (Some((lo, hi)), false) = (self.price, except == "price") {
            w.push(format!("p.price_minor BETWEEN {lo} AND {hi}"));
        }
        if self.in_stock {
            w.push("(SELECT COALESCE(SUM(s.on_hand - s.reserved), 0) FROM stock s WHERE s.sku = p.sku) > 0".into());
        }
        w.join(" AND ")
    }
}

async fn sql_strings(app: &TestApp, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sql)
        .fetch_all(app.state.db.pool())
        .await
        .unwrap()
}

async fn sql_counts(app: &TestApp, column: &str, case: &Case) -> BTreeMap<String, u64> {
    let values = sql_strings(
        app,
        &format!(
            "SELECT p.{column} FROM products p WHERE {}",
            case.sql(column)
        ),
    )
    .await;
    let mut out = BTreeMap::new();
    for v in values {
        *out.entry(v).or_default() += 1;
    }
    out
}

fn got_counts(facet: &Option<Vec<kassa_domain::api::FacetCount>>) -> BTreeMap<String, u64> {
    facet
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| (f.value.clone(), f.count))
        .collect()
}

async fn check(app: &TestApp, token: &str, case: &Case) {
    let got = search(app, token, &case.query()).await;
    let want: BTreeSet<String> = sql_strings(
        app,
        &format!("SELECT p.id FROM products p WHERE {}", case.sql("")),
    )
    .await
    .into_iter()
    .collect();
    let hits: BTreeSet<String> = got.hits.iter().map(|h| h.id.to_string()).collect();
    assert_eq!(hits, want, "hits of {}", case.query());
    assert_eq!(got.total, want.len() as u64, "total of {}", case.query());
    assert_eq!(
        got_counts(&got.facets.category),
        sql_counts(app, "category", case).await,
        "categories of {}",
        case.query()
    );
    assert_eq!(
        got_counts(&got.facets.brand),
        sql_counts(app, "brand", case).await,
        "brands of {}",
        case.query()
    );
    let prices: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT p.price_minor FROM products p WHERE {}",
        case.sql("price")
    ))
    .fetch_all(app.state.db.pool())
    .await
    .unwrap();
    let buckets = got.facets.price.as_ref().unwrap();
    for b in buckets {
        let (lo, hi) = (b.min.to_minor(), b.max.map_or(i64::MAX, |m| m.to_minor()));
        let want = prices.iter().filter(|p| **p >= lo && **p < hi).count() as u64;
        assert_eq!(b.count, want, "price bucket {lo}.. of {}", case.query());
    }
}

async fn hits_and_facets_equal_the_sql_ground_truth_on_random_catalogs(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    location(&app, admin.token()).await;
    random_catalog(&app, admin.token(), 7).await;
    refresh(&app).await;
    let mut rng = StdRng::seed_from_u64(11);
    let pick = |rng: &mut StdRng, n: usize| rng.gen_range(0..n);
    for i in 0..30 {
        let case = Case {
            word: (i % 3 != 0).then(|| WORDS[pick(&mut rng, 8)]),
            category: (i % 2 == 0).then(|| CATEGORIES[pick(&mut rng, 3)]),
            brand: (i % 5 < 2).then(|| BRANDS[pick(&mut rng, 3)]),
            price: (i % 4 == 1).then(|| {
                let lo = rng.gen_range(0..3000);
                (lo, lo + rng.gen_range(0..4000))
            }),
            in_stock: i % 3 == 1,
        };
        check(&app, admin.token(), &case).await;
    }
    // An archived product leaves the index with the next refresh.
    let page: Value = app
        .get("/v1/products?limit=1", admin.token())
        .await
        .json()
        .await
        .unwrap();
    let first: Product = serde_json::from_value(page["items"][0].clone()).unwrap();
    let mut body = serde_json::to_value(&first).unwrap();
    let obj = body.as_object_mut().unwrap();
    for k in ["id", "version", "updated_at", "change_seq"] {
        obj.remove(k);
    }
    obj.insert("archived".into(), json!(true));
    let put = app
        .client
        .put(app.url(&format!("/v1/products/{}", first.id)))
        .bearer_auth(admin.token())
        .header("if-match", format!("\"{}\"", first.version))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    refresh(&app).await;
    let found = search(&app, admin.token(), &format!("q={}", first.sku)).await;
    assert!(
        found.hits.iter().all(|h| h.id != first.id),
        "archived products are not found"
    );
    check(
        &app,
        admin.token(),
        &Case {
            word: None,
            category: None,
            brand: None,
            price: None,
            in_stock: false,
        },
    )
    .await;
}

async fn an_update_is_searchable_within_the_refresh_interval(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    location(&app, admin.token()).await;
    let interval = Duration::from_millis(100);
    let refresher = kassa_central::search::spawn_refresher(app.state.clone(), interval);
    let started = Instant::now();
    let body = json!({
        "sku": "Z-1", "barcodes": [ean(1)], "name": "Striped zebra mug", "description": "plain",
        "category": "Kitchen", "brand": "Verde", "price": { "amount": "9.99", "currency": "EUR" },
        "tax_class": "standard", "attributes": { "colour": "black" }
    });
    let product = create(&app, admin.token(), &body).await;
    let found = loop {
        let r = search(&app, admin.token(), "q=zebra").await;
        if !r.hits.is_empty() {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new product never became searchable"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(found.hits[0].id, product.id);
    assert!(
        found.applied_seq >= product.change_seq,
        "the response says which change it includes"
    );
    assert!(
        found.index_lag_ms < 5_000,
        "lag reported: {}",
        found.index_lag_ms
    );
    // Stock moves reach the in_stock filter too.
    assert_eq!(
        search(&app, admin.token(), "q=zebra&in_stock=true")
            .await
            .total,
        0
    );
    let adj = json!({ "sku": "Z-1", "location": "STORE-1", "delta": 3, "reason": "receiving" });
    assert_eq!(
        app.post("/v1/stock/adjustments", admin.token(), &adj)
            .await
            .status(),
        201
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while search(&app, admin.token(), "q=zebra&in_stock=true")
        .await
        .total
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the stock change never reached the index"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    refresher.abort();
}

async fn typos_are_forgiven_and_exact_sku_or_barcode_ranks_first(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let make = |sku: &str, n: u64, name: &str| {
        json!({
            "sku": sku, "barcodes": [ean(n)], "name": name, "description": "plain",
            "category": "Snacks", "brand": "Acme", "price": { "amount": "1.00", "currency": "EUR" },
            "tax_class": "reduced", "attributes": {}
        })
    };
    create(
        &app,
        admin.token(),
        &make("CHOC-1", 1, "Dark chocolate bar"),
    )
    .await;
    let target = create(&app, admin.token(), &make("BAR-9", 2, "Granola")).await;
    create(
        &app,
        admin.token(),
        &make("X-1", 3, "Bar-9 holder for BAR-9 granola bars"),
    )
    .await;
    refresh(&app).await;
    let typo = search(&app, admin.token(), "q=choclate").await;
    assert_eq!(
        typo.hits.first().map(|h| h.sku.as_str()),
        Some("CHOC-1"),
        "typo query"
    );
    let by_sku = search(&app, admin.token(), "q=BAR-9").await;
    assert_eq!(
        by_sku.hits[0].id, target.id,
        "exact SKU first: {:?}",
        by_sku.hits
    );
    assert!(by_sku.hits.len() >= 2, "the text match is still found");
    let lower = search(&app, admin.token(), "q=bar-9").await;
    assert_eq!(lower.hits[0].id, target.id, "SKU match ignores case");
    let by_barcode = search(&app, admin.token(), &format!("q={}", ean(2))).await;
    assert_eq!(by_barcode.hits[0].id, target.id);
}

async fn bad_search_parameters_are_400s(app: TestApp) {
    let user = app.user(Role::Customer).await;
    let t = user.token();
    error_body(
        app.get("/v1/search?page_size=500", t).await,
        400,
        "invalid_page",
    )
    .await;
    error_body(app.get("/v1/search?page=0", t).await, 400, "invalid_page").await;
    error_body(
        app.get("/v1/search?facets=colour", t).await,
        400,
        "unknown_facet",
    )
    .await;
    error_body(
        app.get("/v1/search?sort=random", t).await,
        400,
        "unknown_sort",
    )
    .await;
    error_body(
        app.get("/v1/search?min_price=cheap", t).await,
        400,
        "invalid_price",
    )
    .await;
    let long = "a".repeat(201);
    error_body(
        app.get(&format!("/v1/search?q={long}"), t).await,
        400,
        "query_too_long",
    )
    .await;
    // Anyone may search (see browse.rs), but a token that is not one is refused.
    error_body(
        app.get("/v1/search?q=x", "not-a-token").await,
        401,
        "unauthorized",
    )
    .await;
}

/// An index directory built from one database and opened against another (a reset, a restore)
/// is rebuilt from the new one instead of answering with the old catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_index_built_from_another_database_is_rebuilt() {
    use kassa_central::search::index::{refresh, SearchIndex};
    let dir = tempfile::tempdir().unwrap();
    let names = ["walnut", "saffron"];
    let mut apps = Vec::new();
    for (n, name) in names.iter().enumerate() {
        let app = TestApp::spawn(crate::helpers::Db::Sqlite).await.unwrap();
        let admin = app.user(Role::Admin).await;
        let body = json!({
            "sku": format!("O-{n}"), "barcodes": [ean(n as u64)], "name": name, "description": "plain",
            "category": "Pantry", "brand": "Verde", "price": { "amount": "3.00", "currency": "EUR" },
            "tax_class": "reduced", "attributes": {}
        });
        create(&app, admin.token(), &body).await;
        apps.push(app);
    }
    for (app, name) in apps.iter().zip(names) {
        let index = std::sync::Arc::new(SearchIndex::open(Some(dir.path())).unwrap());
        refresh(&index, &app.state.db).await.unwrap();
        let (req, opts) = kassa_central::search::parse(
            serde_urlencoded::from_str("q=").unwrap(),
            kassa_domain::Currency::EUR,
        )
        .unwrap();
        let found = kassa_central::search::run(&index, &req, &opts).unwrap();
        let got: Vec<&str> = found.hits.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(got, vec![name], "only this database's catalog");
    }
}
