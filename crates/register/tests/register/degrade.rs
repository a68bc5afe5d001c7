//! A till while Central degrades (issue 13, point 5): read-only mode shows its message on the
//! till and keeps its sales queued until it ends; recommendations switched off at Central
//! disappear from the till and come back with the feature.

use kassa_central::orders::record_payment;
use kassa_domain::api::Order;
use serde_json::json;

use crate::helpers::{sell, Shop, LOCATION};

async fn admin_put(shop: &Shop, path: &str, body: serde_json::Value) {
    let admin = shop.login("admin").await;
    let response = shop
        .http
        .put(shop.url(path))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_central_shows_its_message_and_keeps_sales_queued() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        assert_eq!(register.sync_status().read_only, None);

        let message = "Stock count until 07:00";
        admin_put(
            &shop,
            "/v1/admin/read-only",
            json!({ "enabled": true, "message": message }),
        )
        .await;
        let p = shop.products.clone();
        sell(&register, &[&p[0]], "10.00").await;
        register.sync_now().await.unwrap();
        let status = register.sync_status();
        assert_eq!(status.read_only.as_deref(), Some(message));
        assert_eq!(status.pending, 1, "the sale waits at the till");
        assert!(status.online, "Central answers; it only refuses writes");

        admin_put(&shop, "/v1/admin/read-only", json!({ "enabled": false })).await;
        register.sync_now().await.unwrap();
        let status = register.sync_status();
        assert_eq!(status.read_only, None);
        assert_eq!(status.pending, 0, "sent once Central takes writes again");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommendations_switched_off_disappear_from_the_till_and_come_back() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(3).await;
        let cashier = shop.login("cashier").await;
        for _ in 0..3 {
            let response = shop
                .http
                .post(shop.url("/v1/orders"))
                .bearer_auth(&cashier)
                .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
                .json(&json!({ "location": LOCATION, "lines": [
                    { "sku": "SKU-1", "qty": 1 }, { "sku": "SKU-2", "qty": 1 }] }))
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
        let state = shop.central.state().clone();
        kassa_central::recommend::run_batch(&state.db, &state.recommender)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let first = shop.products[0].id;
        assert_eq!(
            register
                .frequently_bought_with(first, 5)
                .await
                .unwrap()
                .len(),
            1
        );

        admin_put(
            &shop,
            "/v1/admin/features/recommendations",
            json!({ "enabled": false }),
        )
        .await;
        let report = register.sync_now().await.unwrap();
        assert_eq!(
            report.steps_failed, 0,
            "a switched-off feature is no failure"
        );
        assert!(register
            .frequently_bought_with(first, 5)
            .await
            .unwrap()
            .is_empty());

        admin_put(
            &shop,
            "/v1/admin/features/recommendations",
            json!({ "enabled": true }),
        )
        .await;
        register.sync_now().await.unwrap();
        assert_eq!(
            register
                .frequently_bought_with(first, 5)
                .await
                .unwrap()
                .len(),
            1,
            "pulled again from the start"
        );
    })
    .await;
}
