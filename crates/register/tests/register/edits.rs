//! A manager's catalog edits at the register: pushed with If-Match, and a conflict resolved
//! field by field.

use std::collections::BTreeMap;

use kassa_register::edits::Side;

use crate::helpers::{eur, product_input, Shop, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_edit_that_conflicts_is_resolved_field_by_field() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sign_in("manager", PASSWORD).await.unwrap();
        register.sync_now().await.unwrap();
        let mug = shop.products[0].clone();

        // Offline, the manager changes the price; meanwhile the back office renames the product.
        shop.go_offline().await;
        let mut mine = product_input(1);
        mine.price = eur("4.50");
        let edit = register.edit_product(mug.id, mine).await.unwrap();
        let shown = register
            .lookup_barcode(mug.barcodes[0].as_str())
            .await
            .unwrap();
        assert_eq!(shown.price, eur("4.50"), "the edit shows at once, offline");
        shop.go_online().await;
        let mut theirs = product_input(1);
        theirs.name = "Big mug".into();
        theirs.price = eur("3.99");
        shop.update_product(&mug, &theirs).await;

        register.sync_now().await.unwrap();
        let conflicts = register.conflicts().await.unwrap();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].edit_id, edit);
        let differing: Vec<&str> = conflicts[0]
            .fields
            .iter()
            .filter(|f| f.differs)
            .map(|f| f.field)
            .collect();
        assert_eq!(differing, ["name", "price"]);
        let price = conflicts[0]
            .fields
            .iter()
            .find(|f| f.field == "price")
            .unwrap();
        assert_eq!(price.base["amount"], "1.10");
        assert_eq!(price.mine["amount"], "4.50");
        assert_eq!(price.theirs["amount"], "3.99");
        assert_eq!(register.sync_status().conflicts, 1);

        let choices = BTreeMap::from([
            ("name".to_owned(), Side::Theirs),
            ("price".to_owned(), Side::Mine),
        ]);
        register.resolve_conflict(edit, &choices).await.unwrap();
        register.sync_now().await.unwrap();

        assert!(register.conflicts().await.unwrap().is_empty());
        let at_central = shop.central.state().db.pool().clone();
        let (name, price_minor, version): (String, i64, i64) =
            sqlx::query_as("SELECT name, price_minor, version FROM products WHERE id = $1")
                .bind(mug.id.to_string())
                .fetch_one(&at_central)
                .await
                .unwrap();
        assert_eq!((name.as_str(), price_minor), ("Big mug", 450));
        assert_eq!(version, mug.version + 2);
        let local = register
            .lookup_barcode(mug.barcodes[0].as_str())
            .await
            .unwrap();
        assert_eq!((local.name.as_str(), local.price), ("Big mug", eur("4.50")));
        assert_eq!(local.version, version);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_created_offline_reaches_central_and_a_cashier_cannot_push_edits() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let new = product_input(9);
        assert!(
            matches!(
                register.create_product(new.clone()).await,
                Err(kassa_register::Error::Forbidden(_))
            ),
            "a cashier cannot create products"
        );
        register.sign_in("manager", PASSWORD).await.unwrap();
        shop.go_offline().await;
        register.create_product(new.clone()).await.unwrap();
        assert_eq!(
            register.search("SKU-9", 5).await.unwrap().len(),
            1,
            "shown at once"
        );
        shop.go_online().await;
        // The manager leaves; the edit waits for a manager's session.
        register.sign_in("cashier", PASSWORD).await.unwrap();

        register.sync_now().await.unwrap();
        assert_eq!(
            shop.central.count("SELECT COUNT(*) FROM products").await,
            1,
            "the cashier's session cannot"
        );
        register.sign_in("manager", PASSWORD).await.unwrap();
        register.sync_now().await.unwrap();
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM products").await, 2);
        let local = register.search("SKU-9", 5).await.unwrap();
        assert_eq!(
            local.len(),
            1,
            "the provisional row was replaced, not doubled"
        );
        assert_eq!(local[0].version, 1);
    })
    .await;
}
