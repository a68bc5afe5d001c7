//! SQL for locations (stores and warehouses).

use anyhow::Context;
use kassa_domain::api::Location;
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
    })
}

/// Inserts a location in UTC; `Ok(None)` when the code is taken.
pub async fn insert(db: &Db, code: &str, name: &str) -> anyhow::Result<Option<Location>> {
    insert_in_zone(db, code, name, "UTC").await
}

/// Inserts a location in time zone `time_zone` (an IANA name, checked by the caller);
/// `Ok(None)` when the code is taken.
#[tracing::instrument(skip_all, fields(code))]
pub async fn insert_in_zone(
    db: &Db,
    code: &str,
    name: &str,
    time_zone: &str,
) -> anyhow::Result<Option<Location>> {
    let id = Uuid::now_v7();
    let result = sqlx::query(
        "INSERT INTO locations (id, code, name, created_at, time_zone) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(code)
    .bind(name)
    .bind(now_ms())
    .bind(time_zone)
    .execute(db.pool())
    .await;
    match result {
        Ok(_) => Ok(Some(Location {
            id,
            code: code.to_owned(),
            name: name.to_owned(),
            time_zone: time_zone.to_owned(),
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
