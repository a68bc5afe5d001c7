//! A sync round's steps are independent: one kind of stuck work (a card record to cancel with
//! nobody signed in, an online sale with no cashier to pay it) never stops offline sales from
//! draining; only Central out of reach ends a round early.

use kassa_domain::OrderStatus;
use kassa_register::Register;

use crate::helpers::{sell, Shop, PASSWORD};

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
