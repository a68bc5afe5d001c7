//! A sync round's steps are independent: one kind of stuck work (a card record to cancel with
//! nobody signed in, an online sale with no cashier to pay it) never stops offline sales from
//! draining; only Central out of reach ends a round early.

use kassa_domain::OrderStatus;
use kassa_register::Register;

use crate::helpers::{eur, product_input, sell, Shop, PASSWORD};

async fn card_records(register: &Register) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM card_sales")
        .fetch_one(register.db().pool())
        .await
        .unwrap()
}

/// A declined card sale whose order is still to cancel at Central: only a staff session can
/// cancel it, so it waits while nobody is signed in.
async fn stuck_card_record(register: &Register) {
    sqlx::query(
        "INSERT INTO card_sales (order_id, cart_id, location, status, order_key, payment_key,
            payment_method, currency, total_minor, created_at, updated_at)
         VALUES (?, ?, 'STORE-1', 'cancelling', 'register-order-x', 'register-payment-x',
            'pm_card_chargeDeclined', 'EUR', 110, 0, 0)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(uuid::Uuid::now_v7().to_string())
    .execute(register.db().pool())
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_record_stuck_with_nobody_signed_in_never_stops_offline_sales() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        shop.go_offline_for(&register).await;
        let p = shop.products.clone();
        let receipts = [
            sell(&register, &[&p[0]], "5.00").await,
            sell(&register, &[&p[1]], "5.00").await,
        ];
        stuck_card_record(&register).await;
        shop.go_online().await;
        register.sign_out().await.unwrap();

        let report = register.sync_now().await.unwrap();
        assert_eq!(report.sales_settled, 2, "{report:?}");
        for receipt in &receipts {
            let order = shop.order(receipt.order_id).await.expect("at Central");
            assert_eq!(order.status, OrderStatus::Paid);
        }
        let status = register.sync_status();
        assert_eq!(status.pending, 0);
        assert!(status.online, "{status:?}");
        let error = status.last_error.unwrap_or_default();
        assert!(
            error.contains("not signed in"),
            "the stuck step says why: {error}"
        );
        assert_eq!(
            card_records(&register).await,
            1,
            "the record waits for staff"
        );

        register.sign_in("cashier", PASSWORD).await.unwrap();
        register.sync_now().await.unwrap();
        assert_eq!(
            card_records(&register).await,
            0,
            "settled once staff is back"
        );
        assert_eq!(register.sync_status().last_error, None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_edit_waiting_for_a_manager_never_stops_the_catalog_pull() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sign_in("manager", PASSWORD).await.unwrap();
        register.sync_now().await.unwrap();
        // The manager queues an edit of one product and leaves before it is pushed.
        let (mug, plate) = (shop.products[0].clone(), shop.products[1].clone());
        let mut mine = product_input(1);
        mine.price = eur("4.50");
        register.edit_product(mug.id, mine).await.unwrap();
        register.sign_out().await.unwrap();
        // The back office changes the other product at Central.
        let mut theirs = product_input(2);
        theirs.price = eur("9.99");
        shop.update_product(&plate, &theirs).await;

        let report = register.sync_now().await.unwrap();
        assert_eq!(report.steps_failed, 1, "{report:?}");
        let shown = register
            .lookup_barcode(plate.barcodes[0].as_str())
            .await
            .unwrap();
        assert_eq!(shown.price, eur("9.99"), "the catalog was pulled");
        let edits = rows_pending_edits(&register).await;
        assert_eq!(edits, 1, "the edit waits for a manager");
    })
    .await;
}

async fn rows_pending_edits(register: &Register) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM product_edits WHERE status = 'pending'")
        .fetch_one(register.db().pool())
        .await
        .unwrap()
}
