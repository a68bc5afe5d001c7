//! The product cache: product answers kept in this instance's memory (moka) so a spike of
//! product pages reads the database once per product, not once per visitor.
//!
//! Freshness: the instance that changes a product puts the new version in at once; every other
//! instance puts it in when its search refresher reads the catalog change feed (within
//! `KASSA_SEARCH_REFRESH_MS`); a version is only ever replaced by a newer one, so a slow reader
//! that loaded an old row can never put it back over a newer one. Entries also expire after
//! `KASSA_CACHE_TTL_MS`, the last bound should the feed stall.

use std::sync::Arc;
use std::time::Duration;

use kassa_domain::api::Product;
use moka::ops::compute::Op;
use uuid::Uuid;

use crate::telemetry::metrics::CACHE_REQUESTS;

/// Products this instance keeps in memory at most.
const PRODUCTS_MAX: u64 = 50_000;

#[derive(Debug, Clone)]
pub struct ProductCache {
    entries: moka::sync::Cache<Uuid, Arc<Product>>,
}

impl ProductCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(PRODUCTS_MAX)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The kept product, counted as a hit or a miss.
    pub fn get(&self, id: Uuid) -> Option<Arc<Product>> {
        let found = self.entries.get(&id);
        let outcome = if found.is_some() { "hit" } else { "miss" };
        metrics::counter!(CACHE_REQUESTS, "cache" => "products", "outcome" => outcome).increment(1);
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

    /// Keeps every changed product of a catalog change-feed page.
    pub fn follow(&self, changed: &[Product]) {
        for product in changed {
            self.keep(product.clone());
        }
    }
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
