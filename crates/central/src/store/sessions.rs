//! SQL for sessions and refresh-token rotation.

use anyhow::Context;
use kassa_domain::Role;
use sqlx::Row;
use uuid::Uuid;

use super::{now_ms, Db};

/// Who a session belongs to.
#[derive(Debug, Clone)]
pub struct SessionOwner {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub register_id: Option<Uuid>,
}

/// What presenting a refresh token did.
#[derive(Debug)]
pub enum Rotation {
    /// The token was current: it is now retired and `new_hash` is current.
    Rotated(SessionOwner),
    /// The token had already been rotated away: the whole session (this id) is now revoked.
    Reused(Uuid),
    /// Unknown token, or its session is revoked or expired.
    Invalid,
}

#[tracing::instrument(skip_all)]
pub async fn insert(
    db: &Db,
    owner: &SessionOwner,
    refresh_hash: &str,
    expires_at_ms: i64,
) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, register_id, refresh_hash, created_at, expires_at, role) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(owner.session_id.to_string())
    .bind(owner.user_id.to_string())
    .bind(owner.register_id.map(|id| id.to_string()))
    .bind(refresh_hash)
    .bind(now_ms())
    .bind(expires_at_ms)
    // A device session keeps its role; a user's session follows the user's (see `rotate`).
    .bind((owner.role == Role::Register).then_some(Role::Register.as_str()))
    .execute(&mut *tx)
    .await
    .context("inserting session")?;
    tx.commit().await.context("committing session")?;
    Ok(())
}

/// Rotates a refresh token in one transaction. The swap is conditional on the old hash, so two
/// concurrent refreshes with the same token cannot both win: the loser counts as reuse.
#[tracing::instrument(skip_all)]
pub async fn rotate(db: &Db, old_hash: &str, new_hash: &str) -> anyhow::Result<Rotation> {
    let mut tx = db.begin_write().await?;
    let now = now_ms();
    let row = sqlx::query(
        "SELECT s.id, s.user_id, s.register_id, s.expires_at, s.revoked_at, COALESCE(s.role, u.role) AS role \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.refresh_hash = $1",
    )
    .bind(old_hash)
    .fetch_optional(&mut *tx)
    .await
    .context("looking up refresh token")?;
    let Some(row) = row else {
        let retired: Option<String> = sqlx::query_scalar(
            "SELECT session_id FROM retired_refresh_tokens WHERE refresh_hash = $1",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await
        .context("looking up retired refresh token")?;
        let Some(session_id) = retired else {
            return Ok(Rotation::Invalid);
        };
        revoke_in(&mut tx, &session_id, now).await?;
        tx.commit().await.context("committing session revocation")?;
        return Ok(Rotation::Reused(session_id.parse()?));
    };
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    if revoked_at.is_some() || expires_at <= now {
        return Ok(Rotation::Invalid);
    }
    let session_id: String = row.try_get("id")?;
    let swapped =
        sqlx::query("UPDATE sessions SET refresh_hash = $1 WHERE id = $2 AND refresh_hash = $3")
            .bind(new_hash)
            .bind(&session_id)
            .bind(old_hash)
            .execute(&mut *tx)
            .await
            .context("rotating refresh token")?;
    if swapped.rows_affected() != 1 {
        // Another refresh with the same token won the race: that is reuse too.
        revoke_in(&mut tx, &session_id, now).await?;
        tx.commit().await.context("committing session revocation")?;
        return Ok(Rotation::Reused(session_id.parse()?));
    }
    sqlx::query("INSERT INTO retired_refresh_tokens (refresh_hash, session_id) VALUES ($1, $2)")
        .bind(old_hash)
        .bind(&session_id)
        .execute(&mut *tx)
        .await
        .context("retiring refresh token")?;
    tx.commit().await.context("committing rotation")?;
    let user_id: String = row.try_get("user_id")?;
    let register_id: Option<String> = row.try_get("register_id")?;
    let role: String = row.try_get("role")?;
    Ok(Rotation::Rotated(SessionOwner {
        session_id: session_id.parse()?,
        user_id: user_id.parse()?,
        role: role
            .parse()
            .map_err(|e| anyhow::anyhow!("stored role: {e}"))?,
        register_id: register_id.map(|id| id.parse()).transpose()?,
    }))
}

async fn revoke_in(tx: &mut super::Tx, session_id: &str, now: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(session_id)
        .execute(&mut **tx)
        .await
        .context("revoking session")?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(%session_id))]
pub async fn revoke(db: &Db, session_id: Uuid) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    revoke_in(&mut tx, &session_id.to_string(), now_ms()).await?;
    tx.commit().await.context("committing session revocation")
}

/// True while the session is neither revoked nor expired.
#[tracing::instrument(skip_all, fields(%session_id))]
pub async fn is_active(db: &Db, session_id: Uuid) -> anyhow::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT expires_at FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(session_id.to_string())
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await
    .context("checking session")?;
    Ok(found.is_some())
}
