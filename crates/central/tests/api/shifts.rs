//! Shift stories: registers deliver their Z reports through sync, each kept exactly once per
//! (register, Z number); a replay is 200, a reused number 409, a gap named; a manager lists the
//! shifts with their store days and the gaps.

use chrono::{NaiveDate, TimeZone, Utc};
use kassa_domain::shift::{CashSummary, ShiftList, ShiftReport, ZReceived};
use kassa_domain::{Currency, Money, Role, SalesReport};
use serde_json::json;
use uuid::Uuid;

use crate::checkout::seed;
use crate::helpers::{error_body, TestApp};
use crate::story;
use crate::sync::register_session;

story!(
    z_reports_are_kept_once_and_a_store_day_sums_its_registers,
    a_gap_in_z_numbers_is_named_when_it_opens_and_in_every_list,
    an_inconsistent_or_misplaced_z_report_is_refused_and_only_managers_list,
    a_location_keeps_its_time_zone_and_refuses_an_unknown_one,
);

fn eur(amount: &str) -> Money {
    Money::parse(amount, Currency::EUR).unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
}

/// A consistent Z report: float 100.00, `sales` cash sales of 10.00, a paid-out of 5.00,
/// `counted` in the drawer.
pub fn z_report(
    z_no: i64,
    code: &str,
    business_day: NaiveDate,
    sales: i64,
    counted: &str,
) -> ShiftReport {
    let gross = Money::from_minor(1_000 * sales, Currency::EUR);
    let cash = CashSummary {
        float: eur("100.00"),
        cash_sales: gross,
        cash_refunds: eur("0.00"),
        paid_in: eur("0.00"),
        paid_out: eur("5.00"),
        safe_drops: eur("0.00"),
    };
    let expected = cash.expected().unwrap();
    let counted = eur(counted);
    let opened_at = Utc.from_utc_datetime(&business_day.and_hms_opt(8, 0, 0).unwrap());
    ShiftReport {
        shift_id: Uuid::now_v7(),
        z_no: Some(z_no),
        register_code: code.into(),
        location: "STORE-1".into(),
        business_day,
        opened_at,
        opened_by: "cashier".into(),
        closed_at: Some(opened_at + chrono::Duration::hours(9)),
        closed_by: Some("cashier".into()),
        currency: Currency::EUR,
        cash,
        expected: Some(expected),
        counted: Some(counted),
        counted_by_denomination: Vec::new(),
        over_short: Some(counted.checked_sub(&expected).unwrap()),
        over_short_approved_by: None,
        movements: Vec::new(),
        no_sales: 0,
        sales: SalesReport {
            from: business_day,
            to: business_day,
            currency: Currency::EUR,
            sales,
            gross,
            refund_count: 0,
            refunds: eur("0.00"),
            net: gross,
            discounts: eur("0.00"),
            tax: eur("0.00"),
            cash_rounding: None,
            pending_sync: 0,
            by_method: Vec::new(),
            taxes: Vec::new(),
            by_day: Vec::new(),
        },
    }
}

async fn deliver(app: &TestApp, token: &str, report: &ShiftReport) -> reqwest::Response {
    app.post(
        "/v1/sync/shifts",
        token,
        &serde_json::to_value(report).unwrap(),
    )
    .await
}

async fn delivered(app: &TestApp, token: &str, report: &ShiftReport, status: u16) -> ZReceived {
    let response = deliver(app, token, report).await;
    assert_eq!(response.status().as_u16(), status);
    response.json().await.unwrap()
}

async fn list(app: &TestApp, token: &str, query: &str) -> ShiftList {
    let response = app.get(&format!("/v1/shifts{query}"), token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn z_reports_are_kept_once_and_a_store_day_sums_its_registers(app: TestApp) {
    seed(&app, 0).await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let (r1, r1_id) = register_session(&app, admin.token()).await;
    let (r2, _) = register_session(&app, admin.token()).await;

    let first = z_report(1, "R1", day(5), 3, "125.00");
    let kept = delivered(&app, &r1, &first, 201).await;
    assert_eq!(
        (kept.register_id, kept.z_no, kept.replayed),
        (r1_id, 1, false)
    );
    assert_eq!(kept.gap, None);
    // Delivered again (a lost answer): the same answer, nothing new.
    let again = delivered(&app, &r1, &first, 200).await;
    assert!(again.replayed);
    delivered(&app, &r1, &z_report(2, "R1", day(6), 1, "105.00"), 201).await;
    delivered(&app, &r2, &z_report(1, "R2", day(5), 2, "114.00"), 201).await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM shifts")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(rows, 3, "each Z report once");

    // Z number 1 again with another report: refused, never reused.
    let other = z_report(1, "R1", day(5), 4, "135.00");
    let body = error_body(deliver(&app, &r1, &other).await, 409, "z_number_taken").await;
    assert_eq!(body["error"]["details"]["z_no"], 1);
    // The same shift under another number: refused.
    let mut renumbered = first.clone();
    renumbered.z_no = Some(3);
    error_body(
        deliver(&app, &r1, &renumbered).await,
        409,
        "shift_already_reported",
    )
    .await;

    let all = list(&app, manager.token(), "?location=STORE-1").await;
    let listed: Vec<_> = all
        .shifts
        .iter()
        .map(|s| (s.business_day, s.register_code.as_str(), s.z_no))
        .collect();
    assert_eq!(
        listed,
        [(day(5), "R1", 1), (day(5), "R2", 1), (day(6), "R1", 2)]
    );
    let r1z1 = &all.shifts[0];
    assert_eq!(
        (r1z1.expected, r1z1.counted, r1z1.over_short),
        (eur("125.00"), eur("125.00"), eur("0.00"))
    );
    assert_eq!(r1z1.cash.paid_out, eur("5.00"));
    // Day 5: both registers summed; R2 was 1.00 short (expected 115.00).
    let day5 = &all.days[0];
    assert_eq!(
        (day5.business_day, day5.registers, day5.shifts),
        (day(5), 2, 2)
    );
    assert_eq!(day5.sales, 5);
    assert_eq!(
        (day5.gross, day5.expected, day5.counted, day5.over_short),
        (eur("50.00"), eur("240.00"), eur("239.00"), eur("-1.00"))
    );
    assert_eq!(all.days.len(), 2);
    assert!(all.gaps.is_empty());

    let r1_only = list(&app, manager.token(), "?register=R1").await;
    assert_eq!(r1_only.shifts.len(), 2);
    let by_id = list(&app, manager.token(), &format!("?register={r1_id}")).await;
    assert_eq!(by_id.shifts, r1_only.shifts);
    let since = list(&app, manager.token(), "?since=2026-12-06").await;
    assert_eq!(since.shifts.len(), 1);
    assert_eq!(since.shifts[0].z_no, 2);
}

async fn a_gap_in_z_numbers_is_named_when_it_opens_and_in_every_list(app: TestApp) {
    seed(&app, 0).await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let (till, till_id) = register_session(&app, admin.token()).await;
    delivered(&app, &till, &z_report(1, "R1", day(1), 1, "105.00"), 201).await;
    let fourth = delivered(&app, &till, &z_report(4, "R1", day(4), 1, "105.00"), 201).await;
    let gap = fourth.gap.expect("Z 2 and 3 are missing");
    assert_eq!(
        (gap.register_id, gap.from, gap.to, gap.before),
        (till_id, 2, 3, 4)
    );
    let listed = list(&app, manager.token(), "").await;
    assert_eq!(listed.gaps.len(), 1);
    assert_eq!((listed.gaps[0].from, listed.gaps[0].to), (2, 3));

    // Z 2 arrives late: the gap shrinks to Z 3.
    let second = delivered(&app, &till, &z_report(2, "R1", day(2), 1, "105.00"), 201).await;
    assert_eq!(second.gap, None);
    let listed = list(&app, manager.token(), "?register=R1").await;
    let gaps: Vec<_> = listed.gaps.iter().map(|g| (g.from, g.to)).collect();
    assert_eq!(gaps, [(3, 3)]);
}

async fn an_inconsistent_or_misplaced_z_report_is_refused_and_only_managers_list(app: TestApp) {
    seed(&app, 0).await;
    let admin = app.user(Role::Admin).await;
    let cashier = app.user(Role::Cashier).await;
    let (till, _) = register_session(&app, admin.token()).await;

    let mut wrong_sum = z_report(1, "R1", day(1), 2, "115.00");
    wrong_sum.expected = Some(eur("999.00"));
    error_body(
        deliver(&app, &till, &wrong_sum).await,
        422,
        "invalid_z_report",
    )
    .await;
    let mut elsewhere = z_report(1, "R1", day(1), 2, "115.00");
    elsewhere.location = "STORE-9".into();
    error_body(
        deliver(&app, &till, &elsewhere).await,
        422,
        "invalid_z_report",
    )
    .await;
    let mut x_report = z_report(1, "R1", day(1), 2, "115.00");
    x_report.z_no = None;
    error_body(
        deliver(&app, &till, &x_report).await,
        422,
        "invalid_z_report",
    )
    .await;
    let mut zero = z_report(1, "R1", day(1), 2, "115.00");
    zero.z_no = Some(0);
    error_body(deliver(&app, &till, &zero).await, 422, "invalid_z_report").await;
    let mut far = z_report(1, "R1", day(1), 2, "115.00");
    far.business_day = NaiveDate::from_ymd_opt(12_345, 1, 1).unwrap();
    error_body(deliver(&app, &till, &far).await, 422, "invalid_z_report").await;
    let bad = app
        .post("/v1/sync/shifts", &till, &json!({ "z_no": 1 }))
        .await;
    assert!(bad.status().is_client_error());
    // Nothing was kept.
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM shifts")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0);

    // Staff not signed in at a register cannot deliver; a cashier cannot list.
    let good = z_report(1, "R1", day(1), 2, "115.00");
    error_body(
        deliver(&app, cashier.token(), &good).await,
        403,
        "not_a_register",
    )
    .await;
    assert_eq!(app.get("/v1/shifts", cashier.token()).await.status(), 403);
    error_body(
        app.get("/v1/shifts?location=NOWHERE", admin.token()).await,
        422,
        "unknown_location",
    )
    .await;
}

async fn a_location_keeps_its_time_zone_and_refuses_an_unknown_one(app: TestApp) {
    if kassa_central::devtools::time_zone("Europe/Amsterdam").is_none() {
        return;
    }
    let admin = app.user(Role::Admin).await;
    let made = app
        .post(
            "/v1/locations",
            admin.token(),
            &json!({ "code": "AMS", "name": "Amsterdam", "time_zone": "Europe/Amsterdam" }),
        )
        .await;
    assert_eq!(made.status(), 201);
    let made: kassa_domain::api::Location = made.json().await.unwrap();
    assert_eq!(made.time_zone, "Europe/Amsterdam");
    let plain = app
        .post(
            "/v1/locations",
            admin.token(),
            &json!({ "code": "UTC-1", "name": "Plain" }),
        )
        .await;
    let plain: kassa_domain::api::Location = plain.json().await.unwrap();
    assert_eq!(plain.time_zone, "UTC");
    for bad in ["Mars/Olympus_Mons", "Europe/../etc", ""] {
        let refused = app
            .post(
                "/v1/locations",
                admin.token(),
                &json!({ "code": "BAD", "name": "Bad", "time_zone": bad }),
            )
            .await;
        error_body(refused, 422, "invalid_time_zone").await;
    }
    let listed: Vec<kassa_domain::api::Location> = app
        .get("/v1/locations", admin.token())
        .await
        .json()
        .await
        .unwrap();
    let ams = listed.iter().find(|l| l.code == "AMS").unwrap();
    assert_eq!(ams.time_zone, "Europe/Amsterdam");
}
