//! Shifts at the till: a float, sales, refunds and cash movements in the open shift, a blind
//! count, over/short with a manager's approval beyond the tolerance, and Z reports numbered per
//! register with no gap and no reuse, across crashes and restarts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa_domain::shift::{CashCount, DenominationCount, MovementKind};
use kassa_register::secrets::MemoryStore;
use kassa_register::{Error, Register};
use rand::Rng;

use crate::helpers::{eur, open_register, open_shift, sync_until_drained, Shop, PASSWORD};

fn sum(amount: &str) -> CashCount {
    CashCount::Sum {
        amount: eur(amount),
    }
}

fn notes(counts: &[(&str, u32)]) -> CashCount {
    CashCount::Denominations {
        counts: counts
            .iter()
            .map(|(value, count)| DenominationCount {
                value: eur(value),
                count: *count,
            })
            .collect(),
    }
}

async fn sell_cash(
    register: &Register,
    barcode: &str,
    tendered: &str,
) -> kassa_register::sale::Receipt {
    register.scan(barcode).await.unwrap();
    register.pay_cash(eur(tendered)).await.unwrap()
}

#[tokio::test]
async fn a_whole_shift_works_offline_from_float_to_z_report() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(3).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register_without_shift(&dir, "R1").await;
        register.sync_now().await.unwrap();
        shop.go_offline_for(&register).await;
        let code = |n: usize| shop.products[n].barcodes[0].as_str().to_owned();

        // No shift: no sale, no movement, and the cart stays as it was.
        register.scan(&code(0)).await.unwrap();
        let refused = register.pay_cash(eur("10.00")).await.unwrap_err();
        assert!(matches!(refused, Error::NoShift(_)), "{refused}");
        let refused = register
            .cash_movement(MovementKind::PaidOut, eur("1.00"), "stamps", None)
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::NoShift(_)), "{refused}");
        assert_eq!(register.cart().await.unwrap().lines.len(), 1);

        // A float counted note by note: 2 × 50.00 + 5 × 2.00 = 110.00.
        let opened = register
            .open_shift(&notes(&[("50.00", 2), ("2.00", 5)]))
            .await
            .unwrap();
        assert_eq!(opened.cash.float, eur("110.00"));
        assert_eq!(opened.opened_by, "cashier");
        let again = register.open_shift(&sum("1.00")).await.unwrap_err();
        assert!(again.to_string().contains("already"), "{again}");

        // Two cash sales (1.10, then 2.20 + 3.30), a paid-out and a paid-in under the limit.
        let first = register.pay_cash(eur("10.00")).await.unwrap();
        assert_eq!(first.totals.total, eur("1.10"));
        register.scan(&code(1)).await.unwrap();
        sell_cash(&register, &code(2), "20.00").await;
        register
            .cash_movement(MovementKind::PaidOut, eur("12.00"), "window cleaner", None)
            .await
            .unwrap();
        register
            .cash_movement(
                MovementKind::PaidIn,
                eur("5.00"),
                "coins from the safe",
                None,
            )
            .await
            .unwrap();
        let bad = register
            .cash_movement(MovementKind::PaidOut, eur("3.00"), " ", None)
            .await
            .unwrap_err();
        assert!(bad.to_string().contains("reason"), "{bad}");

        // The cashier's X report: everything so far, but not the expected cash (blind close).
        let x = register.x_report().await.unwrap();
        assert_eq!(x.z_no, None);
        assert_eq!(x.sales.sales, 2);
        assert_eq!(x.cash.cash_sales, eur("6.60"));
        assert_eq!(
            (x.cash.paid_out, x.cash.paid_in),
            (eur("12.00"), eur("5.00"))
        );
        assert_eq!(
            x.expected, None,
            "a cashier's X report hides the expected cash"
        );
        assert_eq!(x.movements.len(), 2);
        assert_eq!(x.sales.by_method[0].method, "cash");
        assert!(!x.sales.taxes.is_empty(), "tax per rate");

        // The blind count: 2.00 short of 110 + 6.60 − 12 + 5 = 109.60; within 5.00.
        let count = register.count_cash(&sum("107.60")).await.unwrap();
        assert_eq!(count.expected, eur("109.60"));
        assert_eq!(count.over_short, eur("-2.00"));
        assert!(!count.needs_approval);
        // Counted once; selling stops until the next shift.
        assert!(register.count_cash(&sum("109.60")).await.is_err());
        register.scan(&code(0)).await.unwrap();
        let closing = register.pay_cash(eur("5.00")).await.unwrap_err();
        assert!(matches!(closing, Error::NoShift(_)), "{closing}");

        let z = register.close_shift(None).await.unwrap();
        assert_eq!(z.z_no, Some(1));
        assert_eq!(z.expected, Some(eur("109.60")));
        assert_eq!(z.counted, Some(eur("107.60")));
        assert_eq!(z.over_short, Some(eur("-2.00")));
        assert_eq!(z.over_short_approved_by, None);
        assert_eq!(z.closed_by.as_deref(), Some("cashier"));
        assert_eq!(z.sales.sales, 2);
        assert_eq!(z.sales.gross, eur("6.60"));
        z.check().unwrap();
        assert!(z.render_text().contains("Z REPORT No. 1"));
        assert_eq!(
            register.z_report(1).await.unwrap(),
            z,
            "the Z report as written"
        );
        assert!(!register.shift_open().await.unwrap());

        // Written once, never changed nor deleted.
        let pool = register.db().pool();
        let changed = sqlx::query("UPDATE z_reports SET report = '{}' WHERE z_no = 1")
            .execute(pool)
            .await;
        assert!(changed.is_err(), "a Z report is immutable");
        assert!(sqlx::query("DELETE FROM z_reports")
            .execute(pool)
            .await
            .is_err());

        // The next shift: the sale waiting in the cart sells in it, and its Z is number 2.
        open_shift(&register).await;
        register.pay_cash(eur("5.00")).await.unwrap();
        register.count_cash(&sum("101.10")).await.unwrap();
        let z2 = register.close_shift(None).await.unwrap();
        assert_eq!(z2.z_no, Some(2));
        assert_eq!((z2.sales.sales, z2.over_short), (1, Some(eur("0.00"))));
    })
    .await;
}

#[tokio::test]
async fn beyond_the_limits_a_manager_approves_movements_and_the_over_short() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let code = shop.products[0].barcodes[0].as_str().to_owned();

        // A paid-in under the limit, then a safe drop above 100.00, which needs a manager;
        // with the approval it is recorded, once.
        register
            .cash_movement(
                MovementKind::PaidIn,
                eur("50.00"),
                "change from the safe",
                None,
            )
            .await
            .unwrap();
        let refused = register
            .cash_movement(MovementKind::SafeDrop, eur("120.00"), "to the safe", None)
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::ApprovalRequired(_)), "{refused}");
        let approval = register.approve("manager", PASSWORD).await.unwrap();
        let moved = register
            .cash_movement(
                MovementKind::SafeDrop,
                eur("120.00"),
                "to the safe",
                Some(approval.id),
            )
            .await
            .unwrap();
        assert_eq!(moved.approved_by.as_deref(), Some("manager"));
        let reused = register
            .cash_movement(
                MovementKind::SafeDrop,
                eur("120.00"),
                "to the safe",
                Some(approval.id),
            )
            .await
            .unwrap_err();
        assert!(matches!(reused, Error::ApprovalRequired(_)), "{reused}");

        // A cash sale, a card sale and a cash refund of part of the cash sale.
        register.scan(&code).await.unwrap();
        register.scan(&code).await.unwrap();
        let cash = register.pay_cash(eur("10.00")).await.unwrap();
        register.scan(&code).await.unwrap();
        register.pay_card().await.unwrap();
        sync_until_drained(&register).await;
        let approval = register.approve("manager", PASSWORD).await.unwrap();
        let refund = register
            .refund(
                cash.order_id,
                vec![(shop.products[0].sku.clone(), 1)],
                approval.id,
            )
            .await
            .unwrap();
        assert_eq!(refund.cash, eur("1.10"));

        // The manager's X report shows the expected cash: 100 + 2.20 − 1.10 + 50 − 120.
        let manager = register.clone();
        manager.sign_in("manager", PASSWORD).await.unwrap();
        let x = manager.x_report().await.unwrap();
        assert_eq!(x.expected, Some(eur("31.10")));
        assert_eq!(x.cash.cash_refunds, eur("1.10"));
        assert_eq!(x.cash.safe_drops, eur("120.00"));
        assert_eq!((x.sales.sales, x.sales.refund_count), (2, 1));
        let methods: Vec<_> = x
            .sales
            .by_method
            .iter()
            .map(|m| m.method.as_str())
            .collect();
        assert_eq!(methods, ["card", "cash"]);
        register.sign_in("cashier", PASSWORD).await.unwrap();

        // Counted 10.00 over (beyond 5.00): the cashier cannot close alone.
        let count = register.count_cash(&sum("41.10")).await.unwrap();
        assert_eq!(count.over_short, eur("10.00"));
        assert!(count.needs_approval);
        let refused = register.close_shift(None).await.unwrap_err();
        assert!(matches!(refused, Error::ApprovalRequired(_)), "{refused}");
        assert!(register.shift_open().await.unwrap(), "nothing written");
        let approval = register.approve("manager", PASSWORD).await.unwrap();
        let z = register.close_shift(Some(approval.id)).await.unwrap();
        assert_eq!(z.z_no, Some(1));
        assert_eq!(z.over_short_approved_by.as_deref(), Some("manager"));
        assert_eq!(z.closed_by.as_deref(), Some("cashier"));
    })
    .await;
}

/// Every closed shift has its Z report, numbers run 1..=n with no gap, at most one shift is
/// open; in one statement, so one snapshot.
async fn check_z_numbers(register: &Register) -> i64 {
    let (closed, reports, max, min, open, orphans): (i64, i64, Option<i64>, Option<i64>, i64, i64) =
        sqlx::query_as(
            "SELECT
               (SELECT COUNT(*) FROM shifts WHERE closed_at IS NOT NULL),
               (SELECT COUNT(*) FROM z_reports),
               (SELECT MAX(z_no) FROM z_reports),
               (SELECT MIN(z_no) FROM z_reports),
               (SELECT COUNT(*) FROM shifts WHERE closed_at IS NULL),
               (SELECT COUNT(*) FROM shifts s WHERE closed_at IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM z_reports z WHERE z.shift_id = s.id))",
        )
        .fetch_one(register.db().pool())
        .await
        .unwrap();
    assert_eq!(orphans, 0, "a closed shift without its Z report");
    assert_eq!(closed, reports, "one Z report per closed shift");
    assert_eq!(
        max.unwrap_or(0),
        reports,
        "no gap: the highest number is the count"
    );
    assert!(min.is_none() || min == Some(1), "numbers start at 1");
    assert!(open <= 1, "at most one open shift");
    reports
}

async fn spin(us: u64) {
    let deadline = Instant::now() + Duration::from_micros(us);
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn z_numbers_have_no_gap_and_no_reuse_across_crashes_and_restarts() {
    crate::helpers::bounded(async move {
        const ITERATIONS: usize = 120;
        let shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(MemoryStore::default());
        let mut register = shop.register_with(&dir, "R1", secrets.clone()).await;
        let mut rng = rand::thread_rng();
        let mut seen = Vec::new();
        for i in 0..ITERATIONS {
            if !register.shift_open().await.unwrap() {
                open_shift(&register).await;
            }
            if register.shift_count().await.unwrap().is_none() {
                register.count_cash(&sum("100.00")).await.unwrap();
            }
            let closing = {
                let register = register.clone();
                tokio::spawn(async move { register.close_shift(None).await })
            };
            spin(rng.gen_range(0..3000)).await;
            closing.abort();
            if let Ok(Ok(z)) = closing.await {
                seen.push(z.z_no.unwrap());
            }
            if i % 10 == 9 {
                register.db().close().await;
                register = open_register(&dir, &shop.proxy.url(), secrets.clone()).await;
                register.sign_in("cashier", PASSWORD).await.unwrap();
            }
            check_z_numbers(&register).await;
        }
        let written = check_z_numbers(&register).await;
        eprintln!("{written} of {ITERATIONS} interrupted closes wrote their Z report");
        assert!(
            written > 0 && written < ITERATIONS as i64,
            "{written} of {ITERATIONS} closes got through"
        );
        // Every number a close returned is the report stored under it, and none twice.
        let mut sorted = seen.clone();
        sorted.dedup();
        assert_eq!(sorted, seen, "a Z number handed out twice: {seen:?}");
        for z_no in seen {
            assert_eq!(register.z_report(z_no).await.unwrap().z_no, Some(z_no));
        }
        // Even by hand, the store refuses a gap or a reused number.
        let pool = register.db().pool();
        let gap = sqlx::query(
            "INSERT INTO z_reports (z_no, shift_id, report, written_at)
             SELECT MAX(z_no) + 2, 'x', '{}', 0 FROM z_reports",
        )
        .execute(pool)
        .await;
        assert!(gap.unwrap_err().to_string().contains("no gap"));
        let reuse = sqlx::query(
            "INSERT INTO z_reports (z_no, shift_id, report, written_at) VALUES (1, 'y', '{}', 0)",
        )
        .execute(pool)
        .await;
        assert!(reuse.is_err(), "a number is never reused");
    })
    .await;
}

#[tokio::test]
async fn z_reports_reach_central_exactly_once_even_when_an_answer_is_lost() {
    crate::helpers::bounded(async move {
        let mut shop = Shop::open(1).await;
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let code = shop.products[0].barcodes[0].as_str().to_owned();
        // Closed while Central is away: the Z report waits in the register.
        shop.go_offline_for(&register).await;
        sell_cash(&register, &code, "2.00").await;
        register.count_cash(&sum("101.10")).await.unwrap();
        let z = register.close_shift(None).await.unwrap();
        shop.go_online().await;
        sync_until_drained(&register).await;
        let round = register.sync_now().await.unwrap();
        assert_eq!(round.z_reports_pushed, 0, "delivered already");

        // As if Central's answer had been lost: the register sends it again, Central keeps one.
        sqlx::query("UPDATE z_reports SET synced_at = NULL")
            .execute(register.db().pool())
            .await
            .unwrap();
        let round = register.sync_now().await.unwrap();
        assert_eq!(round.z_reports_pushed, 1);
        assert_eq!(shop.central.count("SELECT COUNT(*) FROM shifts").await, 1);

        let listed = shop
            .manager_get("/v1/shifts?location=STORE-1&register=R1")
            .await;
        let shifts = listed["shifts"].as_array().unwrap();
        assert_eq!(shifts.len(), 1);
        assert_eq!(shifts[0]["z_no"], 1);
        assert_eq!(shifts[0]["shift_id"], z.shift_id.to_string());
        assert_eq!(shifts[0]["expected"]["amount"], "101.10");
        assert_eq!(shifts[0]["counted"]["amount"], "101.10");
        assert_eq!(shifts[0]["over_short"]["amount"], "0.00");
        assert_eq!(listed["days"][0]["registers"], 1);
        assert!(listed["gaps"].as_array().unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_shifts_business_day_is_the_stores_local_day_from_centrals_time_zone() {
    crate::helpers::bounded(async move {
        let Some(zone) = kassa_central::devtools::time_zone("Pacific/Kiritimati") else {
            return;
        };
        let shop = Shop::open(1).await;
        // Kiritimati is UTC+14: its day differs from UTC's for 14 hours of every day.
        sqlx::query("UPDATE locations SET time_zone = 'Pacific/Kiritimati' WHERE code = 'STORE-1'")
            .execute(shop.central.state().db.pool())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let register = shop.register_without_shift(&dir, "R1").await;
        register.sync_now().await.unwrap();
        let before = chrono::Utc::now();
        let x = register.open_shift(&sum("50.00")).await.unwrap();
        let after = chrono::Utc::now();
        let local = |at| kassa_register::report::store_day(at, &zone);
        assert!(
            x.business_day == local(before) || x.business_day == local(after),
            "{} is not Kiritimati's day",
            x.business_day
        );
        assert_eq!(
            x.business_day,
            (x.opened_at + chrono::Duration::hours(14)).date_naive()
        );
    })
    .await;
}
