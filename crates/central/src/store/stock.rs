//! SQL for stock levels, the stock ledger and reservations. Every change of `on_hand` writes a
//! ledger row in the same transaction; `available` is guarded by conditional updates and by the
//! table's CHECK constraints.

use anyhow::Context;
use kassa_domain::api::StockReason;
use sqlx::Row;
use uuid::Uuid;

use super::{now_ms, Db, Tx};

/// A stock row after a change.
#[derive(Debug, Clone, Copy)]
pub struct Level {
    pub on_hand: i64,
    pub reserved: i64,
    pub low_threshold: Option<i64>,
}

impl Level {
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

fn decode_level(row: &sqlx::any::AnyRow) -> anyhow::Result<Level> {
    Ok(Level {
        on_hand: row.try_get("on_hand")?,
        reserved: row.try_get("reserved")?,
        low_threshold: row.try_get("low_threshold")?,
    })
}

/// Available units (on hand less reserved) of the rows changed at or after `since_ms`, at most
/// `limit`, as (sku, location_id, available): what the hot-SKU gate's counters follow.
pub async fn available_changed_since<'e, E>(
    exec: E,
    since_ms: i64,
    limit: i64,
) -> anyhow::Result<Vec<(String, String, i64)>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT sku, location_id, on_hand - reserved AS available FROM stock \
         WHERE updated_at >= $1 ORDER BY updated_at DESC LIMIT $2",
    )
    .bind(since_ms)
    .bind(limit)
    .fetch_all(exec)
    .await
    .context("reading changed stock levels")?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("sku")?,
                row.try_get("location_id")?,
                row.try_get("available")?,
            ))
        })
        .collect()
}

/// Makes sure a row exists for (sku, location) so conditional updates have something to lock.
pub async fn ensure_row(tx: &mut Tx, sku: &str, location_id: &str) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO stock (sku, location_id, on_hand, reserved, updated_at) VALUES ($1, $2, 0, 0, $3) \
         ON CONFLICT (sku, location_id) DO NOTHING",
    )
    .bind(sku)
    .bind(location_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("creating stock row")?;
    Ok(())
}

pub async fn level<'e, E>(exec: E, sku: &str, location_id: &str) -> anyhow::Result<Option<Level>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT on_hand, reserved, low_threshold FROM stock WHERE sku = $1 AND location_id = $2",
    )
    .bind(sku)
    .bind(location_id)
    .fetch_optional(exec)
    .await
    .context("reading stock level")?;
    row.as_ref().map(decode_level).transpose()
}

/// Levels at a location of the catalog's SKUs after `after`, in SKU order, at most `limit`;
/// a SKU without a stock row there counts 0.
pub async fn levels_after<'e, E>(
    exec: E,
    location_id: &str,
    after: &str,
    limit: i64,
) -> anyhow::Result<Vec<(String, Level)>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT p.sku AS sku, COALESCE(s.on_hand, 0) AS on_hand, COALESCE(s.reserved, 0) AS reserved, \
                s.low_threshold AS low_threshold \
         FROM products p LEFT JOIN stock s ON s.sku = p.sku AND s.location_id = $1 \
         WHERE p.sku > $2 ORDER BY p.sku LIMIT $3",
    )
    .bind(location_id)
    .bind(after)
    .bind(limit)
    .fetch_all(exec)
    .await
    .context("reading a page of stock levels")?;
    rows.iter()
        .map(|row| Ok((row.try_get("sku")?, decode_level(row)?)))
        .collect()
}

/// A ledger row: one movement of on_hand.
#[derive(Debug)]
pub struct Movement<'a> {
    pub sku: &'a str,
    pub location_id: &'a str,
    pub delta: i64,
    pub reason: StockReason,
    pub reference: Option<&'a str>,
    pub note: Option<&'a str>,
    pub created_by: Option<&'a str>,
}

async fn write_ledger(tx: &mut Tx, m: &Movement<'_>) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO stock_ledger (id, sku, location_id, delta, reason, ref, note, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(m.sku)
    .bind(m.location_id)
    .bind(m.delta)
    .bind(m.reason.as_str())
    .bind(m.reference)
    .bind(m.note)
    .bind(m.created_by)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("writing stock ledger")?;
    Ok(())
}

/// Moves on_hand by `m.delta` (with its ledger row) unless that would make available negative;
/// `Ok(None)` then, and nothing is written.
pub async fn move_on_hand(tx: &mut Tx, m: &Movement<'_>) -> anyhow::Result<Option<Level>> {
    ensure_row(tx, m.sku, m.location_id).await?;
    let row = sqlx::query(
        "UPDATE stock SET on_hand = on_hand + $1, updated_at = $2 \
         WHERE sku = $3 AND location_id = $4 AND on_hand + $1 - reserved >= 0 \
         RETURNING on_hand, reserved, low_threshold",
    )
    .bind(m.delta)
    .bind(now_ms())
    .bind(m.sku)
    .bind(m.location_id)
    .fetch_optional(&mut **tx)
    .await
    .context("moving stock")?;
    let Some(row) = row else { return Ok(None) };
    write_ledger(tx, m).await?;
    Ok(Some(decode_level(&row)?))
}

/// Reserves `qty` if that many are available: the conditional update is the guard, so
/// concurrent reservations can never take available below zero. `Ok(None)` when short.
pub async fn reserve(
    tx: &mut Tx,
    sku: &str,
    location_id: &str,
    qty: i64,
) -> anyhow::Result<Option<Level>> {
    let row = sqlx::query(
        "UPDATE stock SET reserved = reserved + $1, updated_at = $2 \
         WHERE sku = $3 AND location_id = $4 AND on_hand - reserved >= $1 \
         RETURNING on_hand, reserved, low_threshold",
    )
    .bind(qty)
    .bind(now_ms())
    .bind(sku)
    .bind(location_id)
    .fetch_optional(&mut **tx)
    .await
    .context("reserving stock")?;
    row.as_ref().map(decode_level).transpose()
}

/// Gives reserved units back to available.
pub async fn unreserve(tx: &mut Tx, sku: &str, location_id: &str, qty: i64) -> anyhow::Result<()> {
    let done = sqlx::query(
        "UPDATE stock SET reserved = reserved - $1, updated_at = $2 \
         WHERE sku = $3 AND location_id = $4 AND reserved >= $1",
    )
    .bind(qty)
    .bind(now_ms())
    .bind(sku)
    .bind(location_id)
    .execute(&mut **tx)
    .await
    .context("releasing reserved stock")?;
    anyhow::ensure!(
        done.rows_affected() == 1,
        "reserved stock of {sku} is smaller than a reservation"
    );
    Ok(())
}

/// Turns reserved units into a sale: on_hand and reserved both drop, with a ledger row.
pub async fn convert(
    tx: &mut Tx,
    sku: &str,
    location_id: &str,
    qty: i64,
    order_id: &str,
) -> anyhow::Result<Level> {
    let row = sqlx::query(
        "UPDATE stock SET on_hand = on_hand - $1, reserved = reserved - $1, updated_at = $2 \
         WHERE sku = $3 AND location_id = $4 AND reserved >= $1 \
         RETURNING on_hand, reserved, low_threshold",
    )
    .bind(qty)
    .bind(now_ms())
    .bind(sku)
    .bind(location_id)
    .fetch_optional(&mut **tx)
    .await
    .context("converting reservation")?
    .context("reserved stock is smaller than the reservation being converted")?;
    let movement = Movement {
        sku,
        location_id,
        delta: -qty,
        reason: StockReason::ReservationConversion,
        reference: Some(order_id),
        note: None,
        created_by: None,
    };
    write_ledger(tx, &movement).await?;
    decode_level(&row)
}

/// Sells units that were held reserved (a register's lease): on_hand and reserved both drop by
/// `-m.delta`, with the movement's ledger row. Fails when fewer are reserved.
pub async fn sell_reserved(tx: &mut Tx, m: &Movement<'_>) -> anyhow::Result<Level> {
    anyhow::ensure!(m.delta < 0, "a sale from reserved stock takes units");
    let row = sqlx::query(
        "UPDATE stock SET on_hand = on_hand + $1, reserved = reserved + $1, updated_at = $2 \
         WHERE sku = $3 AND location_id = $4 AND reserved >= -$1 \
         RETURNING on_hand, reserved, low_threshold",
    )
    .bind(m.delta)
    .bind(now_ms())
    .bind(m.sku)
    .bind(m.location_id)
    .fetch_optional(&mut **tx)
    .await
    .context("selling reserved stock")?
    .context("reserved stock is smaller than the lease being sold from")?;
    write_ledger(tx, m).await?;
    decode_level(&row)
}

/// Locks and reads a stock row (PostgreSQL `FOR UPDATE`; SQLite's write transaction is serial).
pub async fn lock_level(
    db: &Db,
    tx: &mut Tx,
    sku: &str,
    location_id: &str,
) -> anyhow::Result<Level> {
    ensure_row(tx, sku, location_id).await?;
    let sql = format!(
        "SELECT on_hand, reserved, low_threshold FROM stock WHERE sku = $1 AND location_id = $2{}",
        db.for_update()
    );
    let row = sqlx::query(&sql)
        .bind(sku)
        .bind(location_id)
        .fetch_one(&mut **tx)
        .await
        .context("locking stock row")?;
    decode_level(&row)
}

/// Locks the existing stock rows of `skus` at a location in one pass, in SKU order
/// (PostgreSQL `FOR UPDATE`; SQLite's write transaction is serial): a transaction that then
/// touches them in any order can never deadlock with another that keeps the SKU order.
pub async fn lock_rows(
    db: &Db,
    tx: &mut Tx,
    location_id: &str,
    skus: &[&str],
) -> anyhow::Result<()> {
    if skus.is_empty() || db.for_update().is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (2..skus.len() + 2).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT sku FROM stock WHERE location_id = $1 AND sku IN ({}) ORDER BY sku{}",
        placeholders.join(", "),
        db.for_update()
    );
    let mut query = sqlx::query(&sql).bind(location_id);
    for sku in skus {
        query = query.bind(*sku);
    }
    query
        .fetch_all(&mut **tx)
        .await
        .context("locking a group's stock rows")?;
    Ok(())
}

pub async fn set_threshold(
    tx: &mut Tx,
    sku: &str,
    location_id: &str,
    threshold: Option<i64>,
) -> anyhow::Result<Level> {
    ensure_row(tx, sku, location_id).await?;
    let row = sqlx::query(
        "UPDATE stock SET low_threshold = $1, updated_at = $2 WHERE sku = $3 AND location_id = $4 \
         RETURNING on_hand, reserved, low_threshold",
    )
    .bind(threshold)
    .bind(now_ms())
    .bind(sku)
    .bind(location_id)
    .fetch_one(&mut **tx)
    .await
    .context("setting low-stock threshold")?;
    decode_level(&row)
}

/// Sum of the ledger for (sku, location): equals on_hand when the books balance.
pub async fn ledger_sum(db: &Db, sku: &str, location_id: &str) -> anyhow::Result<i64> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) FROM stock_ledger WHERE sku = $1 AND location_id = $2",
    )
    .bind(sku)
    .bind(location_id)
    .fetch_one(db.pool())
    .await
    .context("summing the stock ledger")
}

/// Records that an offline sale found `shortfall` fewer units than it sold.
pub async fn record_discrepancy(
    tx: &mut Tx,
    sku: &str,
    location_id: &str,
    order_id: &str,
    shortfall: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO stock_discrepancies (id, sku, location_id, order_id, shortfall, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(sku)
    .bind(location_id)
    .bind(order_id)
    .bind(shortfall)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("recording stock discrepancy")?;
    Ok(())
}

/// A filter on recorded discrepancies.
#[derive(Debug, Default)]
pub struct DiscrepancyFilter<'a> {
    /// Only this location (its id); `None`: every location.
    pub location_id: Option<&'a str>,
    /// Only those not resolved yet.
    pub open_only: bool,
    /// Only those after this id (the previous page's last).
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// What a discrepancy is read as.
const DISCREPANCY_SELECT: &str = "SELECT d.id, d.sku, l.code, d.order_id, d.shortfall, \
     d.created_at, d.resolved_at, u.username AS resolved_by, d.resolution \
     FROM stock_discrepancies d JOIN locations l ON l.id = d.location_id \
     LEFT JOIN users u ON u.id = d.resolved_by";

/// A page of recorded discrepancies, oldest first.
#[tracing::instrument(skip_all)]
pub async fn discrepancies(
    db: &Db,
    filter: &DiscrepancyFilter<'_>,
) -> anyhow::Result<Vec<kassa_domain::api::StockDiscrepancy>> {
    let rows = sqlx::query(&format!(
        "{DISCREPANCY_SELECT} \
         WHERE ($1 = '' OR d.location_id = $1) AND ($2 = 0 OR d.resolved_at IS NULL) AND d.id > $3 \
         ORDER BY d.id LIMIT $4"
    ))
    .bind(filter.location_id.unwrap_or_default())
    .bind(i64::from(filter.open_only))
    .bind(filter.after.map(|a| a.to_string()).unwrap_or_default())
    .bind(filter.limit)
    .fetch_all(db.pool())
    .await
    .context("listing stock discrepancies")?;
    rows.iter().map(decode_discrepancy).collect()
}

/// One discrepancy, as `tx` sees it.
pub async fn discrepancy(
    tx: &mut Tx,
    id: Uuid,
) -> anyhow::Result<Option<kassa_domain::api::StockDiscrepancy>> {
    sqlx::query(&format!("{DISCREPANCY_SELECT} WHERE d.id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .context("loading stock discrepancy")?
        .as_ref()
        .map(decode_discrepancy)
        .transpose()
}

/// Marks an open discrepancy resolved by `user_id`; `false` when it is not open (or unknown).
pub async fn resolve_discrepancy(
    tx: &mut Tx,
    id: Uuid,
    user_id: Uuid,
    note: &str,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE stock_discrepancies SET resolved_at = $1, resolved_by = $2, resolution = $3 \
         WHERE id = $4 AND resolved_at IS NULL",
    )
    .bind(now_ms())
    .bind(user_id.to_string())
    .bind(note)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .context("resolving stock discrepancy")?;
    Ok(done.rows_affected() == 1)
}

fn decode_discrepancy(
    row: &sqlx::any::AnyRow,
) -> anyhow::Result<kassa_domain::api::StockDiscrepancy> {
    let id: String = row.try_get("id")?;
    let sku: String = row.try_get("sku")?;
    let order_id: String = row.try_get("order_id")?;
    let resolved_at: Option<i64> = row.try_get("resolved_at")?;
    Ok(kassa_domain::api::StockDiscrepancy {
        id: id.parse().context("discrepancy id")?,
        sku: kassa_domain::Sku::parse(&sku)?,
        location: row.try_get("code")?,
        order_id: order_id.parse().context("discrepancy order id")?,
        shortfall: row.try_get("shortfall")?,
        created_at: super::from_ms(row.try_get("created_at")?),
        resolved_at: resolved_at.map(super::from_ms),
        resolved_by: row.try_get("resolved_by")?,
        resolution: row.try_get("resolution")?,
    })
}

// ---- reservations ----

#[derive(Debug, Clone)]
pub struct ReservationRow {
    pub id: String,
    pub location_id: String,
    pub order_id: Option<String>,
    pub status: String,
    pub expires_at: i64,
    pub created_by: String,
    pub lines: Vec<(String, i64)>,
}

pub async fn insert_reservation(tx: &mut Tx, r: &ReservationRow) -> anyhow::Result<()> {
    if tx.is_postgres() && !r.lines.is_empty() {
        return insert_reservation_with_lines(tx, r).await;
    }
    sqlx::query(
        "INSERT INTO reservations (id, location_id, order_id, status, expires_at, created_by, created_at) \
         VALUES ($1, $2, $3, 'active', $4, $5, $6)",
    )
    .bind(&r.id)
    .bind(&r.location_id)
    .bind(r.order_id.as_deref())
    .bind(r.expires_at)
    .bind(&r.created_by)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("inserting reservation")?;
    if r.lines.is_empty() {
        return Ok(());
    }
    // Every line in one statement.
    let rows: Vec<String> = (0..r.lines.len())
        .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    let sql = format!(
        "INSERT INTO reservation_lines (reservation_id, sku, qty) VALUES {}",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (sku, qty) in &r.lines {
        query = query.bind(&r.id).bind(sku).bind(qty);
    }
    query
        .execute(&mut **tx)
        .await
        .context("inserting reservation lines")?;
    Ok(())
}

/// PostgreSQL: the reservation and its lines in one statement (one round trip).
async fn insert_reservation_with_lines(tx: &mut Tx, r: &ReservationRow) -> anyhow::Result<()> {
    let values: Vec<String> = (0..r.lines.len())
        .map(|i| format!("(${}, ${})", 2 * i + 7, 2 * i + 8))
        .collect();
    let sql = format!(
        "WITH r AS (INSERT INTO reservations (id, location_id, order_id, status, expires_at, \
         created_by, created_at) VALUES ($1, $2, $3, 'active', $4, $5, $6) RETURNING id) \
         INSERT INTO reservation_lines (reservation_id, sku, qty) \
         SELECT r.id, v.sku, v.qty FROM r, (VALUES {}) AS v (sku, qty)",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(&r.id)
        .bind(&r.location_id)
        .bind(r.order_id.as_deref())
        .bind(r.expires_at)
        .bind(&r.created_by)
        .bind(now_ms());
    for (sku, qty) in &r.lines {
        query = query.bind(sku).bind(qty);
    }
    let done = query
        .execute(&mut **tx)
        .await
        .context("inserting reservation and lines")?;
    anyhow::ensure!(
        done.rows_affected() == r.lines.len() as u64,
        "reservation lines not all written"
    );
    Ok(())
}

pub async fn reservation(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> anyhow::Result<Option<ReservationRow>> {
    let row = sqlx::query("SELECT * FROM reservations WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .context("loading reservation")?;
    let Some(row) = row else { return Ok(None) };
    let lines = sqlx::query(
        "SELECT sku, qty FROM reservation_lines WHERE reservation_id = $1 ORDER BY sku",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .context("loading reservation lines")?
    .iter()
    .map(|r| Ok((r.try_get("sku")?, r.try_get("qty")?)))
    .collect::<anyhow::Result<Vec<(String, i64)>>>()?;
    Ok(Some(ReservationRow {
        id: row.try_get("id")?,
        location_id: row.try_get("location_id")?,
        order_id: row.try_get("order_id")?,
        status: row.try_get("status")?,
        expires_at: row.try_get("expires_at")?,
        created_by: row.try_get("created_by")?,
        lines,
    }))
}

/// Moves an active reservation to `to` exactly once: the update is conditional on `active`,
/// so of two racing sweepers (or a sweeper and a payment) only one wins.
pub async fn end_reservation(tx: &mut Tx, id: &str, to: &str) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE reservations SET status = $1, ended_at = $2 WHERE id = $3 AND status = 'active'",
    )
    .bind(to)
    .bind(now_ms())
    .bind(id)
    .execute(&mut **tx)
    .await
    .context("ending reservation")?;
    Ok(done.rows_affected() == 1)
}

/// Ids of active reservations past their expiry, oldest first.
pub async fn expired_reservations(db: &Db, now: i64, limit: i64) -> anyhow::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT id FROM reservations WHERE status = 'active' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .context("finding expired reservations")
}
