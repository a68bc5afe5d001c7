//! Crash safety: a sale interrupted at any point (its task aborted, the store's connections
//! dropped and reopened) is either wholly in the outbox or absent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa_domain::OrderStatus;
use kassa_register::sale::{Receipt, SaleMode};
use kassa_register::secrets::MemoryStore;
use kassa_register::Register;
use rand::Rng;

use crate::helpers::{eur, open_register, sku, sync_until_drained, Shop, PASSWORD, STOCK};
use crate::unpaid::once_at_central;

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
        spin(rng.gen_range(0..ABORT_AFTER_MAX_US)).await;
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

/// Tokio's timer has a 1 ms grain: spin (yielding) for a finer random delay.
async fn spin(us: u64) {
    let deadline = Instant::now() + Duration::from_micros(us);
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
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

/// Online sales per cut-and-crash loop: each delivery is cut once, so this many cuts.
const ONLINE_ITERATIONS: usize = 30;
/// A sync round pushing one online sale (create, pay, pulls) takes a few ms to some tens here:
/// cuts spread over this window land before the order, between order and payment, and after.
const CUT_AFTER_MAX_US: u64 = 25_000;

/// What else befalls the till between cuts.
#[derive(Clone, Copy)]
struct Chaos {
    /// Central's reservations expire (its sweeper cancels the unpaid orders) and some rounds
    /// run with nobody signed in: the sale goes the offline way with its order left at Central.
    unpaid_orders_left_behind: bool,
}

/// Sells online, then cuts the round that delivers the sale (the link cut, the round aborted,
/// or both) as soon as Central holds the order, or at a random moment; every fifth iteration another staff member takes over the till,
/// every tenth the register restarts. Returns the register in use and every receipt.
async fn online_crash_loop(
    shop: &Shop,
    dir: &tempfile::TempDir,
    secrets: &Arc<MemoryStore>,
    mut register: Register,
    chaos: Chaos,
) -> (Register, Vec<Receipt>) {
    let barcode = shop.products[0].barcodes[0].as_str().to_owned();
    let mut rng = rand::thread_rng();
    let mut receipts = Vec::with_capacity(ONLINE_ITERATIONS);
    // Where the cuts landed: before Central's order, between order and payment, after.
    let mut cuts = [0; 3];
    for i in 0..ONLINE_ITERATIONS {
        if !register.sync_status().online {
            // A good round first, so this sale is an online one (it delivers earlier ones too).
            let _ = register.sync_now().await;
        }
        register.scan(&barcode).await.unwrap();
        let receipt = register.pay_cash(eur("5.00")).await.unwrap();
        assert_eq!(receipt.mode, SaleMode::Online, "iteration {i}");
        receipts.push(receipt);
        let syncing = {
            let register = register.clone();
            tokio::spawn(async move { register.sync_now().await })
        };
        if i % 2 == 0 {
            let order_id = receipts[i].order_id;
            until_central_holds(shop, order_id, &syncing).await;
        } else {
            spin(rng.gen_range(0..CUT_AFTER_MAX_US)).await;
        }
        if i % 3 != 1 {
            shop.proxy.cut();
        }
        if i % 3 != 0 {
            syncing.abort();
        }
        let _ = syncing.await;
        shop.proxy.restore();
        let cut_at = match shop.order(receipts[i].order_id).await.map(|o| o.status) {
            None => 0,
            Some(OrderStatus::Reserved) => 1,
            Some(_) => 2,
        };
        cuts[cut_at] += 1;
        if chaos.unpaid_orders_left_behind && i % 4 == 3 {
            expire_reservations(shop).await;
        }
        if i % 5 == 4 {
            register.sign_out().await.unwrap();
            if chaos.unpaid_orders_left_behind {
                let _ = register.sync_now().await;
            }
            let staff = if i % 10 == 4 { "manager" } else { "cashier" };
            register.sign_in(staff, PASSWORD).await.unwrap();
        }
        if i % 10 == 9 {
            register.db().close().await;
            register = open_register(dir, &shop.proxy.url(), secrets.clone()).await;
            register.sign_in("cashier", PASSWORD).await.unwrap();
        }
    }
    eprintln!("cuts before the order, between order and payment, after: {cuts:?}");
    (register, receipts)
}

/// Waits until Central holds the order (the cut then lands between order and payment, mostly),
/// or the round ended first; bounded.
async fn until_central_holds(
    shop: &Shop,
    order_id: uuid::Uuid,
    syncing: &tokio::task::JoinHandle<kassa_register::Result<kassa_register::sync::RoundReport>>,
) {
    let sql = format!("SELECT COUNT(*) FROM orders WHERE id = '{order_id}'");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !syncing.is_finished() {
        if shop.central.count(&sql).await > 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Every reservation at Central expires now; the sweeper cancels the orders still unpaid.
async fn expire_reservations(shop: &Shop) {
    sqlx::query("UPDATE reservations SET expires_at = 0 WHERE status = 'active'")
        .execute(shop.central.state().db.pool())
        .await
        .unwrap();
    kassa_central::stock::sweep_expired(shop.central.state())
        .await
        .unwrap();
}

/// Runs the online loop, drains, and checks Central: every sale PAID once, nothing else.
async fn online_sales_survive(chaos: Chaos) {
    let shop = Shop::open(1).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = Arc::new(MemoryStore::default());
    let register = shop.register_with(&dir, "R1", secrets.clone()).await;
    register.sync_now().await.unwrap();

    let (register, receipts) = online_crash_loop(&shop, &dir, &secrets, register, chaos).await;
    sync_until_drained(&register).await;
    for receipt in &receipts {
        once_at_central(&shop, receipt).await;
    }
    let sold = i64::try_from(receipts.len()).unwrap();
    assert_eq!(
        shop.central.count("SELECT COUNT(*) FROM orders").await,
        sold
    );
    assert_eq!(
        shop.stock(&sku("SKU-1")).await,
        (STOCK - sold, STOCK - sold)
    );
    let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
    assert_eq!((counts.done, counts.rejected), (sold, 0), "{counts:?}");
    check_outbox(&register).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_sales_cut_between_order_and_payment_reach_central_once() {
    crate::helpers::bounded(online_sales_survive(Chaos {
        unpaid_orders_left_behind: false,
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_sales_whose_orders_expired_or_waited_for_staff_reach_central_once() {
    crate::helpers::bounded(online_sales_survive(Chaos {
        unpaid_orders_left_behind: true,
    }))
    .await;
}
