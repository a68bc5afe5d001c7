//! Where a guest cart kept in Redis lives: one hash per cart, `kassa:cart:{id}`, with fields
//! `v` (its version) and `cart` (the [`StoredCart`] as JSON: token hash, location, lines with
//! their prices), expiring [`EXPIRED_KEPT`] after the cart does. Every write goes through one
//! script that checks the version it read and refreshes the key's expiry, so two writers never
//! interleave: one wins, the other reads again.
//!
//! These calls go through the shared circuit ([`crate::shared::SharedState`]): `None` means
//! Redis is down (or not configured) and nothing was done.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use uuid::Uuid;

use crate::state::AppState;
use crate::store::carts::StoredCart;

/// How long an expired guest cart keeps answering 410 `cart_expired` before Redis drops its key
/// (then 404): as long as an expired cart in the database waits for the purge, at most.
pub const EXPIRED_KEPT: Duration = Duration::from_secs(600);

/// The Redis key of guest cart `id`.
pub fn key(id: &str) -> String {
    format!("kassa:cart:{id}")
}

/// A new id for a cart kept in Redis: a UUIDv7 (time-ordered) with version 8 in place of 7, so
/// that Central tells from the id alone where a cart lives, without a lookup in both places.
pub fn new_id() -> Uuid {
    let mut bytes = *Uuid::now_v7().as_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    Uuid::from_bytes(bytes)
}

/// Whether cart `id` was made in Redis (see [`new_id`]).
pub fn holds(id: Uuid) -> bool {
    id.get_version_num() == 8
}

/// Writers to one cart on this instance take turns (one of these locks, by cart id), so that
/// the version check in [`WRITE_SCRIPT`] only turns away writers on other instances.
const WRITER_STRIPES: usize = 64;

/// The turn of this instance's writers to cart `id`.
pub async fn writer_turn(id: Uuid) -> tokio::sync::MutexGuard<'static, ()> {
    static STRIPES: OnceLock<Vec<tokio::sync::Mutex<()>>> = OnceLock::new();
    let stripes = STRIPES.get_or_init(|| {
        (0..WRITER_STRIPES)
            .map(|_| tokio::sync::Mutex::new(()))
            .collect()
    });
    let stripe = usize::try_from(id.as_u128() % WRITER_STRIPES as u128).unwrap_or_default();
    stripes[stripe].lock().await
}

/// KEYS: the cart; ARGV: the version the writer read (0: the cart must not exist yet), the new
/// version, the cart's JSON, the key's time to live in ms. `1` written, `0` the version moved.
const WRITE_SCRIPT: &str = r"
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'cart', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

fn write_script() -> &'static redis::Script {
    static CELL: OnceLock<redis::Script> = OnceLock::new();
    CELL.get_or_init(|| redis::Script::new(WRITE_SCRIPT))
}

/// Cart `id` as Redis holds it: `None` when Redis is down, `Some(None)` when there is no such
/// cart (never made, merged, or dropped after it expired).
pub async fn load(state: &AppState, id: &str) -> Option<anyhow::Result<Option<StoredCart>>> {
    let raw: Option<Vec<u8>> = state
        .shared
        .query(redis::cmd("HGET").arg(key(id)).arg("cart"))
        .await?;
    Some(
        raw.map(|raw| serde_json::from_slice(&raw).context("a guest cart in Redis"))
            .transpose(),
    )
}

/// Writes `cart` if Redis still holds version `read` of it (0: if it does not exist yet), and
/// moves the key's expiry to the cart's `expires_at` + [`EXPIRED_KEPT`]. `Some(false)` when
/// another write came first; `None` when Redis is down.
pub async fn write(
    state: &AppState,
    cart: &StoredCart,
    read: i64,
    now: i64,
) -> Option<anyhow::Result<bool>> {
    let json = match serde_json::to_vec(cart).context("a guest cart as JSON") {
        Ok(json) => json,
        Err(e) => return Some(Err(e)),
    };
    let kept = i64::try_from(EXPIRED_KEPT.as_millis()).unwrap_or(i64::MAX);
    let ttl_ms = cart
        .expires_at
        .saturating_sub(now)
        .saturating_add(kept)
        .max(1);
    let args = [
        read.to_string().into_bytes(),
        cart.version.to_string().into_bytes(),
        json,
        ttl_ms.to_string().into_bytes(),
    ];
    let written: i64 = state
        .shared
        .script(write_script(), &[&key(&cart.id)], &args)
        .await?;
    Some(Ok(written == 1))
}

/// Deletes cart `id`; `None` when Redis is down.
pub async fn delete(state: &AppState, id: &str) -> Option<()> {
    let _: i64 = state.shared.query(redis::cmd("DEL").arg(key(id))).await?;
    Some(())
}
