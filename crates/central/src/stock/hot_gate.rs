//! The hot-SKU gate: with Redis (`KASSA_REDIS_URL`), an online order first takes its units from
//! a counter per SKU and location in Redis, so that a flash sale's thousands of buyers past the
//! last unit get their 409 `insufficient_stock` from Redis without touching the database.
//!
//! The database's conditional update stays the final word; the counters only turn buyers away
//! early. What keeps them honest:
//! - **Atomic, once per order.** One Lua script checks every line and takes them all or none,
//!   and writes what it took under the order's Idempotency-Key: a retry never takes twice.
//! - **A counter that lies high cannot oversell**: the order still reserves in the database,
//!   which refuses; the counter is then set to the database's figure.
//! - **A counter that lies low is corrected**: every counter carries a generation; loading and
//!   reconciling set the database's available units under a new generation, and a failed order
//!   gives back only to the generation it took from. The reconciler sets every counter whose
//!   stock row changed (cancellations, expiries, adjustments, receipts, register sales) each
//!   [`Config::hot_gate_reconcile_interval`], and every counter after Redis restarted or failed
//!   over (a new `run_id`) or came back to this instance.
//! - **A missing counter is loaded** from the database (only when it is missing: one loader
//!   wins).
//! - **Redis down**: the shared circuit answers at once; orders go to the database alone, at most
//!   [`Config::hot_gate_db_concurrency`] per SKU and location on this instance (503 `overloaded`
//!   past [`DB_WAIT_MAX`]), until Redis answers again.
//!
//! Every SKU is gated when Redis is configured (no hot list to forget to update); sales from a
//! register (`register_id` in the session) are not: they draw on the till's own stock lease and
//! are not where the crowd is. A sold-out answer from Redis is not stored under the
//! Idempotency-Key (nothing reached the database): a retry asks again.
//!
//! [`Config::hot_gate_reconcile_interval`]: crate::config::Config::hot_gate_reconcile_interval
//! [`Config::hot_gate_db_concurrency`]: crate::config::Config::hot_gate_db_concurrency

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use kassa_domain::api::ShortLine;
use kassa_domain::{IdempotencyKey, Sku};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{self, now_ms};
use crate::telemetry::metrics::{HOT_GATE, OVERSELL_REFUSALS};

/// Redis down: the longest an order waits for its SKU's turn at the database before 503.
pub const DB_WAIT_MAX: Duration = Duration::from_secs(2);
/// What an order took stays recorded this long (its retries find it).
const TAKE_TTL_S: i64 = 24 * 3600;
/// A counter nobody loaded or reconciled for this long leaves Redis.
const COUNTER_TTL_S: i64 = 3600;
/// Stock rows changed this long before the reconciler's last pass are read again: a row's
/// `updated_at` is its statement's time, and its transaction may commit later.
const RECONCILE_OVERLAP: Duration = Duration::from_secs(10);
/// Stock rows read per reconciliation.
const RECONCILE_ROWS_MAX: i64 = 5000;
/// Counters set per script call.
const RESET_CHUNK: usize = 200;
/// Every this many passes, the reconciler sets every counter, changed or not.
const FULL_PASS_EVERY: u64 = 60;
/// Location codes remembered this long (an order's sold-out answer needs no database read).
const LOCATION_TTL: Duration = Duration::from_secs(60);
/// SKU and location pairs with a database-only semaphore kept per instance.
const DB_PERMITS_MAX: usize = 10_000;

const GEN_KEY: &str = "kassa:hot:gen";

/// The Redis counter of `sku` at `location_id` (a hash: `units`, `gen`).
pub fn counter_key(location_id: &str, sku: &str) -> String {
    format!("kassa:hot:{location_id}:{sku}")
}

/// What the order keyed `key` in `scope` took (a hash: counter key → `qty:gen`).
fn take_key(scope: &str, key: &IdempotencyKey) -> String {
    format!("kassa:hot:take:{scope}:{}", key.as_ref())
}

/// KEYS: the take record, then the counters; ARGV: the record's TTL, then the quantities.
/// `{0}` taken; `{1}` this order took before (a retry); `{2, i…}` counters i are missing;
/// `{3, i, units, …}` lines i are short, with what their counters hold.
const TAKE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
local missing = {2}
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then missing[#missing + 1] = i - 1 end
end
if #missing > 1 then return missing end
local short = {3}
for i = 2, #KEYS do
  local units = tonumber(redis.call('HGET', KEYS[i], 'units'))
  if units < tonumber(ARGV[i]) then
    short[#short + 1] = i - 1
    short[#short + 1] = units
  end
end
if #short > 1 then return short end
for i = 2, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'units', -tonumber(ARGV[i]))
  local gen = redis.call('HGET', KEYS[i], 'gen')
  redis.call('HSET', KEYS[1], KEYS[i], ARGV[i] .. ':' .. gen)
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {0}
";

/// KEYS: the generation counter, then counters; ARGV: mode (0: only missing counters, 1: only
/// existing ones), the counters' TTL, then their units. Each counter set gets a new
/// generation. Answers how many were set.
const SET_SCRIPT: &str = r"
local set = 0
for i = 2, #KEYS do
  local exists = redis.call('EXISTS', KEYS[i]) == 1
  if (ARGV[1] == '0' and not exists) or (ARGV[1] == '1' and exists) then
    local gen = redis.call('INCR', KEYS[1])
    redis.call('HSET', KEYS[i], 'units', ARGV[i + 1], 'gen', gen)
    redis.call('EXPIRE', KEYS[i], ARGV[2])
    set = set + 1
  end
end
return set
";

/// KEYS: the take record, then its counters. Gives each counter back what the record says was
/// taken from it, if it is still the generation it was taken from; drops the record.
const GIVE_BACK_SCRIPT: &str = r"
local given = 0
for i = 2, #KEYS do
  local taken = redis.call('HGET', KEYS[1], KEYS[i])
  if taken then
    local qty, gen = string.match(taken, '^(%d+):(%d+)$')
    if qty and redis.call('HGET', KEYS[i], 'gen') == gen then
      redis.call('HINCRBY', KEYS[i], 'units', tonumber(qty))
      given = given + 1
    end
  end
end
redis.call('DEL', KEYS[1])
return given
";

fn script(cell: &'static OnceLock<redis::Script>, lua: &str) -> &'static redis::Script {
    cell.get_or_init(|| redis::Script::new(lua))
}

fn take_script() -> &'static redis::Script {
    static CELL: OnceLock<redis::Script> = OnceLock::new();
    script(&CELL, TAKE_SCRIPT)
}

fn set_script() -> &'static redis::Script {
    static CELL: OnceLock<redis::Script> = OnceLock::new();
    script(&CELL, SET_SCRIPT)
}

fn give_back_script() -> &'static redis::Script {
    static CELL: OnceLock<redis::Script> = OnceLock::new();
    script(&CELL, GIVE_BACK_SCRIPT)
}

/// What happened at the gate; `kassa_hot_gate_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Units taken from the counters; the order goes on to the database.
    Taken,
    /// A retry of an order that took already: goes on without taking again.
    Retried,
    /// 409 from Redis, without the database.
    SoldOut,
    /// Counters loaded from the database (they were missing).
    Loaded,
    /// Redis down: the order went to the database alone, behind the per-SKU cap.
    DatabaseOnly,
    /// A failed or replayed order gave its units back.
    GivenBack,
    /// The database refused what the counter allowed: the counter was set to its figure.
    Corrected,
    /// Counters set by the reconciler.
    Reconciled,
}

impl Outcome {
    const ALL: [Self; 8] = [
        Self::Taken,
        Self::Retried,
        Self::SoldOut,
        Self::Loaded,
        Self::DatabaseOnly,
        Self::GivenBack,
        Self::Corrected,
        Self::Reconciled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Taken => "taken",
            Self::Retried => "retried",
            Self::SoldOut => "sold_out",
            Self::Loaded => "loaded",
            Self::DatabaseOnly => "database_only",
            Self::GivenBack => "given_back",
            Self::Corrected => "corrected",
            Self::Reconciled => "reconciled",
        }
    }
}

/// This instance's side of the gate: remembered locations, the database-only semaphores, and
/// its own outcome counts (the metric is process-wide; these are per state, for tests and the
/// benchmark).
#[derive(Debug, Default)]
pub struct HotGate {
    locations: Mutex<HashMap<String, (String, Instant)>>,
    db_permits: Mutex<HashMap<String, Arc<Semaphore>>>,
    counts: [AtomicU64; Outcome::ALL.len()],
    reconciler: tokio::sync::Mutex<Reconciler>,
}

#[derive(Debug, Default)]
struct Reconciler {
    passes: u64,
    run_id: Option<String>,
    recoveries: u64,
    last_pass_ms: Option<i64>,
}

impl HotGate {
    /// How many times `outcome` happened on this instance.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.counts[Self::slot(outcome)].load(Ordering::Relaxed)
    }

    fn slot(outcome: Outcome) -> usize {
        Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or_default()
    }

    fn note(&self, outcome: Outcome, by: u64) {
        self.counts[Self::slot(outcome)].fetch_add(by, Ordering::Relaxed);
        metrics::counter!(HOT_GATE, "outcome" => outcome.as_str()).increment(by);
    }

    fn semaphore(&self, key: &str, permits: usize) -> Arc<Semaphore> {
        let mut map = self
            .db_permits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= DB_PERMITS_MAX {
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        map.entry(key.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(permits.max(1))))
            .clone()
    }
}

/// A location by code (remembered for [`LOCATION_TTL`] when Redis is configured, so that a
/// sold-out answer reads nothing from the database), or 422.
pub async fn location_id(state: &AppState, code: &str) -> ApiResult<String> {
    if !state.shared.is_configured() {
        return super::location_id(state, code).await;
    }
    let remembered = state
        .hot_gate
        .locations
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(code)
        .filter(|(_, at)| at.elapsed() < LOCATION_TTL)
        .map(|(id, _)| id.clone());
    if let Some(id) = remembered {
        return Ok(id);
    }
    let id = super::location_id(state, code).await?;
    let mut locations = state
        .hot_gate
        .locations
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if locations.len() >= DB_PERMITS_MAX {
        locations.clear();
    }
    locations.insert(code.to_owned(), (id.clone(), Instant::now()));
    Ok(id)
}

/// What an order holds from the gate until it is settled.
#[derive(Debug)]
#[must_use = "settle the hold with the order's outcome"]
pub struct Hold {
    /// What this request took, if it took.
    took: Option<Took>,
    /// The counters of the order's lines, in line order (to correct them after a refusal).
    counters: Vec<(String, String)>,
    /// Redis down: this order's turns at the database, released when it is done.
    _permits: Vec<OwnedSemaphorePermit>,
}

/// Units a request took: its take record and counters, and where to give them back.
#[derive(Debug)]
struct Took {
    record: String,
    counters: Vec<String>,
    shared: Arc<crate::shared::SharedState>,
    gate: Arc<HotGate>,
}

impl Took {
    async fn give_back(self) {
        let mut keys = vec![self.record.as_str()];
        keys.extend(self.counters.iter().map(String::as_str));
        if let Some(given) = self
            .shared
            .script::<u64>(give_back_script(), &keys, &[] as &[i64])
            .await
        {
            self.gate.note(Outcome::GivenBack, given);
        }
    }
}

/// A request dropped before it settled (the client went away, the request timed out) gives its
/// units back in the background: the order it was making never committed.
impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(took) = self.took.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(took.give_back());
            }
        }
    }
}

/// How an order ended, for [`Hold::settle`].
#[derive(Debug)]
pub enum Settled<'a> {
    /// A new order committed: what it took stays taken.
    Created,
    /// The Idempotency-Key was answered before (the earlier request settled its own take).
    Replayed,
    /// The order failed.
    Failed(&'a ApiError),
}

impl Hold {
    fn none() -> Self {
        Self {
            took: None,
            counters: Vec::new(),
            _permits: Vec::new(),
        }
    }

    /// Keeps or gives back what the order took; after the database refused stock, sets the
    /// short lines' counters to the database's figures.
    pub async fn settle(mut self, state: &AppState, how: Settled<'_>) {
        let took = self.took.take();
        let failed = match how {
            Settled::Created => return,
            Settled::Replayed => None,
            Settled::Failed(err) => Some(err),
        };
        if let Some(took) = took {
            took.give_back().await;
        }
        let Some(ApiError::Conflict {
            code: "insufficient_stock",
            details,
            ..
        }) = failed
        else {
            return;
        };
        let Some(short) = details.get("lines").and_then(|l| l.as_array()) else {
            return;
        };
        let mut keys = vec![GEN_KEY];
        let mut units = vec![1, COUNTER_TTL_S];
        for line in short {
            let sku = line.get("sku").and_then(|s| s.as_str());
            let available = line.get("available").and_then(serde_json::Value::as_i64);
            let found = self.counters.iter().find(|(s, _)| Some(s.as_str()) == sku);
            if let (Some((_, key)), Some(available)) = (found, available) {
                keys.push(key);
                units.push(available.max(0));
            }
        }
        if keys.len() > 1 {
            if let Some(set) = state
                .shared
                .script::<u64>(set_script(), &keys, &units)
                .await
            {
                state.hot_gate.note(Outcome::Corrected, set);
            }
        }
    }
}

/// The gate an online order passes before the database: takes its `lines` (sku, qty) at
/// `location_id` from the counters, or answers 409 `insufficient_stock` from Redis. Without
/// Redis configured, or for a register's sale, a no-op. Redis down: waits for the lines' turns
/// at the database (503 `overloaded` after [`DB_WAIT_MAX`]).
pub async fn enter(
    state: &AppState,
    caller: &Caller,
    scope: &str,
    key: &IdempotencyKey,
    location_id: &str,
    lines: &[(String, i64)],
) -> ApiResult<Hold> {
    if !state.shared.is_configured() || caller.register_id.is_some() {
        return Ok(Hold::none());
    }
    take(state, scope, key, location_id, lines).await
}

/// [`enter`] with Redis configured: a span of its own (the gate's Redis calls), none for the
/// no-op.
#[tracing::instrument(name = "hot_gate.enter", skip_all, fields(lines = lines.len()))]
async fn take(
    state: &AppState,
    scope: &str,
    key: &IdempotencyKey,
    location_id: &str,
    lines: &[(String, i64)],
) -> ApiResult<Hold> {
    let counters: Vec<(String, String)> = lines
        .iter()
        .map(|(sku, _)| (sku.clone(), counter_key(location_id, sku)))
        .collect();
    let record = take_key(scope, key);
    let mut keys = vec![record.as_str()];
    keys.extend(counters.iter().map(|(_, k)| k.as_str()));
    let mut args = vec![TAKE_TTL_S];
    args.extend(lines.iter().map(|(_, qty)| *qty));
    let mut loaded = false;
    loop {
        let Some(answer) = state
            .shared
            .script::<Vec<i64>>(take_script(), &keys, &args)
            .await
        else {
            return database_only(state, &counters).await;
        };
        let hold = Hold {
            took: None,
            counters: counters.clone(),
            _permits: Vec::new(),
        };
        match answer.split_first() {
            Some((0, _)) => {
                state.hot_gate.note(Outcome::Taken, 1);
                let took = Took {
                    record,
                    counters: counters.iter().map(|(_, k)| k.clone()).collect(),
                    shared: state.shared.clone(),
                    gate: state.hot_gate.clone(),
                };
                return Ok(Hold {
                    took: Some(took),
                    counters: hold.counters.clone(),
                    _permits: Vec::new(),
                });
            }
            Some((1, _)) => {
                state.hot_gate.note(Outcome::Retried, 1);
                return Ok(hold);
            }
            Some((2, missing)) if !loaded => {
                loaded = true;
                if !load(state, location_id, lines, missing).await? {
                    // No stock row for a line: the database answers (unknown SKU, or none).
                    return Ok(hold);
                }
            }
            Some((3, short)) => return Err(sold_out(state, lines, short)),
            // Missing again right after loading (Redis lost them meanwhile): the database
            // answers this one.
            _ => return Ok(hold),
        }
    }
}

/// Loads the counters of the `missing` lines (1-based) from the database, where missing; false
/// when a line has no stock row.
async fn load(
    state: &AppState,
    location_id: &str,
    lines: &[(String, i64)],
    missing: &[i64],
) -> ApiResult<bool> {
    let mut keys = vec![GEN_KEY.to_owned()];
    let mut args = vec![0, COUNTER_TTL_S];
    for index in missing {
        let Some((sku, _)) = usize::try_from(*index - 1).ok().and_then(|i| lines.get(i)) else {
            return Ok(false);
        };
        let Some(level) = store::stock::level(state.db.pool(), sku, location_id).await? else {
            return Ok(false);
        };
        keys.push(counter_key(location_id, sku));
        args.push(level.available().max(0));
    }
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    if let Some(set) = state.shared.script::<u64>(set_script(), &keys, &args).await {
        state.hot_gate.note(Outcome::Loaded, set);
    }
    Ok(true)
}

/// The 409 for the short lines (`short`: 1-based line index, units held, …).
fn sold_out(state: &AppState, lines: &[(String, i64)], short: &[i64]) -> ApiError {
    state.hot_gate.note(Outcome::SoldOut, 1);
    metrics::counter!(OVERSELL_REFUSALS).increment(1);
    let short: Vec<ShortLine> = short
        .chunks_exact(2)
        .filter_map(|pair| {
            let (sku, qty) = lines.get(usize::try_from(pair[0] - 1).ok()?)?;
            Some(ShortLine {
                sku: Sku::parse(sku).ok()?,
                requested: u32::try_from(*qty).unwrap_or(u32::MAX),
                available: pair[1].max(0),
            })
        })
        .collect();
    let names: Vec<String> = short
        .iter()
        .map(|s| format!("{} (available {})", s.sku, s.available))
        .collect();
    ApiError::conflict(
        "insufficient_stock",
        format!("not enough stock for {}", names.join(", ")),
        serde_json::json!({ "lines": short }),
    )
}

/// Redis down: one turn per line at the database (in counter-key order, so two orders never
/// wait for each other's turns), or 503 `overloaded` after [`DB_WAIT_MAX`].
async fn database_only(state: &AppState, counters: &[(String, String)]) -> ApiResult<Hold> {
    state.hot_gate.note(Outcome::DatabaseOnly, 1);
    let mut keys: Vec<&str> = counters.iter().map(|(_, k)| k.as_str()).collect();
    keys.sort_unstable();
    let mut permits = Vec::with_capacity(keys.len());
    for key in keys {
        let semaphore = state
            .hot_gate
            .semaphore(key, state.config.hot_gate_db_concurrency);
        match tokio::time::timeout(DB_WAIT_MAX, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => permits.push(permit),
            _ => return Err(ApiError::Overloaded { retry_after_s: 1 }),
        }
    }
    Ok(Hold {
        took: None,
        counters: counters.to_vec(),
        _permits: permits,
    })
}

/// One reconciliation: sets the counters (those that exist) of the stock rows changed since the
/// last pass to the database's available units; all of them on the first pass, every
/// [`FULL_PASS_EVERY`] passes, and when Redis restarted, failed over or came back. Answers how
/// many counters were set; 0 without Redis.
#[tracing::instrument(skip_all)]
pub async fn reconcile(state: &AppState) -> anyhow::Result<u64> {
    if !state.shared.is_configured() {
        return Ok(0);
    }
    let mut r = state.hot_gate.reconciler.lock().await;
    let mut info = redis::cmd("INFO");
    info.arg("server");
    let Some(info) = state.shared.query::<String>(&info).await else {
        // Redis down: nothing to set; the next pass after it returns sets everything.
        return Ok(0);
    };
    let run_id = info
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned());
    let restarted = r.run_id.is_some() && run_id != r.run_id;
    if restarted {
        tracing::warn!("Redis restarted or failed over: every hot-SKU counter is set again");
    }
    let recoveries = state.shared.recoveries();
    let full = r.last_pass_ms.is_none()
        || restarted
        || recoveries != r.recoveries
        || r.passes % FULL_PASS_EVERY == 0;
    let started_ms = now_ms();
    let overlap_ms = i64::try_from(RECONCILE_OVERLAP.as_millis()).unwrap_or(i64::MAX);
    let since = match (full, r.last_pass_ms) {
        (false, Some(last)) => last - overlap_ms,
        _ => 0,
    };
    let rows =
        store::stock::available_changed_since(state.db.pool(), since, RECONCILE_ROWS_MAX).await?;
    let mut set = 0;
    for chunk in rows.chunks(RESET_CHUNK) {
        let keys: Vec<String> = chunk
            .iter()
            .map(|(sku, location, _)| counter_key(location, sku))
            .collect();
        let mut key_refs = vec![GEN_KEY];
        key_refs.extend(keys.iter().map(String::as_str));
        let mut args = vec![1, COUNTER_TTL_S];
        args.extend(chunk.iter().map(|(_, _, available)| (*available).max(0)));
        let Some(n) = state
            .shared
            .script::<u64>(set_script(), &key_refs, &args)
            .await
        else {
            return Ok(set);
        };
        set += n;
    }
    state.hot_gate.note(Outcome::Reconciled, set);
    r.passes += 1;
    r.run_id = run_id;
    r.recoveries = recoveries;
    r.last_pass_ms = Some(started_ms);
    Ok(set)
}

/// Runs [`reconcile`] every `interval` until the process ends (nothing without Redis).
pub fn spawn_reconciler(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !state.shared.is_configured() {
            return;
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = reconcile(&state).await {
                tracing::warn!(error = ?e, "hot-SKU counter reconciliation failed");
            }
        }
    })
}
