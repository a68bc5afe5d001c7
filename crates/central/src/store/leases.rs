//! SQL for stock leases (stock reserved for one register) and their per-location settings. The
//! stock side of a lease (reserving, giving back, selling) is in [`super::stock`]; every change
//! here runs in the transaction that moves those units, under the stock rows' locks.

use anyhow::Context;
use sqlx::Row;

use super::{now_ms, Db, Tx};

/// A lease as stored.
#[derive(Debug, Clone)]
pub struct LeaseRow {
    pub id: String,
    pub register_id: String,
    pub location_id: String,
    pub location_code: String,
    pub status: String,
    pub expires_at: i64,
    pub created_at: i64,
    pub lines: Vec<LineRow>,
}

/// One SKU of a lease: `remaining = granted - consumed - released` (a CHECK constraint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRow {
    pub sku: String,
    pub requested: i64,
    pub granted: i64,
    pub consumed: i64,
    pub released: i64,
    pub remaining: i64,
}

/// A new lease, its lines already reserved in the same transaction.
#[derive(Debug)]
pub struct NewLease<'a> {
    pub id: &'a str,
    pub register_id: &'a str,
    pub location_id: &'a str,
    pub expires_at: i64,
    pub created_by: &'a str,
}

pub async fn insert(tx: &mut Tx, lease: &NewLease<'_>) -> anyhow::Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO stock_leases (id, register_id, location_id, status, expires_at, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, 'active', $4, $5, $6, $6)",
    )
    .bind(lease.id)
    .bind(lease.register_id)
    .bind(lease.location_id)
    .bind(lease.expires_at)
    .bind(lease.created_by)
    .bind(now)
    .execute(&mut **tx)
    .await
    .context("inserting stock lease")?;
    Ok(())
}

/// Adds a line that holds `granted` of the `requested` units.
pub async fn insert_line(
    tx: &mut Tx,
    lease_id: &str,
    sku: &str,
    requested: i64,
    granted: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO stock_lease_lines (lease_id, sku, requested, granted, remaining) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(lease_id)
    .bind(sku)
    .bind(requested)
    .bind(granted)
    .execute(&mut **tx)
    .await
    .context("inserting stock lease line")?;
    Ok(())
}

/// Resizes a line: `grow` more units held, `give` units given back, `requested` what was
/// asked. Fails (CHECK) rather than hold fewer than zero.
pub async fn resize_line(
    tx: &mut Tx,
    lease_id: &str,
    sku: &str,
    requested: i64,
    grow: i64,
    give: i64,
) -> anyhow::Result<()> {
    let done = sqlx::query(
        "UPDATE stock_lease_lines SET requested = $1, granted = granted + $2, \
         released = released + $3, remaining = remaining + $2 - $3 \
         WHERE lease_id = $4 AND sku = $5",
    )
    .bind(requested)
    .bind(grow)
    .bind(give)
    .bind(lease_id)
    .bind(sku)
    .execute(&mut **tx)
    .await
    .context("resizing stock lease line")?;
    anyhow::ensure!(done.rows_affected() == 1, "lease line {sku} vanished");
    Ok(())
}

const LEASE_SELECT: &str = "SELECT s.id, s.register_id, s.location_id, l.code, s.status, \
     s.expires_at, s.created_at FROM stock_leases s JOIN locations l ON l.id = s.location_id";

async fn lines_of(conn: &mut sqlx::AnyConnection, lease_id: &str) -> anyhow::Result<Vec<LineRow>> {
    let rows = sqlx::query(
        "SELECT sku, requested, granted, consumed, released, remaining \
         FROM stock_lease_lines WHERE lease_id = $1 ORDER BY sku",
    )
    .bind(lease_id)
    .fetch_all(&mut *conn)
    .await
    .context("loading stock lease lines")?;
    rows.iter()
        .map(|r| {
            Ok(LineRow {
                sku: r.try_get("sku")?,
                requested: r.try_get("requested")?,
                granted: r.try_get("granted")?,
                consumed: r.try_get("consumed")?,
                released: r.try_get("released")?,
                remaining: r.try_get("remaining")?,
            })
        })
        .collect()
}

fn decode(row: &sqlx::any::AnyRow) -> anyhow::Result<LeaseRow> {
    Ok(LeaseRow {
        id: row.try_get("id")?,
        register_id: row.try_get("register_id")?,
        location_id: row.try_get("location_id")?,
        location_code: row.try_get("code")?,
        status: row.try_get("status")?,
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
        lines: Vec::new(),
    })
}

/// One lease with its lines, as `conn` sees it.
pub async fn get(conn: &mut sqlx::AnyConnection, id: &str) -> anyhow::Result<Option<LeaseRow>> {
    let row = sqlx::query(&format!("{LEASE_SELECT} WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .context("loading stock lease")?;
    let Some(row) = row else { return Ok(None) };
    let mut lease = decode(&row)?;
    lease.lines = lines_of(conn, id).await?;
    Ok(Some(lease))
}

/// Leases newest first, of one register (its id) or of all; only active ones when asked.
#[tracing::instrument(skip_all)]
pub async fn list(
    db: &Db,
    register_id: Option<&str>,
    active_only: bool,
    limit: i64,
) -> anyhow::Result<Vec<LeaseRow>> {
    let mut conn = db.pool().acquire().await.context("listing stock leases")?;
    let rows = sqlx::query(&format!(
        "{LEASE_SELECT} WHERE ($1 = '' OR s.register_id = $1) AND ($2 = 0 OR s.status = 'active') \
         ORDER BY s.id DESC LIMIT $3"
    ))
    .bind(register_id.unwrap_or_default())
    .bind(i64::from(active_only))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .context("listing stock leases")?;
    let mut leases = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut lease = decode(row)?;
        lease.lines = lines_of(&mut conn, &lease.id).await?;
        leases.push(lease);
    }
    Ok(leases)
}

/// The lease's status, its row locked (PostgreSQL `FOR UPDATE`; SQLite is serial). Callers
/// lock the lease's stock rows first: stock rows, then the lease, is the one lock order.
pub async fn lock(db: &Db, tx: &mut Tx, id: &str) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar(&format!(
        "SELECT status FROM stock_leases WHERE id = $1{}",
        db.for_update()
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .context("locking stock lease")
}

/// Moves the expiry of an active lease.
pub async fn renew(tx: &mut Tx, id: &str, expires_at: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE stock_leases SET expires_at = $1, updated_at = $2 WHERE id = $3 AND status = 'active'",
    )
    .bind(expires_at)
    .bind(now_ms())
    .bind(id)
    .execute(&mut **tx)
    .await
    .context("renewing stock lease")?;
    Ok(())
}

/// Ends an active lease as `to` exactly once: conditional on `active`, so of racing sweepers
/// (or a sweeper and a release) only one wins. Its lines then hold nothing: what they held is
/// returned as (sku, units) for the caller to give back to available.
pub async fn end(tx: &mut Tx, id: &str, to: &str) -> anyhow::Result<Option<Vec<(String, i64)>>> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE stock_leases SET status = $1, ended_at = $2, updated_at = $2 \
         WHERE id = $3 AND status = 'active'",
    )
    .bind(to)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await
    .context("ending stock lease")?;
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    let held: Vec<(String, i64)> = lines_of(tx, id)
        .await?
        .into_iter()
        .filter(|l| l.remaining > 0)
        .map(|l| (l.sku, l.remaining))
        .collect();
    sqlx::query(
        "UPDATE stock_lease_lines SET released = released + remaining, remaining = 0 \
         WHERE lease_id = $1",
    )
    .bind(id)
    .execute(&mut **tx)
    .await
    .context("emptying stock lease lines")?;
    Ok(Some(held))
}

/// Ids of active leases past their expiry, soonest first.
pub async fn expired(db: &Db, now: i64, limit: i64) -> anyhow::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT id FROM stock_leases WHERE status = 'active' AND expires_at <= $1 \
         ORDER BY expires_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .context("finding expired stock leases")
}

/// What a register's active leases still hold of `sku`: (lease id, remaining), soonest expiry
/// first, the lines locked (PostgreSQL; the caller holds the stock row already).
pub async fn held(
    db: &Db,
    tx: &mut Tx,
    register_id: &str,
    location_id: &str,
    sku: &str,
) -> anyhow::Result<Vec<(String, i64)>> {
    let lock = if db.for_update().is_empty() {
        ""
    } else {
        " FOR UPDATE OF ll"
    };
    let rows = sqlx::query(&format!(
        "SELECT ll.lease_id, ll.remaining FROM stock_lease_lines ll \
         JOIN stock_leases s ON s.id = ll.lease_id \
         WHERE s.register_id = $1 AND s.location_id = $2 AND s.status = 'active' \
           AND ll.sku = $3 AND ll.remaining > 0 \
         ORDER BY s.expires_at, s.id{lock}"
    ))
    .bind(register_id)
    .bind(location_id)
    .bind(sku)
    .fetch_all(&mut **tx)
    .await
    .context("reading a register's leased stock")?;
    rows.iter()
        .map(|r| Ok((r.try_get("lease_id")?, r.try_get("remaining")?)))
        .collect()
}

/// What the active leases of the other registers at a location still hold of `sku`: (lease
/// id, register id, remaining), the fullest first, the lines locked (PostgreSQL; the caller
/// holds the stock row already). A till's sale past its own lease takes from them: the tills
/// share the shelf.
pub async fn held_by_others(
    db: &Db,
    tx: &mut Tx,
    register_id: &str,
    location_id: &str,
    sku: &str,
) -> anyhow::Result<Vec<(String, String, i64)>> {
    let lock = if db.for_update().is_empty() {
        ""
    } else {
        " FOR UPDATE OF ll"
    };
    let rows = sqlx::query(&format!(
        "SELECT ll.lease_id, s.register_id, ll.remaining FROM stock_lease_lines ll \
         JOIN stock_leases s ON s.id = ll.lease_id \
         WHERE s.register_id <> $1 AND s.location_id = $2 AND s.status = 'active' \
           AND ll.sku = $3 AND ll.remaining > 0 \
         ORDER BY ll.remaining DESC, s.id{lock}"
    ))
    .bind(register_id)
    .bind(location_id)
    .bind(sku)
    .fetch_all(&mut **tx)
    .await
    .context("reading the other registers' leased stock")?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("lease_id")?,
                r.try_get("register_id")?,
                r.try_get("remaining")?,
            ))
        })
        .collect()
}

/// Whether a register holds an active lease at a location (unlocked: a hint to skip the locks
/// when it holds none). Read in the caller's transaction: a second pool connection per request
/// could exhaust the pool under load.
pub async fn holds_any(tx: &mut Tx, register_id: &str, location_id: &str) -> anyhow::Result<bool> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM stock_leases WHERE register_id = $1 AND location_id = $2 \
         AND status = 'active' LIMIT 1",
    )
    .bind(register_id)
    .bind(location_id)
    .fetch_optional(&mut **tx)
    .await
    .context("looking for a register's lease")?;
    Ok(found.is_some())
}

/// Takes `qty` units of `sku` from a lease's line for a sale; `false` when it holds fewer.
pub async fn consume(tx: &mut Tx, lease_id: &str, sku: &str, qty: i64) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE stock_lease_lines SET consumed = consumed + $1, remaining = remaining - $1 \
         WHERE lease_id = $2 AND sku = $3 AND remaining >= $1",
    )
    .bind(qty)
    .bind(lease_id)
    .bind(sku)
    .execute(&mut **tx)
    .await
    .context("consuming stock lease")?;
    Ok(done.rows_affected() == 1)
}

/// A location's lease settings as stored.
#[derive(Debug, Clone)]
pub struct SettingsRow {
    pub horizon_s: i64,
    pub cap_percent: i64,
    pub floor_units: i64,
    pub top_sellers: i64,
    pub beyond: String,
}

pub async fn settings(db: &Db, location_id: &str) -> anyhow::Result<Option<SettingsRow>> {
    let row = sqlx::query(
        "SELECT horizon_s, cap_percent, floor_units, top_sellers, beyond \
         FROM lease_settings WHERE location_id = $1",
    )
    .bind(location_id)
    .fetch_optional(db.pool())
    .await
    .context("reading lease settings")?;
    row.map(|r| {
        Ok(SettingsRow {
            horizon_s: r.try_get("horizon_s")?,
            cap_percent: r.try_get("cap_percent")?,
            floor_units: r.try_get("floor_units")?,
            top_sellers: r.try_get("top_sellers")?,
            beyond: r.try_get("beyond")?,
        })
    })
    .transpose()
}

pub async fn set_settings(
    db: &Db,
    location_id: &str,
    s: &SettingsRow,
    updated_by: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO lease_settings (location_id, horizon_s, cap_percent, floor_units, top_sellers, beyond, updated_by, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (location_id) DO UPDATE SET horizon_s = excluded.horizon_s, \
           cap_percent = excluded.cap_percent, floor_units = excluded.floor_units, \
           top_sellers = excluded.top_sellers, beyond = excluded.beyond, \
           updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(location_id)
    .bind(s.horizon_s)
    .bind(s.cap_percent)
    .bind(s.floor_units)
    .bind(s.top_sellers)
    .bind(&s.beyond)
    .bind(updated_by)
    .bind(now_ms())
    .execute(db.pool())
    .await
    .context("writing lease settings")?;
    Ok(())
}
