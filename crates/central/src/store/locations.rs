//! SQL for locations (stores and warehouses).

use anyhow::Context;
use kassa_domain::api::Location;
use kassa_domain::CashRounding;
use sqlx::Row;
use uuid::Uuid;

use super::{is_unique_violation, now_ms, Db};

fn decode(row: &sqlx::any::AnyRow) -> anyhow::Result<Location> {
    let id: String = row.try_get("id")?;
    Ok(Location {
        id: id.parse().context("location id")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        time_zone: row.try_get("time_zone")?,
        cash_rounding: CashRounding::new(row.try_get("cash_rounding_minor")?)
            .context("a stored cash rounding")?,
    })
}

/// Inserts a location in UTC; `Ok(None)` when the code is taken.
pub async fn insert(db: &Db, code: &str, name: &str) -> anyhow::Result<Option<Location>> {
    insert_in_zone(db, code, name, "UTC", CashRounding::NONE).await
}

/// Inserts a location in time zone `time_zone` (an IANA name, checked by the caller) with
/// its cash rounding rule; `Ok(None)` when the code is taken.
#[tracing::instrument(skip_all, fields(code))]
pub async fn insert_in_zone(
    db: &Db,
    code: &str,
    name: &str,
    time_zone: &str,
    cash_rounding: CashRounding,
) -> anyhow::Result<Option<Location>> {
    let id = Uuid::now_v7();
    let result = sqlx::query(
        "INSERT INTO locations (id, code, name, created_at, time_zone, cash_rounding_minor) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_string())
    .bind(code)
    .bind(name)
    .bind(now_ms())
    .bind(time_zone)
    .bind(i64::from(cash_rounding))
    .execute(db.pool())
    .await;
    match result {
        Ok(_) => Ok(Some(Location {
            id,
            code: code.to_owned(),
            name: name.to_owned(),
            time_zone: time_zone.to_owned(),
            cash_rounding,
        })),
        Err(e) if is_unique_violation(&e) => Ok(None),
        Err(e) => Err(anyhow::Error::from(e).context("inserting location")),
    }
}

#[tracing::instrument(skip_all)]
pub async fn list(db: &Db) -> anyhow::Result<Vec<Location>> {
    let rows = sqlx::query("SELECT * FROM locations ORDER BY code")
        .fetch_all(db.pool())
        .await
        .context("listing locations")?;
    rows.iter().map(decode).collect()
}

/// [`find_by_code`] inside a transaction: work that holds a connection must never wait for a
/// second one from the pool (enough such requests at once would wait on each other forever).
pub async fn find_by_code_in(tx: &mut super::Tx, code: &str) -> anyhow::Result<Option<Location>> {
    let row = sqlx::query("SELECT * FROM locations WHERE code = $1")
        .bind(code)
        .fetch_optional(&mut **tx)
        .await
        .context("looking up location")?;
    row.as_ref().map(decode).transpose()
}

#[tracing::instrument(skip_all, fields(code))]
pub async fn find_by_code(db: &Db, code: &str) -> anyhow::Result<Option<Location>> {
    let row = sqlx::query("SELECT * FROM locations WHERE code = $1")
        .bind(code)
        .fetch_optional(db.pool())
        .await
        .context("looking up location")?;
    row.as_ref().map(decode).transpose()
}

/// Sets a location's cash rounding rule; `Ok(None)` when no location has that code.
#[tracing::instrument(skip_all, fields(code, cash_rounding = %rule))]
pub async fn set_cash_rounding(
    db: &Db,
    code: &str,
    rule: CashRounding,
) -> anyhow::Result<Option<Location>> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE locations SET cash_rounding_minor = $1 WHERE code = $2")
        .bind(i64::from(rule))
        .bind(code)
        .execute(&mut *tx)
        .await
        .context("setting a location's cash rounding")?;
    let location = find_by_code_in(&mut tx, code).await?;
    tx.commit().await.context("committing a cash rounding")?;
    Ok(location)
}

/// The cash rounding rule of the location with id `location_id` (none for an unknown id).
pub async fn cash_rounding_in(
    tx: &mut super::Tx,
    location_id: &str,
) -> anyhow::Result<CashRounding> {
    let minor: Option<i64> =
        sqlx::query_scalar("SELECT cash_rounding_minor FROM locations WHERE id = $1")
            .bind(location_id)
            .fetch_optional(&mut **tx)
            .await
            .context("reading a location's cash rounding")?;
    CashRounding::new(minor.unwrap_or(0)).context("a stored cash rounding")
}
