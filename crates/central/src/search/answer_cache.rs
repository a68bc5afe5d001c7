//! The search answer cache: answers kept in this instance's memory (moka), keyed by the index
//! generation they were found in and the query string. A refresh that changes the index makes a
//! new generation, so an answer is never served past the index it came from: search answers
//! are exactly as fresh as the index (`KASSA_SEARCH_REFRESH_MS`), never staler. Entries expire
//! after `KASSA_CACHE_TTL_MS` and the least used go first past the size bound.

use std::sync::Arc;
use std::time::Duration;

use kassa_domain::api::SearchResponse;

use crate::telemetry::metrics::CACHE_REQUESTS;

/// Answers this instance keeps at most.
const ANSWERS_MAX: u64 = 10_000;

/// A kept answer with its `ETag` digest (made once, not per request).
#[derive(Debug)]
pub struct Kept {
    pub answer: SearchResponse,
    pub digest: String,
}

#[derive(Debug, Clone)]
pub struct SearchCache {
    entries: moka::sync::Cache<(u64, String), Arc<Kept>>,
}

impl SearchCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(ANSWERS_MAX)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The answer to `query` in index `generation`: kept, or found by `find` and kept.
    pub fn get_or_find(
        &self,
        generation: u64,
        query: &str,
        find: impl FnOnce() -> anyhow::Result<Kept>,
    ) -> anyhow::Result<Arc<Kept>> {
        let key = (generation, query.to_owned());
        if let Some(kept) = self.entries.get(&key) {
            metrics::counter!(CACHE_REQUESTS, "cache" => "search", "outcome" => "hit").increment(1);
            return Ok(kept);
        }
        metrics::counter!(CACHE_REQUESTS, "cache" => "search", "outcome" => "miss").increment(1);
        let kept = Arc::new(find()?);
        self.entries.insert(key, kept.clone());
        Ok(kept)
    }
}
