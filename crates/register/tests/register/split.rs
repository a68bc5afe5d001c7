//! Split tender: one sale paid by several methods (cash and card, two cards), the remaining
//! due after each part; card parts through Central and the processor simulator online, under
//! the offline card policy offline; every part at Central exactly once, none lost by a restart,
//! a decline or a voided sale.

use std::sync::Arc;
use std::time::Duration;

use kassa_domain::{OrderStatus, ReceiptPayment, SaleMode};
use kassa_register::secrets::MemoryStore;
use kassa_register::split::Step;
use kassa_register::{Error, Register, RegisterConfig};

use crate::helpers::{eur, open_register_with, sku, sync_until_drained, Shop, PASSWORD, STOCK};

fn card_with(token: &'static str, limit: Option<&'static str>) -> impl FnOnce(&mut RegisterConfig) {
    move |c| {
        c.card_payment_method = token.into();
        c.limits.offline_card_limit = limit.map(eur);
    }
}

async fn split_register(
    shop: &Shop,
    dir: &tempfile::TempDir,
    secrets: Arc<MemoryStore>,
    token: &'static str,
    limit: Option<&'static str>,
) -> Register {
    let register = shop
        .register_tweaked(dir, "R1", secrets, card_with(token, limit))
        .await;
    register.sync_now().await.unwrap();
    register
}

/// Scans SKU-1 (1.10) and SKU-2 (2.20): a sale of 3.30.
async fn scan_two(shop: &Shop, register: &Register) {
    register
        .scan(shop.products[0].barcodes[0].as_str())
        .await
        .unwrap();
    register
        .scan(shop.products[1].barcodes[0].as_str())
        .await
        .unwrap();
}

fn due(step: &Step) -> kassa_domain::Money {
    match step {
        Step::Due(split) => split.due,
        Step::Done(receipt) => panic!("the sale completed early: {receipt:?}"),
    }
}

fn done(step: Step) -> kassa_register::sale::Receipt {
    match step {
        Step::Done(receipt) => *receipt,
        Step::Due(split) => panic!("still due: {split:?}"),
    }
}

/// Central's payments of an order: (method, status, amount minor), oldest first, the
/// online ones and the offline ones.
async fn central_payments(shop: &Shop, order_id: uuid::Uuid) -> Vec<(String, String, i64)> {
    let pool = shop.central.state().db.pool();
    let mut online: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT method, status, amount_minor FROM payments WHERE order_id = ?
         ORDER BY created_at, id",
    )
    .bind(order_id.to_string())
    .fetch_all(pool)
    .await
    .unwrap();
    let offline: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT method, 'offline', amount_minor FROM offline_payments WHERE order_id = ?
         ORDER BY seq",
    )
    .bind(order_id.to_string())
    .fetch_all(pool)
    .await
    .unwrap();
    online.extend(offline);
    online
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_then_cash_shows_the_due_at_each_step_and_central_gets_both_payments_once() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = split_register(&shop, &dir, secrets, "pm_card_visa", None).await;
        scan_two(&shop, &register).await;

        let step = register.pay_part_card(eur("1.00")).await.unwrap();
        assert_eq!(due(&step), eur("2.30"));
        let split = register.split().await.unwrap().unwrap();
        assert_eq!((split.paid, split.due), (eur("1.00"), eur("2.30")));
        // The cart is held: no edit, no single tender, no card part above the due.
        let edit = register.scan(shop.products[0].barcodes[0].as_str()).await;
        assert!(edit.unwrap_err().to_string().contains("2.30 EUR due"));
        assert!(register.pay_cash(eur("10.00")).await.is_err());
        let over = register.pay_part_card(eur("2.31")).await.unwrap_err();
        assert!(
            over.to_string().contains("only cash gives change"),
            "{over}"
        );

        let receipt = done(register.pay_part_cash(eur("5.00")).await.unwrap());
        assert_eq!(receipt.payments.len(), 2);
        assert!(matches!(
            &receipt.payments[0].payment,
            ReceiptPayment::Card { offline: false, reference } if reference.starts_with("pi_")
        ));
        assert_eq!(receipt.payments[0].amount, eur("1.00"));
        assert_eq!(receipt.payments[1].amount, eur("2.30"));
        assert_eq!(
            receipt.payments[1].payment,
            ReceiptPayment::Cash {
                tendered: eur("5.00"),
                change: eur("2.70")
            }
        );
        assert_eq!(receipt.change(), Some(eur("2.70")));
        assert_eq!(receipt.mode, SaleMode::Online);
        assert!(register.split().await.unwrap().is_none(), "a fresh cart");

        sync_until_drained(&register).await;
        register.sync_now().await.unwrap();
        let order = shop.order(receipt.order_id).await.unwrap();
        assert_eq!(order.status, OrderStatus::Paid);
        assert_eq!(order.paid, eur("3.30"));
        assert_eq!(
            central_payments(&shop, receipt.order_id).await,
            [
                ("card".into(), "succeeded".into(), 100),
                ("cash".into(), "succeeded".into(), 230)
            ]
        );
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM orders").await, 1);
        assert_eq!(shop.stock(&sku("SKU-1")).await, (STOCK - 1, STOCK - 1));

        // The X report counts each part under its method; the drawer expects only the cash
        // part, net of change.
        let x = register.x_report().await.unwrap();
        let methods: Vec<_> = x
            .sales
            .by_method
            .iter()
            .map(|m| (m.method.as_str(), m.gross))
            .collect();
        assert_eq!(methods, [("card", eur("1.00")), ("cash", eur("2.30"))]);
        assert_eq!(x.cash.cash_sales, eur("2.30"));
        assert_eq!(x.sales.gross, eur("3.30"));
        // The receipt read back (reprint, returns) lists both payments.
        let recent = register.recent_sales(1).await.unwrap();
        assert_eq!(recent[0].payments, receipt.payments);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cards_pay_a_sale_which_central_has_paid_at_once() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = split_register(&shop, &dir, secrets, "pm_card_visa", None).await;
        scan_two(&shop, &register).await;

        assert_eq!(
            due(&register.pay_part_card(eur("1.30")).await.unwrap()),
            eur("2.00")
        );
        let receipt = done(register.pay_part_card(eur("2.00")).await.unwrap());
        assert_eq!(receipt.payments.len(), 2);
        assert_eq!(receipt.tendered(), None, "no cash");
        let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
        assert_eq!((counts.pending, counts.done), (0, 1), "Central has it paid");
        register.sync_now().await.unwrap();
        assert_eq!(
            central_payments(&shop, receipt.order_id).await,
            [
                ("card".into(), "succeeded".into(), 130),
                ("card".into(), "succeeded".into(), 200)
            ]
        );
        assert_eq!(
            shop.order(receipt.order_id).await.unwrap().status,
            OrderStatus::Paid
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_the_card_parts_follow_the_offline_card_policy_and_central_gets_every_part_once() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = split_register(&shop, &dir, secrets, "pm_card_visa", Some("2.00")).await;
        shop.go_offline_for(&register).await;
        scan_two(&shop, &register).await;

        let above = register.pay_part_card(eur("2.50")).await.unwrap_err();
        assert!(matches!(above, Error::CardUnavailable(_)), "{above:?}");
        assert!(register.split().await.unwrap().is_none(), "nothing written");
        assert_eq!(
            due(&register.pay_part_card(eur("1.50")).await.unwrap()),
            eur("1.80")
        );
        // The limit holds for the sale's offline card parts together.
        let together = register.pay_part_card(eur("0.60")).await.unwrap_err();
        assert!(
            matches!(together, Error::CardUnavailable(_)),
            "{together:?}"
        );
        assert_eq!(
            due(&register.pay_part_card(eur("0.50")).await.unwrap()),
            eur("1.30")
        );
        let receipt = done(register.pay_part_cash(eur("1.30")).await.unwrap());
        assert_eq!(receipt.mode, SaleMode::Offline);
        assert_eq!(receipt.payments.len(), 3);
        assert_eq!(receipt.change(), Some(eur("0.00")));

        shop.go_online().await;
        sync_until_drained(&register).await;
        register.sync_now().await.unwrap();
        let order = shop.order(receipt.order_id).await.unwrap();
        assert_eq!(order.status, OrderStatus::Paid);
        assert_eq!(
            central_payments(&shop, receipt.order_id).await,
            [
                ("card_offline".into(), "offline".into(), 150),
                ("card_offline".into(), "offline".into(), 50),
                ("cash".into(), "offline".into(), 130)
            ]
        );
        let x = register.x_report().await.unwrap();
        assert_eq!(x.cash.cash_sales, eur("1.30"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_split_keeps_the_paid_parts_and_the_sale_completes_once() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = split_register(&shop, &dir, secrets.clone(), "pm_card_visa", None).await;
        scan_two(&shop, &register).await;
        register.pay_part_cash(eur("0.30")).await.unwrap();
        register.pay_part_card(eur("1.00")).await.unwrap();

        // The till dies between two parts.
        register.sign_out().await.unwrap();
        register.db().close().await;
        drop(register);
        let register = open_register_with(
            &dir,
            &shop.proxy.url(),
            secrets,
            card_with("pm_card_visa", None),
        )
        .await;
        register.sync_now().await.unwrap();
        register.sign_in("cashier", PASSWORD).await.unwrap();

        let split = register.split().await.unwrap().expect("the split survived");
        assert_eq!((split.paid, split.due), (eur("1.30"), eur("2.00")));
        assert_eq!(split.parts.len(), 2);
        let receipt = done(register.pay_part_cash(eur("2.00")).await.unwrap());
        assert_eq!(receipt.order_id, split.order_id);
        sync_until_drained(&register).await;
        register.sync_now().await.unwrap();
        assert_eq!(
            central_payments(&shop, receipt.order_id).await,
            [
                ("card".into(), "succeeded".into(), 100),
                ("cash".into(), "succeeded".into(), 230)
            ]
        );
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM orders").await, 1);
        let x = register.x_report().await.unwrap();
        assert_eq!(x.cash.cash_sales, eur("2.30"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_part_keeps_the_parts_paid_before_it() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = split_register(&shop, &dir, secrets, "pm_card_chargeDeclined", None).await;
        scan_two(&shop, &register).await;
        register.pay_part_cash(eur("1.00")).await.unwrap();

        let err = register.pay_part_card(eur("2.30")).await.unwrap_err();
        assert!(err.to_string().contains("declined"), "{err}");
        let split = register.split().await.unwrap().unwrap();
        assert_eq!((split.paid, split.due), (eur("1.00"), eur("2.30")));
        assert_eq!(split.parts.len(), 1);
        let receipt = done(register.pay_part_cash(eur("2.30")).await.unwrap());
        sync_until_drained(&register).await;
        let order = shop.order(receipt.order_id).await.unwrap();
        assert_eq!(order.status, OrderStatus::Paid);
        assert_eq!(order.paid, eur("3.30"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voiding_a_split_gives_every_part_back_and_central_refunds_the_card_part() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = split_register(&shop, &dir, secrets, "pm_card_visa", None).await;
        scan_two(&shop, &register).await;
        register.pay_part_cash(eur("1.00")).await.unwrap();
        register.pay_part_card(eur("1.50")).await.unwrap();
        let order_id = register.split().await.unwrap().unwrap().order_id;

        let voided = register.void_split().await.unwrap();
        assert_eq!(voided.paid, eur("2.50"));
        assert!(register.split().await.unwrap().is_none());
        // The cart is the customer's again: editable, and nothing was sold.
        let cart = register
            .scan(shop.products[0].barcodes[0].as_str())
            .await
            .unwrap();
        assert_eq!(cart.lines[0].qty, 2);
        let order = shop.order(order_id).await.unwrap();
        assert_eq!(order.status, OrderStatus::Cancelled);
        let refunded = shop
            .central
            .count(&format!(
                "SELECT COALESCE(SUM(card_minor), 0) FROM refunds
                 WHERE order_id = '{order_id}' AND status = 'succeeded'"
            ))
            .await;
        assert_eq!(refunded, 150, "the card part went back to the card");
        let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
        assert_eq!((counts.pending, counts.done), (0, 0));
        let x = register.x_report().await.unwrap();
        assert_eq!(
            x.cash.cash_sales,
            eur("0.00"),
            "the cash part was handed back"
        );
        assert_eq!(shop.stock(&sku("SKU-1")).await, (STOCK, STOCK));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_part_the_processor_confirms_after_the_till_gave_up_is_settled_by_the_sync() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        shop.central
            .sim()
            .set_processing_delay(Duration::from_secs(5));
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = split_register(&shop, &dir, secrets, "pm_sim_processing", None).await;
        scan_two(&shop, &register).await;
        register.pay_part_cash(eur("2.30")).await.unwrap();

        let err = register.pay_part_card(eur("1.00")).await.unwrap_err();
        assert!(matches!(err, Error::CardPending(_)), "{err:?}");
        let held = register.pay_part_cash(eur("1.00")).await;
        assert!(matches!(held, Err(Error::CardPending(_))), "{held:?}");

        let mut receipt = None;
        for _ in 0..100 {
            let _ = register.sync_now().await;
            if register.split().await.unwrap().is_none() {
                receipt = register.recent_sales(1).await.unwrap().pop();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let receipt = receipt.expect("the pending part settled and completed the sale");
        assert_eq!(receipt.payments.len(), 2);
        sync_until_drained(&register).await;
        let order = shop.order(receipt.order_id).await.unwrap();
        assert_eq!(order.status, OrderStatus::Paid);
        assert_eq!(
            central_payments(&shop, receipt.order_id).await,
            [
                ("card".into(), "succeeded".into(), 100),
                ("cash".into(), "succeeded".into(), 230)
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_receipt_lists_every_part_and_the_drawer_opens_for_the_cash() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let emulator = kassa_printer_emulator::Emulator::start().await.unwrap();
        let config = kassa_register::printer::PrinterConfig::new(emulator.url().parse().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let register = shop
            .register_tweaked(&dir, "R1", Arc::new(MemoryStore::default()), |c| {
                c.card_payment_method = "pm_card_visa".into();
                c.printer = Some(config);
            })
            .await;
        register.sync_now().await.unwrap();
        scan_two(&shop, &register).await;
        register.pay_part_card(eur("1.30")).await.unwrap();
        let receipt = done(register.pay_part_cash(eur("5.00")).await.unwrap());
        let ReceiptPayment::Card { reference, .. } = &receipt.payments[0].payment else {
            panic!("a card part first: {receipt:?}");
        };

        let printed = emulator.wait_for_cuts(1, Duration::from_secs(15)).await;
        let text = printed.text();
        let row = |label: &str, amount: &str| {
            printed
                .lines()
                .iter()
                .any(|l| l.starts_with(label) && l.trim_end().ends_with(amount))
        };
        assert!(row("Card", "1.30"), "{text}");
        assert!(printed.has_line_with(reference), "{text}");
        assert!(row("Cash", "5.00"), "{text}");
        assert!(row("Change", "3.00"), "{text}");
        assert_eq!(
            printed.drawer_pulses(),
            1,
            "the drawer opens for the cash part"
        );
    })
    .await;
}
