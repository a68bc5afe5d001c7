//! Authentication and authorisation: password hashes, access and refresh tokens, sessions,
//! registers as devices, rate limits, and the routes that issue and revoke them.

pub mod routes;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use kassa_domain::Role;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::{Config, Secret};
use crate::http::error::ApiError;
use crate::shared::SharedState;
use crate::store::{self, Db};

/// Who is calling, as proven by a live session's access token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
    pub register_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    sid: Uuid,
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reg: Option<Uuid>,
    iat: u64,
    exp: u64,
}

/// Keys, the session cache and the rate limiters; one per Central instance.
pub struct AuthService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    access_ttl: Duration,
    refresh_ttl: Duration,
    /// Sessions recently confirmed live. Logout evicts at once.
    sessions: SessionCache,
    login_by_username: DefaultKeyedRateLimiter<String>,
    login_by_ip: DefaultKeyedRateLimiter<IpAddr>,
    requests_by_user: DefaultKeyedRateLimiter<Uuid>,
    /// Anonymous browsing, per client address.
    requests_by_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// A real hash to verify against when the username is unknown, so both cases cost the same.
    dummy_hash: String,
    /// With Redis: the same limits, global, and revocations every instance sees at once.
    shared: Arc<SharedState>,
    quotas: SharedQuotas,
}

/// The limits above in the form the shared (Redis) limiter takes.
#[derive(Debug, Clone, Copy)]
struct SharedQuotas {
    login_by_username: SharedQuota,
    login_by_ip: SharedQuota,
    requests_by_user: SharedQuota,
    requests_by_ip: SharedQuota,
}

/// One request every `interval_us`, up to `burst` at once (GCRA, as `governor` does locally).
#[derive(Debug, Clone, Copy)]
struct SharedQuota {
    interval_us: i64,
    burst: i64,
}

impl SharedQuota {
    fn per_minute(n: u32) -> Self {
        let n = i64::from(n.max(1));
        Self {
            interval_us: 60_000_000 / n,
            burst: n,
        }
    }

    fn per_second(n: u32, burst: u32) -> Self {
        Self {
            interval_us: 1_000_000 / i64::from(n.max(1)),
            burst: i64::from(burst.max(1)),
        }
    }
}

/// One GCRA step, atomic in Redis: 0 and the request counted, or how many microseconds until
/// one would be allowed. Time is Redis's own clock, the same for every instance.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if allow_at > now then return math.ceil(allow_at - now) end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1000)
return 0
";

fn gcra_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(GCRA_SCRIPT))
}

/// The 429 of the shared rate limit `limit`.
fn retry_after_us(limit: &'static str, wait_us: i64) -> ApiError {
    metrics::counter!(crate::telemetry::metrics::RATE_LIMITED, "limit" => limit).increment(1);
    ApiError::TooManyRequests {
        retry_after_s: u64::try_from(wait_us / 1_000_000).unwrap_or(0).max(1),
    }
}

fn revoked_key(session_id: Uuid) -> String {
    format!("kassa:revoked:{session_id}")
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("access_ttl", &self.access_ttl)
            .finish_non_exhaustive()
    }
}

const SESSION_CACHE_ENTRIES_MAX: usize = 100_000;

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

fn per_second(n: u32, burst: u32) -> Quota {
    let at_least_one = |n: u32| NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(at_least_one(n)).allow_burst(at_least_one(burst))
}

/// The 429 of the rate limit `limit` (counted in `kassa_rate_limited_requests_total`).
fn retry_after(
    limit: &'static str,
    not_until: &governor::NotUntil<governor::clock::QuantaInstant>,
) -> ApiError {
    metrics::counter!(crate::telemetry::metrics::RATE_LIMITED, "limit" => limit).increment(1);
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    ApiError::TooManyRequests {
        retry_after_s: wait.as_secs().max(1),
    }
}

/// A random 256-bit token, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Hash for high-entropy secrets (refresh tokens, register credentials): SHA-256 is enough
/// because they cannot be guessed; passwords use argon2id instead.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// argon2id with the crate's default (OWASP) parameters; run off the async threads.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await
    .context("password hashing task")?
}

async fn verify_password(password: String, hash: String) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .context("password verification task")?
}

/// Password rules: long enough to resist guessing, short enough to bound hashing work.
pub fn validate_password(password: &str) -> Result<(), ApiError> {
    let len = password.chars().count();
    if !(8..=128).contains(&len) {
        return Err(ApiError::invalid(
            "invalid_password",
            "password must be 8 to 128 characters",
        ));
    }
    Ok(())
}

/// Wrong PINs in a row that lock PIN sign-in for [`PIN_LOCKOUT`].
pub const PIN_FAILURES_MAX: i64 = 5;
/// How long PIN sign-in stays locked after [`PIN_FAILURES_MAX`] wrong PINs.
pub const PIN_LOCKOUT: Duration = Duration::from_secs(5 * 60);

/// PIN rules: `kassa_domain::is_valid_pin` (4 to 8 ASCII digits; short, so only accepted with
/// a register's credential and locked after a few wrong tries).
pub fn validate_pin(pin: &str) -> Result<(), ApiError> {
    if !kassa_domain::is_valid_pin(pin) {
        return Err(ApiError::invalid("invalid_pin", kassa_domain::PIN_RULE));
    }
    Ok(())
}

/// The signing key: the configured one, else one made once and kept in the database so that
/// restarts and sibling instances accept each other's tokens.
pub async fn signing_secret(db: &Db, config: &Config) -> anyhow::Result<Secret> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.clone());
    }
    store::settings::get_or_init(db, "jwt_secret", random_token)
        .await
        .map(Secret::new)
}

impl AuthService {
    pub async fn new(
        config: &Config,
        secret: &Secret,
        shared: Arc<SharedState>,
    ) -> anyhow::Result<Self> {
        let dummy_hash = hash_password(random_token()).await?;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            access_ttl: config.access_token_ttl,
            refresh_ttl: config.refresh_token_ttl,
            sessions: SessionCache::new(config.session_cache_ttl),
            login_by_username: RateLimiter::keyed(per_minute(config.login_per_username_per_minute)),
            login_by_ip: RateLimiter::keyed(per_minute(config.login_per_ip_per_minute)),
            requests_by_user: RateLimiter::keyed(per_second(
                config.user_requests_per_second,
                config.user_requests_burst,
            )),
            requests_by_ip: RateLimiter::keyed(per_second(
                config.anonymous_requests_per_second,
                config.anonymous_requests_burst,
            )),
            dummy_hash,
            shared,
            quotas: SharedQuotas {
                login_by_username: SharedQuota::per_minute(config.login_per_username_per_minute),
                login_by_ip: SharedQuota::per_minute(config.login_per_ip_per_minute),
                requests_by_user: SharedQuota::per_second(
                    config.user_requests_per_second,
                    config.user_requests_burst,
                ),
                requests_by_ip: SharedQuota::per_second(
                    config.anonymous_requests_per_second,
                    config.anonymous_requests_burst,
                ),
            },
        })
    }

    /// The shared (global) limit `limit` for `key`: `None` when Redis is not there, and the
    /// caller uses this instance's own limiter instead.
    async fn shared_limit(
        &self,
        limit: &'static str,
        key: &str,
        quota: SharedQuota,
    ) -> Option<Result<(), ApiError>> {
        if !self.shared.is_configured() {
            return None;
        }
        let redis_key = format!("kassa:rate:{limit}:{key}");
        let wait_us: i64 = self
            .shared
            .script(
                gcra_script(),
                &[&redis_key],
                &[quota.interval_us, quota.burst],
            )
            .await?;
        Some(if wait_us > 0 {
            Err(retry_after_us(limit, wait_us))
        } else {
            Ok(())
        })
    }

    /// Brute-force brake: attempts per username and per client address.
    pub async fn check_login_rate(&self, username: &str, ip: IpAddr) -> Result<(), ApiError> {
        let ip_key = ip.to_string();
        let by_ip = self
            .shared_limit("login_per_ip", &ip_key, self.quotas.login_by_ip)
            .await;
        if let Some(by_ip) = by_ip {
            by_ip?;
            if let Some(by_username) = self
                .shared_limit(
                    "login_per_username",
                    username,
                    self.quotas.login_by_username,
                )
                .await
            {
                return by_username;
            }
        }
        self.login_by_ip
            .check_key(&ip)
            .map_err(|e| retry_after("login_per_ip", &e))?;
        self.login_by_username
            .check_key(&username.to_owned())
            .map_err(|e| retry_after("login_per_username", &e))?;
        Ok(())
    }

    /// The per-caller request brake: a person's sessions share one budget; a register's own
    /// (device) session has a budget of its own, so a store's tills syncing at once do not
    /// throttle each other, nor the manager who paired them.
    pub async fn check_caller_rate(&self, caller: &Caller) -> Result<(), ApiError> {
        let key = match (caller.role, caller.register_id) {
            (Role::Register, Some(register_id)) => register_id,
            _ => caller.user_id,
        };
        if let Some(shared) = self
            .shared_limit(
                "requests_per_caller",
                &key.to_string(),
                self.quotas.requests_by_user,
            )
            .await
        {
            return shared;
        }
        self.requests_by_user
            .check_key(&key)
            .map_err(|e| retry_after("requests_per_caller", &e))
    }

    /// The anonymous browsing brake, per client address.
    pub async fn check_anonymous_rate(&self, ip: IpAddr) -> Result<(), ApiError> {
        if let Some(shared) = self
            .shared_limit(
                "anonymous_requests_per_address",
                &ip.to_string(),
                self.quotas.requests_by_ip,
            )
            .await
        {
            return shared;
        }
        self.requests_by_ip
            .check_key(&ip)
            .map_err(|e| retry_after("anonymous_requests_per_address", &e))
    }

    /// Checks a password against a user's stored hash (or the dummy hash when there is no user).
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let known = hash.is_some();
        let ok = verify_password(
            password.to_owned(),
            hash.unwrap_or(&self.dummy_hash).to_owned(),
        )
        .await?;
        Ok(ok && known)
    }

    fn access_token(&self, owner: &store::sessions::SessionOwner) -> anyhow::Result<String> {
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default();
        let claims = Claims {
            sub: owner.user_id,
            sid: owner.session_id,
            role: owner.role,
            reg: owner.register_id,
            iat: now,
            exp: now + self.access_ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::default(), &claims, &self.encoding)
            .context("signing access token")
    }

    /// Starts a session and returns its tokens.
    pub async fn start_session(
        &self,
        db: &Db,
        user_id: Uuid,
        role: Role,
        register_id: Option<Uuid>,
    ) -> anyhow::Result<kassa_domain::api::TokenResponse> {
        let owner = store::sessions::SessionOwner {
            session_id: Uuid::now_v7(),
            user_id,
            role,
            register_id,
        };
        let refresh = random_token();
        let expires_at =
            store::now_ms() + i64::try_from(self.refresh_ttl.as_millis()).unwrap_or(i64::MAX);
        store::sessions::insert(db, &owner, &token_hash(&refresh), expires_at).await?;
        self.tokens(&owner, refresh)
    }

    fn tokens(
        &self,
        owner: &store::sessions::SessionOwner,
        refresh_token: String,
    ) -> anyhow::Result<kassa_domain::api::TokenResponse> {
        Ok(kassa_domain::api::TokenResponse {
            access_token: self.access_token(owner)?,
            refresh_token,
            token_type: "Bearer".into(),
            expires_in: self.access_ttl.as_secs(),
            role: owner.role,
        })
    }

    /// Rotates a refresh token: a new pair for a current token; reuse of an old one revokes
    /// the whole session.
    pub async fn refresh(
        &self,
        db: &Db,
        refresh_token: &str,
    ) -> Result<kassa_domain::api::TokenResponse, ApiError> {
        let new_refresh = random_token();
        match store::sessions::rotate(db, &token_hash(refresh_token), &token_hash(&new_refresh))
            .await?
        {
            store::sessions::Rotation::Rotated(owner) => Ok(self.tokens(&owner, new_refresh)?),
            store::sessions::Rotation::Reused(session_id) => {
                self.forget_session(session_id);
                self.broadcast_revocation(session_id).await;
                tracing::warn!(%session_id, "refresh token reused; session revoked");
                Err(ApiError::Unauthorized(
                    "refresh token already used; the session is revoked",
                ))
            }
            store::sessions::Rotation::Invalid => {
                Err(ApiError::Unauthorized("invalid refresh token"))
            }
        }
    }

    pub async fn logout(&self, db: &Db, session_id: Uuid) -> anyhow::Result<()> {
        store::sessions::revoke(db, session_id).await?;
        self.forget_session(session_id);
        self.broadcast_revocation(session_id).await;
        Ok(())
    }

    /// Tells every instance (through Redis) that `session_id` ended, for as long as one of its
    /// access tokens may live; the database already says so (instances without Redis ask it).
    async fn broadcast_revocation(&self, session_id: Uuid) {
        if !self.shared.is_configured() {
            return;
        }
        let ttl_ms = u64::try_from(self.access_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(revoked_key(session_id))
            .arg(1)
            .arg("PX")
            .arg(ttl_ms);
        if self.shared.query::<()>(&cmd).await.is_none() {
            tracing::warn!(%session_id, "revocation not broadcast (Redis down): instances check sessions in the database meanwhile");
        }
    }

    fn forget_session(&self, session_id: Uuid) {
        self.sessions.forget(session_id);
    }

    /// Verifies the token's signature and expiry, then that its session is still live
    /// (cached for `session_cache_ttl`).
    pub async fn authenticate(&self, db: &Db, token: &str) -> Result<Caller, ApiError> {
        let mut validation = Validation::default();
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::Unauthorized("access token expired")
                }
                _ => ApiError::Unauthorized("invalid access token"),
            })?
            .claims;
        if !self.session_live(db, claims.sid).await? {
            return Err(ApiError::Unauthorized("session ended; sign in again"));
        }
        Ok(Caller {
            user_id: claims.sub,
            role: claims.role,
            session_id: claims.sid,
            register_id: claims.reg,
        })
    }

    /// Without Redis: the per-instance cache, else the database. With Redis up: a cached
    /// session is also checked against the revocation broadcasts, so a logout on any instance
    /// holds on this one at the next request. Redis down: the database every time.
    async fn session_live(&self, db: &Db, session_id: Uuid) -> anyhow::Result<bool> {
        let cache = if self.shared.is_configured() {
            self.sessions.forget_all_after(self.shared.recoveries());
            if self.sessions.fresh(session_id) {
                let mut exists = redis::cmd("EXISTS");
                exists.arg(revoked_key(session_id));
                match self.shared.query::<bool>(&exists).await {
                    Some(false) => return Ok(true),
                    Some(true) => {
                        self.forget_session(session_id);
                        return Ok(false);
                    }
                    None => false,
                }
            } else {
                self.shared.is_up()
            }
        } else {
            if self.sessions.fresh(session_id) {
                return Ok(true);
            }
            true
        };
        let check = self.sessions.begin_check();
        let live = store::sessions::is_active(db, session_id).await?;
        if cache {
            self.sessions.finish_check(session_id, live, check);
        }
        Ok(live)
    }
}

/// Sessions recently confirmed live, per instance, for a short TTL. A revocation evicts its
/// session and bumps an epoch under the same lock; a database check remembers its answer only
/// if no revocation happened since it began, so a check that read "live" just before a logout
/// committed can never put the revoked session back.
struct SessionCache {
    ttl: Duration,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    checked: HashMap<Uuid, Instant>,
    revocations: u64,
    /// The shared store's recoveries this cache was last synced with.
    shared_recoveries: u64,
}

/// A database check in progress: the revocation epoch it began in.
#[derive(Debug, Clone, Copy)]
struct Check(u64);

impl SessionCache {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fresh(&self, session_id: Uuid) -> bool {
        self.lock()
            .checked
            .get(&session_id)
            .is_some_and(|checked| checked.elapsed() < self.ttl)
    }

    fn begin_check(&self) -> Check {
        Check(self.lock().revocations)
    }

    fn finish_check(&self, session_id: Uuid, live: bool, check: Check) {
        let mut inner = self.lock();
        if live && inner.revocations == check.0 {
            if inner.checked.len() >= SESSION_CACHE_ENTRIES_MAX {
                inner.checked.clear();
            }
            inner.checked.insert(session_id, Instant::now());
        } else {
            inner.checked.remove(&session_id);
        }
    }

    /// Drops every entry when Redis came back since the last call: a logout broadcast while
    /// this instance could not hear it must not be missed.
    fn forget_all_after(&self, recoveries: u64) {
        let mut inner = self.lock();
        if inner.shared_recoveries != recoveries {
            inner.shared_recoveries = recoveries;
            inner.revocations = inner.revocations.wrapping_add(1);
            inner.checked.clear();
        }
    }

    fn forget(&self, session_id: Uuid) {
        let mut inner = self.lock();
        inner.revocations = inner.revocations.wrapping_add(1);
        inner.checked.remove(&session_id);
    }
}

#[cfg(test)]
mod session_cache_tests {
    use super::*;

    #[test]
    fn a_check_that_began_before_a_logout_never_caches_the_revoked_session() {
        let cache = SessionCache::new(Duration::from_secs(60));
        let session = Uuid::now_v7();
        // A request reads "live" from the database …
        let check = cache.begin_check();
        // … the session is logged out meanwhile …
        cache.forget(session);
        // … and the request's answer arrives after the logout evicted the session.
        cache.finish_check(session, true, check);
        assert!(!cache.fresh(session), "a revoked session was re-cached");
        // A check that begins after the logout caches as usual (were the session live).
        let later = cache.begin_check();
        cache.finish_check(session, true, later);
        assert!(cache.fresh(session));
        cache.forget(session);
        assert!(!cache.fresh(session));
    }
}
