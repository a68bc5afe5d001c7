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
