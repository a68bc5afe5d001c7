//! `kassa-processor-sim`: a Stripe-compatible payment processor for Kassa's tests and demo.
//!
//! It speaks the subset `kassa_payments::StripeProcessor` uses (PaymentIntents create, confirm,
//! capture and get; Refunds), keeps everything in memory, honours `Idempotency-Key` like Stripe,
//! and misbehaves on request: the payment-method token picks the card's behaviour and the
//! webhook delivery mode (see the crate's README).

mod api;
mod intents;
mod params;
mod webhooks;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use kassa_payments::WebhookEvent;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use api::router;
pub use intents::TIMEOUT_HOLD;
pub use webhooks::{DeliveryAttempt, WebhookMode, DELIVERY_ATTEMPTS_MAX};

use api::SavedResponse;
use intents::Store;

/// Bounds on what the simulator remembers.
const IDEMPOTENCY_KEYS_MAX: usize = 100_000;
const EVENTS_KEPT_MAX: usize = 10_000;

/// The simulator's settings.
#[derive(Clone)]
pub struct SimConfig {
    /// Where events are POSTed; `None` keeps them undelivered until one is set.
    pub webhook_url: Option<String>,
    /// The HMAC key webhooks are signed with (`whsec_…` as bytes).
    pub webhook_secret: Vec<u8>,
    /// The only API key accepted as `Authorization: Bearer …`.
    pub api_key: String,
    /// How long a `pm_sim_processing` intent stays `processing` before it succeeds, unless
    /// the request says `metadata[sim_delay_ms]`.
    pub processing_delay: Duration,
}

/// [`SimConfig::processing_delay`] by default.
pub const PROCESSING_DELAY_DEFAULT: Duration = Duration::from_millis(2000);

impl Default for SimConfig {
    /// The demo's settings: `sk_test_kassa` and `whsec_demo`, no webhook URL.
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_secret: b"whsec_demo".to_vec(),
            api_key: "sk_test_kassa".into(),
            processing_delay: PROCESSING_DELAY_DEFAULT,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &"[REDACTED]")
            .field("api_key", &"[REDACTED]")
            .field("processing_delay", &self.processing_delay)
            .finish()
    }
}

/// What one PaymentIntent holds in the simulator's books ([`SimState::intents_of_order`]):
/// read-only, for tests that check their own books against the processor's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentSummary {
    pub id: String,
    pub status: kassa_payments::IntentStatus,
    pub amount_minor: i64,
    /// Captured (0 until the card is approved and captured).
    pub received_minor: i64,
    /// Given back so far, over [`IntentSummary::refunds`] refunds.
    pub refunded_minor: i64,
    pub refunds: u32,
    /// `metadata[payment_id]`, the payment the intent was made for.
    pub payment_id: Option<String>,
    /// Unix seconds.
    pub created: i64,
}

impl IntentSummary {
    /// What the intent still holds: received minus refunded.
    pub fn held_minor(&self) -> i64 {
        self.received_minor - self.refunded_minor
    }
}

/// The simulator's shared state: cheap to clone, one per simulated processor.
#[derive(Clone, Debug)]
pub struct SimState {
    inner: Arc<Inner>,
}

struct Inner {
    config: SimConfig,
    webhook_url: RwLock<Option<String>>,
    books: Mutex<Books>,
    log: Mutex<EventLog>,
    http: reqwest::Client,
    shut_down: AtomicBool,
    processing_delay_ms: AtomicU64,
    /// Statuses the next POSTs answer with, doing nothing ([`SimState::fail_next_posts`]).
    faults: Mutex<VecDeque<u16>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Intents and saved idempotent answers, under one lock so an operation and its saved answer
/// are one atomic step.
#[derive(Debug, Default)]
pub(crate) struct Books {
    pub store: Store,
    saved: HashMap<String, SavedResponse>,
    /// Keys in the order they were saved, to forget the oldest past the bound.
    saved_order: VecDeque<String>,
}

impl Books {
    pub fn saved(&self, key: &str) -> Option<&SavedResponse> {
        self.saved.get(key)
    }

    pub fn save(&mut self, key: String, response: SavedResponse) {
        if self.saved_order.len() >= IDEMPOTENCY_KEYS_MAX {
            if let Some(oldest) = self.saved_order.pop_front() {
                self.saved.remove(&oldest);
            }
        }
        self.saved_order.push_back(key.clone());
        self.saved.insert(key, response);
    }
}

#[derive(Debug, Default)]
struct EventLog {
    emitted: Vec<serde_json::Value>,
    delivered: Vec<serde_json::Value>,
    attempts: Vec<DeliveryAttempt>,
}

fn push_bounded<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= EVENTS_KEPT_MAX {
        list.remove(0);
    }
    list.push(item);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not wedge the simulator; its data stays usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimState {
    pub fn new(config: SimConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .build()
            .context("building the webhook HTTP client")?;
        Ok(Self {
            inner: Arc::new(Inner {
                webhook_url: RwLock::new(config.webhook_url.clone()),
                books: Mutex::default(),
                log: Mutex::default(),
                http,
                shut_down: AtomicBool::new(false),
                processing_delay_ms: AtomicU64::new(
                    u64::try_from(config.processing_delay.as_millis()).unwrap_or(u64::MAX),
                ),
                faults: Mutex::default(),
                config,
            }),
        })
    }

    /// Changes where events go from now on (`None` stops delivery).
    pub fn set_webhook_url(&self, url: Option<String>) {
        *self
            .inner
            .webhook_url
            .write()
            .unwrap_or_else(PoisonError::into_inner) = url;
    }

    /// How long `pm_sim_processing` intents made from now on stay `processing` (unless their
    /// request says `metadata[sim_delay_ms]`).
    pub fn set_processing_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.inner.processing_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// The next POSTs (one per status, in order) fail with these statuses and do nothing:
    /// 500/502/503 as Stripe's `api_error`, 429 `rate_limit`, 409 `lock_timeout`. Nothing is
    /// saved under their idempotency keys, so a retry runs for real.
    pub fn fail_next_posts(&self, statuses: &[u16]) {
        lock(&self.inner.faults).extend(statuses.iter().copied());
    }

    pub(crate) fn take_fault(&self) -> Option<u16> {
        lock(&self.inner.faults).pop_front()
    }

    pub fn processing_delay(&self) -> Duration {
        Duration::from_millis(self.inner.processing_delay_ms.load(Ordering::SeqCst))
    }

    pub fn webhook_url(&self) -> Option<String> {
        self.inner
            .webhook_url
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Events acknowledged with a 2xx, in delivery order (a `twice` event appears twice).
    pub fn delivered_events(&self) -> Vec<WebhookEvent> {
        lock(&self.inner.log)
            .delivered
            .iter()
            .filter_map(|event| serde_json::from_value(event.clone()).ok())
            .collect()
    }

    /// Every event emitted, delivered or not, in the order they happened.
    pub fn emitted_events(&self) -> Vec<WebhookEvent> {
        lock(&self.inner.log)
            .emitted
            .iter()
            .filter_map(|event| serde_json::from_value(event.clone()).ok())
            .collect()
    }

    /// Every delivery attempt, successful or not.
    pub fn delivery_attempts(&self) -> Vec<DeliveryAttempt> {
        lock(&self.inner.log).attempts.clone()
    }

    /// The intents made for an order (`metadata[order_id]`), oldest first, with what each
    /// received, gave back and still holds. Unbounded by the event log's limit: read from the
    /// books themselves.
    pub fn intents_of_order(&self, order_id: &str) -> Vec<IntentSummary> {
        self.books().store.intents_of_order(order_id)
    }

    /// Stops webhook deliveries (pending retries give up).
    pub fn shut_down(&self) {
        self.inner.shut_down.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.inner.shut_down.load(Ordering::SeqCst)
    }

    pub(crate) fn api_key_matches(&self, presented: &str) -> bool {
        presented == self.inner.config.api_key
    }

    pub(crate) fn webhook_secret(&self) -> &[u8] {
        &self.inner.config.webhook_secret
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn books(&self) -> MutexGuard<'_, Books> {
        lock(&self.inner.books)
    }

    pub(crate) fn store(&self) -> impl std::ops::Deref<Target = Store> + '_ {
        MappedBooks(self.books())
    }

    pub(crate) fn record_emitted(&self, events: &[serde_json::Value]) {
        let mut log = lock(&self.inner.log);
        for event in events {
            push_bounded(&mut log.emitted, event.clone());
        }
    }

    pub(crate) fn record_delivered(&self, event: serde_json::Value) {
        push_bounded(&mut lock(&self.inner.log).delivered, event);
    }

    pub(crate) fn record_attempt(&self, attempt: DeliveryAttempt) {
        push_bounded(&mut lock(&self.inner.log).attempts, attempt);
    }
}

struct MappedBooks<'a>(MutexGuard<'a, Books>);

impl std::ops::Deref for MappedBooks<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.0.store
    }
}

/// Serves the simulator on `listener` until `shutdown` completes.
#[tracing::instrument(skip_all, fields(addr = ?listener.local_addr().ok()))]
pub async fn serve(
    listener: TcpListener,
    state: SimState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the processor simulator")
}

/// A simulator running in the background on `127.0.0.1:<free port>`; stops when dropped.
#[derive(Debug)]
pub struct SimHandle {
    /// `http://127.0.0.1:<port>`, the base URL for `StripeProcessor`.
    pub base_url: String,
    state: SimState,
    shutdown: Option<oneshot::Sender<()>>,
}

impl SimHandle {
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Changes where events go from now on (`None` stops delivery).
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.state.set_webhook_url(url);
    }

    /// How long `pm_sim_processing` intents made from now on stay `processing`.
    pub fn set_processing_delay(&self, delay: Duration) {
        self.state.set_processing_delay(delay);
    }

    /// See [`SimState::fail_next_posts`].
    pub fn fail_next_posts(&self, statuses: &[u16]) {
        self.state.fail_next_posts(statuses);
    }

    /// Events acknowledged with a 2xx, in delivery order.
    pub fn delivered_events(&self) -> Vec<WebhookEvent> {
        self.state.delivered_events()
    }

    /// Every event emitted, delivered or not.
    pub fn emitted_events(&self) -> Vec<WebhookEvent> {
        self.state.emitted_events()
    }

    /// Every delivery attempt, successful or not.
    pub fn delivery_attempts(&self) -> Vec<DeliveryAttempt> {
        self.state.delivery_attempts()
    }

    /// See [`SimState::intents_of_order`].
    pub fn intents_of_order(&self, order_id: &str) -> Vec<IntentSummary> {
        self.state.intents_of_order(order_id)
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.state.shut_down();
        if let Some(shutdown) = self.shutdown.take() {
            // The server may already be gone; nothing to do then.
            let _ = shutdown.send(());
        }
    }
}

/// Starts a simulator on `127.0.0.1:0` in the background (needs a Tokio runtime).
#[tracing::instrument(skip_all)]
pub async fn spawn(config: SimConfig) -> anyhow::Result<SimHandle> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the processor simulator")?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let state = SimState::new(config)?;
    let (tx, rx) = oneshot::channel::<()>();
    let served = state.clone();
    tokio::spawn(async move {
        let shutdown = async {
            // A dropped sender means the handle is gone: stop as well.
            let _ = rx.await;
        };
        if let Err(e) = serve(listener, served, shutdown).await {
            tracing::error!(error = %e, "processor simulator stopped");
        }
    });
    Ok(SimHandle {
        base_url: format!("http://{addr}"),
        state,
        shutdown: Some(tx),
    })
}
