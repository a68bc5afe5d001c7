//! Kassa Central: the HTTP API that is the source of truth for every store and the online shop.

pub mod approvals;
pub mod auth;
pub mod carts;
pub mod catalog;
pub mod config;
pub mod demo;
pub mod devtools;
pub mod events;
pub mod http;
pub mod idempotency;
pub mod maintenance;
pub mod orders;
pub mod payments;
pub mod recommend;
pub mod search;
pub mod shared;
pub mod shifts;
pub mod state;
pub mod stock;
pub mod store;
pub mod sync;
pub mod telemetry;

use std::sync::Arc;

pub use config::Config;
pub use http::{router, serve};
pub use state::AppState;

/// Connects to the database, applies migrations and builds the shared state.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let limits = store::PoolLimits {
        connections_max: config.db_connections_max,
        ..Default::default()
    };
    let db = store::Db::connect(&config.database_url, &limits).await?;
    db.migrate().await?;
    let db = match &config.database_read_url {
        Some(url) => db.with_replica(url.expose(), &limits, config.replica_wait)?,
        None => db,
    };
    let secret = auth::signing_secret(&db, &config).await?;
    let shared = Arc::new(match &config.redis_url {
        Some(url) => shared::SharedState::connect(url)?,
        None => shared::SharedState::none(),
    });
    let auth = auth::AuthService::new(&config, &secret, shared.clone()).await?;
    telemetry::metrics::handle();
    let recommender = recommend::load(
        &db,
        recommend::model::Params {
            top_k: config.recommend_top_k,
            min_support: config.recommend_min_support,
        },
    )
    .await?;
    let processor = payments::processor_from(&config)?;
    let search = search::open(&config)?;
    let inflight = Arc::new(maintenance::shedding::Inflight::new(
        config.inflight_max,
        config.inflight_reserved_percent,
    ));
    let cache_ttl = config.cache_ttl;
    Ok(AppState {
        db,
        processor,
        search,
        config: Arc::new(config),
        auth: Arc::new(auth),
        recommender: Arc::new(recommender),
        read_only: Arc::default(),
        features: Arc::default(),
        inflight,
        products: catalog::product_cache::ProductCache::with_shared(cache_ttl, shared.clone()),
        searches: search::answer_cache::SearchCache::new(cache_ttl),
        shutting_down: Arc::default(),
        hot_gate: Arc::default(),
        orders: Arc::default(),
        shared,
    })
}
