//! SQL for idempotency keys: claim, complete, replay, release.

use anyhow::Context;
use sqlx::Row;

use super::{now_ms, Db, Tx};

/// What is stored under a key.
#[derive(Debug)]
pub struct Stored {
    pub request_hash: String,
    pub response: Option<(u16, String)>,
    pub locked_at: i64,
    pub created_at: i64,
}

/// Tries to claim `(scope, key)`; `Some(lock)` when this call made the claim, `lock` being
/// the claim's owner token (its `locked_at`) that completing or releasing it must present. The claim's commit
/// does not wait for the disk ([`Db::begin_write_relaxed`]): the response is saved in the
/// work's own durable commit, which makes the claim durable with it; a claim lost to power
/// failure belongs to work that never committed, so the retry doing it is right.
pub async fn claim(
    db: &Db,
    scope: &str,
    key: &str,
    request_hash: &str,
) -> anyhow::Result<Option<i64>> {
    let mut tx = db.begin_write_relaxed().await?;
    let claimed = claim_in(&mut tx, scope, key, request_hash).await?;
    tx.commit().await.context("committing idempotency claim")?;
    Ok(claimed)
}

/// Claims `(scope, key)` inside `tx`; `Some(lock)` when this call made the claim. A concurrent
/// claim of the same key waits for `tx` to end (the unique key's lock), then sees the claim.
pub async fn claim_in(
    tx: &mut Tx,
    scope: &str,
    key: &str,
    request_hash: &str,
) -> anyhow::Result<Option<i64>> {
    let lock = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, locked_at, created_at) \
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(lock)
    .execute(&mut **tx)
    .await
    .context("claiming idempotency key")?;
    Ok((inserted.rows_affected() == 1).then_some(lock))
}

/// Stores a finished response under a key nobody holds (a claim made in a transaction that
/// was rolled back, or work that claims its key as it saves its answer); a record someone else
/// made meanwhile stands, and then `false`. On PostgreSQL a concurrent record of the same key
/// waits for the other transaction to end first.
pub async fn record_in(
    tx: &mut Tx,
    scope: &str,
    key: &str,
    request_hash: &str,
    status: u16,
    body: &str,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, locked_at, created_at, \
         response_status, response_body) VALUES ($1, $2, $3, $4, $4, $5, $6) \
         ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(now_ms())
    .bind(i64::from(status))
    .bind(body)
    .execute(&mut **tx)
    .await
    .context("recording idempotent response")?;
    Ok(done.rows_affected() == 1)
}

pub async fn load(db: &Db, scope: &str, key: &str) -> anyhow::Result<Option<Stored>> {
    let row = sqlx::query(LOAD)
        .bind(scope)
        .bind(key)
        .fetch_optional(db.pool())
        .await
        .context("loading idempotency key")?;
    decode(row)
}

/// [`load`] inside `tx` (it sees what `tx` wrote).
pub async fn load_in(tx: &mut Tx, scope: &str, key: &str) -> anyhow::Result<Option<Stored>> {
    let row = sqlx::query(LOAD)
        .bind(scope)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await
        .context("loading idempotency key")?;
    decode(row)
}

const LOAD: &str = "SELECT request_hash, response_status, response_body, locked_at, created_at \
     FROM idempotency_keys WHERE scope = $1 AND key = $2";

fn decode(row: Option<sqlx::any::AnyRow>) -> anyhow::Result<Option<Stored>> {
    let Some(row) = row else { return Ok(None) };
    let status: Option<i64> = row.try_get("response_status")?;
    let body: Option<String> = row.try_get("response_body")?;
    Ok(Some(Stored {
        request_hash: row.try_get("request_hash")?,
        response: status
            .zip(body)
            .map(|(s, b)| (u16::try_from(s).unwrap_or(500), b)),
        locked_at: row.try_get("locked_at")?,
        created_at: row.try_get("created_at")?,
    }))
}

/// Takes over a claim whose holder died (its lock is older than the lease). Only one caller
/// wins: the update is conditional on the old lock time.
pub async fn take_over(
    db: &Db,
    scope: &str,
    key: &str,
    old_locked_at: i64,
    request_hash: &str,
) -> anyhow::Result<Option<i64>> {
    // Strictly after the old lock: the new owner's token never equals the dead one's.
    let lock = now_ms().max(old_locked_at + 1);
    let mut tx = db.begin_write().await?;
    let updated = sqlx::query(
        "UPDATE idempotency_keys SET locked_at = $1, request_hash = $2, created_at = $1 \
         WHERE scope = $3 AND key = $4 AND locked_at = $5 AND response_status IS NULL",
    )
    .bind(lock)
    .bind(request_hash)
    .bind(scope)
    .bind(key)
    .bind(old_locked_at)
    .execute(&mut *tx)
    .await
    .context("taking over idempotency key")?;
    tx.commit()
        .await
        .context("committing idempotency take-over")?;
    Ok((updated.rows_affected() == 1).then_some(lock))
}

/// Replaces a record older than the retention window by a fresh claim.
pub async fn renew_expired(
    db: &Db,
    scope: &str,
    key: &str,
    created_before: i64,
    request_hash: &str,
) -> anyhow::Result<Option<i64>> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let updated = sqlx::query(
        "UPDATE idempotency_keys SET locked_at = $1, created_at = $1, request_hash = $2, \
         response_status = NULL, response_body = NULL \
         WHERE scope = $3 AND key = $4 AND created_at < $5",
    )
    .bind(now)
    .bind(request_hash)
    .bind(scope)
    .bind(key)
    .bind(created_before)
    .execute(&mut *tx)
    .await
    .context("renewing expired idempotency key")?;
    tx.commit()
        .await
        .context("committing idempotency renewal")?;
    Ok((updated.rows_affected() == 1).then_some(now))
}

/// Saves the response inside the transaction that did the work, so both commit or neither;
/// `false` (nothing saved) when the claim is no longer the one `lock` names: another request
/// took it over, and this one's work must not commit.
pub async fn complete_in(
    tx: &mut Tx,
    scope: &str,
    key: &str,
    lock: i64,
    status: u16,
    body: &str,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE idempotency_keys SET response_status = $1, response_body = $2 \
         WHERE scope = $3 AND key = $4 AND locked_at = $5 AND response_status IS NULL",
    )
    .bind(i64::from(status))
    .bind(body)
    .bind(scope)
    .bind(key)
    .bind(lock)
    .execute(&mut **tx)
    .await
    .context("saving idempotent response")?;
    Ok(done.rows_affected() == 1)
}

/// Forgets a claim whose request failed validation: nothing is stored for it. Only the claim
/// `lock` names goes: one another request took over stays.
pub async fn release(db: &Db, scope: &str, key: &str, lock: i64) -> anyhow::Result<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND locked_at = $3 \
         AND response_status IS NULL",
    )
    .bind(scope)
    .bind(key)
    .bind(lock)
    .execute(db.pool())
    .await
    .context("releasing idempotency key")?;
    Ok(())
}

/// Claims `(scope, key)` and saves its response in one statement, inside the work's own
/// transaction (work that calls nothing outside the database, answered only once `tx` commits).
/// A record older than `expired_before` is replaced; any other record stands, and then `false`:
/// the caller undoes its work and answers as that record says. On PostgreSQL a concurrent save
/// of the same key waits for the other transaction to end first.
pub async fn save_in(
    tx: &mut Tx,
    scope: &str,
    key: &str,
    request_hash: &str,
    response: (u16, &str),
    expired_before: i64,
) -> anyhow::Result<bool> {
    let saved = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, locked_at, created_at, \
         response_status, response_body) VALUES ($1, $2, $3, $4, $4, $5, $6) \
         ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash, \
         locked_at = excluded.locked_at, created_at = excluded.created_at, \
         response_status = excluded.response_status, response_body = excluded.response_body \
         WHERE idempotency_keys.created_at < $7",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(now_ms())
    .bind(i64::from(response.0))
    .bind(response.1)
    .bind(expired_before)
    .execute(&mut **tx)
    .await
    .context("saving idempotent response")?;
    Ok(saved.rows_affected() == 1)
}
