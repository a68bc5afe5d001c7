//! The manager's sales report of this register, from the local store alone (so it works
//! offline): how many sales, their totals by payment method, tax by class and sales per day
//! (the store's local days, in its time zone).
//! Every sale made here counts, whether or not it has reached Central yet; every refund given
//! here is shown and taken off (gross, refunds, net), on the day it was given. The report's
//! types are `kassa_domain::report`'s, shared with the UI.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use jiff::tz::TimeZone;
use kassa_domain::{
    Currency, DayTotal, MethodTotal, Money, SalesReport, TaxClass, TaxTotal, Totals,
};
use rust_decimal::Decimal;
use sqlx::Row;

use crate::error::{corrupt, Context, Error, Result};
use crate::settings;
use crate::store::{money, LocalDb};

/// The longest window a report covers, in days.
pub const REPORT_DAYS_MAX: u32 = 92;

/// One completed sale as the report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct SaleRow {
    pub completed_at: DateTime<Utc>,
    pub totals: Totals,
    /// Its payments as the outbox records them: (`cash`, `card`, `card_offline` or `unpaid`,
    /// amount in minor units), one per part of a split sale. A cash part is net of change.
    pub payments: Vec<(String, i64)>,
    /// The rounding of its final cash part (rounded − exact, minor units; 0: none).
    pub cash_rounding: Option<i64>,
    /// Still waiting in the outbox.
    pub pending: bool,
}

/// One refund given here, as the report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundRow {
    pub refunded_at: DateTime<Utc>,
    /// How the refunded sale was paid (`cash`, `card`, `card_offline`): for a split sale, its
    /// card method if it has one (the card share of a refund goes back to the card).
    pub sale_method: String,
    /// What went back to the card and in cash, as Central split it.
    pub card: Money,
    pub cash: Money,
}

impl RefundRow {
    /// The payment method each share counts against: card money against the sale's card
    /// method, cash against `cash`.
    fn shares(&self) -> [(&str, i64); 2] {
        let card_method = if self.sale_method.starts_with("card") {
            self.sale_method.as_str()
        } else {
            "card"
        };
        [
            (card_method, self.card.to_minor()),
            ("cash", self.cash.to_minor()),
        ]
    }
}

/// The store's day of an instant: its local date in the store's time zone `tz`.
pub fn store_day(at: DateTime<Utc>, tz: &TimeZone) -> NaiveDate {
    let local = jiff::Timestamp::from_millisecond(at.timestamp_millis())
        .map(|ts| tz.to_datetime(ts).date());
    match local {
        Ok(d) => NaiveDate::from_ymd_opt(
            i32::from(d.year()),
            d.month().unsigned_abs().into(),
            d.day().unsigned_abs().into(),
        )
        .unwrap_or_else(|| at.date_naive()),
        // Beyond jiff's range (years ±9999): no store sells then.
        Err(_) => at.date_naive(),
    }
}

/// The first instant (ms) of the store's day `day` in `tz`.
fn day_start_ms(day: NaiveDate, tz: &TimeZone) -> i64 {
    let start = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    let civil = jiff::civil::DateTime::new(
        i16::try_from(day.year()).unwrap_or(i16::MAX),
        i8::try_from(day.month()).unwrap_or(1),
        i8::try_from(day.day()).unwrap_or(1),
        0,
        0,
        0,
        0,
    );
    civil.and_then(|c| c.to_zoned(tz.clone())).map_or_else(
        |_| start.and_utc().timestamp_millis(),
        |z| z.timestamp().as_millisecond(),
    )
}

/// Reads the sales completed in the last `days` days of the store (its local days, today
/// included) and sums them.
#[tracing::instrument(skip_all, fields(days))]
pub async fn sales(db: &LocalDb, currency: Currency, days: u32) -> Result<SalesReport> {
    if days == 0 || days > REPORT_DAYS_MAX {
        return Err(Error::Invalid(format!(
            "a report covers 1 to {REPORT_DAYS_MAX} days"
        )));
    }
    let tz = settings::time_zone(db).await?;
    let to = store_day(Utc::now(), &tz);
    let from = to - Duration::days(i64::from(days) - 1);
    let since = day_start_ms(from, &tz);
    let rows = sqlx::query(
        "SELECT o.completed_at, o.totals, o.status, o.cash_rounding_minor, (SELECT json_group_array(json_array(p.method, p.amount_minor))
                 FROM (SELECT method, amount_minor FROM outbox_payments
                       WHERE order_id = o.order_id ORDER BY part_no) p) AS payments
         FROM outbox_orders o
         WHERE o.completed_at >= ? ORDER BY o.seq",
    )
    .bind(since)
    .fetch_all(db.reader())
    .await
    .context("reading sales for the report")?;
    let sales = rows.iter().map(sale_from_row).collect::<Result<Vec<_>>>()?;
    let refunds = refunds_since(db, since).await?;
    summarise(&sales, &refunds, currency, from, to, &tz)
}

/// The refunds given here since `since` (ms), oldest first.
async fn refunds_since(db: &LocalDb, since: i64) -> Result<Vec<RefundRow>> {
    let rows = sqlx::query(
        "SELECT r.refunded_at, r.currency, r.card_minor, r.cash_minor,
                COALESCE((SELECT p.method FROM outbox_payments p WHERE p.order_id = r.order_id
                          ORDER BY p.method LIKE 'card%' DESC, p.part_no LIMIT 1), 'unpaid')
                AS method
         FROM refunds r
         WHERE r.refunded_at >= ? ORDER BY r.refunded_at, r.id",
    )
    .bind(since)
    .fetch_all(db.reader())
    .await
    .context("reading refunds for the report")?;
    rows.iter().map(refund_from_row).collect()
}

fn refund_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<RefundRow> {
    let at: i64 = row.get("refunded_at");
    let currency: String = row.get("currency");
    Ok(RefundRow {
        refunded_at: DateTime::from_timestamp_millis(at)
            .ok_or_else(|| Error::Corrupt(format!("refund time {at}")))?,
        sale_method: row.get("method"),
        card: money(row.get("card_minor"), &currency)?,
        cash: money(row.get("cash_minor"), &currency)?,
    })
}

/// The sales and refunds of shift `shift_id`, oldest first (read in the caller's transaction,
/// so a Z report sees exactly what its close sees).
pub(crate) async fn shift_rows(
    conn: &mut sqlx::SqliteConnection,
    shift_id: &str,
) -> Result<(Vec<SaleRow>, Vec<RefundRow>)> {
    let sales = sqlx::query(
        "SELECT o.completed_at, o.totals, o.status, o.cash_rounding_minor, (SELECT json_group_array(json_array(p.method, p.amount_minor))
                 FROM (SELECT method, amount_minor FROM outbox_payments
                       WHERE order_id = o.order_id ORDER BY part_no) p) AS payments
         FROM outbox_orders o
         WHERE o.shift_id = ? ORDER BY o.seq",
    )
    .bind(shift_id)
    .fetch_all(&mut *conn)
    .await
    .context("reading a shift's sales")?;
    let refunds = sqlx::query(
        "SELECT r.refunded_at, r.currency, r.card_minor, r.cash_minor,
                COALESCE((SELECT p.method FROM outbox_payments p WHERE p.order_id = r.order_id
                          ORDER BY p.method LIKE 'card%' DESC, p.part_no LIMIT 1), 'unpaid')
                AS method
         FROM refunds r
         WHERE r.shift_id = ? ORDER BY r.refunded_at, r.id",
    )
    .bind(shift_id)
    .fetch_all(&mut *conn)
    .await
    .context("reading a shift's refunds")?;
    Ok((
        sales.iter().map(sale_from_row).collect::<Result<_>>()?,
        refunds.iter().map(refund_from_row).collect::<Result<_>>()?,
    ))
}

fn sale_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<SaleRow> {
    let at: i64 = row.get("completed_at");
    let totals: String = row.get("totals");
    let status: String = row.get("status");
    let payments: String = row.get("payments");
    let mut payments: Vec<(String, i64)> =
        serde_json::from_str(&payments).map_err(|e| corrupt("a sale's payments", e))?;
    if payments.is_empty() {
        let totals: Totals =
            serde_json::from_str(&totals).map_err(|e| corrupt("sale totals", e))?;
        payments.push(("unpaid".into(), totals.total.to_minor()));
    }
    Ok(SaleRow {
        completed_at: DateTime::from_timestamp_millis(at)
            .ok_or_else(|| Error::Corrupt(format!("sale time {at}")))?,
        totals: serde_json::from_str(&totals).map_err(|e| corrupt("sale totals", e))?,
        payments,
        cash_rounding: Some(row.get::<i64, _>("cash_rounding_minor")).filter(|r| *r != 0),
        pending: matches!(status.as_str(), "pending" | "order_created"),
    })
}

/// Running sums in minor units.
#[derive(Default)]
struct Sums {
    sales: i64,
    gross: i64,
    refunds: i64,
    tax: i64,
}

fn check_currency(found: Currency, currency: Currency, what: &str) -> Result<()> {
    if found == currency {
        return Ok(());
    }
    Err(Error::Corrupt(format!(
        "a {what} in {} at a register selling in {}",
        found.code(),
        currency.code()
    )))
}

/// Sums `sales` and `refunds` (all in `currency`) into the report over `from..=to`, by the
/// store's days in `tz`.
pub fn summarise(
    sales: &[SaleRow],
    refunds: &[RefundRow],
    currency: Currency,
    from: NaiveDate,
    to: NaiveDate,
    tz: &TimeZone,
) -> Result<SalesReport> {
    let mut all = Sums::default();
    let mut discounts = 0_i64;
    // The sales' cash roundings: `None` until one sale had one.
    let mut cash_rounding: Option<i64> = None;
    let mut pending_sync = 0_i64;
    let mut methods: BTreeMap<&str, Sums> = BTreeMap::new();
    let mut days: BTreeMap<NaiveDate, Sums> = BTreeMap::new();
    let mut taxes: BTreeMap<(usize, Decimal), (TaxClass, [i64; 3])> = BTreeMap::new();
    for sale in sales {
        let t = &sale.totals;
        check_currency(t.currency, currency, "sale")?;
        let (total, tax) = (t.total.to_minor(), t.tax_total.to_minor());
        for sums in [
            &mut all,
            days.entry(store_day(sale.completed_at, tz)).or_default(),
        ] {
            sums.sales += 1;
            sums.gross += total;
            sums.tax += tax;
        }
        // Each part counts under its own method (a split sale under each of its methods),
        // for what it paid: the methods add up to the gross plus the cash rounding.
        for (method, minor) in &sale.payments {
            let sums = methods.entry(method.as_str()).or_default();
            sums.sales += 1;
            sums.gross += minor;
        }
        discounts += t.discount_total.to_minor();
        if let Some(r) = sale.cash_rounding {
            cash_rounding = Some(cash_rounding.unwrap_or(0) + r);
        }
        pending_sync += i64::from(sale.pending);
        for line in &t.taxes {
            let order = TaxClass::ALL
                .iter()
                .position(|c| *c == line.tax_class)
                .unwrap_or(usize::MAX);
            let (_, sums) = taxes
                .entry((order, line.rate))
                .or_insert((line.tax_class, [0; 3]));
            sums[0] += line.net.to_minor();
            sums[1] += line.tax.to_minor();
            sums[2] += line.gross.to_minor();
        }
    }
    for refund in refunds {
        check_currency(refund.card.currency(), currency, "refund")?;
        check_currency(refund.cash.currency(), currency, "refund")?;
        let day = days.entry(store_day(refund.refunded_at, tz)).or_default();
        for (method, minor) in refund.shares() {
            if minor != 0 {
                methods.entry(method).or_default().refunds += minor;
                all.refunds += minor;
                day.refunds += minor;
            }
        }
    }
    let money = |minor: i64| Money::from_minor(minor, currency);
    Ok(SalesReport {
        from,
        to,
        currency,
        sales: all.sales,
        gross: money(all.gross),
        refund_count: i64::try_from(refunds.len()).unwrap_or(i64::MAX),
        refunds: money(all.refunds),
        net: money(all.gross - all.refunds),
        discounts: money(discounts),
        tax: money(all.tax),
        cash_rounding: cash_rounding.map(money),
        pending_sync,
        by_method: methods
            .into_iter()
            .map(|(method, s)| MethodTotal {
                method: method.to_owned(),
                sales: s.sales,
                gross: money(s.gross),
                refunds: money(s.refunds),
                net: money(s.gross - s.refunds),
            })
            .collect(),
        taxes: taxes
            .into_iter()
            .map(|((_, rate), (tax_class, [net, tax, gross]))| TaxTotal {
                tax_class,
                rate,
                net: money(net),
                tax: money(tax),
                gross: money(gross),
            })
            .collect(),
        by_day: days
            .into_iter()
            .map(|(day, s)| DayTotal {
                day,
                sales: s.sales,
                gross: money(s.gross),
                refunds: money(s.refunds),
                net: money(s.gross - s.refunds),
                tax: money(s.tax),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use kassa_domain::{compute_totals, CartLine, PriceMode, Sku, TaxTable};

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::EUR).unwrap()
    }

    fn sale(day: u32, hour: u32, method: &str, lines: &[(&str, TaxClass, u32)]) -> SaleRow {
        let lines: Vec<CartLine> = lines
            .iter()
            .enumerate()
            .map(|(i, (price, class, qty))| CartLine {
                sku: Sku::parse(&format!("SKU-{i}")).unwrap(),
                name: format!("item {i}"),
                unit_price: eur(price),
                qty: *qty,
                tax_class: *class,
                discount: eur("0"),
            })
            .collect();
        let totals = compute_totals(
            &lines,
            PriceMode::TaxInclusive,
            &TaxTable::default(),
            Currency::EUR,
        )
        .unwrap();
        SaleRow {
            completed_at: Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap(),
            payments: vec![(method.into(), totals.total.to_minor())],
            totals,
            cash_rounding: None,
            pending: false,
        }
    }

    fn refund(day: u32, sale_method: &str, card: &str, cash: &str) -> RefundRow {
        RefundRow {
            refunded_at: Utc.with_ymd_and_hms(2026, 12, day, 17, 0, 0).unwrap(),
            sale_method: sale_method.into(),
            card: eur(card),
            cash: eur(cash),
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    #[test]
    fn a_split_sale_counts_each_part_under_its_method_and_once_in_the_totals() {
        let mut split = sale(1, 9, "cash", &[("10.00", TaxClass::Standard, 1)]);
        split.payments = vec![
            ("card".into(), 600),
            ("card_offline".into(), 100),
            ("cash".into(), 300),
        ];
        let sales = [
            split,
            sale(1, 10, "cash", &[("2.00", TaxClass::Standard, 1)]),
        ];
        let report = summarise(
            &sales,
            &[],
            Currency::EUR,
            day(1),
            day(1),
            &jiff::tz::TimeZone::UTC,
        )
        .unwrap();
        assert_eq!((report.sales, report.gross), (2, eur("12.00")));
        let methods: Vec<_> = report
            .by_method
            .iter()
            .map(|m| (m.method.as_str(), m.sales, m.gross))
            .collect();
        assert_eq!(
            methods,
            [
                ("card", 1, eur("6.00")),
                ("card_offline", 1, eur("1.00")),
                ("cash", 2, eur("5.00"))
            ]
        );
    }

    #[test]
    fn sales_are_summed_by_method_by_day_and_by_tax_class() {
        let mut pending = sale(1, 18, "card", &[("3.00", TaxClass::Reduced, 1)]);
        pending.pending = true;
        let sales = [
            sale(1, 9, "cash", &[("2.40", TaxClass::Standard, 2)]),
            pending,
            sale(2, 10, "cash", &[("1.20", TaxClass::Standard, 1)]),
        ];
        let report = summarise(
            &sales,
            &[],
            Currency::EUR,
            day(1),
            day(2),
            &jiff::tz::TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(report.sales, 3);
        assert_eq!((report.gross, report.net), (eur("9.00"), eur("9.00")));
        assert_eq!(report.pending_sync, 1);
        let methods: Vec<_> = report
            .by_method
            .iter()
            .map(|m| (m.method.as_str(), m.sales, m.gross))
            .collect();
        assert_eq!(
            methods,
            [("card", 1, eur("3.00")), ("cash", 2, eur("6.00"))]
        );
        let days: Vec<_> = report
            .by_day
            .iter()
            .map(|d| (d.day, d.sales, d.gross))
            .collect();
        assert_eq!(days, [(day(1), 2, eur("7.80")), (day(2), 1, eur("1.20"))]);
        assert_eq!(report.taxes.len(), 2);
        assert_eq!(report.taxes[0].tax_class, TaxClass::Standard);
        let tax_sum = report
            .taxes
            .iter()
            .try_fold(eur("0"), |sum, t| sum.checked_add(&t.tax))
            .unwrap();
        assert_eq!(tax_sum, report.tax, "the classes add up to the total tax");
        let gross_sum = report
            .taxes
            .iter()
            .try_fold(eur("0"), |sum, t| sum.checked_add(&t.gross))
            .unwrap();
        assert_eq!(gross_sum, report.gross);
    }

    #[test]
    fn refunds_are_shown_and_taken_off_per_method_and_on_the_day_they_were_given() {
        let sales = [
            sale(1, 9, "cash", &[("2.40", TaxClass::Standard, 2)]),
            sale(1, 10, "card", &[("3.00", TaxClass::Reduced, 1)]),
            sale(2, 10, "cash", &[("1.20", TaxClass::Standard, 1)]),
        ];
        // Day 2: the card sale's item back to the card, one of the first sale's in cash,
        // and a card sale whose card could not be refunded (Central gave cash).
        let refunds = [
            refund(2, "card", "3.00", "0.00"),
            refund(2, "cash", "0.00", "2.40"),
            refund(2, "card_offline", "0.00", "0.50"),
        ];
        let report = summarise(
            &sales,
            &refunds,
            Currency::EUR,
            day(1),
            day(2),
            &jiff::tz::TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(report.sales, 3);
        assert_eq!(report.refund_count, 3);
        assert_eq!(
            (report.gross, report.refunds, report.net),
            (eur("9.00"), eur("5.90"), eur("3.10"))
        );
        let methods: Vec<_> = report
            .by_method
            .iter()
            .map(|m| (m.method.as_str(), m.sales, m.gross, m.refunds, m.net))
            .collect();
        assert_eq!(
            methods,
            [
                ("card", 1, eur("3.00"), eur("3.00"), eur("0.00")),
                ("cash", 2, eur("6.00"), eur("2.90"), eur("3.10")),
            ]
        );
        let days: Vec<_> = report
            .by_day
            .iter()
            .map(|d| (d.day, d.gross, d.refunds, d.net))
            .collect();
        assert_eq!(
            days,
            [
                (day(1), eur("7.80"), eur("0.00"), eur("7.80")),
                (day(2), eur("1.20"), eur("5.90"), eur("-4.70")),
            ]
        );
        // Refunded on a day without sales: the day is listed, with no sales.
        let report = summarise(
            &[],
            &refunds[..1],
            Currency::EUR,
            day(2),
            day(2),
            &jiff::tz::TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(report.by_day.len(), 1);
        assert_eq!(report.by_day[0].sales, 0);
        assert_eq!(report.net, eur("-3.00"));
    }

    #[test]
    fn days_are_the_stores_local_days_around_midnight() {
        let (Ok(amsterdam), Ok(new_york)) = (
            jiff::tz::TimeZone::get("Europe/Amsterdam"),
            jiff::tz::TimeZone::get("America/New_York"),
        ) else {
            assert!(
                std::env::var("KASSA_REQUIRE_TZDATA").is_err(),
                "KASSA_REQUIRE_TZDATA is set but the time zone database is missing (tzdata)"
            );
            eprintln!("SKIPPED: no time zone database (apt-get install tzdata)");
            return;
        };
        // 23:30 UTC on 1 December is 00:30 on the 2nd in Amsterdam, 18:30 on the 1st in New York.
        let late = Utc.with_ymd_and_hms(2026, 12, 1, 23, 30, 0).unwrap();
        assert_eq!(store_day(late, &amsterdam), day(2));
        assert_eq!(store_day(late, &new_york), day(1));
        assert_eq!(store_day(late, &jiff::tz::TimeZone::UTC), day(1));
        // 03:00 UTC on the 2nd is still the 1st in New York (22:00).
        let early = Utc.with_ymd_and_hms(2026, 12, 2, 3, 0, 0).unwrap();
        assert_eq!(store_day(early, &new_york), day(1));
        let mut sale = sale(1, 23, "cash", &[("2.40", TaxClass::Standard, 1)]);
        sale.completed_at = late;
        let report = summarise(
            &[sale.clone()],
            &[],
            Currency::EUR,
            day(1),
            day(2),
            &amsterdam,
        )
        .unwrap();
        assert_eq!(
            report.by_day[0].day,
            day(2),
            "the Amsterdam shop's sale after midnight"
        );
        let report = summarise(
            &[sale],
            &[],
            Currency::EUR,
            day(1),
            day(2),
            &jiff::tz::TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(report.by_day[0].day, day(1));
        // Midnight in Amsterdam on the 2nd is 23:00 UTC on the 1st (winter time).
        let start = day_start_ms(day(2), &amsterdam);
        assert_eq!(
            start,
            Utc.with_ymd_and_hms(2026, 12, 1, 23, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
    }

    #[test]
    fn no_sales_is_an_empty_report_in_the_register_currency() {
        let report = summarise(
            &[],
            &[],
            Currency::EUR,
            day(1),
            day(1),
            &jiff::tz::TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(
            (report.sales, report.gross, report.net),
            (0, eur("0"), eur("0"))
        );
        assert!(report.by_method.is_empty() && report.by_day.is_empty());
    }

    #[test]
    fn a_sale_in_another_currency_is_not_silently_added() {
        let mut odd = sale(1, 9, "cash", &[("2.40", TaxClass::Standard, 1)]);
        odd.totals.currency = Currency::USD;
        assert!(summarise(
            &[odd],
            &[],
            Currency::EUR,
            day(1),
            day(1),
            &jiff::tz::TimeZone::UTC
        )
        .is_err());
        let dollars = refund(1, "cash", "0.00", "1.00");
        let dollars = RefundRow {
            cash: Money::parse("1.00", Currency::USD).unwrap(),
            ..dollars
        };
        assert!(summarise(
            &[],
            &[dollars],
            Currency::EUR,
            day(1),
            day(1),
            &jiff::tz::TimeZone::UTC
        )
        .is_err());
    }
}
