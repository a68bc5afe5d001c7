//! Stock shortfalls at the till: an offline sale sold more than Central had; after the sync the
//! manager lists the shortfall (with the receipt, the units sold and taken, the product's name),
//! resolves it with a note, and Central records who. A cashier is refused, a bad note gets
//! Central's words, and Central out of reach says where shortfalls live.

use kassa_register::{Error, Register};
use serde_json::Value;

use crate::helpers::{
    assert_refused_to_a_cashier, eur, sku, sync_until_drained, Shop, LOCATION, PASSWORD, STOCK,
};

/// Units sold offline beyond Central's stock.
const SHORT: u32 = 3;

/// A register that sold `STOCK + SHORT` of SKU-1 offline, synced, the cashier signed in.
async fn shop_with_a_shortfall() -> (Shop, tempfile::TempDir, Register, String) {
    let mut shop = Shop::open(2).await;
    let dir = tempfile::tempdir().unwrap();
    let register = shop.register(&dir, "R1").await;
    register.sync_now().await.unwrap();
    shop.go_offline_for(&register).await;
    let sold = u32::try_from(STOCK).unwrap() + SHORT;
    register.add_sku(&sku("SKU-1"), sold).await.unwrap();
    let receipt = register.pay_cash(eur("100.00")).await.unwrap();
    shop.go_online().await;
    sync_until_drained(&register).await;
    (shop, dir, register, receipt.receipt_no)
}

/// Central's shortfalls as a manager reads them over HTTP (every one, resolved or not).
async fn at_central(shop: &Shop) -> Vec<Value> {
    let page = shop.manager_get("/v1/stock/discrepancies").await;
    page["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_resolves_an_offline_sales_shortfall_and_central_records_who() {
    crate::helpers::bounded(async move {
        let (shop, _dir, register, receipt_no) = shop_with_a_shortfall().await;
        register.sign_in("manager", PASSWORD).await.unwrap();

        let open = register.shortfalls(false).await.unwrap();
        assert_eq!(open.len(), 1, "{open:?}");
        let row = &open[0];
        assert_eq!(row.discrepancy.sku, sku("SKU-1"));
        assert_eq!(row.discrepancy.location, LOCATION);
        assert_eq!(row.discrepancy.shortfall, i64::from(SHORT));
        assert_eq!(row.receipt_no.as_deref(), Some(receipt_no.as_str()));
        assert_eq!(row.product_name.as_deref(), Some("Product 1 mug"));
        assert_eq!(row.ordered, Some(STOCK + i64::from(SHORT)));
        assert_eq!(row.taken(), Some(STOCK));
        assert_eq!(register.shortfalls(true).await.unwrap(), open);

        let note = "recounted: 3 were sold from the back room, written off";
        let resolved = register
            .resolve_shortfall(row.discrepancy.id, note)
            .await
            .unwrap();
        assert_eq!(resolved.resolved_by.as_deref(), Some("manager"));
        assert!(register.shortfalls(false).await.unwrap().is_empty());
        assert!(register.shortfalls(true).await.unwrap().is_empty());

        let recorded = at_central(&shop).await;
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0]["resolved_by"], "manager");
        assert_eq!(recorded[0]["resolution"], note);
        assert!(recorded[0]["resolved_at"].is_string());

        let again = register.resolve_shortfall(row.discrepancy.id, note).await;
        assert_eq!(
            again.err().and_then(|e| e.api_code().map(str::to_owned)),
            Some("already_resolved".to_owned())
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cashier_is_refused_and_an_empty_note_gets_centrals_words() {
    crate::helpers::bounded(async move {
        let (shop, _dir, register, _) = shop_with_a_shortfall().await;
        let id = at_central(&shop).await[0]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();

        assert_refused_to_a_cashier(register.shortfalls(false).await.err());
        assert_refused_to_a_cashier(register.resolve_shortfall(id, "counted").await.err());

        register.sign_in("manager", PASSWORD).await.unwrap();
        for note in [
            "",
            "   ",
            &"x".repeat(kassa_domain::api::RESOLUTION_CHARS_MAX + 1),
        ] {
            match register.resolve_shortfall(id, note).await {
                Err(Error::Invalid(message)) => {
                    assert!(message.contains("1 to 500 characters"), "{message}");
                }
                other => panic!("expected Central's 422 words, got {other:?}"),
            }
        }
        match register
            .resolve_shortfall(uuid::Uuid::now_v7(), "counted")
            .await
        {
            Err(Error::NotFound(message)) => assert!(message.contains("no shortfall"), "{message}"),
            other => panic!("expected not found, got {other:?}"),
        }
        assert_eq!(
            register.shortfalls(false).await.unwrap().len(),
            1,
            "still open"
        );
        assert!(at_central(&shop).await[0]["resolved_at"].is_null());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_the_register_says_shortfalls_live_at_central() {
    crate::helpers::bounded(async move {
        let (mut shop, _dir, register, _) = shop_with_a_shortfall().await;
        register.sign_in("manager", PASSWORD).await.unwrap();
        let id = register.shortfalls(false).await.unwrap()[0].discrepancy.id;

        shop.go_offline().await;
        for answer in [
            register.shortfalls(false).await.err(),
            register.resolve_shortfall(id, "counted").await.err(),
        ] {
            match answer {
                Some(Error::Offline(message)) => {
                    assert!(message.contains("shortfalls live at Central"), "{message}");
                    assert!(message.contains("out of reach"), "{message}");
                }
                other => panic!("expected the offline refusal, got {other:?}"),
            }
        }
        // A manager signed in while Central was away has no token for it at all.
        register.sign_in("manager", PASSWORD).await.unwrap();
        match register.shortfalls(false).await {
            Err(Error::Offline(message)) => {
                assert!(message.contains("opened offline"), "{message}")
            }
            other => panic!("expected the offline-session refusal, got {other:?}"),
        }
    })
    .await;
}
