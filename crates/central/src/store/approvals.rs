//! SQL for manager approvals, the flags offline sales raise, and registers' approval keys.

use anyhow::Context;
use sqlx::Row;
use uuid::Uuid;

use super::{from_ms, now_ms, Db, Tx};

/// An approval as stored.
#[derive(Debug, Clone)]
pub struct ApprovalRow {
    pub id: Uuid,
    pub register_id: Uuid,
    pub manager_id: Uuid,
    pub manager: String,
    /// `online` (granted by Central) or `offline` (given by a register, recorded at sync).
    pub source: &'static str,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub order_id: Option<Uuid>,
}

pub async fn insert(tx: &mut Tx, a: &ApprovalRow) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO approvals (id, register_id, manager_id, manager, source, created_at, \
         expires_at, used_at, order_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(a.id.to_string())
    .bind(a.register_id.to_string())
    .bind(a.manager_id.to_string())
    .bind(&a.manager)
    .bind(a.source)
    .bind(now_ms())
    .bind(a.expires_at)
    .bind(a.used_at)
    .bind(a.order_id.map(|o| o.to_string()))
    .execute(&mut **tx)
    .await
    .context("inserting approval")?;
    Ok(done.rows_affected() == 1)
}

pub async fn get(tx: &mut Tx, id: Uuid) -> anyhow::Result<Option<ApprovalRow>> {
    let row = sqlx::query("SELECT * FROM approvals WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .context("loading approval")?;
    let Some(row) = row else { return Ok(None) };
    let register_id: String = row.try_get("register_id")?;
    let manager_id: String = row.try_get("manager_id")?;
    let source: String = row.try_get("source")?;
    let order_id: Option<String> = row.try_get("order_id")?;
    Ok(Some(ApprovalRow {
        id,
        register_id: register_id.parse()?,
        manager_id: manager_id.parse()?,
        manager: row.try_get("manager")?,
        source: if source == "offline" {
            "offline"
        } else {
            "online"
        },
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
        order_id: order_id.map(|o| o.parse()).transpose()?,
    }))
}

/// Uses an approval for `order_id`: `true` the first time, and again for the same order (its
/// retry or its offline re-send), never for another.
pub async fn use_for(tx: &mut Tx, id: Uuid, order_id: Uuid) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE approvals SET used_at = COALESCE(used_at, $1), order_id = $2 \
         WHERE id = $3 AND (used_at IS NULL OR order_id = $2)",
    )
    .bind(now_ms())
    .bind(order_id.to_string())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .context("using approval")?;
    Ok(done.rows_affected() == 1)
}

/// A register's approval key (hex), if it has one.
pub async fn register_key(tx: &mut Tx, register_id: Uuid) -> anyhow::Result<Option<String>> {
    let key: Option<Option<String>> =
        sqlx::query_scalar("SELECT approval_key FROM registers WHERE id = $1")
            .bind(register_id.to_string())
            .fetch_optional(&mut **tx)
            .await
            .context("loading a register's approval key")?;
    Ok(key.flatten())
}

pub async fn set_register_key(db: &Db, register_id: Uuid, key_hex: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE registers SET approval_key = $1 WHERE id = $2")
        .bind(key_hex)
        .bind(register_id.to_string())
        .execute(db.pool())
        .await
        .context("keeping a register's approval key")?;
    Ok(())
}

/// A user's id and role by username, read inside `tx`.
pub async fn user_role(tx: &mut Tx, username: &str) -> anyhow::Result<Option<(Uuid, String)>> {
    let row = sqlx::query("SELECT id, role FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&mut **tx)
        .await
        .context("looking up the approving user")?;
    row.map(|r| {
        let id: String = r.try_get("id")?;
        Ok((id.parse()?, r.try_get("role")?))
    })
    .transpose()
}

/// A flag raised by an offline sale's approval.
#[derive(Debug, Clone)]
pub struct FlagRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub sku: String,
    pub approver: Option<String>,
    pub approval_id: Option<Uuid>,
    pub reason: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

pub async fn insert_flag(tx: &mut Tx, f: &FlagRow) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO approval_flags (id, order_id, sku, approver, approval_id, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(f.id.to_string())
    .bind(f.order_id.to_string())
    .bind(&f.sku)
    .bind(f.approver.as_deref())
    .bind(f.approval_id.map(|a| a.to_string()))
    .bind(&f.reason)
    .bind(f.created_at.timestamp_millis())
    .execute(&mut **tx)
    .await
    .context("flagging an approval")?;
    Ok(())
}

/// The newest flags first, at most `limit`.
pub async fn flags(db: &Db, limit: i64) -> anyhow::Result<Vec<FlagRow>> {
    let rows = sqlx::query("SELECT * FROM approval_flags ORDER BY created_at DESC, id LIMIT $1")
        .bind(limit)
        .fetch_all(db.pool())
        .await
        .context("listing approval flags")?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            let order_id: String = r.try_get("order_id")?;
            let approval_id: Option<String> = r.try_get("approval_id")?;
            Ok(FlagRow {
                id: id.parse()?,
                order_id: order_id.parse()?,
                sku: r.try_get("sku")?,
                approver: r.try_get("approver")?,
                approval_id: approval_id.map(|a| a.parse()).transpose()?,
                reason: r.try_get("reason")?,
                created_at: from_ms(r.try_get("created_at")?),
            })
        })
        .collect()
}

/// A user's username by id.
pub async fn username_of(db: &Db, id: Uuid) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await
        .context("looking up a username")
}
