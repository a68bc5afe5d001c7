//! Crash safety: a sale interrupted at any point (its task aborted, the store's connections
//! dropped and reopened) is either wholly in the outbox or absent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa_register::secrets::MemoryStore;
use kassa_register::Register;
use rand::Rng;

use crate::helpers::{eur, open_register, sync_until_drained, Shop};

const ITERATIONS: usize = 200;
/// A sale takes a few ms here; aborts spread over that window hit every step of it.
const ABORT_AFTER_MAX_US: u64 = 4000;

/// Runs `ITERATIONS` sales, each aborted after a random delay; one in ten also closes the
/// store and reopens it (the register process restarting). Returns the register in use.
async fn crash_loop(
    shop: &Shop,
    dir: &tempfile::TempDir,
    secrets: &Arc<MemoryStore>,
    mut register: Register,
) -> Register {
    let barcode = shop.products[0].barcodes[0].as_str().to_owned();
    let mut rng = rand::thread_rng();
    for i in 0..ITERATIONS {
        let cart = register
            .cart()
            .await
            .unwrap_or_else(|e| panic!("iteration {i}: {e}"));
        if cart.lines.is_empty() {
            register.scan(&barcode).await.unwrap();
        }
        let selling = {
            let register = register.clone();
            tokio::spawn(async move { register.pay_cash(eur("50.00")).await })
        };
        // Tokio's timer has a 1 ms grain: spin (yielding) for a finer random delay.
        let deadline = Instant::now() + Duration::from_micros(rng.gen_range(0..ABORT_AFTER_MAX_US));
        while Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        selling.abort();
        let _ = selling.await;
        if i % 10 == 9 {
            register.db().close().await;
            register = open_register(dir, &shop.proxy.url(), secrets.clone()).await;
        }
        check_outbox(&register).await;
    }
    register
}

/// Every outbox entry is whole; every completed cart has its entry; receipt numbers are
/// gap-free (a rolled-back sale gives its number back). One statement, so one snapshot: a sale
/// committing in the background cannot land between two counts.
async fn check_outbox(register: &Register) {
    let (entries, broken, orphan_carts, receipt_seq): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT COUNT(*) FROM outbox_orders),
           (SELECT COUNT(*) FROM outbox_orders o WHERE
                NOT EXISTS (SELECT 1 FROM outbox_lines l WHERE l.order_id = o.order_id)
             OR (SELECT COUNT(*) FROM outbox_payments p WHERE p.order_id = o.order_id) != 1
             OR o.total_minor != (SELECT SUM(l.qty * l.unit_price_minor - l.discount_minor)
                                  FROM outbox_lines l WHERE l.order_id = o.order_id)
             OR NOT EXISTS (SELECT 1 FROM carts c WHERE c.id = o.cart_id AND c.status = 'completed')),
           (SELECT COUNT(*) FROM carts c WHERE c.status = 'completed'
             AND NOT EXISTS (SELECT 1 FROM outbox_orders o WHERE o.cart_id = c.id)),
           (SELECT receipt_seq FROM identity)",
    )
    .fetch_one(register.db().pool())
    .await
    .unwrap();
    assert_eq!(broken, 0, "every outbox entry is whole");
    assert_eq!(orphan_carts, 0, "no completed cart without its sale");
    assert_eq!(receipt_seq, entries, "receipt numbers are gap-free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_interrupted_anywhere_is_wholly_in_the_outbox_or_absent() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = shop.register_with(&dir, "R1", secrets.clone()).await;
        register.sync_now().await.unwrap();
        shop.go_offline().await;

        let register = crash_loop(&shop, &dir, &secrets, register).await;
        let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
        assert!(counts.pending > 0, "some sales got through");
        assert!(
            counts.pending < ITERATIONS as i64,
            "some sales were interrupted"
        );
        eprintln!(
            "{} of {ITERATIONS} interrupted sales committed",
            counts.pending
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_loop_central_has_exactly_the_registers_sales() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = shop.register_with(&dir, "R1", secrets.clone()).await;
        register.sync_now().await.unwrap();
        shop.go_offline_for(&register).await;
        let register = crash_loop(&shop, &dir, &secrets, register).await;
        let made = kassa_register::outbox::counts(register.db())
            .await
            .unwrap()
            .pending;

        shop.go_online().await;
        // A reopened register has no session in memory: the cashier signs in again.
        register
            .sign_in("cashier", crate::helpers::PASSWORD)
            .await
            .unwrap();
        sync_until_drained(&register).await;
        assert_eq!(
            shop.central.count("SELECT COUNT(*) FROM orders").await,
            made
        );
    })
    .await;
}
