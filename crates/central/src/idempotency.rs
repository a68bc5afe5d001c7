//! Idempotency keys with Stripe's semantics: the first response of a key is kept for 24 h and
//! replayed byte for byte (`Idempotent-Replayed: true`); the same key with another body is 422;
//! the same key while the first request runs is 409; keys are scoped to the caller; a request
//! that fails validation stores nothing.
//!
//! A key is claimed in its own committed row before the work starts (that is what lets a
//! concurrent retry see "in flight"), and its response is saved in the transaction that does
//! the work. If the process dies between the two, the claim goes stale after the lease and
//! the next retry takes it over: the work never committed, so doing it then is safe.
//!
//! Work that calls nothing outside the database before its commit (creating an order) claims
//! the key inside its own transaction instead ([`begin_in`]): one transaction per request, and a
//! concurrent retry waits for it and replays its answer; a crash leaves no claim behind.

use crate::telemetry::metrics::{IDEMPOTENCY_CONFLICTS, IDEMPOTENCY_REPLAYS};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kassa_domain::IdempotencyKey;
use sha2::{Digest, Sha256};

use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{self, now_ms, Db, Tx};

/// How long a stored response is replayed.
pub const RETENTION_MS: i64 = 24 * 3600 * 1000;

pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A key this request holds: finish it with the response, or release it.
#[derive(Debug)]
pub struct Claim {
    scope: String,
    key: String,
    request_hash: String,
    /// The claim's owner token (its `locked_at`): completing or releasing it checks the key is
    /// still this request's, not one that took it over after this one's lease ran out.
    lock: i64,
    /// Whether the claim row was committed before the work (else it lives in the work's
    /// transaction and goes when that rolls back).
    committed: bool,
}

/// What to do with a request that carries an idempotency key.
#[derive(Debug)]
pub enum Begin {
    /// First time: do the work.
    Proceed(Claim),
    /// Seen before: answer with this.
    Replay(Response),
}

/// The `Idempotency-Key` header, required.
pub fn key_from(headers: &HeaderMap) -> ApiResult<IdempotencyKey> {
    let raw = headers.get("idempotency-key").ok_or_else(|| {
        ApiError::bad_request(
            "missing_idempotency_key",
            "the Idempotency-Key header is required",
        )
    })?;
    let raw = raw.to_str().map_err(|_| {
        ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be printable ASCII",
        )
    })?;
    IdempotencyKey::parse(raw)
        .map_err(|e| ApiError::bad_request("invalid_idempotency_key", e.to_string()))
}

/// Fingerprint of what was asked: route plus the canonical JSON body (key order does not matter).
pub fn fingerprint(route: &str, body: &serde_json::Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update([0]);
    hasher.update(body.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

/// A JSON response from an already serialised body (so the replay is byte-identical).
pub fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn replay(status: u16, body: String) -> Response {
    let mut response = json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body);
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// Claims `key` for `scope`, or says how to answer a repeat.
pub async fn begin(
    state: &AppState,
    scope: &str,
    key: &IdempotencyKey,
    request_hash: &str,
) -> ApiResult<Begin> {
    let db = &state.db;
    let key = key.as_ref();
    let claim = |lock: i64| {
        Begin::Proceed(Claim {
            scope: scope.to_owned(),
            key: key.to_owned(),
            request_hash: request_hash.to_owned(),
            lock,
            committed: true,
        })
    };
    if let Some(lock) = store::idempotency::claim(db, scope, key, request_hash).await? {
        return Ok(claim(lock));
    }
    let Some(stored) = store::idempotency::load(db, scope, key).await? else {
        // Released between our insert and our read: claim again once.
        return match store::idempotency::claim(db, scope, key, request_hash).await? {
            Some(lock) => Ok(claim(lock)),
            None => Err(in_flight()),
        };
    };
    let now = now_ms();
    if stored.created_at < now - RETENTION_MS {
        if let Some(lock) =
            store::idempotency::renew_expired(db, scope, key, now - RETENTION_MS, request_hash)
                .await?
        {
            return Ok(claim(lock));
        }
        return Err(in_flight());
    }
    if stored.request_hash != request_hash {
        metrics::counter!(IDEMPOTENCY_CONFLICTS, "reason" => "body_mismatch").increment(1);
        return Err(ApiError::invalid(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request; use a new key",
        ));
    }
    if let Some((status, body)) = stored.response {
        metrics::counter!(IDEMPOTENCY_REPLAYS).increment(1);
        return Ok(Begin::Replay(replay(status, body)));
    }
    let lease_ms = i64::try_from(state.config.idempotency_lease.as_millis()).unwrap_or(i64::MAX);
    if stored.locked_at < now - lease_ms {
        if let Some(lock) =
            store::idempotency::take_over(db, scope, key, stored.locked_at, request_hash).await?
        {
            return Ok(claim(lock));
        }
    }
    Err(in_flight())
}

/// What to do with a request whose work runs in one transaction, claim included.
#[derive(Debug)]
pub enum BeginIn {
    /// First time: do the work in this transaction, which holds the claim.
    Proceed(Tx, Claim),
    /// Seen before: answer with this.
    Replay(Response),
}

/// Like [`begin`], with the claim made in the work's own write transaction when the key is new.
/// A key seen before goes the way [`begin`] says (replay, 409 in flight, 422 reused, take-over).
pub async fn begin_in(
    state: &AppState,
    scope: &str,
    key: &IdempotencyKey,
    request_hash: &str,
) -> ApiResult<BeginIn> {
    let mut tx = state.db.begin_write().await?;
    if let Some(lock) =
        store::idempotency::claim_in(&mut tx, scope, key.as_ref(), request_hash).await?
    {
        let claim = Claim {
            scope: scope.to_owned(),
            key: key.as_ref().to_owned(),
            request_hash: request_hash.to_owned(),
            lock,
            committed: false,
        };
        return Ok(BeginIn::Proceed(tx, claim));
    }
    tx.rollback().await.map_err(anyhow::Error::from)?;
    match begin(state, scope, key, request_hash).await? {
        Begin::Replay(response) => Ok(BeginIn::Replay(response)),
        Begin::Proceed(claim) => Ok(BeginIn::Proceed(state.db.begin_write().await?, claim)),
    }
}

/// How to answer a request whose key turned out to be recorded already, seen from inside `tx`
/// (work that claims its key as it saves its answer, [`store::idempotency::save_in`], and found
/// it taken): the recorded response replayed, 422 for another body, 409 while the first is in
/// flight (a claim without a response); `None` when nothing is recorded.
pub async fn recorded_in(
    tx: &mut Tx,
    scope: &str,
    key: &str,
    request_hash: &str,
) -> ApiResult<Option<Response>> {
    let Some(stored) = store::idempotency::load_in(tx, scope, key).await? else {
        return Ok(None);
    };
    if stored.request_hash != request_hash {
        metrics::counter!(IDEMPOTENCY_CONFLICTS, "reason" => "body_mismatch").increment(1);
        return Err(ApiError::invalid(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request; use a new key",
        ));
    }
    match stored.response {
        Some((status, body)) => {
            metrics::counter!(IDEMPOTENCY_REPLAYS).increment(1);
            Ok(Some(replay(status, body)))
        }
        None => Err(in_flight()),
    }
}

/// Errors from executing a request (a conflict, insufficient stock, a card decline) are
/// recorded under its key and replayed, as Stripe does; validation errors and internal failures
/// record nothing, so a corrected or later retry can run.
pub fn is_recorded(err: &ApiError) -> bool {
    matches!(
        err,
        ApiError::Conflict { .. } | ApiError::PaymentRequired { .. }
    )
}

fn in_flight() -> ApiError {
    metrics::counter!(IDEMPOTENCY_CONFLICTS, "reason" => "in_flight").increment(1);
    ApiError::conflict(
        "idempotency_in_flight",
        "a request with this Idempotency-Key is still being processed; retry shortly",
        serde_json::Value::Null,
    )
}

impl Claim {
    /// Saves the response in the work's own transaction; an error (so the work must not
    /// commit) when another request took the key over meanwhile.
    pub async fn finish_in(
        &self,
        tx: &mut Tx,
        status: StatusCode,
        body: &str,
    ) -> anyhow::Result<()> {
        let saved = store::idempotency::complete_in(
            tx,
            &self.scope,
            &self.key,
            self.lock,
            status.as_u16(),
            body,
        )
        .await?;
        if !saved {
            anyhow::bail!(
                "idempotency key {:?} was taken over by another request; this one's work is dropped",
                self.key
            );
        }
        Ok(())
    }

    /// Ends a request whose `work` ran in `tx`, the claim's transaction: commits it and answers
    /// `status` with the saved body, or rolls it back and settles the claim for the error.
    pub async fn conclude_in(
        self,
        db: &Db,
        tx: Tx,
        work: ApiResult<String>,
        status: StatusCode,
    ) -> ApiResult<Response> {
        let done = match work {
            Ok(body) => tx
                .commit()
                .await
                .map(|()| body)
                .map_err(|e| ApiError::Internal(e.into())),
            Err(err) => {
                if let Err(e) = tx.rollback().await {
                    tracing::warn!(error = %e, "rolling back a failed request");
                }
                Err(err)
            }
        };
        match done {
            Ok(body) => Ok(json_response(status, body)),
            Err(err) => Err(self.settle_error(db, err).await),
        }
    }

    /// Settles the claim for a failed request: errors from executing the request (a conflict,
    /// insufficient stock, a card decline) are stored and replayed like Stripe does; validation errors and
    /// internal failures store nothing, so a corrected or later retry can run. The work's
    /// transaction must be over (rolled back or dropped) first: on SQLite it holds the writer.
    pub async fn settle_error(self, db: &Db, err: ApiError) -> ApiError {
        let keep = is_recorded(&err);
        let result = match (keep, self.committed) {
            (true, committed) => {
                let (status, body) = err.render();
                let text = serde_json::to_string(&body).unwrap_or_default();
                async {
                    let mut tx = db.begin_write().await?;
                    if committed {
                        self.finish_in(&mut tx, status, &text).await?;
                    } else {
                        store::idempotency::record_in(
                            &mut tx,
                            &self.scope,
                            &self.key,
                            &self.request_hash,
                            status.as_u16(),
                            &text,
                        )
                        .await?;
                    }
                    anyhow::Context::context(tx.commit().await, "committing idempotent error")
                }
                .await
            }
            (false, true) => {
                store::idempotency::release(db, &self.scope, &self.key, self.lock).await
            }
            // The claim went with the work's rolled-back transaction.
            (false, false) => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(error = ?e, "settling idempotency key");
        }
        err
    }
}
