//! State shared by every Central instance, in Redis (`KASSA_REDIS_URL`): global rate limits and
//! session revocations today; anything that can be rebuilt or lost safely (counters, caches)
//! tomorrow. Redis is never the truth: every caller has a per-instance answer to fall back on.
//!
//! A small circuit: a failed or slow call (over [`CALL_TIMEOUT`]) marks Redis down, logs it once
//! and sets `kassa_redis_up` to 0; while down, calls answer `None` at once without touching the
//! network, and one call every [`RETRY_INTERVAL`] tries again. The first success logs the
//! recovery and sets the gauge back to 1.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, ToRedisArgs};

use crate::config::Secret;
use crate::telemetry::metrics::REDIS_UP;

/// A Redis call slower than this counts as a failure (the request goes on without Redis).
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// While Redis is down, one call this often tries again.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// The shared store; "not configured" behaves as "down" for callers, without the logs.
pub struct SharedState {
    redis: Option<Redis>,
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

struct Redis {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    /// [`UNKNOWN`], [`UP`] or [`DOWN`].
    health: AtomicU8,
    /// How many times Redis came back after being down.
    recoveries: AtomicU64,
    /// While down: when the next call may try again.
    retry_at: Mutex<Instant>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("configured", &self.redis.is_some())
            .field("up", &self.is_up())
            .finish()
    }
}

impl SharedState {
    /// No shared store: every instance on its own (one instance, or tests).
    pub fn none() -> Self {
        Self { redis: None }
    }

    /// Redis at `url`; it need not be up yet (the first calls connect). Fails only on a URL
    /// that cannot be Redis's.
    pub fn connect(url: &Secret) -> anyhow::Result<Self> {
        let client = redis::Client::open(url.expose())
            .map_err(|e| anyhow::anyhow!("KASSA_REDIS_URL: {e}"))?;
        ::metrics::gauge!(REDIS_UP).set(0.0);
        Ok(Self {
            redis: Some(Redis {
                client,
                connection: tokio::sync::Mutex::new(None),
                health: AtomicU8::new(UNKNOWN),
                recoveries: AtomicU64::new(0),
                retry_at: Mutex::new(Instant::now()),
            }),
        })
    }

    pub fn is_configured(&self) -> bool {
        self.redis.is_some()
    }

    /// True while the last call succeeded.
    pub fn is_up(&self) -> bool {
        self.redis
            .as_ref()
            .is_some_and(|r| r.health.load(Ordering::Relaxed) == UP)
    }

    /// How many times Redis came back after an outage: what an instance cached while it could
    /// not hear the others' broadcasts is dropped when this changes.
    pub fn recoveries(&self) -> u64 {
        self.redis
            .as_ref()
            .map_or(0, |r| r.recoveries.load(Ordering::Relaxed))
    }

    /// Runs `cmd` (a command, or `EVALSHA`-style script invocation through [`SharedState::script`]);
    /// `None` when Redis is not configured, is down, or this call failed (then marked down).
    pub async fn query<T: FromRedisValue + Send>(&self, cmd: &redis::Cmd) -> Option<T> {
        let redis = self.redis.as_ref()?;
        let mut conn = redis.connection().await?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, cmd.query_async::<T>(&mut conn)).await;
        redis.settle(answer)
    }

    /// Runs a Lua script with `keys` and `args` (numbers, or byte strings such as a JSON body);
    /// `None` as for [`SharedState::query`].
    pub async fn script<T: FromRedisValue + Send>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[impl ToRedisArgs],
    ) -> Option<T> {
        let redis = self.redis.as_ref()?;
        let mut conn = redis.connection().await?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let answer =
            tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async::<T>(&mut conn)).await;
        redis.settle(answer)
    }
}

impl Redis {
    /// The connection, connecting when there is none and a try is due; `None` while down.
    async fn connection(&self) -> Option<ConnectionManager> {
        if self.health.load(Ordering::Relaxed) == DOWN && !self.try_due() {
            return None;
        }
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Some(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CALL_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT)
            .set_number_of_retries(1);
        let connecting = ConnectionManager::new_with_config(self.client.clone(), config);
        match tokio::time::timeout(CALL_TIMEOUT * 2, connecting).await {
            Ok(Ok(conn)) => {
                *slot = Some(conn.clone());
                Some(conn)
            }
            Ok(Err(e)) => {
                self.mark_down(&e.to_string());
                None
            }
            Err(_) => {
                self.mark_down("connecting timed out");
                None
            }
        }
    }

    /// True for one caller every [`RETRY_INTERVAL`] while down.
    fn try_due(&self) -> bool {
        let mut retry_at = self
            .retry_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if now < *retry_at {
            return false;
        }
        *retry_at = now + RETRY_INTERVAL;
        true
    }

    fn settle<T>(
        &self,
        answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        match answer {
            Ok(Ok(value)) => {
                match self.health.swap(UP, Ordering::Relaxed) {
                    UP => {}
                    DOWN => {
                        self.recoveries.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            "Redis is back: rate limits and revocations are shared again"
                        );
                        ::metrics::gauge!(REDIS_UP).set(1.0);
                    }
                    _ => {
                        tracing::info!("Redis answers: rate limits and revocations are shared");
                        ::metrics::gauge!(REDIS_UP).set(1.0);
                    }
                }
                Some(value)
            }
            Ok(Err(e)) => {
                self.mark_down(&e.to_string());
                None
            }
            Err(_) => {
                self.mark_down("call timed out");
                None
            }
        }
    }

    fn mark_down(&self, why: &str) {
        *self
            .retry_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now() + RETRY_INTERVAL;
        if self.health.swap(DOWN, Ordering::Relaxed) != DOWN {
            tracing::warn!(
                error = why,
                "Redis is unreachable: this instance falls back to its own rate limits and \
                 checks every session in the database until it returns"
            );
            ::metrics::gauge!(REDIS_UP).set(0.0);
        }
        // A fresh connection at the next try (the old one may be half-broken).
        if let Ok(mut slot) = self.connection.try_lock() {
            *slot = None;
        }
    }
}
