//! SQL for shifts: the Z reports registers deliver, one row per (register, Z number).

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use kassa_domain::shift::{CashSummary, ShiftReport, ShiftSummary, ZGap};
use kassa_domain::{Currency, Money};
use sqlx::Row;
use uuid::Uuid;

use super::{now_ms, Db, Tx};

/// A Z report to keep, with where it came from.
#[derive(Debug)]
pub struct NewShift<'a> {
    pub register_id: Uuid,
    pub location_id: &'a str,
    pub report: &'a ShiftReport,
    /// The report as kept (and compared on a replay).
    pub body: &'a str,
    pub received_from: Uuid,
    pub z_no: i64,
    pub closed_at: DateTime<Utc>,
    pub closed_by: &'a str,
    pub expected: Money,
    pub counted: Money,
    pub over_short: Money,
}

/// Keeps the report; `false` when (register, Z number) or the shift id is taken already (the
/// caller reads what is there). A concurrent delivery of the same report waits here on
/// PostgreSQL until the other transaction ends.
pub async fn insert(tx: &mut Tx, s: &NewShift<'_>) -> anyhow::Result<bool> {
    let r = s.report;
    let c = &r.cash;
    let done = sqlx::query(
        "INSERT INTO shifts (register_id, z_no, shift_id, location_id, register_code, business_day,
            opened_at, closed_at, opened_by, closed_by, currency, float_minor, cash_sales_minor,
            cash_refunds_minor, paid_in_minor, paid_out_minor, safe_drops_minor, expected_minor,
            counted_minor, over_short_minor, over_short_approved_by, sales, gross_minor,
            refunds_minor, net_minor, no_sales, report, received_at, received_from)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)
         ON CONFLICT DO NOTHING",
    )
    .bind(s.register_id.to_string())
    .bind(s.z_no)
    .bind(r.shift_id.to_string())
    .bind(s.location_id)
    .bind(&r.register_code)
    .bind(r.business_day.to_string())
    .bind(r.opened_at.timestamp_millis())
    .bind(s.closed_at.timestamp_millis())
    .bind(&r.opened_by)
    .bind(s.closed_by)
    .bind(r.currency.code())
    .bind(c.float.to_minor())
    .bind(c.cash_sales.to_minor())
    .bind(c.cash_refunds.to_minor())
    .bind(c.paid_in.to_minor())
    .bind(c.paid_out.to_minor())
    .bind(c.safe_drops.to_minor())
    .bind(s.expected.to_minor())
    .bind(s.counted.to_minor())
    .bind(s.over_short.to_minor())
    .bind(r.over_short_approved_by.as_deref())
    .bind(r.sales.sales)
    .bind(r.sales.gross.to_minor())
    .bind(r.sales.refunds.to_minor())
    .bind(r.sales.net.to_minor())
    .bind(r.no_sales)
    .bind(s.body)
    .bind(now_ms())
    .bind(s.received_from.to_string())
    .execute(&mut **tx)
    .await
    .context("keeping a Z report")?;
    Ok(done.rows_affected() == 1)
}

/// The report kept under (register, Z number), as it came.
pub async fn kept(tx: &mut Tx, register_id: Uuid, z_no: i64) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar("SELECT report FROM shifts WHERE register_id = $1 AND z_no = $2")
        .bind(register_id.to_string())
        .bind(z_no)
        .fetch_optional(&mut **tx)
        .await
        .context("reading a Z report")
}

/// Z numbers missing just below `z_no` of a register: `(from, to)`.
pub async fn gap_below(
    tx: &mut Tx,
    register_id: Uuid,
    z_no: i64,
) -> anyhow::Result<Option<(i64, i64)>> {
    let below: Option<i64> =
        sqlx::query_scalar("SELECT MAX(z_no) FROM shifts WHERE register_id = $1 AND z_no < $2")
            .bind(register_id.to_string())
            .bind(z_no)
            .fetch_one(&mut **tx)
            .await
            .context("reading the Z number below")?;
    let from = below.unwrap_or(0) + 1;
    Ok((from < z_no).then_some((from, z_no - 1)))
}

/// Which shifts to list.
#[derive(Debug)]
pub struct Filter<'a> {
    pub location_id: Option<&'a str>,
    /// A register's id or its code.
    pub register: Option<&'a str>,
    pub since: Option<NaiveDate>,
    pub limit: i64,
}

const WHERE: &str = "($1 IS NULL OR s.location_id = $1)
    AND ($2 IS NULL OR s.register_id = $2 OR s.register_code = $2)";

/// The shifts matching `filter`, by business day, location, register code and Z number.
pub async fn list(db: &Db, filter: &Filter<'_>) -> anyhow::Result<Vec<ShiftSummary>> {
    let sql = format!(
        "SELECT s.*, l.code AS location_code FROM shifts s JOIN locations l ON l.id = s.location_id
         WHERE {WHERE} AND s.business_day >= $3
         ORDER BY s.business_day, l.code, s.register_code, s.z_no LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(filter.location_id)
        .bind(filter.register)
        .bind(filter.since.map_or_else(String::new, |d| d.to_string()))
        .bind(filter.limit)
        .fetch_all(db.pool())
        .await
        .context("listing shifts")?;
    rows.iter().map(decode).collect()
}

/// Every gap in the Z numbers of the registers `filter` names (at most `limit`).
pub async fn gaps(db: &Db, filter: &Filter<'_>) -> anyhow::Result<Vec<ZGap>> {
    let sql = format!(
        "SELECT s.register_id, s.register_code, s.z_no,
            (SELECT MAX(p.z_no) FROM shifts p WHERE p.register_id = s.register_id
               AND p.z_no < s.z_no) AS below
         FROM shifts s
         WHERE {WHERE} AND s.z_no > 1 AND NOT EXISTS (
            SELECT 1 FROM shifts p WHERE p.register_id = s.register_id AND p.z_no = s.z_no - 1)
         ORDER BY s.register_code, s.register_id, s.z_no LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(filter.location_id)
        .bind(filter.register)
        .bind(filter.limit)
        .fetch_all(db.pool())
        .await
        .context("finding Z number gaps")?;
    rows.iter()
        .map(|row| {
            let before: i64 = row.try_get("z_no")?;
            let below: Option<i64> = row.try_get("below")?;
            Ok(ZGap {
                register_id: row
                    .try_get::<String, _>("register_id")?
                    .parse()
                    .context("register id")?,
                register_code: row.try_get("register_code")?,
                from: below.unwrap_or(0) + 1,
                to: before - 1,
                before,
            })
        })
        .collect()
}

fn decode(row: &sqlx::any::AnyRow) -> anyhow::Result<ShiftSummary> {
    let currency: Currency = row
        .try_get::<String, _>("currency")?
        .parse()
        .context("shift currency")?;
    let m =
        |col: &str| -> anyhow::Result<Money> { Ok(Money::from_minor(row.try_get(col)?, currency)) };
    let at = |col: &str| -> anyhow::Result<DateTime<Utc>> {
        let ms: i64 = row.try_get(col)?;
        DateTime::from_timestamp_millis(ms).context("shift time")
    };
    let day: String = row.try_get("business_day")?;
    Ok(ShiftSummary {
        register_id: row
            .try_get::<String, _>("register_id")?
            .parse()
            .context("register id")?,
        register_code: row.try_get("register_code")?,
        location: row.try_get("location_code")?,
        z_no: row.try_get("z_no")?,
        shift_id: row
            .try_get::<String, _>("shift_id")?
            .parse()
            .context("shift id")?,
        business_day: day.parse().context("business day")?,
        opened_at: at("opened_at")?,
        closed_at: at("closed_at")?,
        opened_by: row.try_get("opened_by")?,
        closed_by: row.try_get("closed_by")?,
        cash: CashSummary {
            float: m("float_minor")?,
            cash_sales: m("cash_sales_minor")?,
            cash_refunds: m("cash_refunds_minor")?,
            paid_in: m("paid_in_minor")?,
            paid_out: m("paid_out_minor")?,
            safe_drops: m("safe_drops_minor")?,
        },
        expected: m("expected_minor")?,
        counted: m("counted_minor")?,
        over_short: m("over_short_minor")?,
        over_short_approved_by: row.try_get("over_short_approved_by")?,
        sales: row.try_get("sales")?,
        gross: m("gross_minor")?,
        refunds: m("refunds_minor")?,
        net: m("net_minor")?,
        no_sales: row.try_get("no_sales")?,
    })
}
