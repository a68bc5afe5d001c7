//! Sales of 0.00 (a free item, a manager's 100 % discount): completed online and offline,
//! each at Central once, and never in the way of the sales behind them in the outbox.

use kassa_domain::api::Product;
use kassa_domain::{OrderStatus, ReceiptPayment, SaleMode};
use kassa_register::sale::Receipt;
use kassa_register::Register;

use crate::helpers::{eur, product_input, sell, sku, sync_until_drained, Shop, PASSWORD, STOCK};

/// A product given away (price 0.00), with [`STOCK`] units at Central.
async fn free_product(shop: &Shop) -> Product {
    let mut input = product_input(9);
    input.price = eur("0.00");
    let product = shop.create_product(&input).await;
    shop.receive(&product.sku, STOCK).await;
    product
}

/// Every receipt is PAID at Central with the till's totals, and nothing was rejected.
async fn all_at_central(shop: &Shop, register: &Register, receipts: &[Receipt]) {
    for receipt in receipts {
        let order = shop.order(receipt.order_id).await.expect("at Central");
        assert_eq!(order.status, OrderStatus::Paid, "{}", receipt.receipt_no);
        assert_eq!(order.totals, receipt.totals);
        assert_eq!(order.paid, receipt.totals.total);
    }
    let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
    assert_eq!((counts.pending, counts.rejected), (0, 0), "{counts:?}");
    let orders = shop.central.count("SELECT COUNT(*) FROM orders").await;
    assert_eq!(orders, i64::try_from(receipts.len()).unwrap());
    // A discount above the limit carried an approval Central could verify.
    let flags = shop.manager_get("/v1/approvals/flags").await;
    assert_eq!(flags, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_sale_completes_online_and_the_sales_behind_it_drain() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let free = free_product(&shop).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();

        let given = sell(&register, &[&free], "0.00").await;
        assert_eq!(given.totals.total, eur("0.00"));
        assert_eq!(given.mode, SaleMode::Online);
        // Nothing to charge to a card: the sale completes as cash of nothing.
        register.scan(free.barcodes[0].as_str()).await.unwrap();
        let by_card = register.pay_card().await.unwrap();
        assert!(
            matches!(by_card.payment().unwrap(), ReceiptPayment::Cash { .. }),
            "{by_card:?}"
        );
        let paid = sell(&register, &[&shop.products[0]], "5.00").await;

        sync_until_drained(&register).await;
        all_at_central(&shop, &register, &[given, by_card, paid]).await;
        assert_eq!(shop.stock(&sku("SKU-9")).await.0, STOCK - 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_and_fully_discounted_sales_made_offline_are_accepted_once() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(1).await;
        let free = free_product(&shop).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        // A manager at the till gives the discount (signed in online once: offline sign-in).
        register.sign_in("manager", PASSWORD).await.unwrap();
        shop.go_offline_for(&register).await;

        let given = sell(&register, &[&free], "0.00").await;
        let p = shop.products[0].clone();
        register.scan(p.barcodes[0].as_str()).await.unwrap();
        register
            .set_discount(&p.sku, eur("1.10"), None)
            .await
            .unwrap();
        let discounted = register.pay_cash(eur("0.00")).await.unwrap();
        assert_eq!(discounted.totals.total, eur("0.00"));
        let paid = sell(&register, &[&p], "5.00").await;
        for receipt in [&given, &discounted, &paid] {
            assert_eq!(receipt.mode, SaleMode::Offline);
        }

        shop.go_online().await;
        sync_until_drained(&register).await;
        all_at_central(&shop, &register, &[given, discounted, paid]).await;
        assert_eq!(shop.stock(&sku("SKU-9")).await.0, STOCK - 1);
        assert_eq!(shop.stock(&sku("SKU-1")).await.0, STOCK - 2);
    })
    .await;
}
