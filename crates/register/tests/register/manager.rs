//! The manager's side of the register: a cashier is refused every manager action by the core
//! itself (not only by the UI's hidden buttons), and the sales report sums what was sold here
//! and takes off what was refunded here.

use kassa_domain::api::StockReason;
use kassa_register::Error;

use crate::helpers::{eur, product_input, sell, sku, Shop, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cashier_is_refused_the_manager_actions_and_nothing_is_queued() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let mug = shop.products[0].clone();

        let refusals = [
            register.edit_product(mug.id, product_input(1)).await.err(),
            register.create_product(product_input(7)).await.err(),
            register
                .adjust_stock(&sku("SKU-1"), 5, StockReason::Receiving, None)
                .await
                .err(),
            register.sales_report(1).await.err(),
            register.conflicts().await.err(),
            register.product_edits(10).await.err(),
            register.stock_adjustments(10).await.err(),
        ];
        for refusal in refusals {
            crate::helpers::assert_refused_to_a_cashier(refusal);
        }
        register.sign_in("manager", PASSWORD).await.unwrap();
        assert!(register.product_edits(10).await.unwrap().is_empty());
        assert!(register.stock_adjustments(10).await.unwrap().is_empty());
        assert_eq!(
            register.stock_available(&sku("SKU-1")).await.unwrap(),
            Some(crate::helpers::STOCK)
        );

        register.sign_out().await.unwrap();
        assert!(matches!(
            register.sales_report(1).await,
            Err(Error::NotSignedIn)
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sales_report_counts_every_sale_made_here_synced_or_not() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let (a, b) = (shop.products[0].clone(), shop.products[1].clone());

        let first = sell(&register, &[&a, &b], "10.00").await;
        crate::helpers::sync_until_drained(&register).await;
        register.sign_in("manager", PASSWORD).await.unwrap();
        shop.go_offline_for(&register).await;
        let second = sell(&register, &[&a], "5.00").await;

        let report = register.sales_report(1).await.unwrap();
        assert_eq!(report.sales, 2);
        let total = first
            .totals
            .total
            .checked_add(&second.totals.total)
            .unwrap();
        assert_eq!(report.gross, total);
        assert_eq!(report.by_method.len(), 1);
        assert_eq!(report.by_method[0].method, "cash");
        assert_eq!(report.by_method[0].gross, total);
        assert_eq!(report.by_day.len(), 1);
        assert_eq!(report.by_day[0].sales, 2);
        let tax = first
            .totals
            .tax_total
            .checked_add(&second.totals.tax_total)
            .unwrap();
        assert_eq!(report.tax, tax);
        assert_eq!(report.pending_sync, 1, "the offline sale still waits");
        assert_eq!((report.refunds, report.net), (eur("0.00"), total));
        assert!(register.sales_report(0).await.is_err(), "a bounded window");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sales_report_takes_off_the_refunds_given_here_per_method_and_day() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let (a, b) = (shop.products[0].clone(), shop.products[1].clone());
        // 1.10 + 2.20 in cash, 2.20 by card.
        let cash = sell(&register, &[&a, &b], "10.00").await;
        register.scan(b.barcodes[0].as_str()).await.unwrap();
        let card = register.pay_card().await.unwrap();
        crate::helpers::sync_until_drained(&register).await;

        for (sale, sku) in [(&cash, &a.sku), (&card, &b.sku)] {
            let approval = register.approve("manager", PASSWORD).await.unwrap();
            register
                .refund(sale.order_id, vec![(sku.clone(), 1)], approval.id)
                .await
                .unwrap();
        }

        register.sign_in("manager", PASSWORD).await.unwrap();
        let report = register.sales_report(1).await.unwrap();
        assert_eq!((report.sales, report.refund_count), (2, 2));
        assert_eq!(
            (report.gross, report.refunds, report.net),
            (eur("5.50"), eur("3.30"), eur("2.20"))
        );
        let methods: Vec<_> = report
            .by_method
            .iter()
            .map(|m| (m.method.as_str(), m.gross, m.refunds, m.net))
            .collect();
        assert_eq!(
            methods,
            [
                ("card", eur("2.20"), eur("2.20"), eur("0.00")),
                ("cash", eur("3.30"), eur("1.10"), eur("2.20")),
            ]
        );
        assert_eq!(report.by_day.len(), 1);
        let today = &report.by_day[0];
        assert_eq!(
            (today.sales, today.gross, today.refunds, today.net),
            (2, eur("5.50"), eur("3.30"), eur("2.20"))
        );
    })
    .await;
}
