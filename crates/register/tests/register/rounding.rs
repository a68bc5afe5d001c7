//! Cash rounding at the till: where the store rounds cash (its rule pulled from Central with
//! the locations), a cash sale pays its total rounded, the change comes from the rounded due,
//! the rounding is on the receipt and on the sale, Central gets it (online and offline), a
//! split sale rounds only its final cash part, and the X and Z reports carry the rounding total
//! with the expected cash from the rounded amounts.

use std::sync::Arc;

use kassa_domain::shift::CashCount;
use kassa_domain::ReceiptPayment;
use kassa_register::printer::{documents, Paper, ReceiptStyle};
use kassa_register::secrets::MemoryStore;
use kassa_register::split::Step;
use kassa_register::Register;
use serde_json::json;

use crate::helpers::{eur, sync_until_drained, Shop};

/// Sets STORE-1's cash rounding at Central to `minor` (a manager's call).
async fn round_store(shop: &Shop, minor: i64) {
    let response = shop
        .http
        .put(shop.url("/v1/settings/cash-rounding"))
        .bearer_auth(&shop.manager_token)
        .json(&json!({ "location": "STORE-1", "cash_rounding": minor }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// A register of a shop that rounds cash to 1.00 (the Swedish krona rule), its rule pulled.
async fn rounding_register(shop: &Shop, dir: &tempfile::TempDir) -> Register {
    round_store(shop, 100).await;
    let register = shop
        .register_tweaked(dir, "R1", Arc::new(MemoryStore::default()), |c| {
            c.card_payment_method = "pm_card_visa".into();
        })
        .await;
    register.sync_now().await.unwrap();
    register
}

async fn scan(shop: &Shop, register: &Register, product: usize) {
    register
        .scan(shop.products[product].barcodes[0].as_str())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rounded_cash_sale_online_and_offline_keeps_its_rounding_to_central() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = rounding_register(&shop, &dir).await;

        // 1.10 paid as 1.00 in cash: the change comes from the rounded due.
        scan(&shop, &register, 0).await;
        let online = register.pay_cash(eur("5.00")).await.unwrap();
        assert_eq!(online.totals.total, eur("1.10"));
        assert_eq!(online.cash_rounding, Some(eur("-0.10")));
        assert_eq!(online.payments[0].amount, eur("1.00"));
        assert_eq!(
            online.payments[0].payment,
            ReceiptPayment::Cash {
                tendered: eur("5.00"),
                change: eur("4.00")
            }
        );
        // Too little for the rounded due is refused; the rounded due itself is enough.
        scan(&shop, &register, 1).await;
        scan(&shop, &register, 0).await;
        assert!(register.pay_cash(eur("2.99")).await.is_err());
        // 3.30 offline: paid as 3.00.
        shop.go_offline_for(&register).await;
        let offline = register.pay_cash(eur("3.00")).await.unwrap();
        assert_eq!(
            (offline.totals.total, offline.cash_rounding),
            (eur("3.30"), Some(eur("-0.30")))
        );
        // The printed receipt shows the rounding and what was paid.
        let printed = documents::receipt(&offline, &ReceiptStyle::default(), None)
            .plain_lines(Paper::Mm80)
            .join("\n");
        assert!(printed.contains("Cash rounding"), "{printed}");
        assert!(printed.contains("-0.30"), "{printed}");
        assert!(printed.contains("PAID EUR 3.00"), "{printed}");
        // The sale as the till keeps it: a reprint from the store shows the same rounding.
        let recent = register.recent_sales(5).await.unwrap();
        let kept = recent
            .iter()
            .find(|r| r.order_id == offline.order_id)
            .unwrap();
        assert_eq!(kept.cash_rounding, Some(eur("-0.30")));

        shop.go_online().await;
        sync_until_drained(&register).await;
        for (receipt, paid, rounding) in [(&online, "1.00", "-0.10"), (&offline, "3.00", "-0.30")] {
            let order = shop.order(receipt.order_id).await.unwrap();
            assert_eq!(order.status, kassa_domain::OrderStatus::Paid);
            assert_eq!(
                (order.paid, order.cash_rounding),
                (eur(paid), Some(eur(rounding))),
                "{}",
                receipt.receipt_no
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_sale_rounds_only_its_final_cash_part() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = rounding_register(&shop, &dir).await;
        scan(&shop, &register, 0).await;
        scan(&shop, &register, 1).await;
        // 3.30: card 1.00 exact, then the cash rest 2.30 is due as 2.00.
        let step = register.pay_part_card(eur("1.00")).await.unwrap();
        let Step::Due(split) = step else {
            panic!("completed early")
        };
        assert_eq!(split.due, eur("2.30"));
        assert_eq!(
            (split.due_in_cash, split.cash_rounding),
            (Some(eur("2.00")), Some(eur("-0.30")))
        );
        // Less cash than the due is taken exact; the sale's cash is rounded as one, so the
        // last part pays the rounded rest (2.00 − 0.50).
        let step = register.pay_part_cash(eur("0.50")).await.unwrap();
        let Step::Due(split) = step else {
            panic!("completed early")
        };
        assert_eq!(
            (split.due, split.due_in_cash, split.cash_rounding),
            (eur("1.80"), Some(eur("1.50")), Some(eur("-0.30")))
        );
        let Step::Done(receipt) = register.pay_part_cash(eur("5.00")).await.unwrap() else {
            panic!("still due")
        };
        assert_eq!(receipt.cash_rounding, Some(eur("-0.30")));
        let amounts: Vec<_> = receipt.payments.iter().map(|t| t.amount).collect();
        assert_eq!(amounts, [eur("1.00"), eur("0.50"), eur("1.50")]);
        assert!(matches!(
            receipt.payments[0].payment,
            ReceiptPayment::Card { offline: false, .. }
        ));
        assert_eq!(
            receipt.payments[2].payment,
            ReceiptPayment::Cash {
                tendered: eur("5.00"),
                change: eur("3.50")
            }
        );
        assert_eq!(receipt.amount_paid(), eur("3.00"));
        sync_until_drained(&register).await;
        let order = shop.order(receipt.order_id).await.unwrap();
        assert_eq!(order.status, kassa_domain::OrderStatus::Paid);
        assert_eq!(
            (order.paid, order.cash_rounding),
            (eur("3.00"), Some(eur("-0.30")))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_x_and_z_reports_carry_the_rounding_total_and_expect_the_rounded_cash() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = rounding_register(&shop, &dir).await;
        // 1.10 → 1.00 (−0.10), 2.20 → 2.00 (−0.20), 3.30 → 3.00 (−0.30); the float is 100.00.
        for products in [&[0][..], &[1], &[0, 1]] {
            for p in products {
                scan(&shop, &register, *p).await;
            }
            register.pay_cash(eur("10.00")).await.unwrap();
        }
        let x = register.x_report().await.unwrap();
        assert_eq!(x.sales.gross, eur("6.60"));
        assert_eq!(x.sales.cash_rounding, Some(eur("-0.60")));
        assert_eq!(
            x.cash.cash_sales,
            eur("6.00"),
            "the drawer took the rounded amounts"
        );
        register
            .count_cash(&CashCount::Sum {
                amount: eur("106.00"),
            })
            .await
            .unwrap();
        let z = register.close_shift(None).await.unwrap();
        assert_eq!(z.expected, Some(eur("106.00")));
        assert_eq!(z.over_short, Some(eur("0.00")));
        assert_eq!(z.sales.cash_rounding, Some(eur("-0.60")));
        let text = z.render_text();
        assert!(
            text.lines()
                .any(|l| l.starts_with("Cash rounding") && l.contains("-0.60")),
            "{text}"
        );
        // Central keeps the Z report as it came, rounding total included.
        for _ in 0..100 {
            sync_until_drained(&register).await;
            if shop.central.count("SELECT COUNT(*) FROM shifts").await == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let kept: String = sqlx::query_scalar("SELECT report FROM shifts")
            .fetch_one(shop.central.state().db.pool())
            .await
            .unwrap();
        let kept: kassa_domain::shift::ShiftReport = serde_json::from_str(&kept).unwrap();
        assert_eq!(kept.sales.cash_rounding, Some(eur("-0.60")));
    })
    .await;
}
