//! The till's stock lease (issue 16): proposed from its own sales velocity under Central's
//! per-location settings, taken and renewed while online, shrunk when sales slow, counted down
//! by offline sales ("N left at this till"), consumed at Central with no shortfall within it,
//! adopted again after a crash, and returned at shift close.

use std::sync::Arc;
use std::time::Duration;

use kassa_register::secrets::MemoryStore;
use kassa_register::Register;
use serde_json::{json, Value};

use crate::helpers::{eur, sell, sku, sync_until_drained, Shop, LOCATION, PASSWORD, STOCK};

/// The settings these stories run with: an hour's horizon, half of what is available at most,
/// no floor.
async fn set_lease_settings(shop: &Shop, cap_percent: u32, floor_units: u32) {
    set_lease_settings_beyond(shop, cap_percent, floor_units, "warn").await;
}

/// [`set_lease_settings`] with what the till does past its lease (`warn` or `approval`).
async fn set_lease_settings_beyond(shop: &Shop, cap_percent: u32, floor_units: u32, beyond: &str) {
    let body = json!({ "location": LOCATION, "horizon_s": 3600, "cap_percent": cap_percent,
        "floor_units": floor_units, "top_sellers": 5, "beyond": beyond });
    let response = shop
        .http
        .put(shop.url("/v1/settings/leases"))
        .bearer_auth(&shop.manager_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// A register whose sales of the last hour set its velocity.
async fn leasing_register(shop: &Shop, dir: &tempfile::TempDir, code: &str) -> Register {
    shop.register_tweaked(dir, code, Arc::new(MemoryStore::default()), |c| {
        c.sync.lease_window = Some(Duration::from_secs(3600));
    })
    .await
}

/// Central's view of the register's active leases.
async fn central_leases(shop: &Shop, register: &Register) -> Vec<Value> {
    let id = register.identity().await.unwrap().unwrap().register_id;
    let list = shop
        .manager_get(&format!("/v1/stock/leases?register={id}&active=true"))
        .await;
    list["items"].as_array().unwrap().clone()
}

/// Reserves `qty` of SKU-1 for an online order of the shop (the web shop, another till).
async fn shop_takes(shop: &Shop, qty: i64) {
    let response = shop
        .http
        .post(shop.url("/v1/orders"))
        .bearer_auth(&shop.manager_token)
        .header("Idempotency-Key", format!("web-{}", uuid::Uuid::now_v7()))
        .json(&json!({ "location": LOCATION, "lines": [{ "sku": "SKU-1", "qty": qty }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

async fn shortfall_units(shop: &Shop) -> i64 {
    shop.central
        .count("SELECT CAST(COALESCE(SUM(shortfall), 0) AS BIGINT) FROM stock_discrepancies")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_till_leases_what_it_sells_and_sells_it_offline_with_no_shortfall() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        set_lease_settings(&shop, 50, 0).await;
        let dir = tempfile::tempdir().unwrap();
        let register = leasing_register(&shop, &dir, "R1").await;
        let p = shop.products.clone();
        // Nothing sold yet: nothing to lease.
        register.sync_now().await.unwrap();
        assert_eq!(register.lease().await.unwrap(), None);
        // 6 of SKU-1 sold in the last hour: an hour's horizon asks for 6.
        for _ in 0..6 {
            sell(&register, &[&p[0]], "5.00").await;
        }
        sync_until_drained(&register).await;
        let report = register.sync_now().await.unwrap();
        assert_eq!(report.leases_refreshed, 1);
        assert_eq!(register.lease_left(&sku("SKU-1")).await.unwrap(), Some(6));
        assert_eq!(register.lease_left(&sku("SKU-2")).await.unwrap(), None);
        let leases = central_leases(&shop, &register).await;
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0]["lines"][0]["remaining"], 6);
        // Central holds them for this till: the shop takes everything else.
        let (on_hand, available) = shop.stock(&sku("SKU-1")).await;
        assert_eq!((on_hand, available), (STOCK - 6, STOCK - 12));
        assert_eq!(
            register.stock_available(&sku("SKU-1")).await.unwrap(),
            Some(STOCK - 6),
            "the till counts its own lease as its to sell"
        );
        shop_takes(&shop, STOCK - 12).await;

        // Offline: 4 sold within the lease, then 3 more, 1 past it.
        shop.go_offline_for(&register).await;
        for _ in 0..4 {
            sell(&register, &[&p[0]], "5.00").await;
        }
        assert_eq!(register.lease_left(&sku("SKU-1")).await.unwrap(), Some(2));
        for _ in 0..3 {
            sell(&register, &[&p[0]], "5.00").await;
        }
        assert_eq!(register.lease_left(&sku("SKU-1")).await.unwrap(), Some(0));

        shop.go_online().await;
        sync_until_drained(&register).await;
        assert_eq!(
            shortfall_units(&shop).await,
            1,
            "6 leased, 7 sold offline: one short, not seven"
        );
        let (on_hand, available) = shop.stock(&sku("SKU-1")).await;
        assert_eq!(on_hand, STOCK - 12);
        assert_eq!(available, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_shrinks_when_sales_slow_and_is_returned_at_shift_close() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        // A quarter of what is available at most; a floor of 3 for the top sellers.
        set_lease_settings(&shop, 25, 3).await;
        let dir = tempfile::tempdir().unwrap();
        let register = leasing_register(&shop, &dir, "R1").await;
        register.sync_now().await.unwrap();
        let p = shop.products.clone();
        sell(&register, &[&p[0], &p[1]], "10.00").await;
        sync_until_drained(&register).await;
        register.sync_now().await.unwrap();
        // One of each sold: the floor (3) for both.
        assert_eq!(register.lease_left(&sku("SKU-1")).await.unwrap(), Some(3));
        assert_eq!(register.lease_left(&sku("SKU-2")).await.unwrap(), Some(3));
        // 40 of SKU-1 sold: 40 wanted, capped at a quarter of what the till may count on.
        for _ in 0..40 {
            sell(&register, &[&p[0]], "5.00").await;
        }
        sync_until_drained(&register).await;
        register.sync_now().await.unwrap();
        let (_, available) = shop.stock(&sku("SKU-1")).await;
        let left = register.lease_left(&sku("SKU-1")).await.unwrap().unwrap();
        assert_eq!(
            left,
            (available + left) / 4,
            "a quarter of available plus its own"
        );
        // The floor is lowered to 0 and the sales fall out of the window: the lease shrinks.
        set_lease_settings(&shop, 25, 0).await;
        sqlx::query("UPDATE outbox_orders SET completed_at = completed_at - 7200000")
            .execute(register.db().pool())
            .await
            .unwrap();
        register.sync_now().await.unwrap();
        let leases = central_leases(&shop, &register).await;
        assert_eq!(leases.len(), 1, "the same lease, resized to nothing");
        assert!(leases[0]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["remaining"] == 0));
        assert_eq!(register.lease_left(&sku("SKU-1")).await.unwrap(), None);
        // Shift close: returned once, nothing held at Central any more.
        assert!(register.return_lease().await.unwrap());
        assert!(!register.return_lease().await.unwrap());
        assert!(central_leases(&shop, &register).await.is_empty());
        let reserved = shop
            .central
            .count("SELECT CAST(SUM(reserved) AS BIGINT) FROM stock")
            .await;
        assert_eq!(reserved, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_till_crashing_while_it_sells_against_its_lease_never_oversells_or_doubles() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(1).await;
        set_lease_settings(&shop, 50, 0).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets: Arc<MemoryStore> = Arc::new(MemoryStore::default());
        let tweak = |c: &mut kassa_register::RegisterConfig| {
            c.sync.lease_window = Some(Duration::from_secs(3600));
        };
        let register = shop
            .register_tweaked(&dir, "R1", secrets.clone(), tweak)
            .await;
        register.sync_now().await.unwrap();
        let p = shop.products.clone();
        for _ in 0..10 {
            sell(&register, &[&p[0]], "5.00").await;
        }
        sync_until_drained(&register).await;
        register.sync_now().await.unwrap();
        assert_eq!(register.lease_left(&sku("SKU-1")).await.unwrap(), Some(10));
        // A lease granted whose answer never arrived (a crash right after Central answered):
        // an extra one at Central the till does not know.
        let id = register.identity().await.unwrap().unwrap().register_id;
        let extra = shop
            .http
            .post(shop.url("/v1/stock/leases"))
            .bearer_auth(&shop.manager_token)
            .header("Idempotency-Key", "lost-answer")
            .json(&json!({ "location": LOCATION, "register": id,
                "lines": [{ "sku": "SKU-1", "qty": 2 }], "ttl_s": 600 }))
            .send()
            .await
            .unwrap();
        assert_eq!(extra.status(), 201);
        shop_takes(&shop, STOCK - 10 - 10 - 2).await;
        // Crash loop: sell offline, the register dies and reopens on its store, 3 times.
        let mut register = register;
        shop.go_offline_for(&register).await;
        for _ in 0..3 {
            for _ in 0..3 {
                sell(&register, &[&p[0]], "5.00").await;
            }
            register.db().close().await;
            drop(register);
            register =
                crate::helpers::open_register_with(&dir, &shop.proxy.url(), secrets.clone(), tweak)
                    .await;
        }
        assert_eq!(register.lease_left(&sku("SKU-1")).await.unwrap(), Some(1));
        shop.go_online().await;
        sync_until_drained(&register).await;
        // 9 sold against 10 leased (plus 2 on the lost lease): nothing short, and the extra
        // lease was adopted or returned: one active lease left.
        assert_eq!(shortfall_units(&shop).await, 0);
        assert_eq!(central_leases(&shop, &register).await.len(), 1);
        let (on_hand, available) = shop.stock(&sku("SKU-1")).await;
        assert_eq!(on_hand, STOCK - 10 - 9);
        assert!(available >= 0);
        let leased = shop
            .central
            .count(
                "SELECT CAST(COALESCE(SUM(ll.remaining), 0) AS BIGINT) FROM stock_lease_lines ll \
                 JOIN stock_leases s ON s.id = ll.lease_id WHERE s.status = 'active'",
            )
            .await;
        let reserved = shop
            .central
            .count("SELECT CAST(SUM(reserved) AS BIGINT) FROM stock")
            .await;
        assert_eq!(
            reserved,
            leased + STOCK - 22,
            "reserved is the leases and the shop's order"
        );
    })
    .await;
}

/// Past its lease, offline, a till whose location asks for it needs a manager's approval to
/// sell; within the lease it sells as before, and the approved sale goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_lease_a_sale_offline_waits_for_a_managers_approval_where_the_store_asks() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        set_lease_settings_beyond(&shop, 50, 0, "approval").await;
        let dir = tempfile::tempdir().unwrap();
        let register = leasing_register(&shop, &dir, "R1").await;
        let p = shop.products.clone();
        register.sync_now().await.unwrap();
        for _ in 0..2 {
            sell(&register, &[&p[0]], "5.00").await;
        }
        sync_until_drained(&register).await;
        register.sync_now().await.unwrap();
        assert_eq!(register.lease_left(&sku("SKU-1")).await.unwrap(), Some(2));
        // The manager approved here online once: the till keeps their offline verifier.
        register.approve("manager", PASSWORD).await.unwrap();
        shop.go_offline_for(&register).await;

        sell(&register, &[&p[0], &p[0]], "10.00").await;
        register.scan(p[0].barcodes[0].as_str()).await.unwrap();
        let refused = register.pay_cash(eur("5.00")).await.unwrap_err();
        match &refused {
            kassa_register::Error::ApprovalRequired(message) => {
                assert!(
                    message.contains("SKU-1: 1, 0 left at this till"),
                    "{message}"
                );
            }
            other => panic!("expected a request for approval, got {other:?}"),
        }
        assert_eq!(
            register.cart().await.unwrap().lines.len(),
            1,
            "the cart waits"
        );
        let cashier_refused = register.approve("cashier", PASSWORD).await;
        assert!(cashier_refused.is_err(), "a cashier cannot approve");
        let approval = register.approve("manager", PASSWORD).await.unwrap();
        register.approve_beyond_lease(approval.id).await.unwrap();
        register.pay_cash(eur("5.00")).await.unwrap();
        assert!(
            register.approve_beyond_lease(approval.id).await.is_err(),
            "an approval is used once"
        );

        shop.go_online().await;
        sync_until_drained(&register).await;
        assert_eq!(
            register.sync_status().pending,
            0,
            "every sale reached Central"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_till_leases_only_where_a_manager_has_set_the_locations_lease_settings() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = leasing_register(&shop, &dir, "R1").await;
        let p = shop.products.clone();
        register.sync_now().await.unwrap();
        for _ in 0..4 {
            sell(&register, &[&p[0]], "5.00").await;
        }
        sync_until_drained(&register).await;
        // Sales to lease from, but Central's settings are still the defaults: no lease.
        let report = register.sync_now().await.unwrap();
        assert_eq!(report.leases_refreshed, 0);
        assert!(central_leases(&shop, &register).await.is_empty());
        assert_eq!(register.lease().await.unwrap(), None);
        // The manager sets them: the next round leases.
        set_lease_settings(&shop, 50, 0).await;
        let report = register.sync_now().await.unwrap();
        assert_eq!(report.leases_refreshed, 1);
        assert_eq!(central_leases(&shop, &register).await.len(), 1);
        assert_eq!(register.lease_left(&sku("SKU-1")).await.unwrap(), Some(4));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_sale_at_the_till_takes_from_its_lease_once() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        set_lease_settings(&shop, 50, 0).await;
        let dir = tempfile::tempdir().unwrap();
        let register = leasing_register(&shop, &dir, "R1").await;
        let p = shop.products.clone();
        register.sync_now().await.unwrap();
        for _ in 0..6 {
            sell(&register, &[&p[0]], "5.00").await;
        }
        sync_until_drained(&register).await;
        register.sync_now().await.unwrap();
        assert_eq!(register.lease_left(&sku("SKU-1")).await.unwrap(), Some(6));
        // Two sold online: the till counts them at once, Central takes them from the lease.
        sell(&register, &[&p[0], &p[0]], "10.00").await;
        assert_eq!(register.lease_left(&sku("SKU-1")).await.unwrap(), Some(4));
        sync_until_drained(&register).await;
        let leases = central_leases(&shop, &register).await;
        assert_eq!(leases[0]["lines"][0]["consumed"], 2, "{leases:?}");
        // The next round renews the lease (back up to what the velocity asks) and counts the
        // sale once: Central's remaining, nothing subtracted again.
        register.sync_now().await.unwrap();
        let leases = central_leases(&shop, &register).await;
        let remaining = leases[0]["lines"][0]["remaining"].as_i64().unwrap();
        assert_eq!(
            register.lease_left(&sku("SKU-1")).await.unwrap(),
            Some(remaining)
        );
    })
    .await;
}
