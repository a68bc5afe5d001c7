//! The product cache: product answers kept in this instance's memory (moka) so a spike of
//! product pages reads the database once per product, not once per visitor.
//!
//! Freshness: the instance that changes a product puts the new version in at once; every other
//! instance puts it in when its search refresher reads the catalog change feed (within
//! `KASSA_SEARCH_REFRESH_MS`); a version is only ever replaced by a newer one, so a slow reader
//! that loaded an old row can never put it back over a newer one. Entries also expire after
//! `KASSA_CACHE_TTL_MS`, the last bound should the feed stall.
//!
//! With `KASSA_REDIS_URL`, Redis is a second level shared by every instance: a product one
//! instance read from the database is there for the others (an instance that starts, or whose
//! entry expired, reads Redis before the database). The same rule holds there: one Lua script
//! replaces a kept product only with a newer version, and every instance offers what it reads
//! from the change feed, so Redis lags the database by no more than the feed does. Redis down or
//! slow (the shared circuit, `crate::shared`): straight to the database, as without it.

use std::sync::Arc;
use std::time::Duration;

use kassa_domain::api::Product;
use moka::ops::compute::Op;
use uuid::Uuid;

use crate::shared::SharedState;
use crate::telemetry::metrics::CACHE_REQUESTS;

/// Products this instance keeps in memory at most.
const PRODUCTS_MAX: u64 = 50_000;

/// Keeps `ARGV[2]` (a product's JSON) at `KEYS[1]` unless a version at least `ARGV[1]` is kept
/// there already; (re)sets its expiry to `ARGV[3]` ms when it writes.
const KEEP_NEWER: &str = r"
local kept = tonumber(redis.call('HGET', KEYS[1], 'v') or '-1')
if kept >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'p', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

#[derive(Debug, Clone)]
pub struct ProductCache {
    entries: moka::sync::Cache<Uuid, Arc<Product>>,
    /// The second level (Redis), when configured.
    shared: Option<Arc<SharedState>>,
    ttl: Duration,
    keep_newer: Arc<redis::Script>,
}

fn shared_key(id: Uuid) -> String {
    format!("kassa:product:{id}")
}

impl ProductCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(PRODUCTS_MAX)
                .time_to_live(ttl)
                .build(),
            shared: None,
            ttl,
            keep_newer: Arc::new(redis::Script::new(KEEP_NEWER)),
        }
    }

    /// [`ProductCache::new`] with Redis (`shared`, if configured) as the second level.
    pub fn with_shared(ttl: Duration, shared: Arc<SharedState>) -> Self {
        let mut cache = Self::new(ttl);
        cache.shared = shared.is_configured().then_some(shared);
        cache
    }

    /// The kept product from this instance or, failing that, from Redis (then kept here too);
    /// counted as a `hit`, a `shared_hit` or a `miss`.
    pub async fn find(&self, id: Uuid) -> Option<Arc<Product>> {
        if let Some(found) = self.entries.get(&id) {
            count("hit");
            return Some(found);
        }
        let shared = match &self.shared {
            Some(shared) => shared,
            None => {
                count("miss");
                return None;
            }
        };
        let cmd = redis::cmd("HGET").arg(shared_key(id)).arg("p").to_owned();
        let found = shared
            .query::<Option<String>>(&cmd)
            .await
            .flatten()
            .and_then(|json| serde_json::from_str::<Product>(&json).ok())
            .filter(|product| product.id == id);
        match found {
            Some(product) => {
                count("shared_hit");
                Some(self.keep(product))
            }
            None => {
                count("miss");
                None
            }
        }
    }

    /// [`ProductCache::keep`], and offers it to Redis (kept there unless a newer version is).
    pub async fn offer(&self, product: Product) -> Arc<Product> {
        let kept = self.keep(product);
        self.share(&kept).await;
        kept
    }

    async fn share(&self, product: &Product) {
        let Some(shared) = &self.shared else {
            return;
        };
        let Ok(json) = serde_json::to_vec(product) else {
            return;
        };
        let ttl_ms = self.ttl.as_millis().to_string();
        let version = product.version.to_string();
        let _: Option<i64> = shared
            .script(
                &self.keep_newer,
                &[&shared_key(product.id)],
                &[version.as_bytes(), &json, ttl_ms.as_bytes()],
            )
            .await;
    }

    /// The product kept in this instance, counted as a hit or a miss.
    pub fn get(&self, id: Uuid) -> Option<Arc<Product>> {
        let found = self.entries.get(&id);
        count(if found.is_some() { "hit" } else { "miss" });
        found
    }

    /// Keeps `product` unless a newer version is already kept; returns the one kept.
    pub fn keep(&self, product: Product) -> Arc<Product> {
        let id = product.id;
        let product = Arc::new(product);
        let offered = product.clone();
        self.entries
            .entry(id)
            .and_compute_with(move |kept| match kept {
                Some(kept) if kept.value().version >= offered.version => Op::Nop,
                _ => Op::Put(offered),
            });
        self.entries.get(&id).unwrap_or(product)
    }

    /// Keeps every changed product of a catalog change-feed page here, and offers them to
    /// Redis in the background (the feed's reader does not wait for it).
    pub fn follow(&self, changed: &[Product]) {
        for product in changed {
            self.keep(product.clone());
        }
        if self.shared.is_some() && !changed.is_empty() {
            let cache = self.clone();
            let changed = changed.to_vec();
            tokio::spawn(async move {
                for product in &changed {
                    cache.share(product).await;
                }
            });
        }
    }
}

fn count(outcome: &'static str) {
    metrics::counter!(CACHE_REQUESTS, "cache" => "products", "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(version: i64) -> Product {
        let mut p: Product = serde_json::from_value(serde_json::json!({
            "id": "0190b5a0-0000-7000-8000-000000000001", "sku": "SKU-1", "name": "Cup",
            "description": "", "barcodes": [], "category": "", "brand": "",
            "price": { "amount": "2.50", "currency": "EUR" }, "tax_class": "standard",
            "attributes": {}, "archived": false, "version": 1,
            "updated_at": "2026-12-06T00:00:00Z", "change_seq": 1
        }))
        .unwrap();
        p.version = version;
        p
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let cache = ProductCache::new(Duration::from_secs(60));
        let id = product(1).id;
        assert!(cache.get(id).is_none());
        assert_eq!(cache.keep(product(2)).version, 2);
        assert_eq!(cache.keep(product(1)).version, 2, "a slow reader's old row");
        assert_eq!(cache.get(id).unwrap().version, 2);
        cache.follow(&[product(3)]);
        assert_eq!(cache.get(id).unwrap().version, 3);
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = ProductCache::new(Duration::from_millis(50));
        let id = product(1).id;
        cache.keep(product(1));
        assert!(cache.get(id).is_some());
        std::thread::sleep(Duration::from_millis(120));
        assert!(cache.get(id).is_none());
    }
}
