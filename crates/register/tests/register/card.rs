//! Card payments at the till: through Central and the processor simulator online, the
//! offline card policy offline; never lost, never charged twice, whatever crashes.

use std::sync::Arc;
use std::time::Duration;

use kassa_domain::{OrderStatus, ReceiptPayment, SaleMode};
use kassa_register::secrets::MemoryStore;
use kassa_register::{Error, Register, RegisterConfig};

use crate::helpers::{eur, open_register_with, sku, Shop, PASSWORD, STOCK};

fn card(token: &'static str) -> impl FnOnce(&mut RegisterConfig) {
    move |c| c.card_payment_method = token.into()
}

fn offline_limit(limit: Option<&'static str>) -> impl FnOnce(&mut RegisterConfig) {
    move |c| c.limits.offline_card_limit = limit.map(eur)
}

async fn card_sales(register: &Register) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM card_sales")
        .fetch_one(register.db().pool())
        .await
        .unwrap()
}

/// A register at STORE-1 whose card terminal hands over `token`, synced once.
async fn card_register(shop: &Shop, dir: &tempfile::TempDir, token: &'static str) -> Register {
    let secrets = Arc::new(MemoryStore::default());
    let register = shop.register_tweaked(dir, "R1", secrets, card(token)).await;
    register.sync_now().await.unwrap();
    register
}

/// Payments Central holds for an order: (all, succeeded).
async fn payments(shop: &Shop, order_id: uuid::Uuid) -> (i64, i64) {
    let id = order_id.to_string();
    let all = shop
        .central
        .count(&format!(
            "SELECT COUNT(*) FROM payments WHERE order_id = '{id}'"
        ))
        .await;
    let ok = shop
        .central
        .count(&format!(
            "SELECT COUNT(*) FROM payments WHERE order_id = '{id}' AND status = 'succeeded'"
        ))
        .await;
    (all, ok)
}

/// Sells SKU-1 and SKU-2 by card at `register` and checks the sale: paid at Central once, a
/// card receipt with the processor's reference, never sent again by later rounds.
async fn sells_by_card_once(shop: &Shop, register: &Register) {
    let p = &shop.products;
    register.scan(p[0].barcodes[0].as_str()).await.unwrap();
    register.scan(p[1].barcodes[0].as_str()).await.unwrap();

    let receipt = register.pay_card().await.unwrap();
    let ReceiptPayment::Card { reference, offline } = receipt.payment().unwrap() else {
        panic!("a card receipt: {receipt:?}");
    };
    assert!(
        reference.starts_with("pi_"),
        "the processor's reference: {reference}"
    );
    assert!(!offline);
    assert_eq!(receipt.mode, SaleMode::Online);
    assert_eq!(receipt.totals.total, eur("3.30"));
    assert!(
        register.cart().await.unwrap().lines.is_empty(),
        "a fresh cart"
    );

    let order = shop.order(receipt.order_id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.totals, receipt.totals);
    assert_eq!(payments(shop, receipt.order_id).await, (1, 1));
    assert_eq!(shop.stock(&sku("SKU-1")).await, (STOCK - 1, STOCK - 1));
    assert_eq!(card_sales(register).await, 0);

    // The outbox knows the sale is at Central: later rounds never send it again.
    let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
    assert_eq!((counts.pending, counts.done), (0, 1));
    register.sync_now().await.unwrap();
    register.sync_now().await.unwrap();
    assert_eq!(shop.central.count("SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(payments(shop, receipt.order_id).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_sale_is_paid_at_central_once_and_its_receipt_says_card() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(3).await;
        let dir = tempfile::tempdir().unwrap();
        let register = card_register(&shop, &dir, "pm_card_visa").await;
        sells_by_card_once(&shop, &register).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_leaves_the_cart_open_and_central_releases_the_stock() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = card_register(&shop, &dir, "pm_card_chargeDeclined").await;
        let cart = register
            .scan(shop.products[1].barcodes[0].as_str())
            .await
            .unwrap();

        let err = register.pay_card().await.unwrap_err();
        assert_eq!(err.api_code(), Some("card_declined"), "{err}");
        assert!(err.to_string().contains("declined"), "{err}");
        assert_eq!(
            register.cart().await.unwrap(),
            cart,
            "the cart is still open"
        );
        let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
        assert_eq!((counts.pending, counts.done), (0, 0), "no local sale");
        assert_eq!(card_sales(&register).await, 0);
        assert_eq!(
            shop.central
                .count("SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED'")
                .await,
            1
        );
        assert_eq!(
            shop.stock(&sku("SKU-2")).await,
            (STOCK, STOCK),
            "stock released"
        );

        // The cart is not held: the customer pays cash instead.
        let receipt = register.pay_cash(eur("5.00")).await.unwrap();
        assert_eq!(receipt.change(), Some(eur("2.80")));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_that_does_not_answer_at_first_takes_one_payment() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        // Approved at once but answered after 30 s: Central says 502 processor_unavailable,
        // the register retries with the same key and gets the approved payment.
        let register = card_register(&shop, &dir, "pm_sim_timeout").await;
        register
            .scan(shop.products[0].barcodes[0].as_str())
            .await
            .unwrap();

        let receipt = register.pay_card().await.unwrap();
        assert!(matches!(
            receipt.payment().unwrap(),
            ReceiptPayment::Card { offline: false, .. }
        ));
        assert_eq!(
            shop.order(receipt.order_id).await.unwrap().status,
            OrderStatus::Paid
        );
        assert_eq!(payments(&shop, receipt.order_id).await, (1, 1));
        assert_eq!(shop.stock(&sku("SKU-1")).await, (STOCK - 1, STOCK - 1));
    })
    .await;
}

/// Sync rounds until no card payment is left to settle (bounded: 20 s).
async fn settle(register: &Register) {
    for _ in 0..200 {
        let _ = register.sync_now().await;
        if card_sales(register).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("card payments did not settle: {:?}", register.sync_status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_central_charges_the_card_settles_the_sale_exactly_once() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = shop
            .register_tweaked(&dir, "R1", secrets.clone(), card("pm_sim_timeout"))
            .await;
        register.sync_now().await.unwrap();
        let cart = register
            .scan(shop.products[0].barcodes[0].as_str())
            .await
            .unwrap();

        // The register dies while Central waits for the processor (which approved).
        let paying = {
            let register = register.clone();
            tokio::spawn(async move { register.pay_card().await })
        };
        for _ in 0..200 {
            if shop.central.count("SELECT COUNT(*) FROM payments").await > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        paying.abort();
        let _ = paying.await;
        // The cashier's session ends with it (the till restarts signed out).
        register.sign_out().await.unwrap();
        register.db().close().await;
        drop(register);

        let register =
            open_register_with(&dir, &shop.proxy.url(), secrets, card("pm_sim_timeout")).await;
        // Nobody signed in yet: the round (on the register's device session) cannot ask Central
        // about the payment, and must not give the cart back.
        let _ = register.sync_now().await;
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM card_sales WHERE status = 'pending'")
                .fetch_one(register.db().pool())
                .await
                .unwrap();
        assert_eq!(pending, 1, "still held");
        register.sign_in("cashier", PASSWORD).await.unwrap();
        let held = register.scan(shop.products[0].barcodes[0].as_str()).await;
        assert!(matches!(held, Err(Error::CardPending(_))), "{held:?}");
        let cash = register.pay_cash(eur("10.00")).await;
        assert!(matches!(cash, Err(Error::CardPending(_))), "{cash:?}");

        settle(&register).await;
        let order_id: String = sqlx::query_scalar("SELECT order_id FROM outbox_orders")
            .fetch_one(register.db().pool())
            .await
            .unwrap();
        let order_id = uuid::Uuid::parse_str(&order_id).unwrap();
        let method: String =
            sqlx::query_scalar("SELECT method FROM outbox_payments WHERE order_id = ?")
                .bind(order_id.to_string())
                .fetch_one(register.db().pool())
                .await
                .unwrap();
        assert_eq!(method, "card");
        let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
        assert_eq!((counts.pending, counts.done), (0, 1));
        assert_ne!(
            register.cart().await.unwrap().id,
            cart.id,
            "the sale completed"
        );
        assert_eq!(
            shop.order(order_id).await.unwrap().status,
            OrderStatus::Paid
        );
        assert_eq!(payments(&shop, order_id).await, (1, 1));
        register.sync_now().await.unwrap();
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM orders").await, 1);
        assert_eq!(shop.stock(&sku("SKU-1")).await, (STOCK - 1, STOCK - 1));
    })
    .await;
}

/// The order id of the register's one sale.
async fn only_sale(register: &Register) -> uuid::Uuid {
    let order_id: String = sqlx::query_scalar("SELECT order_id FROM outbox_orders")
        .fetch_one(register.db().pool())
        .await
        .unwrap();
    uuid::Uuid::parse_str(&order_id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_staff_member_signed_in_before_the_retry_never_charges_the_card_twice() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        // Longer than the till looks (10 × 300 ms) and than the retry after it.
        shop.central
            .sim()
            .set_processing_delay(Duration::from_secs(5));
        let dir = tempfile::tempdir().unwrap();
        let register = card_register(&shop, &dir, "pm_sim_processing").await;
        register
            .scan(shop.products[0].barcodes[0].as_str())
            .await
            .unwrap();
        let err = register.pay_card().await.unwrap_err();
        assert!(matches!(err, Error::CardPending(_)), "{err:?}");

        // The manager takes over the till before the processor has answered: the sync round
        // retries the payment under another staff member's session with the same
        // Idempotency-Key, which must be the same request, not a second charge.
        register.sign_out().await.unwrap();
        register.sign_in("manager", PASSWORD).await.unwrap();
        let _ = register.sync_now().await;

        settle(&register).await;
        for _ in 0..300 {
            let sql = "SELECT COUNT(*) FROM payments WHERE status = 'pending'";
            if shop.central.count(sql).await == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let order_id = only_sale(&register).await;
        assert_eq!(payments(&shop, order_id).await, (1, 1), "one charge");
        assert_eq!(
            shop.order(order_id).await.unwrap().status,
            OrderStatus::Paid
        );
        assert_eq!(shop.stock(&sku("SKU-1")).await, (STOCK - 1, STOCK - 1));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_central_heard_of_the_card_gives_the_cart_back() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = shop.register_with(&dir, "R1", secrets.clone()).await;
        register.sync_now().await.unwrap();
        let cart = register
            .scan(shop.products[0].barcodes[0].as_str())
            .await
            .unwrap();
        // The till's first step, then the process dies before any request.
        kassa_register::card::begin(register.db(), cart.id, "pm_card_visa")
            .await
            .unwrap();
        register.db().close().await;
        drop(register);

        let register = open_register_with(&dir, &shop.proxy.url(), secrets, |_| {}).await;
        register.sign_in("cashier", PASSWORD).await.unwrap();
        settle(&register).await;
        assert_eq!(
            register.cart().await.unwrap(),
            cart,
            "the cart is back, open"
        );
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM orders").await, 0);
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM payments").await, 0);
        // And it can be paid now.
        let receipt = register.pay_card().await.unwrap();
        assert_eq!(payments(&shop, receipt.order_id).await, (1, 1));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_a_card_sale_within_the_limit_is_synced_once_as_card_offline() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = shop
            .register_tweaked(&dir, "R1", secrets, offline_limit(Some("5.00")))
            .await;
        register.sync_now().await.unwrap();
        shop.go_offline_for(&register).await;
        register
            .scan(shop.products[1].barcodes[0].as_str())
            .await
            .unwrap();

        let receipt = register.pay_card().await.unwrap();
        let ReceiptPayment::Card { reference, offline } = receipt.payment().unwrap() else {
            panic!("a card receipt: {receipt:?}");
        };
        assert!(*offline);
        assert_eq!(receipt.mode, SaleMode::Offline);
        assert_eq!(register.sync_status().pending, 1);

        shop.go_online().await;
        crate::helpers::sync_until_drained(&register).await;
        register.sync_now().await.unwrap();
        let order = shop.order(receipt.order_id).await.unwrap();
        assert_eq!(order.status, OrderStatus::Paid);
        assert_eq!(order.source, "offline");
        assert_eq!(order.totals, receipt.totals);
        let id = receipt.order_id;
        assert_eq!(
            shop.central
                .count(&format!(
                    "SELECT COUNT(*) FROM offline_payments WHERE order_id = '{id}'
                     AND method = 'card_offline' AND reference = '{reference}'"
                ))
                .await,
            1
        );
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM orders").await, 1);
        assert_eq!(shop.stock(&sku("SKU-2")).await.0, STOCK - 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_a_card_sale_above_the_limit_or_without_the_policy_is_refused_and_nothing_written()
{
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let (dir_limited, dir_off) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let limited = shop
            .register_tweaked(
                &dir_limited,
                "R1",
                Arc::new(MemoryStore::default()),
                offline_limit(Some("2.00")),
            )
            .await;
        let off = shop
            .register_tweaked(
                &dir_off,
                "R2",
                Arc::new(MemoryStore::default()),
                offline_limit(None),
            )
            .await;
        limited.sync_now().await.unwrap();
        off.sync_now().await.unwrap();
        shop.go_offline_for(&limited).await;
        assert!(off.sync_now().await.is_err());

        for (register, says) in [(&limited, "2.00"), (&off, "no card offline")] {
            let cart = register
                .scan(shop.products[1].barcodes[0].as_str())
                .await
                .unwrap();
            let err = register.pay_card().await.unwrap_err();
            assert!(matches!(err, Error::CardUnavailable(_)), "{err}");
            assert!(err.to_string().contains(says), "{err}");
            assert!(err.to_string().contains("Central"), "{err}");
            assert_eq!(
                register.cart().await.unwrap(),
                cart,
                "the cart is untouched"
            );
            let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
            assert_eq!(counts.pending + counts.done, 0, "nothing written");
            assert_eq!(card_sales(register).await, 0);
            let seq: i64 = sqlx::query_scalar("SELECT receipt_seq FROM identity")
                .fetch_one(register.db().pool())
                .await
                .unwrap();
            assert_eq!(seq, 0, "no receipt number used");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_sale_central_cannot_reserve_is_refused_and_the_cart_stays_open() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let cart = register
            .add_sku(&sku("SKU-1"), u32::try_from(STOCK).unwrap() + 1)
            .await
            .unwrap();

        let err = register.pay_card().await.unwrap_err();
        assert_eq!(err.api_code(), Some("insufficient_stock"), "{err}");
        assert_eq!(
            register.cart().await.unwrap(),
            cart,
            "the cart is still open"
        );
        assert_eq!(card_sales(&register).await, 0);
        let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
        assert_eq!(counts.pending + counts.done, 0);
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM payments").await, 0);
        assert_eq!(shop.stock(&sku("SKU-1")).await, (STOCK, STOCK));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_of_a_card_sale_refunded_at_the_till_goes_back_to_the_card() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = card_register(&shop, &dir, "pm_card_visa").await;
        let p = &shop.products;
        register.scan(p[0].barcodes[0].as_str()).await.unwrap();
        register.scan(p[1].barcodes[0].as_str()).await.unwrap();
        let sale = register.pay_card().await.unwrap();
        let ReceiptPayment::Card { reference, .. } = sale.payment().unwrap() else {
            panic!("a card receipt: {sale:?}");
        };

        let approval = register.approve("manager", PASSWORD).await.unwrap();
        let refund = register
            .refund(sale.order_id, vec![(p[1].sku.clone(), 1)], approval.id)
            .await
            .unwrap();
        assert_eq!(refund.amount, eur("2.20"));
        assert_eq!(
            (refund.card, refund.cash),
            (eur("2.20"), eur("0.00")),
            "the money goes back to the card: {refund:?}"
        );
        let refunded: Vec<_> = shop
            .central
            .sim()
            .emitted_events()
            .into_iter()
            .filter(|e| e.r#type == "charge.refunded")
            .map(|e| e.data.object)
            .collect();
        assert_eq!(
            refunded.len(),
            1,
            "the processor refunded once: {refunded:?}"
        );
        assert_eq!(refunded[0]["payment_intent"], reference.as_str());
        assert_eq!(refunded[0]["amount_refunded"], 220);
        let order = shop.order(sale.order_id).await.unwrap();
        assert_eq!(order.status, OrderStatus::Paid, "partly refunded");
        assert_eq!(order.refunded, eur("2.20"));
    })
    .await;
}

/// Whether Central holds a succeeded payment for `order_id` (the webhook has landed).
async fn webhook_landed(shop: &Shop, order_id: uuid::Uuid) -> bool {
    payments(shop, order_id).await.1 == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_the_processor_confirms_while_the_till_waits_completes_the_sale() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        // Central answers 202 pending; the webhook comes well within the till's 3 s of looking.
        shop.central
            .sim()
            .set_processing_delay(Duration::from_millis(700));
        let dir = tempfile::tempdir().unwrap();
        let register = card_register(&shop, &dir, "pm_sim_processing").await;
        sells_by_card_once(&shop, &register).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_the_processor_confirms_after_the_till_gave_up_is_settled_once_by_the_sync() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        // Longer than the till looks (10 × 300 ms) and than one sync round after it.
        shop.central
            .sim()
            .set_processing_delay(Duration::from_secs(8));
        let dir = tempfile::tempdir().unwrap();
        let register = card_register(&shop, &dir, "pm_sim_processing").await;
        let cart = register
            .scan(shop.products[0].barcodes[0].as_str())
            .await
            .unwrap();

        let err = register.pay_card().await.unwrap_err();
        assert!(matches!(err, Error::CardPending(_)), "{err:?}");
        assert!(err.to_string().contains("do not charge again"), "{err}");
        let order_id: String = sqlx::query_scalar("SELECT order_id FROM card_sales")
            .fetch_one(register.db().pool())
            .await
            .unwrap();
        let order_id = uuid::Uuid::parse_str(&order_id).unwrap();
        assert!(
            !webhook_landed(&shop, order_id).await,
            "the webhook is still to come"
        );

        // The cart is held: no edit, no second payment, by card or cash.
        let held = register.scan(shop.products[0].barcodes[0].as_str()).await;
        assert!(matches!(held, Err(Error::CardPending(_))), "{held:?}");
        let again = register.pay_card().await;
        assert!(matches!(again, Err(Error::CardPending(_))), "{again:?}");
        let cash = register.pay_cash(eur("10.00")).await;
        assert!(matches!(cash, Err(Error::CardPending(_))), "{cash:?}");
        // A round before the webhook leaves it pending.
        let _ = register.sync_now().await;
        if !webhook_landed(&shop, order_id).await {
            assert_eq!(card_sales(&register).await, 1, "still held");
            assert_eq!(register.cart().await.unwrap().id, cart.id);
        }

        for _ in 0..300 {
            if webhook_landed(&shop, order_id).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(webhook_landed(&shop, order_id).await, "the webhook came");
        settle(&register).await;

        assert_ne!(
            register.cart().await.unwrap().id,
            cart.id,
            "the sale completed"
        );
        let method: String =
            sqlx::query_scalar("SELECT method FROM outbox_payments WHERE order_id = ?")
                .bind(order_id.to_string())
                .fetch_one(register.db().pool())
                .await
                .unwrap();
        assert_eq!(method, "card");
        register.sync_now().await.unwrap();
        register.sync_now().await.unwrap();
        let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
        assert_eq!(
            (counts.pending, counts.done),
            (0, 1),
            "one sale in the outbox"
        );
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM orders").await, 1);
        assert_eq!(payments(&shop, order_id).await, (1, 1));
        assert_eq!(
            shop.order(order_id).await.unwrap().status,
            OrderStatus::Paid
        );
        assert_eq!(shop.stock(&sku("SKU-1")).await, (STOCK - 1, STOCK - 1));
        let receipts = register.recent_sales(10).await.unwrap();
        assert_eq!(receipts.len(), 1);
        assert!(matches!(
            receipts[0].payment().unwrap(),
            ReceiptPayment::Card { offline: false, .. }
        ));
    })
    .await;
}
