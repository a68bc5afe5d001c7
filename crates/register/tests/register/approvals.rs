//! Approvals Central verifies (issue 10, point 8), from the till: a discount above the limit
//! carries the approval Central granted to the manager at this till (online) or one the register
//! signed with its approval key (offline, and a manager's own discount), so Central takes the
//! sale online and flags nothing at sync; the limit itself is Central's, pulled by the sync.

use std::sync::Arc;

use kassa_domain::approval::{ApprovalFlag, ApprovalRef, SaleSettings};
use kassa_domain::Role;
use kassa_register::sale::SaleMode;
use kassa_register::secrets::{MemoryStore, SecretStore};
use kassa_register::{Error, Register};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{eur, sync_until_drained, Shop, LOCATION, PASSWORD};

/// What the register kept for a sale's first line's discount (the approval Central verifies).
async fn line_approval(register: &Register, order_id: Uuid) -> ApprovalRef {
    let stored: String = sqlx::query_scalar(
        "SELECT discount_approval FROM outbox_lines WHERE order_id = ? AND line_no = 1",
    )
    .bind(order_id.to_string())
    .fetch_one(register.db().pool())
    .await
    .unwrap();
    serde_json::from_str(&stored).unwrap()
}

async fn flags(shop: &Shop) -> Vec<ApprovalFlag> {
    serde_json::from_value(shop.manager_get("/v1/approvals/flags").await).unwrap()
}

/// `username` signed in at the register whose credential `secrets` holds: their token.
async fn at_the_till(shop: &Shop, register: &Register, secrets: &MemoryStore, who: &str) -> String {
    let identity = register.identity().await.unwrap().unwrap();
    let credential = secrets.get("register-credential").unwrap().unwrap();
    let login = json!({
        "username": who, "password": PASSWORD,
        "register": { "id": identity.register_id, "credential": credential.expose() },
    });
    let response = shop
        .http
        .post(shop.url("/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_discount_sold_online_reaches_central_and_its_approval_is_used_once() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let register = shop.register_with(&dir, "R1", secrets.clone()).await;
        register.sync_now().await.unwrap();
        let p = shop.products.clone();
        // SKU-2 costs 2.20: 10 % is 0.22; 1.00 needs the manager.
        register.scan(p[1].barcodes[0].as_str()).await.unwrap();
        let approval = register.approve("manager", PASSWORD).await.unwrap();
        register
            .set_discount(&p[1].sku, eur("1.00"), Some(approval.id))
            .await
            .unwrap();
        let sale = register.pay_cash(eur("5.00")).await.unwrap();
        assert_eq!(sale.mode, SaleMode::Online);
        sync_until_drained(&register).await;

        // Central took it online (not through the offline path) with the approver on the line.
        let order = shop.order(sale.order_id).await.unwrap();
        assert_eq!(order.source, "register");
        assert_eq!(order.lines[0].discount, eur("1.00"));
        assert_eq!(
            order.lines[0].discount_approved_by.as_deref(),
            Some("manager")
        );
        let kept = line_approval(&register, sale.order_id).await;
        assert_eq!(kept.id, approval.id, "the UI's id is Central's grant");
        assert!(kept.offline.is_none(), "granted online: {kept:?}");
        assert!(flags(&shop).await.is_empty());

        // The same approval on another order at this till is refused: it was used.
        let cashier = at_the_till(&shop, &register, &secrets, "cashier").await;
        let again = json!({ "location": LOCATION, "lines": [{
            "sku": p[1].sku, "qty": 1, "discount": { "amount": "1.00", "currency": "EUR" },
            "discount_approved_by": "manager", "discount_approval": kept,
        }]});
        let response = shop
            .http
            .post(shop.url("/v1/orders"))
            .bearer_auth(&cashier)
            .header("Idempotency-Key", Uuid::now_v7().to_string())
            .json(&again)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "approval_used", "{body}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_discount_sold_offline_syncs_with_no_flag_at_central() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        // The manager approved here online once: the till keeps their offline verifier.
        register.approve("manager", PASSWORD).await.unwrap();
        shop.go_offline_for(&register).await;

        let p = shop.products.clone();
        register.scan(p[1].barcodes[0].as_str()).await.unwrap();
        let approval = register.approve("manager", PASSWORD).await.unwrap();
        register
            .set_discount(&p[1].sku, eur("2.00"), Some(approval.id))
            .await
            .unwrap();
        let sale = register.pay_cash(eur("5.00")).await.unwrap();
        assert_eq!(sale.mode, SaleMode::Offline);
        let signed = line_approval(&register, sale.order_id).await;
        assert_eq!(signed.id, approval.id);
        let offline = signed.offline.expect("signed by the register");
        assert_eq!(offline.manager, "manager");

        shop.go_online().await;
        sync_until_drained(&register).await;
        let order = shop.order(sale.order_id).await.unwrap();
        assert_eq!(order.source, "offline");
        assert_eq!(order.lines[0].discount, eur("2.00"));
        assert_eq!(
            order.lines[0].discount_approved_by.as_deref(),
            Some("manager")
        );
        assert_eq!(flags(&shop).await, Vec::new());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managers_own_big_discount_reaches_central_unflagged_online_and_offline() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let p = shop.products.clone();

        // Online: the manager gives it, the cashier is signed in when the order goes.
        register.sign_in("manager", PASSWORD).await.unwrap();
        register.scan(p[1].barcodes[0].as_str()).await.unwrap();
        let cart = register
            .set_discount(&p[1].sku, eur("1.50"), None)
            .await
            .unwrap();
        assert_eq!(cart.discount_approvals[0].manager, "manager");
        let online = register.pay_cash(eur("5.00")).await.unwrap();
        assert_eq!(online.mode, SaleMode::Online);
        register.sign_in("cashier", PASSWORD).await.unwrap();
        sync_until_drained(&register).await;
        let order = shop.order(online.order_id).await.unwrap();
        assert_eq!(order.source, "register");
        assert_eq!(
            order.lines[0].discount_approved_by.as_deref(),
            Some("manager")
        );

        // Offline: the manager signs in against the verifier and gives one again.
        shop.go_offline_for(&register).await;
        let who = register.sign_in("manager", PASSWORD).await.unwrap();
        assert!(who.offline && who.role == Role::Manager);
        register.scan(p[1].barcodes[0].as_str()).await.unwrap();
        register
            .set_discount(&p[1].sku, eur("2.00"), None)
            .await
            .unwrap();
        let offline = register.pay_cash(eur("5.00")).await.unwrap();
        assert_eq!(offline.mode, SaleMode::Offline);
        register.sign_out().await.unwrap();

        shop.go_online().await;
        sync_until_drained(&register).await;
        let order = shop.order(offline.order_id).await.unwrap();
        assert_eq!(order.source, "offline");
        assert_eq!(order.lines[0].discount, eur("2.00"));
        assert_eq!(flags(&shop).await, Vec::new());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discount_limit_changed_at_central_is_obeyed_by_the_till_after_a_sync_round() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        assert_eq!(register.discount_limit_percent().await.unwrap(), 10);

        let admin = shop.login("admin").await;
        let response = shop
            .http
            .put(shop.url("/v1/settings/sale"))
            .bearer_auth(&admin)
            .json(&SaleSettings {
                discount_limit_percent: 50,
            })
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);

        // Until the next round the till keeps the limit it has.
        let p = shop.products.clone();
        register.scan(p[1].barcodes[0].as_str()).await.unwrap();
        let refused = register.set_discount(&p[1].sku, eur("1.10"), None).await;
        assert!(
            matches!(refused, Err(Error::ApprovalRequired(_))),
            "{refused:?}"
        );
        let round = register.sync_now().await.unwrap();
        assert_eq!(round.settings_pulled, 1);
        assert_eq!(register.discount_limit_percent().await.unwrap(), 50);

        // Half of 2.20 is the cashier's to give now, and Central agrees.
        let cart = register
            .set_discount(&p[1].sku, eur("1.10"), None)
            .await
            .unwrap();
        assert!(cart.discount_approvals.is_empty());
        assert!(matches!(
            register.set_discount(&p[1].sku, eur("1.11"), None).await,
            Err(Error::ApprovalRequired(_))
        ));
        let sale = register.pay_cash(eur("5.00")).await.unwrap();
        sync_until_drained(&register).await;
        let order = shop.order(sale.order_id).await.unwrap();
        assert_eq!(order.source, "register");
        assert_eq!(order.lines[0].discount, eur("1.10"));
        assert_eq!(order.lines[0].discount_approved_by, None);
        assert!(flags(&shop).await.is_empty());
    })
    .await;
}
