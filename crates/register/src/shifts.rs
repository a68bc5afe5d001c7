//! Shifts at the till, from the register's own store (so all of it works offline): a shift
//! opens with a float; every sale, refund and cash movement belongs to the open one; paid-in,
//! paid-out and safe drops are recorded with a reason; an X report shows the shift so far; the
//! close is a blind count (written once, before the expected cash is shown), then the Z report
//! is written in the closing transaction, numbered per register with no gap and no reuse, and
//! never changed (the store's triggers refuse it). Z reports wait here until the sync engine
//! has delivered them to Central (`synced_at`).

use chrono::{DateTime, NaiveDate, Utc};
use kassa_domain::shift::{
    over_short, within_tolerance, CashCount, CashMovement, CashSummary, DenominationCount,
    MovementKind, ShiftCount, ShiftReport, MOVEMENT_REASON_CHARS_MAX,
};
use kassa_domain::{Currency, Money};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use crate::error::{corrupt, Context, Error, Result};
use crate::report;
use crate::store::{money, now_ms, LocalDb};

/// Z reports listed at most by [`z_reports`].
pub const Z_REPORTS_LISTED_MAX: u32 = 100;

/// When a cash movement or an over/short needs a manager.
#[derive(Debug, Clone, Copy)]
pub struct ShiftLimits {
    /// A cashier's paid-in, paid-out or safe drop above this (minor units) needs a manager's
    /// approval.
    pub movement_approval_above_minor: i64,
    /// An over/short beyond this either way (minor units) needs a manager's approval.
    pub over_short_tolerance_minor: i64,
}

impl Default for ShiftLimits {
    fn default() -> Self {
        Self {
            movement_approval_above_minor: 10_000,
            over_short_tolerance_minor: 500,
        }
    }
}

/// A shift as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    pub id: Uuid,
    pub opened_at: DateTime<Utc>,
    pub opened_by: String,
    pub currency: Currency,
    pub float: Money,
    pub float_counts: Vec<DenominationCount>,
    pub counted: Option<Money>,
    pub counted_counts: Vec<DenominationCount>,
    pub counted_by: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
}

fn no_shift() -> Error {
    Error::NoShift("no shift is open at this till: open one with a float first".into())
}

fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::Corrupt(format!("time {ms}")))
}

fn counts(json: Option<String>) -> Result<Vec<DenominationCount>> {
    json.map_or(Ok(Vec::new()), |j| {
        serde_json::from_str(&j).map_err(|e| corrupt("a cash count", e))
    })
}

fn from_row(row: &SqliteRow) -> Result<Shift> {
    let currency: String = row.get("currency");
    let code: Currency = currency
        .parse()
        .map_err(|e| corrupt("a shift's currency", e))?;
    let id: String = row.get("id");
    Ok(Shift {
        id: Uuid::parse_str(&id).map_err(|e| corrupt("a shift id", e))?,
        opened_at: time(row.get("opened_at"))?,
        opened_by: row.get("opened_by"),
        currency: code,
        float: money(row.get("float_minor"), &currency)?,
        float_counts: counts(row.get("float_counts"))?,
        counted: row
            .get::<Option<i64>, _>("counted_minor")
            .map(|m| money(m, &currency))
            .transpose()?,
        counted_counts: counts(row.get("counted_counts"))?,
        counted_by: row.get("counted_by"),
        closed_at: row
            .get::<Option<i64>, _>("closed_at")
            .map(time)
            .transpose()?,
        closed_by: row.get("closed_by"),
    })
}

const SELECT_SHIFT: &str = "SELECT id, opened_at, opened_by, currency, float_minor, float_counts,
    counted_minor, counted_counts, counted_by, closed_at, closed_by FROM shifts";

/// The open shift (counted or not), if any.
pub async fn current_on(conn: &mut SqliteConnection) -> Result<Option<Shift>> {
    let row = sqlx::query(&format!("{SELECT_SHIFT} WHERE closed_at IS NULL"))
        .fetch_optional(&mut *conn)
        .await
        .context("reading the open shift")?;
    row.as_ref().map(from_row).transpose()
}

pub async fn current(db: &LocalDb) -> Result<Option<Shift>> {
    let mut conn = db
        .pool()
        .acquire()
        .await
        .context("reading the open shift")?;
    current_on(&mut conn).await
}

/// The shift a sale, refund or movement made now belongs to: the open one, not yet counted.
pub async fn selling_on(conn: &mut SqliteConnection) -> Result<Uuid> {
    let shift = current_on(conn).await?.ok_or_else(no_shift)?;
    if shift.counted.is_some() {
        return Err(Error::NoShift(
            "this shift's cash is counted and it is closing: finish the close and open a new \
             shift to sell"
                .into(),
        ));
    }
    Ok(shift.id)
}

/// Opens a shift with `float` counted by `who`; refused while one is open.
#[tracing::instrument(skip_all, fields(who))]
pub async fn open(db: &LocalDb, currency: Currency, who: &str, float: &CashCount) -> Result<Shift> {
    let amount = float
        .total(currency)
        .map_err(|e| Error::Invalid(format!("the float: {e}")))?;
    let mut tx = db.begin_write().await?;
    if current_on(&mut tx).await?.is_some() {
        return Err(Error::Invalid(
            "a shift is open at this till already: close it before opening another".into(),
        ));
    }
    let id = Uuid::now_v7();
    let float_counts =
        serde_json::to_string(&float.by_denomination()).map_err(|e| corrupt("a cash count", e))?;
    sqlx::query(
        "INSERT INTO shifts (id, opened_at, opened_by, currency, float_minor, float_counts)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(now_ms())
    .bind(who)
    .bind(currency.code())
    .bind(amount.to_minor())
    .bind(float_counts)
    .execute(&mut *tx)
    .await
    .context("opening a shift")?;
    let shift = current_on(&mut tx).await?.ok_or_else(no_shift)?;
    tx.commit().await.context("opening a shift")?;
    Ok(shift)
}

/// Checks a movement before the approval question: a positive amount in the till's currency
/// and a reason of 1 to [`MOVEMENT_REASON_CHARS_MAX`] characters.
pub fn check_movement(currency: Currency, amount: &Money, reason: &str) -> Result<()> {
    if amount.currency() != currency {
        return Err(Error::Invalid(format!(
            "{amount} is not in the till's currency {currency}"
        )));
    }
    if amount.is_negative() || amount.is_zero() {
        return Err(Error::Invalid(format!(
            "a cash movement is a positive amount, not {amount}"
        )));
    }
    let chars = reason.trim().chars().count();
    if chars == 0 || chars > MOVEMENT_REASON_CHARS_MAX {
        return Err(Error::Invalid(format!(
            "a cash movement needs a reason of 1 to {MOVEMENT_REASON_CHARS_MAX} characters"
        )));
    }
    Ok(())
}

/// Records a movement in the open shift.
#[tracing::instrument(skip_all, fields(kind = kind.as_str()))]
pub async fn record_movement(
    db: &LocalDb,
    kind: MovementKind,
    amount: Money,
    reason: &str,
    made_by: &str,
    approved_by: Option<&str>,
) -> Result<CashMovement> {
    let mut tx = db.begin_write().await?;
    let shift = selling_on(&mut tx).await?;
    let movement = CashMovement {
        id: Uuid::now_v7(),
        kind,
        amount,
        reason: reason.trim().to_owned(),
        made_by: made_by.to_owned(),
        approved_by: approved_by.map(str::to_owned),
        made_at: time(now_ms())?,
    };
    sqlx::query(
        "INSERT INTO cash_movements (id, shift_id, kind, currency, amount_minor, reason, made_by,
            approved_by, made_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(movement.id.to_string())
    .bind(shift.to_string())
    .bind(kind.as_str())
    .bind(amount.currency().code())
    .bind(amount.to_minor())
    .bind(&movement.reason)
    .bind(made_by)
    .bind(approved_by)
    .bind(movement.made_at.timestamp_millis())
    .execute(&mut *tx)
    .await
    .context("recording a cash movement")?;
    tx.commit().await.context("recording a cash movement")?;
    Ok(movement)
}

async fn movements_on(conn: &mut SqliteConnection, shift: &Shift) -> Result<Vec<CashMovement>> {
    let rows = sqlx::query(
        "SELECT id, kind, currency, amount_minor, reason, made_by, approved_by, made_at
         FROM cash_movements WHERE shift_id = ? ORDER BY made_at, id",
    )
    .bind(shift.id.to_string())
    .fetch_all(&mut *conn)
    .await
    .context("reading a shift's cash movements")?;
    rows.iter()
        .map(|row| {
            let kind: String = row.get("kind");
            let id: String = row.get("id");
            Ok(CashMovement {
                id: Uuid::parse_str(&id).map_err(|e| corrupt("a movement id", e))?,
                kind: MovementKind::parse(&kind)
                    .ok_or_else(|| Error::Corrupt(format!("cash movement kind {kind}")))?,
                amount: money(row.get("amount_minor"), &row.get::<String, _>("currency"))?,
                reason: row.get("reason"),
                made_by: row.get("made_by"),
                approved_by: row.get("approved_by"),
                made_at: time(row.get("made_at"))?,
            })
        })
        .collect()
}

/// The times the drawer was opened with no sale (a manager's, see [`crate::no_sale`]) while
/// `shift` was open: every X and Z report carries the count.
async fn no_sales_in_shift(conn: &mut SqliteConnection, shift: &Shift) -> Result<i64> {
    let until = shift.closed_at.unwrap_or_else(Utc::now);
    sqlx::query_scalar("SELECT COUNT(*) FROM no_sales WHERE opened_at >= ? AND opened_at <= ?")
        .bind(shift.opened_at.timestamp_millis())
        .bind(until.timestamp_millis())
        .fetch_one(&mut *conn)
        .await
        .context("counting a shift's no-sales")
}

/// Where the register stands: its code and location.
async fn till_on(conn: &mut SqliteConnection) -> Result<(String, String)> {
    let row = sqlx::query("SELECT location, register_code FROM identity WHERE singleton = 1")
        .fetch_optional(&mut *conn)
        .await
        .context("reading the register's identity")?
        .ok_or(Error::NotPaired)?;
    Ok((row.get("register_code"), row.get("location")))
}

/// The shift's business day: the store's local day (in its time zone `tz`) it opened on.
pub fn business_day(opened_at: DateTime<Utc>, tz: &jiff::tz::TimeZone) -> NaiveDate {
    report::store_day(opened_at, tz)
}

/// The shift's report as of now: its sales and refunds, cash movements and the cash summary.
/// `show_expected` is false for a cashier's X report (the close is blind); a counted shift
/// always shows it, with its over/short.
pub async fn report_on(
    conn: &mut SqliteConnection,
    shift: &Shift,
    show_expected: bool,
) -> Result<ShiftReport> {
    let (register_code, location) = till_on(conn).await?;
    let (sales, refunds) = report::shift_rows(conn, &shift.id.to_string()).await?;
    let tz = crate::settings::time_zone_on(conn).await?;
    let day = business_day(shift.opened_at, &tz);
    let last = report::store_day(shift.closed_at.unwrap_or_else(Utc::now), &tz).max(day);
    let sales = report::summarise(&sales, &refunds, shift.currency, day, last, &tz)?;
    let movements = movements_on(conn, shift).await?;
    let mut cash = CashSummary::opened_with(shift.float);
    if let Some(m) = sales.by_method.iter().find(|m| m.method == "cash") {
        cash.cash_sales = m.gross;
        cash.cash_refunds = m.refunds;
    }
    for m in &movements {
        cash.add_movement(m.kind, &m.amount)?;
    }
    let expected = cash.expected()?;
    let over_short = shift
        .counted
        .map(|counted| over_short(&counted, &expected))
        .transpose()?;
    Ok(ShiftReport {
        shift_id: shift.id,
        z_no: None,
        register_code,
        location,
        business_day: day,
        opened_at: shift.opened_at,
        opened_by: shift.opened_by.clone(),
        closed_at: shift.closed_at,
        closed_by: shift.closed_by.clone(),
        currency: shift.currency,
        cash,
        expected: (show_expected || shift.counted.is_some()).then_some(expected),
        counted: shift.counted,
        counted_by_denomination: shift.counted_counts.clone(),
        over_short,
        over_short_approved_by: None,
        movements,
        no_sales: no_sales_in_shift(conn, shift).await?,
        sales,
    })
}

/// The X report of the open shift.
pub async fn x_report(db: &LocalDb, show_expected: bool) -> Result<ShiftReport> {
    let mut conn = db
        .pool()
        .acquire()
        .await
        .context("reading the open shift")?;
    let shift = current_on(&mut conn).await?.ok_or_else(no_shift)?;
    report_on(&mut conn, &shift, show_expected).await
}

/// The blind count: written once for the open shift, then the expected cash and the
/// over/short are shown. Selling stops here (the shift is closing). Refused while a card
/// payment or a refund of the shift waits for Central's answer: its cash is not settled.
#[tracing::instrument(skip_all, fields(who))]
pub async fn count(
    db: &LocalDb,
    who: &str,
    counted: &CashCount,
    limits: ShiftLimits,
) -> Result<ShiftCount> {
    let mut tx = db.begin_write().await?;
    let shift = current_on(&mut tx).await?.ok_or_else(no_shift)?;
    if shift.counted.is_some() {
        return Err(Error::Invalid(
            "this shift's cash is counted already (the count is blind and made once): finish \
             the close"
                .into(),
        ));
    }
    let amount = counted
        .total(shift.currency)
        .map_err(|e| Error::Invalid(format!("the count: {e}")))?;
    check_settled(&mut tx, &shift).await?;
    let by_denomination = serde_json::to_string(&counted.by_denomination())
        .map_err(|e| corrupt("a cash count", e))?;
    sqlx::query(
        "UPDATE shifts SET counted_at = ?, counted_by = ?, counted_minor = ?, counted_counts = ?
         WHERE id = ? AND counted_at IS NULL",
    )
    .bind(now_ms())
    .bind(who)
    .bind(amount.to_minor())
    .bind(by_denomination)
    .bind(shift.id.to_string())
    .execute(&mut *tx)
    .await
    .context("recording the count")?;
    let shift = current_on(&mut tx).await?.ok_or_else(no_shift)?;
    let report = report_on(&mut tx, &shift, true).await?;
    tx.commit().await.context("recording the count")?;
    shift_count(&report, limits)
}

/// The count's outcome from a counted shift's report.
fn shift_count(report: &ShiftReport, limits: ShiftLimits) -> Result<ShiftCount> {
    let (Some(expected), Some(counted), Some(over_short)) =
        (report.expected, report.counted, report.over_short)
    else {
        return Err(Error::Invalid(
            "this shift's cash is not counted yet".into(),
        ));
    };
    let tolerance = Money::from_minor(limits.over_short_tolerance_minor, report.currency);
    Ok(ShiftCount {
        expected,
        counted,
        over_short,
        tolerance,
        needs_approval: !within_tolerance(&over_short, &tolerance)?,
    })
}

/// The open shift's count, if it has been counted.
pub async fn counted(db: &LocalDb, limits: ShiftLimits) -> Result<Option<ShiftCount>> {
    let mut conn = db
        .pool()
        .acquire()
        .await
        .context("reading the open shift")?;
    let shift = current_on(&mut conn).await?.ok_or_else(no_shift)?;
    if shift.counted.is_none() {
        return Ok(None);
    }
    let report = report_on(&mut conn, &shift, true).await?;
    shift_count(&report, limits).map(Some)
}

async fn check_settled(conn: &mut SqliteConnection, shift: &Shift) -> Result<()> {
    let id = shift.id.to_string();
    let cards: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM card_sales WHERE shift_id = ? AND status = 'pending'",
    )
    .bind(&id)
    .fetch_one(&mut *conn)
    .await
    .context("counting the shift's card payments")?;
    let refunds: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pending_refunds WHERE shift_id = ?")
            .bind(&id)
            .fetch_one(&mut *conn)
            .await
            .context("counting the shift's refunds")?;
    if cards + refunds > 0 {
        return Err(Error::Invalid(format!(
            "{cards} card payments and {refunds} refunds of this shift wait for Central's \
             answer: close once they have settled"
        )));
    }
    Ok(())
}

/// Closes the counted shift: the Z report is written with the next Z number, in the same
/// transaction as the close, or nothing is. Beyond the tolerance `approved_by` (a manager)
/// must be given.
#[tracing::instrument(skip_all, fields(who))]
pub async fn close(
    db: &LocalDb,
    who: &str,
    approved_by: Option<&str>,
    limits: ShiftLimits,
) -> Result<ShiftReport> {
    let mut tx = db.begin_write().await?;
    let shift = current_on(&mut tx).await?.ok_or_else(no_shift)?;
    if shift.counted.is_none() {
        return Err(Error::Invalid(
            "count the drawer first: the close is a blind count".into(),
        ));
    }
    let closed_at = time(now_ms())?;
    let closing = Shift {
        closed_at: Some(closed_at),
        closed_by: Some(who.to_owned()),
        ..shift
    };
    let mut report = report_on(&mut tx, &closing, true).await?;
    let outcome = shift_count(&report, limits)?;
    if outcome.needs_approval && approved_by.is_none() {
        return Err(Error::ApprovalRequired(format!(
            "the drawer is {} {} (beyond {} either way): a manager approves the close",
            if outcome.over_short.is_negative() {
                "short"
            } else {
                "over"
            },
            outcome.over_short,
            outcome.tolerance
        )));
    }
    if outcome.needs_approval {
        report.over_short_approved_by = approved_by.map(str::to_owned);
    }
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(z_no) FROM z_reports")
        .fetch_one(&mut *tx)
        .await
        .context("reading the last Z number")?;
    let z_no = last.unwrap_or(0) + 1;
    report.z_no = Some(z_no);
    report.check().map_err(Error::Corrupt)?;
    let body = serde_json::to_string(&report).map_err(|e| corrupt("a Z report", e))?;
    sqlx::query(
        "UPDATE shifts SET closed_at = ?, closed_by = ? WHERE id = ? AND closed_at IS NULL",
    )
    .bind(closed_at.timestamp_millis())
    .bind(who)
    .bind(closing.id.to_string())
    .execute(&mut *tx)
    .await
    .context("closing the shift")?;
    sqlx::query("INSERT INTO z_reports (z_no, shift_id, report, written_at) VALUES (?, ?, ?, ?)")
        .bind(z_no)
        .bind(closing.id.to_string())
        .bind(body)
        .bind(closed_at.timestamp_millis())
        .execute(&mut *tx)
        .await
        .context("writing the Z report")?;
    tx.commit().await.context("closing the shift")?;
    Ok(report)
}

fn z_from_row(row: &SqliteRow) -> Result<ShiftReport> {
    let body: String = row.get("report");
    serde_json::from_str(&body).map_err(|e| corrupt("a Z report", e))
}

/// Z report `z_no`.
pub async fn z_report(db: &LocalDb, z_no: i64) -> Result<ShiftReport> {
    let row = sqlx::query("SELECT report FROM z_reports WHERE z_no = ?")
        .bind(z_no)
        .fetch_optional(db.reader())
        .await
        .context("reading a Z report")?
        .ok_or_else(|| Error::NotFound(format!("Z report {z_no}")))?;
    z_from_row(&row)
}

/// The last `limit` Z reports (at most [`Z_REPORTS_LISTED_MAX`]), newest first.
pub async fn z_reports(db: &LocalDb, limit: u32) -> Result<Vec<ShiftReport>> {
    let rows = sqlx::query("SELECT report FROM z_reports ORDER BY z_no DESC LIMIT ?")
        .bind(limit.min(Z_REPORTS_LISTED_MAX))
        .fetch_all(db.reader())
        .await
        .context("listing Z reports")?;
    rows.iter().map(z_from_row).collect()
}

/// Z reports not yet delivered to Central, lowest number first.
pub async fn unsynced(db: &LocalDb, limit: u32) -> Result<Vec<ShiftReport>> {
    let rows =
        sqlx::query("SELECT report FROM z_reports WHERE synced_at IS NULL ORDER BY z_no LIMIT ?")
            .bind(limit)
            .fetch_all(db.pool())
            .await
            .context("reading Z reports to sync")?;
    rows.iter().map(z_from_row).collect()
}

/// Central has Z report `z_no`.
pub async fn mark_synced(db: &LocalDb, z_no: i64) -> Result<()> {
    sqlx::query("UPDATE z_reports SET synced_at = ? WHERE z_no = ? AND synced_at IS NULL")
        .bind(now_ms())
        .bind(z_no)
        .execute(db.pool())
        .await
        .context("recording a Z report's delivery")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_movement_needs_a_positive_amount_in_the_till_currency_and_a_reason() {
        let eur = |s: &str| Money::parse(s, Currency::EUR).unwrap();
        assert!(check_movement(Currency::EUR, &eur("10.00"), "window cleaner").is_ok());
        assert!(check_movement(Currency::EUR, &eur("0.00"), "nothing").is_err());
        assert!(check_movement(Currency::EUR, &eur("-1.00"), "minus").is_err());
        assert!(check_movement(Currency::EUR, &eur("1.00"), "  ").is_err());
        assert!(check_movement(Currency::EUR, &eur("1.00"), &"x".repeat(201)).is_err());
        let usd = Money::parse("1.00", Currency::USD).unwrap();
        assert!(check_movement(Currency::EUR, &usd, "dollars").is_err());
    }
}
