//! Sales made with Central away: synced later, each exactly once, with stock right; Central
//! going away in the middle of a sync; the same batch delivered twice.

use std::time::Duration;

use kassa_domain::api::SyncOrdersRequest;
use kassa_domain::OrderStatus;
use kassa_register::sale::SaleMode;
use rand::Rng;

use crate::helpers::{eur, sell, sku, sync_until_drained, Shop, STOCK};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_sales_reach_central_exactly_once_with_stock_right() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(3).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        shop.go_offline_for(&register).await;
        let p = shop.products.clone();

        let mut receipts = Vec::new();
        for i in 0..12 {
            let basket = if i % 2 == 0 {
                vec![&p[0], &p[1]]
            } else {
                vec![&p[2]]
            };
            receipts.push(sell(&register, &basket, "50.00").await);
        }
        assert!(register.sync_now().await.is_err());
        let status = register.sync_status();
        assert!(!status.online);
        assert_eq!(status.pending, 12);

        shop.go_online().await;
        sync_until_drained(&register).await;
        for receipt in &receipts {
            let order = shop
                .order(receipt.order_id)
                .await
                .expect("each sale is at Central");
            assert_eq!(order.totals, receipt.totals);
            assert_eq!(receipt.mode, SaleMode::Offline);
            assert_eq!(order.status, OrderStatus::Paid);
        }
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM orders").await, 12);
        assert_eq!(shop.stock(&sku("SKU-1")).await.0, STOCK - 6);
        assert_eq!(shop.stock(&sku("SKU-3")).await.0, STOCK - 6);
        assert_eq!(
            register.stock_available(&sku("SKU-1")).await.unwrap(),
            Some(STOCK - 6)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_going_away_mid_sync_loses_and_doubles_nothing() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let sales = 250;
        shop.receive(&sku("SKU-1"), sales).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        shop.go_offline_for(&register).await;
        let p = shop.products.clone();
        for _ in 0..sales {
            sell(&register, &[&p[0]], "5.00").await;
        }
        shop.go_online().await;

        // Cut every connection at random moments while the outbox drains; twice, stop Central.
        let mut rng = rand::thread_rng();
        for round in 0..12 {
            let syncing = {
                let register = register.clone();
                tokio::spawn(async move { register.sync_now().await })
            };
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..60))).await;
            if round % 6 == 5 {
                shop.go_offline().await;
                shop.go_online().await;
            } else {
                shop.proxy.cut();
                shop.proxy.restore();
            }
            let _ = syncing.await.unwrap();
        }
        sync_until_drained(&register).await;

        let at_central = shop.central.count("SELECT COUNT(*) FROM orders").await;
        assert_eq!(at_central, sales, "every sale exactly once");
        assert_eq!(shop.stock(&sku("SKU-1")).await.0, STOCK);
        let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
        assert_eq!(
            (counts.pending, counts.done, counts.rejected),
            (0, sales, 0)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_delivered_twice_is_applied_once() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        shop.go_offline().await;
        let p = shop.products.clone();
        // Three sales before the register notices the link is gone (online sales), three after.
        for _ in 0..3 {
            sell(&register, &[&p[0], &p[1]], "10.00").await;
        }
        assert!(register.sync_now().await.is_err());
        for _ in 0..3 {
            sell(&register, &[&p[0], &p[1]], "10.00").await;
        }
        let entries = kassa_register::outbox::next(register.db(), 100)
            .await
            .unwrap();
        let batch = SyncOrdersRequest {
            orders: entries.iter().map(|e| e.offline_order()).collect(),
        };
        shop.go_online().await;

        let sessions = register.sessions();
        let token = sessions.access_token().await.unwrap();
        let first = sessions
            .client()
            .sync_orders(token.expose(), &batch)
            .await
            .unwrap();
        let again = sessions
            .client()
            .sync_orders(token.expose(), &batch)
            .await
            .unwrap();
        assert_eq!(first, again, "a retried batch gets the same results");
        // The register never saw those answers: its own sync delivers the batch a third time.
        sync_until_drained(&register).await;

        assert_eq!(shop.central.count("SELECT COUNT(*) FROM orders").await, 6);
        assert_eq!(shop.stock(&sku("SKU-1")).await.0, STOCK - 6);
        let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
        assert_eq!((counts.pending, counts.done, counts.rejected), (0, 6, 0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_beyond_centrals_stock_is_kept_with_a_shortfall_online_or_offline() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let over = u32::try_from(STOCK).unwrap() + 10;

        // Online: Central refuses to reserve 60 of 50, the goods are gone: it goes the offline way.
        register.add_sku(&sku("SKU-1"), over).await.unwrap();
        let online = register.pay_cash(eur("100.00")).await.unwrap();
        assert_eq!(online.mode, SaleMode::Online);
        sync_until_drained(&register).await;
        // Offline: the same for SKU-2.
        shop.go_offline_for(&register).await;
        register.add_sku(&sku("SKU-2"), over).await.unwrap();
        let offline = register.pay_cash(eur("200.00")).await.unwrap();
        shop.go_online().await;
        sync_until_drained(&register).await;

        for receipt in [&online, &offline] {
            let order = shop.order(receipt.order_id).await.expect("at Central");
            assert_eq!(order.status, OrderStatus::Paid);
            assert_eq!(order.totals, receipt.totals);
        }
        assert_eq!(shop.stock(&sku("SKU-1")).await.0, 0);
        assert_eq!(shop.stock(&sku("SKU-2")).await.0, 0);
        let shortfalls: Vec<String> =
            sqlx::query_scalar("SELECT shortfalls FROM outbox_orders ORDER BY seq")
                .fetch_all(register.db().pool())
                .await
                .unwrap();
        for recorded in shortfalls {
            assert!(recorded.contains("\"shortfall\":10"), "{recorded}");
        }
    })
    .await;
}
