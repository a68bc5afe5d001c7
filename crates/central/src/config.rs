//! Central's configuration: environment variables with an embedded default for each.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

/// A secret whose `Debug` never prints it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything `serve` needs. Every queue, size and rate has a limit here.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: String,
    pub log_json: bool,
    /// Signing key for access tokens; when unset, one is generated once and kept in the database.
    pub jwt_secret: Option<Secret>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long a positive session check is trusted before asking the database again.
    pub session_cache_ttl: Duration,
    pub login_per_username_per_minute: u32,
    pub login_per_ip_per_minute: u32,
    pub user_requests_per_second: u32,
    pub user_requests_burst: u32,
    /// Anonymous browsing (products, search, recommendations without a token), per client
    /// address.
    pub anonymous_requests_per_second: u32,
    pub anonymous_requests_burst: u32,
    /// Load balancers and proxies whose `X-Forwarded-For` is believed (`KASSA_TRUSTED_PROXIES`:
    /// addresses or CIDR blocks, comma-separated). A request from one of them is the client's
    /// named by the header (the right-most address that is not a trusted proxy); from anyone
    /// else the header is ignored. Empty (the default): the peer address, always.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub body_bytes_max: usize,
    pub request_timeout: Duration,
    pub feed_limit_max: i64,
    pub db_connections_max: u32,
    /// How long an order's reservation holds its stock before it is released and the order
    /// cancelled (unpaid online orders).
    pub reservation_ttl: Duration,
    /// An idempotency key still "in flight" after this long belongs to a request that died.
    pub idempotency_lease: Duration,
    pub sweep_interval: Duration,
    /// How long a guest cart lives after its last write.
    pub guest_cart_ttl: Duration,
    /// How long a user's cart lives after its last write.
    pub user_cart_ttl: Duration,
    /// The currency carts are priced in; a product priced in another cannot be added.
    pub shop_currency: kassa_domain::Currency,
    /// How often the recommendation batch recomputes every co-purchase score.
    pub recommend_interval: Duration,
    /// How often new paid orders are applied to the recommendations between batches.
    pub recommend_tick: Duration,
    /// How many partners each product's stored list keeps.
    pub recommend_top_k: usize,
    /// A pair counts only when at least this many paid orders hold both products.
    pub recommend_min_support: u64,
    /// The card processor's API (Stripe or `kassa-processor-sim`); without it card payments
    /// answer 503 `card_payments_unavailable` and cash still works.
    pub processor_url: Option<String>,
    pub processor_secret: Secret,
    /// Every processor call gives up after this long (its outcome is then unknown).
    pub processor_timeout: Duration,
    /// How often the reconciler settles pending card payments, refunds and orphans against the
    /// processor (it also runs once at start-up).
    pub reconcile_interval: Duration,
    /// How old this instance's copy of read-only mode may be before a write reads it again:
    /// every instance obeys a switch within this.
    pub read_only_refresh: Duration,
    /// Requests this instance takes in flight at once; past that it sheds (`503 overloaded`),
    /// browsing first.
    pub inflight_max: usize,
    /// The share of `inflight_max` (percent) only checkout, payments, webhooks, sync and
    /// signing in may use.
    pub inflight_reserved_percent: u8,
    /// A pending payment or refund is the reconciler's once untouched this long (younger ones
    /// belong to a request still running).
    pub reconcile_after: Duration,
    /// A card payment whose first call never got an answer, and whose replay still gets none
    /// after this long, is recorded as failed (a late success is then refunded or attached).
    pub card_pending_give_up: Duration,
    /// The secret processor webhooks are signed with.
    pub webhook_secret: Option<Secret>,
    /// Webhook signatures older (or newer) than this are refused.
    pub webhook_tolerance_s: i64,
    /// The search index's directory; `None` keeps it in memory (tests).
    pub search_dir: Option<std::path::PathBuf>,
    /// How often the search index catches up with the database (its freshness bound).
    pub search_refresh: Duration,
    /// How long product and search answers stay in an instance's memory at most (the change
    /// feed replaces changed products sooner; search answers are per index generation).
    pub cache_ttl: Duration,
    /// NATS for the event relay; without it events are delivered in-process only.
    pub nats_url: Option<Secret>,
    /// A streaming replica of the primary for reads (catalog, stock and order lists).
    pub database_read_url: Option<Secret>,
    /// The longest a read waits for the replica to replay its client's write before it reads
    /// the primary instead.
    pub replica_wait: Duration,
    /// SIGTERM: how long `/ready` answers 503 while requests are still served, so that a load
    /// balancer's health checks take the instance out before it stops accepting connections.
    pub shutdown_drain: Duration,
    /// SIGTERM: how long in-flight requests may take to finish once the instance stops
    /// accepting; after it the process exits anyway.
    pub shutdown_grace: Duration,
    /// Redis for what every instance shares (rate limits, session revocations); without it
    /// each instance keeps its own (`crate::shared`).
    pub redis_url: Option<Secret>,
    /// The JetStream stream events are published to, and its subject prefix.
    pub nats_stream: String,
    pub nats_subject_prefix: String,
    /// Copies of each message (1 on a single server, 3 on a production cluster).
    pub nats_replicas: usize,
    /// Re-publishes of an event within this window are dropped by the stream.
    pub nats_duplicate_window: Duration,
    pub nats_ack_timeout: Duration,
    pub nats_publish_attempts_max: u32,
    /// Events per relay step (capped at `events::BATCH_EVENTS_LIMIT`).
    pub relay_batch_events_max: usize,
    /// The relay's pause when the outbox is drained.
    pub relay_interval: Duration,
    /// How long one instance's relay lease lasts without renewal.
    pub relay_lease_ttl: Duration,
    /// The longest pause between retries of a failing relay step.
    pub relay_backoff_max: Duration,
    /// With Redis: how often the hot-SKU gate's counters are set again from the database's
    /// stock (`crate::stock::hot_gate`).
    pub hot_gate_reconcile_interval: Duration,
    /// Redis down: orders reserving one SKU at one location at the same time, per instance.
    pub hot_gate_db_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://kassa-central.db".into(),
            log_json: false,
            jwt_secret: None,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            session_cache_ttl: Duration::from_secs(2),
            login_per_username_per_minute: 10,
            login_per_ip_per_minute: 60,
            user_requests_per_second: 50,
            user_requests_burst: 200,
            anonymous_requests_per_second: 20,
            anonymous_requests_burst: 60,
            trusted_proxies: Vec::new(),
            body_bytes_max: 256 * 1024,
            request_timeout: Duration::from_secs(15),
            feed_limit_max: 500,
            db_connections_max: 16,
            reservation_ttl: Duration::from_secs(15 * 60),
            idempotency_lease: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(1),
            guest_cart_ttl: Duration::from_secs(7 * 24 * 3600),
            user_cart_ttl: Duration::from_secs(30 * 24 * 3600),
            shop_currency: kassa_domain::Currency::EUR,
            recommend_interval: Duration::from_secs(3600),
            recommend_tick: Duration::from_secs(2),
            recommend_top_k: 10,
            recommend_min_support: 2,
            processor_url: None,
            processor_secret: Secret::new("sk_test_kassa"),
            processor_timeout: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(30),
            read_only_refresh: Duration::from_millis(500),
            inflight_max: 512,
            inflight_reserved_percent: 25,
            reconcile_after: Duration::from_secs(30),
            card_pending_give_up: Duration::from_secs(24 * 3600),
            webhook_secret: None,
            webhook_tolerance_s: 300,
            search_dir: None,
            search_refresh: Duration::from_millis(500),
            cache_ttl: Duration::from_secs(60),
            nats_url: None,
            redis_url: None,
            database_read_url: None,
            replica_wait: Duration::from_millis(500),
            shutdown_drain: Duration::ZERO,
            shutdown_grace: Duration::from_secs(10),
            nats_stream: "KASSA_EVENTS".into(),
            nats_subject_prefix: "kassa.events".into(),
            nats_replicas: 1,
            nats_duplicate_window: Duration::from_secs(120),
            nats_ack_timeout: Duration::from_secs(5),
            nats_publish_attempts_max: 3,
            relay_batch_events_max: 256,
            relay_interval: Duration::from_millis(200),
            relay_lease_ttl: Duration::from_secs(10),
            relay_backoff_max: Duration::from_secs(30),
            hot_gate_reconcile_interval: Duration::from_secs(1),
            hot_gate_db_concurrency: 8,
        }
    }
}

fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) => raw
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={raw:?}: {e}")),
        Err(_) => Ok(default),
    }
}

/// `10.0.0.0/8, 127.0.0.1, ::1`: addresses (one host each) or CIDR blocks, comma-separated.
pub fn parse_networks(raw: &str) -> Result<Vec<ipnet::IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{item:?} is neither an address nor a CIDR block"))
        })
        .collect()
}

impl Config {
    /// Reads `KASSA_*` variables over the defaults.
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::default();
        let database_url = std::env::var("KASSA_DATABASE_URL").unwrap_or(d.database_url.clone());
        Ok(Self {
            bind: env_parse("KASSA_BIND", d.bind).context("KASSA_BIND")?,
            database_url: database_url.clone(),
            log_json: std::env::var("KASSA_LOG_FORMAT").is_ok_and(|v| v == "json"),
            jwt_secret: std::env::var("KASSA_JWT_SECRET").ok().map(Secret::new),
            access_token_ttl: Duration::from_secs(env_parse("KASSA_ACCESS_TOKEN_TTL_S", 900)?),
            refresh_token_ttl: Duration::from_secs(env_parse(
                "KASSA_REFRESH_TOKEN_TTL_S",
                d.refresh_token_ttl.as_secs(),
            )?),
            session_cache_ttl: Duration::from_millis(env_parse(
                "KASSA_SESSION_CACHE_TTL_MS",
                2000,
            )?),
            login_per_username_per_minute: env_parse(
                "KASSA_LOGIN_PER_USERNAME_PER_MINUTE",
                d.login_per_username_per_minute,
            )?,
            login_per_ip_per_minute: env_parse(
                "KASSA_LOGIN_PER_IP_PER_MINUTE",
                d.login_per_ip_per_minute,
            )?,
            user_requests_per_second: env_parse(
                "KASSA_USER_REQUESTS_PER_SECOND",
                d.user_requests_per_second,
            )?,
            user_requests_burst: env_parse("KASSA_USER_REQUESTS_BURST", d.user_requests_burst)?,
            anonymous_requests_per_second: env_parse(
                "KASSA_ANONYMOUS_REQUESTS_PER_SECOND",
                d.anonymous_requests_per_second,
            )?,
            anonymous_requests_burst: env_parse(
                "KASSA_ANONYMOUS_REQUESTS_BURST",
                d.anonymous_requests_burst,
            )?,
            trusted_proxies: match std::env::var("KASSA_TRUSTED_PROXIES") {
                Ok(raw) => parse_networks(&raw)
                    .map_err(|e| anyhow::anyhow!("KASSA_TRUSTED_PROXIES={raw:?}: {e}"))?,
                Err(_) => d.trusted_proxies,
            },
            body_bytes_max: env_parse("KASSA_BODY_BYTES_MAX", d.body_bytes_max)?,
            request_timeout: Duration::from_millis(env_parse("KASSA_REQUEST_TIMEOUT_MS", 15_000)?),
            feed_limit_max: d.feed_limit_max,
            db_connections_max: env_parse("KASSA_DB_CONNECTIONS_MAX", d.db_connections_max)?,
            reservation_ttl: Duration::from_secs(env_parse("KASSA_RESERVATION_TTL_S", 900)?),
            idempotency_lease: Duration::from_secs(env_parse("KASSA_IDEMPOTENCY_LEASE_S", 60)?),
            sweep_interval: Duration::from_millis(env_parse("KASSA_SWEEP_INTERVAL_MS", 1000)?),
            guest_cart_ttl: Duration::from_secs(env_parse(
                "KASSA_GUEST_CART_TTL_S",
                d.guest_cart_ttl.as_secs(),
            )?),
            user_cart_ttl: Duration::from_secs(env_parse(
                "KASSA_USER_CART_TTL_S",
                d.user_cart_ttl.as_secs(),
            )?),
            shop_currency: env_parse("KASSA_CURRENCY", d.shop_currency)?,
            recommend_interval: Duration::from_secs(env_parse(
                "KASSA_RECOMMEND_INTERVAL_S",
                d.recommend_interval.as_secs(),
            )?),
            recommend_tick: Duration::from_millis(env_parse("KASSA_RECOMMEND_TICK_MS", 2000)?),
            recommend_top_k: env_parse("KASSA_RECOMMEND_TOP_K", d.recommend_top_k)?,
            recommend_min_support: env_parse(
                "KASSA_RECOMMEND_MIN_SUPPORT",
                d.recommend_min_support,
            )?,
            processor_url: std::env::var("KASSA_PROCESSOR_URL").ok(),
            processor_secret: std::env::var("KASSA_PROCESSOR_SECRET")
                .map_or(d.processor_secret, Secret::new),
            processor_timeout: Duration::from_millis(env_parse(
                "KASSA_PROCESSOR_TIMEOUT_MS",
                10_000,
            )?),
            reconcile_interval: Duration::from_millis(env_parse(
                "KASSA_RECONCILE_INTERVAL_MS",
                30_000,
            )?),
            reconcile_after: Duration::from_millis(env_parse("KASSA_RECONCILE_AFTER_MS", 30_000)?),
            read_only_refresh: Duration::from_millis(env_parse("KASSA_READ_ONLY_REFRESH_MS", 500)?),
            inflight_max: env_parse("KASSA_INFLIGHT_MAX", d.inflight_max)?,
            inflight_reserved_percent: env_parse(
                "KASSA_INFLIGHT_RESERVED_PERCENT",
                d.inflight_reserved_percent,
            )?,
            card_pending_give_up: Duration::from_secs(env_parse(
                "KASSA_CARD_PENDING_GIVE_UP_S",
                d.card_pending_give_up.as_secs(),
            )?),
            webhook_secret: std::env::var("KASSA_WEBHOOK_SECRET").ok().map(Secret::new),
            webhook_tolerance_s: env_parse("KASSA_WEBHOOK_TOLERANCE_S", d.webhook_tolerance_s)?,
            search_dir: Some(std::env::var("KASSA_SEARCH_DIR").map_or_else(
                |_| crate::search::default_index_dir(&database_url),
                std::path::PathBuf::from,
            )),
            search_refresh: Duration::from_millis(env_parse("KASSA_SEARCH_REFRESH_MS", 500)?),
            cache_ttl: Duration::from_millis(env_parse("KASSA_CACHE_TTL_MS", 60_000)?),
            nats_url: std::env::var("KASSA_NATS_URL").ok().map(Secret::new),
            redis_url: std::env::var("KASSA_REDIS_URL").ok().map(Secret::new),
            database_read_url: std::env::var("KASSA_DATABASE_READ_URL")
                .ok()
                .map(Secret::new),
            replica_wait: Duration::from_millis(env_parse("KASSA_REPLICA_WAIT_MS", 500)?),
            shutdown_drain: Duration::from_millis(env_parse("KASSA_SHUTDOWN_DRAIN_MS", 0)?),
            shutdown_grace: Duration::from_millis(env_parse("KASSA_SHUTDOWN_GRACE_MS", 10_000)?),
            nats_stream: std::env::var("KASSA_NATS_STREAM").unwrap_or(d.nats_stream),
            nats_subject_prefix: std::env::var("KASSA_NATS_SUBJECT_PREFIX")
                .unwrap_or(d.nats_subject_prefix),
            nats_replicas: env_parse("KASSA_NATS_REPLICAS", d.nats_replicas)?,
            nats_duplicate_window: Duration::from_secs(env_parse(
                "KASSA_NATS_DUPLICATE_WINDOW_S",
                d.nats_duplicate_window.as_secs(),
            )?),
            nats_ack_timeout: Duration::from_millis(env_parse("KASSA_NATS_ACK_TIMEOUT_MS", 5000)?),
            nats_publish_attempts_max: env_parse(
                "KASSA_NATS_PUBLISH_ATTEMPTS_MAX",
                d.nats_publish_attempts_max,
            )?,
            relay_batch_events_max: env_parse(
                "KASSA_RELAY_BATCH_EVENTS_MAX",
                d.relay_batch_events_max,
            )?,
            relay_interval: Duration::from_millis(env_parse("KASSA_RELAY_INTERVAL_MS", 200)?),
            relay_lease_ttl: Duration::from_millis(env_parse("KASSA_RELAY_LEASE_TTL_MS", 10_000)?),
            relay_backoff_max: Duration::from_millis(env_parse(
                "KASSA_RELAY_BACKOFF_MAX_MS",
                30_000,
            )?),
            hot_gate_reconcile_interval: Duration::from_millis(env_parse(
                "KASSA_HOT_GATE_RECONCILE_MS",
                1000,
            )?),
            hot_gate_db_concurrency: env_parse(
                "KASSA_HOT_GATE_DB_CONCURRENCY",
                d.hot_gate_db_concurrency,
            )?,
        })
    }
}
