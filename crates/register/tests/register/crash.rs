//! Crash safety: a sale interrupted at any point (its task aborted, the store's connections
//! dropped and reopened) is either wholly in the outbox or absent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa_domain::OrderStatus;
use kassa_register::sale::SaleMode;
use kassa_register::secrets::MemoryStore;
use kassa_register::Register;
use rand::Rng;

use crate::helpers::{eur, open_register, sku, sync_until_drained, Shop, PASSWORD, STOCK};
use crate::unpaid::payments_at_central;

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
/// The same for a card sale, whose till creates the order and then waits for Central and the
/// processor: cuts spread over this window also land after the payment reached Central (the
/// answer lost: the sync settles the sale).
const CARD_CUT_AFTER_MAX_US: u64 = 150_000;
/// Every this many iterations the sale is by card (through Central and the processor at once)
/// instead of cash (through the outbox).
const CARD_EVERY: usize = 3;
/// Cuts that must land between Central's order and its payment (cash and card sales
/// together), so the loop cannot pass without testing what it is about. Half the iterations aim
/// there (the cut waits until Central holds the order); most of those land.
const CUTS_BETWEEN_MIN: usize = ONLINE_ITERATIONS / 5;
/// Of them, card sales at least.
const CARD_CUTS_BETWEEN_MIN: usize = 2;
/// Tries of one card sale whose cut gave the cart back (the cashier charges again).
const CARD_TRIES_MAX: usize = 5;

/// What else befalls the till between cuts.
#[derive(Clone, Copy)]
struct Chaos {
    /// Central's reservations expire (its sweeper cancels the unpaid orders) and some rounds
    /// run with nobody signed in: the sale goes the offline way with its order left at Central.
    unpaid_orders_left_behind: bool,
}

/// One sale the till completed: its order, what it cost, and whether a card paid it.
struct Sold {
    order_id: uuid::Uuid,
    total: kassa_domain::Money,
    card: bool,
}

/// Where the cuts landed, per tender: before Central's order, between order and payment,
/// after.
#[derive(Debug, Default)]
struct Cuts {
    cash: [usize; 3],
    card: [usize; 3],
    /// Card sales the cut gave back (the cart open again), charged again.
    card_charged_again: usize,
}

/// Sells online, cash or (every [`CARD_EVERY`]th) card, and cuts the work that delivers the
/// sale (the sync round for cash, the till's own card payment for card; the link cut, the task
/// aborted, or both) as soon as Central holds the order, or at a random moment; every fifth
/// iteration another staff member takes over the till, every tenth the register restarts. A
/// card sale the cut gave back (the cart open again, Central's order cancelled) is charged
/// again. Returns the register in use, every sale and where the cuts landed.
async fn online_crash_loop(
    shop: &Shop,
    dir: &tempfile::TempDir,
    secrets: &Arc<MemoryStore>,
    mut register: Register,
    chaos: Chaos,
) -> (Register, Vec<Sold>, Cuts) {
    let barcode = shop.products[0].barcodes[0].as_str().to_owned();
    let mut rng = rand::thread_rng();
    let mut sold = Vec::with_capacity(ONLINE_ITERATIONS);
    let mut cuts = Cuts::default();
    for i in 0..ONLINE_ITERATIONS {
        until_online(&register).await;
        let cart = register.scan(&barcode).await.unwrap();
        let card = i % CARD_EVERY == CARD_EVERY - 1;
        let (order_id, cash_total, work) = if card {
            let paying = {
                let register = register.clone();
                tokio::spawn(async move { register.pay_card().await.map(|_| ()) })
            };
            (None, None, paying)
        } else {
            let receipt = register.pay_cash(eur("5.00")).await.unwrap();
            assert_eq!(receipt.mode, SaleMode::Online, "iteration {i}");
            let syncing = {
                let register = register.clone();
                tokio::spawn(async move { register.sync_now().await.map(|_| ()) })
            };
            (Some(receipt.order_id), Some(receipt.totals.total), syncing)
        };
        let order_id = if i % 2 == 0 {
            until_central_holds(shop, &register, order_id, &work).await
        } else {
            let window = if card {
                CARD_CUT_AFTER_MAX_US
            } else {
                CUT_AFTER_MAX_US
            };
            spin(rng.gen_range(0..window)).await;
            order_id
        };
        if i % 3 != 1 {
            shop.proxy.cut();
        }
        if i % 3 != 0 {
            work.abort();
        }
        // A card sale the till finished before the cut is past it.
        let finished = matches!(work.await, Ok(Ok(())));
        // Where the cut landed, from Central's books: the order the till made (a card sale's
        // from its record, if the till got that far).
        let order_id = match order_id {
            Some(id) => Some(id),
            None => card_order(&register).await,
        };
        let at_central = match order_id {
            Some(id) => shop.order(id).await.map(|o| o.status),
            None => None,
        };
        let cut_at = match at_central {
            _ if card && finished => 2,
            None => 0,
            Some(OrderStatus::Reserved) => 1,
            Some(_) => 2,
        };
        if card {
            cuts.card[cut_at] += 1;
        } else {
            cuts.cash[cut_at] += 1;
        }
        shop.proxy.restore();
        if card {
            let (sale, again) = finish_card_sale(&register, cart.id, i).await;
            cuts.card_charged_again += usize::from(again);
            sold.push(sale);
        } else {
            sold.push(Sold {
                order_id: order_id.unwrap(),
                total: cash_total.unwrap(),
                card: false,
            });
        }
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
    (register, sold, cuts)
}

/// Sync rounds until Central answers (bounded): a card sale goes through Central only then.
async fn until_online(register: &Register) {
    for _ in 0..100 {
        if register.sync_status().online {
            return;
        }
        let _ = register.sync_now().await;
        if register.sync_status().online {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the register did not get back online: {:?}",
        register.sync_status()
    );
}

/// The order of the card sale the till is paying (its record), if it wrote one.
async fn card_order(register: &Register) -> Option<uuid::Uuid> {
    let id: Option<String> = sqlx::query_scalar("SELECT order_id FROM card_sales LIMIT 1")
        .fetch_optional(register.db().pool())
        .await
        .unwrap();
    id.map(|id| id.parse().unwrap())
}

/// Settles the card sale of cart `cart_id` after its cut: sync rounds settle the till's record
/// (the sale completes if Central took the payment, else the cart comes back and Central's
/// order is cancelled); a cart that came back is charged again. Returns the sale and whether
/// it was charged again.
async fn finish_card_sale(register: &Register, cart_id: uuid::Uuid, i: usize) -> (Sold, bool) {
    for try_no in 0..CARD_TRIES_MAX {
        settle_cards(register).await;
        if let Some(sale) = completed_sale(register, cart_id).await {
            return (sale, try_no > 0);
        }
        assert_eq!(
            register.cart().await.unwrap().id,
            cart_id,
            "iteration {i}: the card sale's cart is back"
        );
        until_online(register).await;
        match register.pay_card().await {
            Ok(receipt) => {
                let sale = Sold {
                    order_id: receipt.order_id,
                    total: receipt.totals.total,
                    card: true,
                };
                return (sale, true);
            }
            Err(err) => eprintln!("iteration {i}: charging again: {err}"),
        }
    }
    panic!("iteration {i}: the card sale did not complete in {CARD_TRIES_MAX} tries");
}

/// Sync rounds until the till holds no card payment to settle (bounded: 10 s).
async fn settle_cards(register: &Register) {
    for _ in 0..200 {
        let _ = register.sync_now().await;
        if card_order(register).await.is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("card payments did not settle: {:?}", register.sync_status());
}

/// The sale cart `cart_id` became, if it completed: its outbox entry.
async fn completed_sale(register: &Register, cart_id: uuid::Uuid) -> Option<Sold> {
    let row: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT o.order_id, o.total_minor, p.method FROM outbox_orders o
         JOIN outbox_payments p ON p.order_id = o.order_id WHERE o.cart_id = ?",
    )
    .bind(cart_id.to_string())
    .fetch_optional(register.db().pool())
    .await
    .unwrap();
    row.map(|(order_id, total_minor, method)| {
        assert_eq!(method, "card", "cart {cart_id} was paid by card");
        Sold {
            order_id: order_id.parse().unwrap(),
            total: kassa_domain::Money::from_minor(total_minor, eur("0.00").currency()),
            card: true,
        }
    })
}

/// Waits until Central holds the sale's order (the cut then lands between order and payment,
/// mostly), or the work ended first; bounded. A card sale's order id is known once the till
/// wrote its record. Returns the order id when known.
async fn until_central_holds(
    shop: &Shop,
    register: &Register,
    mut order_id: Option<uuid::Uuid>,
    work: &tokio::task::JoinHandle<kassa_register::Result<()>>,
) -> Option<uuid::Uuid> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !work.is_finished() {
        if order_id.is_none() {
            order_id = card_order(register).await;
        }
        if let Some(id) = order_id {
            let sql = format!("SELECT COUNT(*) FROM orders WHERE id = '{id}'");
            if shop.central.count(&sql).await > 0 {
                return order_id;
            }
        }
        tokio::task::yield_now().await;
    }
    order_id
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

/// A sale the till completed is PAID at Central once, for what the till charged; a card
/// sale's money was captured at the processor exactly once.
async fn once_at_central(shop: &Shop, sale: &Sold) {
    let order = shop.order(sale.order_id).await.expect("at Central");
    assert_eq!(order.status, OrderStatus::Paid, "{}", sale.order_id);
    assert_eq!(order.paid, sale.total, "{}", sale.order_id);
    assert_eq!(
        payments_at_central(shop, sale.order_id).await,
        1,
        "{}",
        sale.order_id
    );
    if sale.card {
        let captured: Vec<i64> = captured(shop, sale.order_id);
        assert_eq!(
            captured,
            vec![sale.total.to_minor()],
            "card sale {}: captured once at the processor",
            sale.order_id
        );
    }
}

/// What the processor captured (and still holds) for an order, intent by intent.
fn captured(shop: &Shop, order_id: uuid::Uuid) -> Vec<i64> {
    shop.central
        .sim()
        .intents_of_order(&order_id.to_string())
        .iter()
        .filter(|i| i.received_minor > 0)
        .map(|i| i.held_minor())
        .collect()
}

/// Runs the online loop, drains, and checks Central: every sale PAID once, its card money
/// captured once, the orders of card sales given back cancelled and holding nothing, and
/// nothing else.
async fn online_sales_survive(chaos: Chaos) {
    let shop = Shop::open(1).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = Arc::new(MemoryStore::default());
    let register = shop.register_with(&dir, "R1", secrets.clone()).await;
    register.sync_now().await.unwrap();

    let (register, sold, cuts) = online_crash_loop(&shop, &dir, &secrets, register, chaos).await;
    sync_until_drained(&register).await;
    for sale in &sold {
        once_at_central(&shop, sale).await;
    }
    let sold_count = i64::try_from(sold.len()).unwrap();
    let open: Vec<(String, String)> =
        sqlx::query_as("SELECT id, status FROM orders WHERE status != 'CANCELLED'")
            .fetch_all(shop.central.state().db.pool())
            .await
            .unwrap();
    let extra: Vec<_> = open
        .iter()
        .filter(|(id, _)| !sold.iter().any(|s| s.order_id.to_string() == *id))
        .collect();
    for (id, status) in &extra {
        let payments: Vec<(String, String, i64)> = sqlx::query_as(&format!(
            "SELECT method, status, amount_minor FROM payments WHERE order_id = '{id}'"
        ))
        .fetch_all(shop.central.state().db.pool())
        .await
        .unwrap();
        let outbox: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT o.cart_id, p.method FROM outbox_orders o JOIN outbox_payments p ON p.order_id = o.order_id WHERE o.order_id = '{id}'"
        ))
        .fetch_all(register.db().pool())
        .await
        .unwrap();
        eprintln!(
            "extra order {id} {status}: payments {payments:?}, intents {:?}, outbox {outbox:?}",
            shop.central.sim().intents_of_order(id)
        );
    }
    assert!(
        extra.is_empty(),
        "orders at Central no sale of the till's: {extra:?}"
    );
    assert_eq!(i64::try_from(open.len()).unwrap(), sold_count);
    assert_eq!(
        shop.central
            .count("SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED' AND paid_minor != refunded_minor")
            .await,
        0,
        "a cancelled order holds money"
    );
    // 0 lost, 0 doubled: the processor holds money for exactly the card sales, once each.
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM orders")
        .fetch_all(shop.central.state().db.pool())
        .await
        .unwrap();
    let card_sales = sold.iter().filter(|s| s.card).count();
    let held: usize = ids
        .iter()
        .map(|id| captured(&shop, id.parse().unwrap()).len())
        .sum();
    assert_eq!(held, card_sales, "intents holding money vs card sales");
    assert_eq!(
        shop.stock(&sku("SKU-1")).await,
        (STOCK - sold_count, STOCK - sold_count)
    );
    let counts = kassa_register::outbox::counts(register.db()).await.unwrap();
    assert_eq!(
        (counts.done, counts.rejected),
        (sold_count, 0),
        "{counts:?}"
    );
    check_outbox(&register).await;
    let between = cuts.cash[1] + cuts.card[1];
    assert!(
        between >= CUTS_BETWEEN_MIN && cuts.card[1] >= CARD_CUTS_BETWEEN_MIN,
        "too few cuts landed between Central's order and its payment: {cuts:?} \
         (want {CUTS_BETWEEN_MIN}, {CARD_CUTS_BETWEEN_MIN} of them card)"
    );
    assert!(
        card_sales >= ONLINE_ITERATIONS / CARD_EVERY,
        "card sales: {card_sales}"
    );
    assert!(
        cuts.card_charged_again > 0,
        "no card sale was given back by its cut and charged again: {cuts:?}"
    );
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
