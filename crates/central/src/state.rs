//! The state every handler shares.

use std::sync::Arc;

use crate::auth::AuthService;
use crate::config::Config;
use crate::store::Db;

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub auth: Arc<AuthService>,
    /// The co-purchase top-k lists recommendations are served from.
    /// The card processor; `None` when none is configured (cash still works).
    pub processor: Option<crate::payments::Processor>,
    /// The catalog search index of this instance.
    pub search: Arc<crate::search::index::SearchIndex>,
    pub recommender: Arc<crate::recommend::Recommender>,
    /// What every instance shares through Redis (`KASSA_REDIS_URL`), if configured.
    pub shared: Arc<crate::shared::SharedState>,
    /// Set when the instance begins shutting down: `/ready` answers 503 from then on.
    pub shutting_down: Arc<std::sync::atomic::AtomicBool>,
    /// This instance's copy of read-only mode.
    pub read_only: Arc<crate::maintenance::ReadOnlySwitch>,
    /// This instance's copy of the feature switches.
    pub features: Arc<crate::maintenance::features::FeatureSwitches>,
    /// Product answers kept in memory (following the catalog change feed).
    pub products: crate::catalog::product_cache::ProductCache,
    /// Search answers kept in memory (for the index generation they were found in).
    pub searches: crate::search::answer_cache::SearchCache,
    /// Requests in flight on this instance (load shedding).
    pub inflight: Arc<crate::maintenance::shedding::Inflight>,
    /// This instance's side of the hot-SKU gate (with Redis).
    pub hot_gate: Arc<crate::stock::hot_gate::HotGate>,
    /// Orders waiting for their group commit, and its writer.
    pub orders: Arc<crate::orders::group_commit::GroupCommit>,
}
