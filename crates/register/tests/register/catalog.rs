//! The catalog cache: the delta pull (archived products dropped), search and barcode lookup
//! offline, stock levels, and the recommendation lists.

use kassa_central::orders::record_payment;
use kassa_domain::api::Order;
use serde_json::json;

use crate::helpers::{product_input, sell, sku, Shop, LOCATION, STOCK};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delta_pull_brings_changes_and_drops_archived_products() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(4).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        let report = register.sync_now().await.unwrap();
        assert_eq!(report.products_changed, 4);
        assert_eq!(
            kassa_register::catalog::count(register.db()).await.unwrap(),
            4
        );

        let p = &shop.products;
        let mut renamed = product_input(1);
        renamed.name = "Espresso cup".into();
        shop.update_product(&p[0], &renamed).await;
        let mut archived = product_input(2);
        archived.archived = true;
        shop.update_product(&p[1], &archived).await;
        let report = register.sync_now().await.unwrap();

        assert_eq!(
            report.products_changed, 2,
            "only what changed since the cursor"
        );
        assert_eq!(
            kassa_register::catalog::count(register.db()).await.unwrap(),
            3
        );
        let hit = register
            .lookup_barcode(p[0].barcodes[0].as_str())
            .await
            .unwrap();
        assert_eq!(hit.name, "Espresso cup");
        assert!(
            register
                .lookup_barcode(p[1].barcodes[0].as_str())
                .await
                .is_err(),
            "archived is gone"
        );
        assert!(register.search("Product 2", 10).await.unwrap().is_empty());
        assert_eq!(register.sync_now().await.unwrap().products_changed, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_lookup_work_with_central_down() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(12).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        shop.go_offline().await;

        let by_name = register.search("product 1", 20).await.unwrap();
        let skus: Vec<&str> = by_name.iter().map(|p| p.sku.as_str()).collect();
        assert!(
            skus.contains(&"SKU-1") && skus.contains(&"SKU-12"),
            "{skus:?}"
        );
        let by_sku = register.search("SKU-7", 5).await.unwrap();
        assert_eq!(by_sku[0].sku.as_str(), "SKU-7");
        let barcode = shop.products[4].barcodes[0].as_str().to_owned();
        let by_barcode = register.search(&barcode, 5).await.unwrap();
        assert_eq!(by_barcode[0].sku.as_str(), "SKU-5");
        assert!(
            register.search("\"*)(", 5).await.unwrap().is_empty(),
            "odd input is safe"
        );
        assert!(register.sync_now().await.is_err());
        assert!(!register.sync_status().online);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_is_pulled_and_pending_sales_are_subtracted() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        assert_eq!(
            register.stock_available(&sku("SKU-1")).await.unwrap(),
            Some(STOCK)
        );

        shop.go_offline().await;
        let p = shop.products.clone();
        sell(&register, &[&p[0], &p[0], &p[0]], "10.00").await;
        assert_eq!(
            register.stock_available(&sku("SKU-1")).await.unwrap(),
            Some(STOCK - 3)
        );
        assert_eq!(
            register.stock_available(&sku("SKU-2")).await.unwrap(),
            Some(STOCK)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frequently_bought_together_is_synced_for_offline_lookup() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(4).await;
        let cashier = shop.login("cashier").await;
        for basket in [
            ["SKU-1", "SKU-2"],
            ["SKU-1", "SKU-2"],
            ["SKU-1", "SKU-3"],
            ["SKU-1", "SKU-3"],
            ["SKU-1", "SKU-2"],
        ] {
            paid_order(&shop, &cashier, &basket).await;
        }
        let state = shop.central.state().clone();
        kassa_central::recommend::run_batch(&state.db, &state.recommender)
            .await
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        let report = register.sync_now().await.unwrap();
        assert!(report.recommendation_lists >= 3, "{report:?}");
        shop.go_offline().await;

        let with_1 = register
            .frequently_bought_with(shop.products[0].id, 5)
            .await
            .unwrap();
        let skus: Vec<&str> = with_1.iter().map(|r| r.product.sku.as_str()).collect();
        assert_eq!(skus, ["SKU-2", "SKU-3"], "best first");
        assert!(with_1[0].score >= with_1[1].score);
        assert!(register
            .frequently_bought_with(shop.products[3].id, 5)
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

/// An order placed through the API and paid in-process (what the payments route will do).
async fn paid_order(shop: &Shop, token: &str, skus: &[&str]) {
    let lines: Vec<_> = skus.iter().map(|s| json!({ "sku": s, "qty": 1 })).collect();
    let response = shop
        .http
        .post(shop.url("/v1/orders"))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
        .json(&json!({ "location": LOCATION, "lines": lines }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let order: Order = response.json().await.unwrap();
    let state = shop.central.state();
    let mut tx = state.db.begin_write().await.unwrap();
    record_payment(state, &mut tx, order.id, order.totals.total)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_received_offline_is_pushed_once_a_manager_signs_in() {
    crate::helpers::bounded(async move {
        use kassa_domain::api::StockReason;
        let mut shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        register
            .sign_in("manager", crate::helpers::PASSWORD)
            .await
            .unwrap();
        shop.go_offline_for(&register).await;

        register
            .adjust_stock(
                &sku("SKU-1"),
                12,
                StockReason::Receiving,
                Some("delivery 17".into()),
            )
            .await
            .unwrap();
        assert!(register
            .adjust_stock(&sku("SKU-1"), -1, StockReason::Receiving, None)
            .await
            .is_err());
        assert_eq!(
            register.stock_available(&sku("SKU-1")).await.unwrap(),
            Some(STOCK + 12)
        );
        shop.go_online().await;
        // The manager leaves; the adjustment waits for a manager's session.
        register
            .sign_in("cashier", crate::helpers::PASSWORD)
            .await
            .unwrap();

        register.sync_now().await.unwrap();
        assert_eq!(
            shop.stock(&sku("SKU-1")).await.0,
            STOCK,
            "a cashier cannot push it"
        );
        register
            .sign_in("manager", crate::helpers::PASSWORD)
            .await
            .unwrap();
        register.sync_now().await.unwrap();
        register.sync_now().await.unwrap();
        assert_eq!(
            shop.stock(&sku("SKU-1")).await.0,
            STOCK + 12,
            "applied once"
        );
        assert_eq!(
            register.stock_available(&sku("SKU-1")).await.unwrap(),
            Some(STOCK + 12)
        );
    })
    .await;
}

/// The answer to a pushed adjustment is lost after Central applied it (here: Central got the
/// same request, same key, before the register's round): the register sends it again, Central
/// replays its first answer, and the stock moves once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adjustment_whose_answer_was_lost_is_sent_again_and_applied_once() {
    crate::helpers::bounded(async move {
        use kassa_domain::api::StockReason;
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sign_out().await.unwrap();
        register
            .sign_in("manager", crate::helpers::PASSWORD)
            .await
            .unwrap();
        let id = register
            .adjust_stock(&sku("SKU-1"), 5, StockReason::Receiving, None)
            .await
            .unwrap();
        // What the register's first attempt delivered (under its own session: keys are the
        // till's) before its connection dropped.
        let queued = kassa_register::adjustments::with_status(register.db(), "pending")
            .await
            .unwrap();
        assert_eq!(queued[0].id, id);
        let token = register.sessions().access_token().await.unwrap();
        let delivered = reqwest::Client::new()
            .post(shop.url("/v1/stock/adjustments"))
            .bearer_auth(token.expose())
            .header("Idempotency-Key", queued[0].key().unwrap().as_str())
            .json(&queued[0].adjustment)
            .send()
            .await
            .unwrap();
        assert_eq!(delivered.status(), 201);

        register.sync_now().await.unwrap();
        assert!(
            kassa_register::adjustments::with_status(register.db(), "pending")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(shop.stock(&sku("SKU-1")).await.0, STOCK + 5, "applied once");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_register_syncs_2500_products_under_centrals_default_rate_limits() {
    crate::helpers::bounded(async move {
        const PRODUCTS: usize = 2500;
        let shop = crate::helpers::Shop::open_big(PRODUCTS as u32).await;
        shop.receive(&sku("SKU-7"), 9).await;
        let dir = tempfile::tempdir().unwrap();
        // The shipped defaults: every stock level in the first round.
        let register = shop
            .register_tweaked(
                &dir,
                "R1",
                std::sync::Arc::new(kassa_register::secrets::MemoryStore::default()),
                |c| c.sync = kassa_register::sync::SyncConfig::default(),
            )
            .await;

        let first = register.sync_now().await.unwrap();
        assert_eq!(first.products_changed, PRODUCTS);
        assert_eq!(first.stock_levels, PRODUCTS);
        assert_eq!(
            register.stock_available(&sku("SKU-7")).await.unwrap(),
            Some(9)
        );
        assert_eq!(
            register.stock_available(&sku("SKU-2500")).await.unwrap(),
            Some(0)
        );
        let second = register.sync_now().await.unwrap();
        assert_eq!(second.products_changed, 0);
        assert_eq!(
            second.stock_levels, PRODUCTS,
            "the next round refreshes them all again"
        );
    })
    .await;
}
