//! The manager's side of the register: a cashier is refused every manager action by the core
//! itself (not only by the UI's hidden buttons), and the sales report sums what was sold here
//! and takes off what was refunded here.

use std::sync::Arc;

use kassa_domain::api::StockReason;
use kassa_register::sale::Receipt;
use kassa_register::secrets::MemoryStore;
use kassa_register::{Error, Register};

use crate::helpers::{eur, open_register, product_input, sell, sku, Shop, PASSWORD};

/// A register at STORE-1 (its secrets in `secrets`, to reopen it) that sold the shop's first
/// two products for cash, the sale at Central.
async fn sold_two_and_synced(
    shop: &Shop,
    dir: &tempfile::TempDir,
    secrets: Arc<MemoryStore>,
) -> (Register, Receipt) {
    let register = shop.register_with(dir, "R1", secrets).await;
    register.sync_now().await.unwrap();
    let (a, b) = (&shop.products[0], &shop.products[1]);
    let sale = sell(&register, &[a, b], "10.00").await;
    crate::helpers::sync_until_drained(&register).await;
    (register, sale)
}

/// Rows in a table of the register's store.
async fn rows(register: &Register, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(register.db().pool())
        .await
        .unwrap()
}

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

        // Today and yesterday: a run that crosses the store's midnight still sees its sales.
        let report = register.sales_report(2).await.unwrap();
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
        let report = register.sales_report(2).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_central_made_but_the_till_failed_to_record_is_in_the_report_once_after_a_restart()
{
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let (register, sale) = sold_two_and_synced(&shop, &dir, secrets.clone()).await;
        let a = shop.products[0].clone();

        // The local write after Central's answer fails (a full disk, the process dying).
        sqlx::query(
            "CREATE TRIGGER refunds_fail BEFORE INSERT ON refunds
             BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .execute(register.db().pool())
        .await
        .unwrap();
        let approval = register.approve("manager", PASSWORD).await.unwrap();
        let cut = register
            .refund(sale.order_id, vec![(a.sku.clone(), 1)], approval.id)
            .await;
        assert!(cut.is_err(), "the local record failed: {cut:?}");
        let at_central = shop.order(sale.order_id).await.unwrap();
        assert_eq!(at_central.refunded, eur("1.10"), "Central refunded");
        assert_eq!(rows(&register, "refunds").await, 0);
        assert_eq!(
            rows(&register, "pending_refunds").await,
            1,
            "written down first"
        );

        // The register restarts; nobody signs in: its own sync settles the refund.
        sqlx::query("DROP TRIGGER refunds_fail")
            .execute(register.db().pool())
            .await
            .unwrap();
        register.db().close().await;
        drop(register);
        let register = open_register(&dir, &shop.proxy.url(), secrets).await;
        let round = register.sync_now().await.unwrap();
        assert_eq!(round.refunds_settled, 1);
        assert_eq!(rows(&register, "pending_refunds").await, 0);
        assert_eq!(rows(&register, "refunds").await, 1);
        let again = register.sync_now().await.unwrap();
        assert_eq!(again.refunds_settled, 0);

        register.sign_in("manager", PASSWORD).await.unwrap();
        let report = register.sales_report(2).await.unwrap();
        assert_eq!((report.sales, report.refund_count), (1, 1));
        assert_eq!(
            (report.gross, report.refunds, report.net),
            (eur("3.30"), eur("1.10"), eur("2.20"))
        );
        assert_eq!(
            shop.central
                .count(&format!(
                    "SELECT COUNT(*) FROM refunds WHERE order_id = '{}'",
                    sale.order_id
                ))
                .await,
            1,
            "one refund at Central"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_central_refuses_leaves_nothing_pending_and_is_not_counted() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        // Two lines, so the order stays PAID after the mug comes back.
        let (register, sale) =
            sold_two_and_synced(&shop, &dir, Arc::new(MemoryStore::default())).await;
        let mug = shop.products[0].clone();

        for (try_no, expected) in [(1, None), (2, Some("return_exceeds_sold"))] {
            let approval = register.approve("manager", PASSWORD).await.unwrap();
            let refund = register
                .refund(sale.order_id, vec![(mug.sku.clone(), 1)], approval.id)
                .await;
            assert_eq!(
                refund.as_ref().err().and_then(Error::api_code),
                expected,
                "refund {try_no}: {refund:?}"
            );
            assert_eq!(
                rows(&register, "pending_refunds").await,
                0,
                "refund {try_no}"
            );
        }
        register.sync_now().await.unwrap();
        assert_eq!(rows(&register, "refunds").await, 1);
        register.sign_in("manager", PASSWORD).await.unwrap();
        let report = register.sales_report(2).await.unwrap();
        assert_eq!((report.refund_count, report.refunds), (1, eur("1.10")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_written_down_that_never_reached_central_is_forgotten_after_a_while() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let (register, sale) =
            sold_two_and_synced(&shop, &dir, Arc::new(MemoryStore::default())).await;
        let mug = shop.products[0].clone();
        // The till's first step, then it dies before the request left.
        let key = kassa_domain::IdempotencyKey::parse("register-refund-never-sent").unwrap();
        kassa_register::refunds::begin(
            register.db(),
            sale.order_id,
            crate::helpers::LOCATION,
            &[(mug.sku.clone(), 1)],
            "manager",
            &key,
        )
        .await
        .unwrap();

        // Central has no such refund, but a request could still be on its way: kept a while.
        assert_eq!(register.sync_now().await.unwrap().refunds_settled, 0);
        assert_eq!(rows(&register, "pending_refunds").await, 1);
        sqlx::query("UPDATE pending_refunds SET created_at = created_at - 11 * 60 * 1000")
            .execute(register.db().pool())
            .await
            .unwrap();
        assert_eq!(register.sync_now().await.unwrap().refunds_settled, 1);
        assert_eq!(rows(&register, "pending_refunds").await, 0);
        assert_eq!(rows(&register, "refunds").await, 0, "nothing was refunded");
        assert_eq!(
            shop.order(sale.order_id).await.unwrap().refunded,
            eur("0.00")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_adjustment_retried_under_another_manager_moves_the_stock_once() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sign_in("manager", PASSWORD).await.unwrap();
        register
            .adjust_stock(&sku("SKU-1"), 5, StockReason::Receiving, None)
            .await
            .unwrap();
        // The manager's try reaches Central, and its answer is lost on the way back: the
        // register's first push, as Central saw it, with the key the register keeps.
        let queued = kassa_register::adjustments::with_status(register.db(), "pending")
            .await
            .unwrap()
            .remove(0);
        let key = queued.key().unwrap();
        let sessions = register.sessions();
        sessions
            .authed(|t| {
                let (key, adjustment) = (&key, &queued.adjustment);
                async move {
                    sessions
                        .client()
                        .adjust_stock(t.expose(), key, adjustment)
                        .await
                }
            })
            .await
            .unwrap();

        // Another manager-level member of staff takes over; the round sends it again.
        register.sign_out().await.unwrap();
        register.sign_in("admin", PASSWORD).await.unwrap();
        register.sync_now().await.unwrap();
        assert_eq!(
            rows(&register, "stock_adjustments WHERE status = 'done'").await,
            1
        );
        assert_eq!(
            shop.stock(&sku("SKU-1")).await.0,
            crate::helpers::STOCK + 5,
            "moved once"
        );
    })
    .await;
}
