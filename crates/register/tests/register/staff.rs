//! Staff at the till: offline sign-in against the local verifier, PINs, a manager's approval
//! for a cashier's discount above the limit (online and offline, the approver reaching Central
//! with the order) and refunds with a manager's approval.

use kassa_domain::Role;
use kassa_register::sale::SaleMode;
use kassa_register::{Error, Register};

use crate::helpers::{eur, sell, sku, sync_until_drained, Shop, PASSWORD, STOCK};

/// Moves every offline sign-in verifier's last online sign-in `days` into the past.
async fn age_verifiers(register: &Register, days: i64) {
    sqlx::query("UPDATE staff_verifiers SET verified_at = verified_at - ?")
        .bind(days * 24 * 60 * 60 * 1000)
        .execute(register.db().pool())
        .await
        .unwrap();
}

fn is_invalid(result: &Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(result, Err(Error::Invalid(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_who_signed_in_here_before_sign_in_offline_until_the_verifier_expires() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        let online = register.sessions().signed_in().await.unwrap();
        assert!(!online.offline);
        // A wrong password at Central (a 401) deletes the admin's verifier; they never had one.
        assert!(register.sign_in("admin", "wrong password").await.is_err());
        shop.go_offline().await;

        let who = register.sign_in("Cashier", PASSWORD).await.unwrap();
        assert_eq!(
            (who.username.as_str(), who.role, who.offline),
            ("cashier", Role::Cashier, true)
        );
        assert_eq!(register.sessions().signed_in().await, Some(who));
        assert!(is_invalid(
            &register.sign_in("cashier", "not the password").await
        ));
        // The manager paired the register but never signed in at it: no verifier.
        assert!(is_invalid(&register.sign_in("manager", PASSWORD).await));
        assert!(is_invalid(&register.sign_in("admin", PASSWORD).await));

        age_verifiers(&register, 15).await;
        let expired = register.sign_in("cashier", PASSWORD).await;
        assert!(is_invalid(&expired), "{expired:?}");

        // Back online, a 401 deletes the verifier: the old password no longer signs in offline.
        shop.go_online().await;
        register.sign_in("cashier", PASSWORD).await.unwrap();
        assert!(register
            .sign_in("cashier", "someone guessing")
            .await
            .is_err());
        shop.go_offline().await;
        assert!(is_invalid(&register.sign_in("cashier", PASSWORD).await));
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM staff_verifiers")
            .fetch_one(register.db().pool())
            .await
            .unwrap();
        assert_eq!(stored, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_sets_a_pin_and_the_cashier_signs_in_with_it_online_and_offline() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        // A cashier may not set PINs.
        let refused = register.set_pin("cashier", "2468").await;
        assert!(
            matches!(refused, Err(Error::Api { status: 403, .. })),
            "{refused:?}"
        );
        register.sign_in("manager", PASSWORD).await.unwrap();
        register.set_pin("cashier", "2468").await.unwrap();
        register.set_pin("manager", "97531").await.unwrap();
        // A manager approves with their PIN too (it also keeps the verifier for offline).
        let approval = register.approve("manager", "97531").await.unwrap();
        assert_eq!(approval.manager, "manager");
        assert!(register.approve("cashier", "2468").await.is_err());

        let who = register.sign_in_pin("cashier", "2468").await.unwrap();
        assert_eq!((who.role, who.offline), (Role::Cashier, false));
        assert!(register.sign_in_pin("cashier", "1357").await.is_err());
        register.sign_in_pin("cashier", "2468").await.unwrap();

        shop.go_offline().await;
        let who = register.sign_in_pin("cashier", "2468").await.unwrap();
        assert_eq!((who.role, who.offline), (Role::Cashier, true));
        assert!(is_invalid(&register.sign_in_pin("cashier", "1357").await));
        assert_eq!(
            register.approve("manager", "97531").await.unwrap().manager,
            "manager"
        );
        assert!(is_invalid(&register.approve("manager", "13579").await));
        let offline = register.set_pin("cashier", "1111").await;
        assert!(is_invalid(&offline), "{offline:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_a_pin_says_what_is_wrong_a_bad_pin_an_unknown_user_or_no_central() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sign_in("manager", PASSWORD).await.unwrap();
        for bad in ["123", "123456789", "24a8", ""] {
            match register.set_pin("cashier", bad).await {
                Err(Error::Invalid(message)) => {
                    assert!(message.contains("4 to 8 digits"), "{bad}: {message}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        match register.set_pin("Not A Name!", "2468").await {
            Err(Error::Invalid(message)) => assert!(message.contains("username"), "{message}"),
            other => panic!("{other:?}"),
        }
        match register.set_pin("nobody", "2468").await {
            Err(Error::NotFound(message)) => {
                assert!(message.contains("nobody"), "{message}");
                assert!(message.contains("staff member"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // A manager sets PINs for cashiers and themselves, not for an admin.
        let admin = register.set_pin("admin", "2468").await;
        assert_eq!(
            admin.as_ref().err().and_then(Error::api_code),
            Some("pin_not_allowed"),
            "{admin:?}"
        );
        // Central out of reach, the session opened online: nothing set, and it says so.
        shop.go_offline().await;
        let offline = register.set_pin("cashier", "2468").await;
        assert!(
            matches!(offline, Err(Error::Unreachable { .. })),
            "{offline:?}"
        );
        shop.go_online().await;
        register.set_pin("cashier", "2468").await.unwrap();
        assert!(register.sign_in_pin("cashier", "2468").await.is_ok());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cashiers_discount_above_the_limit_needs_a_managers_approval_online_and_offline() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let p = shop.products.clone();
        // SKU-2 costs 2.20: 10 % is 0.22.
        register.scan(p[1].barcodes[0].as_str()).await.unwrap();
        let cart = register
            .set_discount(&p[1].sku, eur("0.22"), None)
            .await
            .unwrap();
        assert!(cart.discount_approvals.is_empty());
        let refused = register.set_discount(&p[1].sku, eur("1.00"), None).await;
        assert!(
            matches!(refused, Err(Error::ApprovalRequired(_))),
            "{refused:?}"
        );
        // A cashier cannot approve; a wrong password approves nothing.
        assert!(register.approve("cashier", PASSWORD).await.is_err());
        assert!(register.approve("manager", "wrong password").await.is_err());

        let approval = register.approve("manager", PASSWORD).await.unwrap();
        assert_eq!(approval.manager, "manager");
        let cart = register
            .set_discount(&p[1].sku, eur("1.00"), Some(approval.id))
            .await
            .unwrap();
        assert_eq!(cart.totals.discount_total, eur("1.00"));
        assert_eq!(cart.discount_approvals.len(), 1);
        assert_eq!(cart.discount_approvals[0].manager, "manager");
        let reused = register
            .set_discount(&p[1].sku, eur("1.10"), Some(approval.id))
            .await;
        assert!(
            matches!(reused, Err(Error::ApprovalRequired(_))),
            "{reused:?}"
        );
        let online_sale = register.pay_cash(eur("5.00")).await.unwrap();

        // Offline: the manager's verifier (kept by the online approval) approves.
        shop.go_offline_for(&register).await;
        register.scan(p[1].barcodes[0].as_str()).await.unwrap();
        assert!(matches!(
            register.set_discount(&p[1].sku, eur("2.00"), None).await,
            Err(Error::ApprovalRequired(_))
        ));
        let approval = register.approve("manager", PASSWORD).await.unwrap();
        register
            .set_discount(&p[1].sku, eur("2.00"), Some(approval.id))
            .await
            .unwrap();
        let offline_sale = register.pay_cash(eur("5.00")).await.unwrap();

        shop.go_online().await;
        sync_until_drained(&register).await;
        for (receipt, discount, source) in [
            (&online_sale, "1.00", "register"),
            (&offline_sale, "2.00", "offline"),
        ] {
            let order = shop.order(receipt.order_id).await.unwrap();
            assert_eq!(order.source, source);
            assert_eq!(order.lines[0].discount, eur(discount));
            assert_eq!(
                order.lines[0].discount_approved_by.as_deref(),
                Some("manager")
            );
        }
        // Central verified both approvals: nothing flagged for the manager.
        let flags = shop.manager_get("/v1/approvals/flags").await;
        assert_eq!(flags, serde_json::json!([]));

        // A signed-in manager gives any discount, and is recorded as its approver.
        register.sign_in("manager", PASSWORD).await.unwrap();
        register.scan(p[0].barcodes[0].as_str()).await.unwrap();
        let cart = register
            .set_discount(&p[0].sku, eur("1.00"), None)
            .await
            .unwrap();
        assert_eq!(cart.discount_approvals[0].manager, "manager");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unapproved_discount_is_cut_to_the_limit_when_the_quantity_drops() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let p = shop.products.clone();
        register.add_sku(&p[0].sku, 10).await.unwrap();
        // 10 × 1.10 = 11.00: 10 % is 1.10, the whole price of one.
        register
            .set_discount(&p[0].sku, eur("1.10"), None)
            .await
            .unwrap();
        let cart = register.set_qty(&p[0].sku, 1).await.unwrap();
        assert_eq!(cart.lines[0].discount, eur("0.11"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_with_a_managers_approval_restocks_and_is_refused_offline() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let p = shop.products.clone();
        let sale = sell(&register, &[&p[0], &p[0], &p[1]], "10.00").await;
        let unsynced = register.approve("manager", PASSWORD).await.unwrap();
        let early = register
            .refund(sale.order_id, vec![(p[0].sku.clone(), 1)], unsynced.id)
            .await;
        assert!(is_invalid(&early), "{early:?}");
        sync_until_drained(&register).await;
        assert_eq!(shop.stock(&sku("SKU-1")).await.0, STOCK - 2);

        let recent = register.recent_sales(10).await.unwrap();
        assert_eq!(recent[0].order_id, sale.order_id);
        assert_eq!(recent[0].totals, sale.totals);
        let approval = register.approve("manager", PASSWORD).await.unwrap();
        let too_many = register
            .refund(sale.order_id, vec![(p[1].sku.clone(), 2)], approval.id)
            .await;
        assert!(is_invalid(&too_many), "{too_many:?}");
        let refund = register
            .refund(sale.order_id, vec![(p[0].sku.clone(), 1)], approval.id)
            .await
            .unwrap();
        assert_eq!(refund.amount, eur("1.10"));
        assert_eq!(shop.stock(&sku("SKU-1")).await.0, STOCK - 1);
        assert_eq!(
            register.stock_available(&sku("SKU-1")).await.unwrap(),
            Some(STOCK - 1)
        );
        let again = register
            .refund(sale.order_id, vec![(p[0].sku.clone(), 1)], approval.id)
            .await;
        assert!(
            matches!(again, Err(Error::ApprovalRequired(_))),
            "{again:?}"
        );

        shop.go_offline_for(&register).await;
        let offline = register.approve("manager", PASSWORD).await.unwrap();
        let refused = register
            .refund(sale.order_id, vec![(p[0].sku.clone(), 1)], offline.id)
            .await;
        assert!(is_invalid(&refused), "{refused:?}");
        shop.go_online().await;
        assert_eq!(shop.stock(&sku("SKU-1")).await.0, STOCK - 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_made_under_an_offline_sign_in_reach_central_once_with_nobody_signed_in() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        shop.go_offline_for(&register).await;
        register.sign_out().await.unwrap();
        assert!(register.sign_in("cashier", PASSWORD).await.unwrap().offline);
        let p = shop.products.clone();
        let mut receipts = Vec::new();
        for _ in 0..3 {
            receipts.push(sell(&register, &[&p[0]], "5.00").await);
        }

        // Central is back; the cashier's session is still the offline one (no tokens): the
        // register's own session pulls, and the sale is recorded as an offline sale.
        shop.go_online().await;
        register.sync_now().await.unwrap();
        assert!(register.sync_status().online);
        let sale = sell(&register, &[&p[0]], "5.00").await;
        assert_eq!(sale.mode, SaleMode::Offline);
        receipts.push(sale);
        // Card needs an online sign-in: without an offline card policy it is refused clearly,
        // the cart kept (not a "not signed in" from half-way through a payment).
        register.scan(p[0].barcodes[0].as_str()).await.unwrap();
        let card = register.pay_card().await;
        assert!(matches!(card, Err(Error::CardUnavailable(_))), "{card:?}");
        assert_eq!(register.cart().await.unwrap().lines.len(), 1);
        register
            .pay_cash(crate::helpers::eur("5.00"))
            .await
            .unwrap();
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM payments").await, 0);

        register.sign_out().await.unwrap();
        assert_eq!(register.sessions().signed_in().await, None);
        sync_until_drained(&register).await;
        register.sync_now().await.unwrap();
        for receipt in &receipts {
            let order = shop
                .order(receipt.order_id)
                .await
                .expect("the sale is at Central");
            assert_eq!(order.source, "offline");
            assert_eq!(order.totals, receipt.totals);
        }
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM orders").await, 5);
        assert_eq!(shop.stock(&sku("SKU-1")).await.0, STOCK - 5);
    })
    .await;
}
