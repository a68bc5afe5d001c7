//! An online sale the till completed whose order Central created but never got paid (the link
//! cut between the two calls, the cashier signed out, the reservation expired): finished with
//! the same keys when it can, sent as an offline sale when it cannot; never lost, never doubled.

use kassa_domain::api::Order;
use kassa_domain::{OrderStatus, SaleMode};
use kassa_register::sale::Receipt;
use kassa_register::{outbox, Register};
use uuid::Uuid;

use crate::helpers::{sell, sku, sync_until_drained, Shop, PASSWORD, STOCK};

/// Leaves the register's oldest sale as a cut between create and pay does: Central holds its
/// order (made with the register's own key and body, RESERVED), the outbox says so.
pub async fn create_only(register: &Register) -> Order {
    let entry = outbox::next(register.db(), 1).await.unwrap().remove(0);
    assert_eq!(entry.mode, "online");
    let body = entry.create_order();
    let sessions = register.sessions();
    let order = sessions
        .authed(|t| {
            let (body, key) = (&body, &entry.order_key);
            async move { sessions.client().create_order(t.expose(), key, body).await }
        })
        .await
        .unwrap();
    assert_eq!(order.status, OrderStatus::Reserved);
    outbox::mark_order_created(register.db(), entry.order_id)
        .await
        .unwrap();
    order
}

/// Central's reservation of `order_id` expires (its sweeper cancels the order).
pub async fn expire(shop: &Shop, order_id: Uuid) {
    sqlx::query("UPDATE reservations SET expires_at = 0 WHERE order_id = $1")
        .bind(order_id.to_string())
        .execute(shop.central.state().db.pool())
        .await
        .unwrap();
    kassa_central::stock::sweep_expired(shop.central.state())
        .await
        .unwrap();
}

/// Payments Central holds for an order, online (succeeded) and offline.
pub async fn payments_at_central(shop: &Shop, order_id: Uuid) -> i64 {
    let id = order_id.to_string();
    let online =
        format!("SELECT COUNT(*) FROM payments WHERE order_id = '{id}' AND status = 'succeeded'");
    let offline = format!("SELECT COUNT(*) FROM offline_payments WHERE order_id = '{id}'");
    shop.central.count(&online).await + shop.central.count(&offline).await
}

/// The sale is at Central once: PAID for its total with one payment.
pub async fn once_at_central(shop: &Shop, receipt: &Receipt) {
    let order = shop.order(receipt.order_id).await.expect("at Central");
    assert_eq!(order.status, OrderStatus::Paid, "{}", receipt.receipt_no);
    assert_eq!(order.paid, receipt.totals.total, "{}", receipt.receipt_no);
    assert_eq!(
        payments_at_central(shop, receipt.order_id).await,
        1,
        "{}",
        receipt.receipt_no
    );
}

async fn online_sale(shop: &Shop, dir: &tempfile::TempDir) -> (Register, Receipt) {
    let register = shop.register(dir, "R1").await;
    register.sync_now().await.unwrap();
    let receipt = sell(&register, &[&shop.products[0]], "5.00").await;
    assert_eq!(receipt.mode, SaleMode::Online);
    create_only(&register).await;
    (register, receipt)
}

async fn stock_is_one_sold(shop: &Shop, register: &Register) {
    let counts = outbox::counts(register.db()).await.unwrap();
    assert_eq!((counts.pending, counts.rejected), (0, 0), "{counts:?}");
    assert_eq!(shop.central.count("SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(shop.stock(&sku("SKU-1")).await, (STOCK - 1, STOCK - 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_cut_between_order_and_payment_is_paid_with_its_own_keys() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let (register, receipt) = online_sale(&shop, &dir).await;

        sync_until_drained(&register).await;
        register.sync_now().await.unwrap();
        once_at_central(&shop, &receipt).await;
        stock_is_one_sold(&shop, &register).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cashier_change_between_order_and_payment_pays_the_sale_once() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let (register, receipt) = online_sale(&shop, &dir).await;
        register.sign_out().await.unwrap();
        register.sign_in("manager", PASSWORD).await.unwrap();

        sync_until_drained(&register).await;
        once_at_central(&shop, &receipt).await;
        stock_is_one_sold(&shop, &register).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_whose_reservation_expired_before_its_payment_still_reaches_central() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let (register, receipt) = online_sale(&shop, &dir).await;
        expire(&shop, receipt.order_id).await;
        let expired = shop.order(receipt.order_id).await.unwrap();
        assert_eq!(expired.status, OrderStatus::Cancelled);

        sync_until_drained(&register).await;
        once_at_central(&shop, &receipt).await;
        stock_is_one_sold(&shop, &register).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_left_unpaid_when_the_cashier_signed_out_reaches_central_with_nobody_signed_in() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let (register, receipt) = online_sale(&shop, &dir).await;
        register.sign_out().await.unwrap();

        sync_until_drained(&register).await;
        once_at_central(&shop, &receipt).await;
        stock_is_one_sold(&shop, &register).await;
    })
    .await;
}
