//! Settings rows: values Central makes once and every instance shares (the token signing key).

use anyhow::Context;

use super::Db;

/// Returns the stored value of `name`, storing `make()` first if there is none. Safe when
/// several instances start at once: the first insert wins and everyone reads it back.
pub async fn get_or_init(
    db: &Db,
    name: &str,
    make: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(make())
        .execute(db.pool())
        .await
        .with_context(|| format!("initialising setting {name}"))?;
    sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_one(db.pool())
        .await
        .with_context(|| format!("reading setting {name}"))
}

/// The stored value of `name`, if any.
pub async fn get(db: &Db, name: &str) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(db.pool())
        .await
        .with_context(|| format!("reading setting {name}"))
}

/// Stores `value` under `name`, replacing what was there.
pub async fn set(db: &Db, name: &str, value: &str) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(db.pool())
    .await
    .with_context(|| format!("writing setting {name}"))?;
    Ok(())
}
