//! SQL for registers (paired tills).

use anyhow::Context;
use uuid::Uuid;

use super::{now_ms, Db};

#[tracing::instrument(skip_all)]
pub async fn insert(
    db: &Db,
    id: Uuid,
    location_id: Uuid,
    name: &str,
    credential_hash: &str,
    created_by: Uuid,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO registers (id, location_id, name, credential_hash, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_string())
    .bind(location_id.to_string())
    .bind(name)
    .bind(credential_hash)
    .bind(created_by.to_string())
    .bind(now_ms())
    .execute(db.pool())
    .await
    .context("inserting register")?;
    Ok(())
}

/// The register's credential hash, if the register exists.
#[tracing::instrument(skip_all)]
pub async fn credential_hash(db: &Db, id: Uuid) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar("SELECT credential_hash FROM registers WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await
        .context("looking up register")
}

/// The register's credential hash and the manager who paired it (a device session's user).
#[tracing::instrument(skip_all)]
pub async fn device_owner(db: &Db, id: Uuid) -> anyhow::Result<Option<(String, Uuid)>> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT credential_hash, created_by FROM registers WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(db.pool())
            .await
            .context("looking up register")?;
    row.map(|(hash, by)| Ok((hash, by.parse().context("register's pairing user")?)))
        .transpose()
}
