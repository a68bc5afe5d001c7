//! SQL for users.

use anyhow::Context;
use kassa_domain::api::User;
use kassa_domain::{Role, Username};
use sqlx::Row;
use uuid::Uuid;

use super::{from_ms, is_unique_violation, now_ms, Db};

/// A user row with its password hash, for login.
#[derive(Debug)]
pub struct UserRow {
    pub user: User,
    pub password_hash: String,
    /// The PIN's argon2id hash, when a manager set one.
    pub pin_hash: Option<String>,
    /// PIN sign-in is locked until then (unix ms), after too many wrong PINs in a row.
    pub pin_locked_until: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("username is taken")]
    UsernameTaken,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn decode(row: &sqlx::any::AnyRow) -> anyhow::Result<UserRow> {
    let id: String = row.try_get("id")?;
    let username: String = row.try_get("username")?;
    let role: String = row.try_get("role")?;
    Ok(UserRow {
        user: User {
            id: id.parse().context("user id")?,
            username: Username::parse(&username).context("stored username")?,
            role: role
                .parse()
                .map_err(|e| anyhow::anyhow!("stored role: {e}"))?,
            created_at: from_ms(row.try_get("created_at")?),
        },
        password_hash: row.try_get("password_hash")?,
        pin_hash: row.try_get("pin_hash")?,
        pin_locked_until: row.try_get("pin_locked_until")?,
    })
}

#[tracing::instrument(skip_all, fields(username = %username))]
pub async fn insert(
    db: &Db,
    username: &Username,
    password_hash: &str,
    role: Role,
) -> Result<User, CreateUserError> {
    let id = Uuid::now_v7();
    let now = now_ms();
    let result = sqlx::query(
        "INSERT INTO users (id, username, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(username.as_ref())
    .bind(password_hash)
    .bind(role.as_str())
    .bind(now)
    .execute(db.pool())
    .await;
    match result {
        Ok(_) => Ok(User {
            id,
            username: username.clone(),
            role,
            created_at: from_ms(now),
        }),
        Err(e) if is_unique_violation(&e) => Err(CreateUserError::UsernameTaken),
        Err(e) => Err(anyhow::Error::from(e).context("inserting user").into()),
    }
}

#[tracing::instrument(skip_all)]
pub async fn find_by_username(db: &Db, username: &str) -> anyhow::Result<Option<UserRow>> {
    let row = sqlx::query("SELECT * FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(db.pool())
        .await
        .context("looking up user")?;
    row.as_ref().map(decode).transpose()
}

/// Sets a user's PIN hash; a new PIN starts with no failures and no lock.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn set_pin(db: &Db, user_id: Uuid, pin_hash: &str) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE users SET pin_hash = $1, pin_failures = 0, pin_locked_until = NULL WHERE id = $2",
    )
    .bind(pin_hash)
    .bind(user_id.to_string())
    .execute(&mut *tx)
    .await
    .context("setting PIN")?;
    tx.commit().await.context("committing PIN")
}

/// Counts a wrong PIN; the `failures_max`-th in a row locks PIN sign-in until `lock_until_ms`
/// (and starts the count again). One conditional update, so concurrent guesses all count.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn pin_failed(
    db: &Db,
    user_id: Uuid,
    failures_max: i64,
    lock_until_ms: i64,
) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE users SET \
           pin_locked_until = CASE WHEN pin_failures + 1 >= $1 THEN $2 ELSE pin_locked_until END, \
           pin_failures = CASE WHEN pin_failures + 1 >= $1 THEN 0 ELSE pin_failures + 1 END \
         WHERE id = $3",
    )
    .bind(failures_max)
    .bind(lock_until_ms)
    .bind(user_id.to_string())
    .execute(&mut *tx)
    .await
    .context("counting a wrong PIN")?;
    tx.commit().await.context("committing a wrong PIN")
}

/// A right PIN: the count of wrong ones starts again.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn pin_succeeded(db: &Db, user_id: Uuid) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE users SET pin_failures = 0 WHERE id = $1 AND pin_failures <> 0")
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await
        .context("resetting PIN failures")?;
    tx.commit().await.context("committing PIN success")
}
