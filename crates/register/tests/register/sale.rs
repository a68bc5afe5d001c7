//! Selling at the till: scanning, carts that survive a restart, parking, receipts, and the
//! online sale end to end.

use kassa_domain::OrderStatus;
use kassa_register::Error;

use crate::helpers::{barcode, eur, open_register, sell, sku, sync_until_drained, Shop, STOCK};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanning_builds_a_cart_whose_totals_are_the_domain_ones() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(3).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();

        let p = &shop.products;
        register.scan(p[0].barcodes[0].as_str()).await.unwrap();
        register.scan(p[0].barcodes[0].as_str()).await.unwrap();
        let cart = register.scan(p[1].barcodes[0].as_str()).await.unwrap();

        assert_eq!(cart.lines.len(), 2);
        assert_eq!(cart.lines[0].qty, 2);
        // 2 × 1.10 (10 %) + 2.20 (20 %) = 4.40
        assert_eq!(cart.totals.total, eur("4.40"));
        assert_eq!(cart.totals.taxes.len(), 2);
        let unknown = barcode(999).as_str().to_owned();
        let err = register.scan(&unknown).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
        let last = unknown.chars().last().unwrap().to_digit(10).unwrap();
        let wrong_check_digit = format!("{}{}", &unknown[..12], (last + 1) % 10);
        let invalid = register.scan(&wrong_check_digit).await.unwrap_err();
        assert!(matches!(invalid, Error::Invalid(_)), "{invalid}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carts_survive_a_restart_and_several_can_be_parked_and_resumed() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(3).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let p = &shop.products;

        register.scan(p[0].barcodes[0].as_str()).await.unwrap();
        let first = register.park("blue jacket").await.unwrap();
        assert!(first.lines.is_empty(), "the till gets a fresh cart");
        register.scan(p[1].barcodes[0].as_str()).await.unwrap();
        register.park("pram").await.unwrap();
        let open = register.scan(p[2].barcodes[0].as_str()).await.unwrap();
        register.db().close().await;
        drop(register);

        let register = open_register(
            &dir,
            &shop.proxy.url(),
            std::sync::Arc::new(kassa_register::secrets::MemoryStore::default()),
        )
        .await;
        assert_eq!(
            register.cart().await.unwrap(),
            open,
            "the open cart came back"
        );
        let parked = register.parked().await.unwrap();
        let labels: Vec<&str> = parked.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels.len(), 2);
        assert!(labels.contains(&"blue jacket") && labels.contains(&"pram"));
        let jacket = parked.iter().find(|c| c.label == "blue jacket").unwrap();
        let resumed = register.resume(jacket.id).await.unwrap();
        assert_eq!(resumed.lines[0].sku, p[0].sku);
        assert_eq!(
            register.parked().await.unwrap().len(),
            2,
            "the other open cart was parked"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_numbers_are_unique_and_monotonic_per_register() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R7").await;
        register.sync_now().await.unwrap();
        shop.go_offline().await;
        let p = shop.products.clone();
        let mut numbers = Vec::new();
        for _ in 0..5 {
            numbers.push(sell(&register, &[&p[0]], "5.00").await.receipt_no);
        }
        assert_eq!(
            numbers,
            (1..=5)
                .map(|n| format!("STORE-1-R7-{n:06}"))
                .collect::<Vec<_>>()
        );
        let short = register.scan(p[1].barcodes[0].as_str()).await.unwrap();
        let err = register.pay_cash(eur("0.50")).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert_eq!(
            register.cart().await.unwrap(),
            short,
            "a refused payment leaves the cart as it was"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_sale_is_paid_at_central_with_the_registers_totals() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(3).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        assert!(register.sync_status().online);
        let p = &shop.products;

        let receipt = sell(&register, &[&p[0], &p[1], &p[1]], "20.00").await;
        assert_eq!(receipt.totals.total, eur("5.50"));
        assert_eq!(receipt.change(), Some(eur("14.50")));
        assert_eq!(register.sync_status().pending, 1);
        sync_until_drained(&register).await;

        let order = shop
            .order(receipt.order_id)
            .await
            .expect("the order is at Central");
        assert_eq!(order.status, OrderStatus::Paid);
        assert_eq!(
            order.totals, receipt.totals,
            "Central's receipt equals the register's to the cent"
        );
        assert_eq!(order.source, "register");
        assert_eq!(shop.stock(&sku("SKU-2")).await, (STOCK - 2, STOCK - 2));
        let paid: i64 = shop.central.count("SELECT COUNT(*) FROM orders").await;
        assert_eq!(paid, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sync_delivers_sales_and_comes_back_after_a_central_restart() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = register.start_sync(async {
            let _ = stopped.await;
        });
        let mut status = register.engine().subscribe();
        wait_for(&mut status, |s| s.online && s.last_sync.is_some()).await;
        let p = shop.products.clone();

        let first = sell(&register, &[&p[0]], "2.00").await;
        wait_for(&mut status, |s| s.pending == 0 && s.last_sync.is_some()).await;
        assert_eq!(
            shop.order(first.order_id).await.unwrap().status,
            OrderStatus::Paid
        );

        shop.go_offline().await;
        wait_for(&mut status, |s| !s.online && s.last_error.is_some()).await;
        shop.go_online().await;
        wait_for(&mut status, |s| s.online).await;
        let second = sell(&register, &[&p[1]], "5.00").await;
        assert_eq!(second.mode, kassa_register::sale::SaleMode::Online);
        wait_for(&mut status, |s| s.pending == 0).await;
        assert_eq!(
            shop.order(second.order_id).await.unwrap().status,
            OrderStatus::Paid
        );

        stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .expect("the sync task stops when told")
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_sales_survive_central_restarts_mid_sync_without_doubles() {
    crate::helpers::bounded(async move {
        online_sales_survive(Interruption::Restart).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_sales_survive_cut_connections_without_doubles() {
    crate::helpers::bounded(async move {
        online_sales_survive(Interruption::Cut).await;
    })
    .await;
}

/// How the link to Central breaks while the outbox drains.
#[derive(Clone, Copy)]
enum Interruption {
    /// Central stops and starts again (the link is cut first).
    Restart,
    /// Every open connection is cut, Central keeps running.
    Cut,
}

/// Online sales drain while the link breaks at random moments: each ends at Central once,
/// paid once, and stock drops once.
async fn online_sales_survive(how: Interruption) {
    use rand::Rng;
    let mut shop = Shop::open(2).await;
    let dir = tempfile::tempdir().unwrap();
    let register = shop.register(&dir, "R1").await;
    register.sync_now().await.unwrap();
    let p = shop.products.clone();
    let sales = 30;
    for _ in 0..sales {
        sell(&register, &[&p[0], &p[1]], "10.00").await;
    }
    assert_eq!(register.sync_status().pending, sales);

    let mut rng = rand::thread_rng();
    for _ in 0..8 {
        let syncing = {
            let register = register.clone();
            tokio::spawn(async move { register.sync_now().await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(rng.gen_range(0..40))).await;
        match how {
            Interruption::Restart => {
                shop.go_offline().await;
                shop.go_online().await;
            }
            Interruption::Cut => {
                shop.proxy.cut();
                shop.proxy.restore();
            }
        }
        let _ = syncing.await.unwrap();
    }
    sync_until_drained(&register).await;

    let orders = shop.central.count("SELECT COUNT(*) FROM orders").await;
    let paid = shop
        .central
        .count("SELECT COUNT(*) FROM orders WHERE status = 'PAID'")
        .await;
    let payments = shop.central.count("SELECT COUNT(*) FROM payments").await;
    assert_eq!(
        (orders, paid, payments),
        (sales, sales, sales),
        "each sale once, paid once"
    );
    assert_eq!(
        shop.stock(&sku("SKU-1")).await,
        (STOCK - sales, STOCK - sales)
    );
}

/// Waits (bounded) until the sync status satisfies `done`.
async fn wait_for(
    status: &mut tokio::sync::watch::Receiver<kassa_register::sync::SyncStatus>,
    done: impl Fn(&kassa_register::sync::SyncStatus) -> bool,
) {
    let waited = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        status.wait_for(|s| done(s)),
    )
    .await
    .is_ok();
    assert!(waited, "status never got there: {:?}", *status.borrow());
}
