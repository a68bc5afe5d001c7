//! Prometheus metrics: the recorder (histogram buckets for every `*_seconds` metric), the names
//! Central exports (units in the name, `_total` for counters), and the gauges read when
//! `/metrics` is scraped (database pool, search index lag).
//!
//! Counters for work done inside a database transaction are counted when it commits
//! ([`crate::store::Tx::count_on_commit`]), so a rolled-back order is never counted.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// Requests by `method`, `route` (the template) and `status`.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Request latency by `method`, `route` and `status`.
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
/// Pool connections by `state` (`idle`, `in_use`).
pub const DB_POOL_CONNECTIONS: &str = "kassa_db_pool_connections";
/// The pool's size limit.
pub const DB_POOL_MAX: &str = "kassa_db_pool_connections_max";
/// Idempotent requests answered from the stored first response, by `scope` kind.
pub const IDEMPOTENCY_REPLAYS: &str = "kassa_idempotency_replays_total";
/// Idempotency keys refused, by `reason` (`in_flight` 409, `body_mismatch` 422).
pub const IDEMPOTENCY_CONFLICTS: &str = "kassa_idempotency_conflicts_total";
/// Order state changes, by `to` (the new state).
pub const ORDER_TRANSITIONS: &str = "kassa_order_transitions_total";
/// Online orders and reservations refused for lack of stock (409 `insufficient_stock`).
pub const OVERSELL_REFUSALS: &str = "kassa_oversell_refusals_total";
/// Units an offline sale sold beyond the stock Central had (recorded as discrepancies).
pub const SHORTFALL_UNITS: &str = "kassa_stock_shortfall_units_total";
/// Offline-sale lines recorded with a shortfall.
pub const SHORTFALLS: &str = "kassa_stock_shortfalls_total";
/// Sync batches received from registers, by `register`.
pub const SYNC_BATCHES: &str = "kassa_sync_batches_total";
/// Offline orders received in sync batches, by `register` and `outcome`.
pub const SYNC_ORDERS: &str = "kassa_sync_orders_total";
/// What a register reported with its last sync: orders still queued, by `register`.
pub const REGISTER_QUEUE: &str = "kassa_register_queue_orders";
/// What a register reported with its last sync: age of its oldest unsynced sale, by `register`.
pub const REGISTER_OLDEST: &str = "kassa_register_oldest_unsynced_sale_age_seconds";
/// What a register reported: how old its catalog copy is (since its last successful pull).
pub const REGISTER_CATALOG_AGE: &str = "kassa_register_catalog_age_seconds";
/// When Central last heard from a register (Unix seconds), by `register`.
pub const REGISTER_LAST_SYNC: &str = "kassa_register_last_sync_timestamp_seconds";
/// Calls to the card processor, by `operation` and `outcome` (recorded by `kassa-payments`).
pub use kassa_payments::{PROCESSOR_DURATION, PROCESSOR_ERRORS};
/// Requests refused by a rate limit (429), by `limit`.
pub const RATE_LIMITED: &str = "kassa_rate_limited_requests_total";
/// 1 while this instance holds Central read-only (`PUT /v1/admin/read-only`), else 0.
pub const READ_ONLY: &str = "kassa_read_only_mode";
/// Requests answered `503 overloaded` by load shedding, by `class` (browse, other, essential).
pub const SHED_REQUESTS: &str = "kassa_shed_requests_total";
/// Answer-cache lookups, by `cache` (products, search) and `outcome` (hit, miss).
pub const CACHE_REQUESTS: &str = "kassa_cache_requests_total";
/// How far the search index is behind the catalog.
pub const SEARCH_LAG: &str = "kassa_search_index_lag_seconds";
/// Events in the outbox not yet delivered.
pub const RELAY_BACKLOG: &str = "kassa_relay_backlog_events";
/// Age of the oldest undelivered event.
pub const RELAY_LAG: &str = "kassa_relay_lag_seconds";
/// Events delivered to every sink.
pub const RELAY_DELIVERED: &str = "kassa_relay_delivered_events_total";
/// Relay steps (or starts) that failed.
pub const RELAY_FAILURES: &str = "kassa_relay_failures_total";
/// Events applied by an in-process consumer, by `consumer`.
pub const RELAY_CONSUMED: &str = "kassa_relay_consumed_events_total";
/// Events a consumer had already applied, by `consumer`.
pub const RELAY_DUPLICATES: &str = "kassa_relay_duplicates_total";
/// Publishes the NATS stream recognised as re-deliveries.
pub const RELAY_NATS_DUPLICATES: &str = "kassa_relay_nats_duplicates_total";
/// 1 while this instance reaches Redis (`KASSA_REDIS_URL`), 0 while it falls back to its own
/// limits and database session checks; absent without Redis.
pub const REDIS_UP: &str = "kassa_redis_up";
/// 1 while the read replica (`KASSA_DATABASE_READ_URL`) answers, 0 while reads go to the
/// primary because it does not; absent without a replica.
pub const REPLICA_UP: &str = "kassa_read_replica_up";
/// Reads sent to the primary because the replica had not replayed the client's write in time.
pub const REPLICA_BEHIND: &str = "kassa_read_replica_behind_reads_total";
/// The hot-SKU gate's outcomes (`outcome`: taken, retried, sold_out, loaded, database_only,
/// given_back, corrected, reconciled).
pub const HOT_GATE: &str = "kassa_hot_gate_total";
/// Low-stock alerts raised.
pub const STOCK_LOW_ALERTS: &str = "kassa_stock_low_alerts_total";

/// Order group commits (`outcome`: committed, failed; a failed one created none of its orders).
pub const ORDER_BATCHES: &str = "kassa_order_batches_total";
/// Orders created by committed group commits (over `kassa_order_batches_total{outcome="committed"}`:
/// orders per batch).
pub const ORDER_BATCH_ORDERS: &str = "kassa_order_batched_orders_total";

/// Every metric Central exports (histograms by their base name): the dashboard and the alert
/// rules may name these and nothing else (checked by the tests).
pub const EXPORTED: &[&str] = &[
    HTTP_REQUESTS,
    HTTP_DURATION,
    DB_POOL_CONNECTIONS,
    DB_POOL_MAX,
    IDEMPOTENCY_REPLAYS,
    IDEMPOTENCY_CONFLICTS,
    ORDER_TRANSITIONS,
    OVERSELL_REFUSALS,
    SHORTFALL_UNITS,
    SHORTFALLS,
    SYNC_BATCHES,
    SYNC_ORDERS,
    REGISTER_QUEUE,
    REGISTER_OLDEST,
    REGISTER_CATALOG_AGE,
    REGISTER_LAST_SYNC,
    PROCESSOR_DURATION,
    PROCESSOR_ERRORS,
    RATE_LIMITED,
    READ_ONLY,
    SHED_REQUESTS,
    CACHE_REQUESTS,
    SEARCH_LAG,
    RELAY_BACKLOG,
    RELAY_LAG,
    RELAY_DELIVERED,
    RELAY_FAILURES,
    RELAY_CONSUMED,
    RELAY_DUPLICATES,
    RELAY_NATS_DUPLICATES,
    STOCK_LOW_ALERTS,
    HOT_GATE,
    REDIS_UP,
    REPLICA_UP,
    REPLICA_BEHIND,
    ORDER_BATCHES,
    ORDER_BATCH_ORDERS,
];

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// A gauge nobody set for this long leaves `/metrics`: what a register reported is only shown
/// while it is recent (with several instances, each shows what the register told it lately).
pub const GAUGE_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Installs the process-wide metrics recorder once (several test servers share a process).
pub fn handle() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            PrometheusBuilder::new()
                .idle_timeout(
                    metrics_util::MetricKindMask::GAUGE,
                    Some(GAUGE_IDLE_TIMEOUT),
                )
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Keeps what a register reported with its call (the `kassa-register-*` headers) as gauges
/// labelled with its id, and when Central last heard from it.
pub fn register_report(register_id: uuid::Uuid, headers: &axum::http::HeaderMap) {
    use kassa_domain::api::{
        REGISTER_CATALOG_AGE_HEADER, REGISTER_OLDEST_UNSYNCED_HEADER, REGISTER_QUEUE_HEADER,
    };
    let read = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let register = register_id.to_string();
    let reported = [
        (REGISTER_QUEUE, read(REGISTER_QUEUE_HEADER)),
        (REGISTER_OLDEST, read(REGISTER_OLDEST_UNSYNCED_HEADER)),
        (REGISTER_CATALOG_AGE, read(REGISTER_CATALOG_AGE_HEADER)),
    ];
    if reported.iter().all(|(_, v)| v.is_none()) {
        return;
    }
    for (name, value) in reported {
        if let Some(value) = value {
            ::metrics::gauge!(name, "register" => register.clone()).set(value);
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "Unix seconds fit an f64")]
    let now = crate::store::now_ms() as f64 / 1000.0;
    ::metrics::gauge!(REGISTER_LAST_SYNC, "register" => register).set(now);
}

/// Updates the gauges read at scrape time, then renders every metric.
pub fn render(state: &AppState) -> String {
    let pool = state.db.pool();
    let size = f64::from(pool.size());
    let idle = f64::from(u32::try_from(pool.num_idle()).unwrap_or(u32::MAX));
    ::metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(idle);
    ::metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set((size - idle).max(0.0));
    ::metrics::gauge!(DB_POOL_MAX).set(f64::from(state.config.db_connections_max));
    let lag_ms = state.search.lag_ms();
    // u64::MAX: the index never caught up yet; no figure is better than a wrong one.
    if lag_ms != u64::MAX {
        #[expect(clippy::cast_precision_loss, reason = "milliseconds of lag fit an f64")]
        ::metrics::gauge!(SEARCH_LAG).set(lag_ms as f64 / 1000.0);
    }
    handle().map(PrometheusHandle::render).unwrap_or_default()
}
