//! Typed helpers: a simulator with a client pointed at it, intent requests, and a webhook
//! receiver that checks signatures the way Central does.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use kassa_payments::webhook::{DEFAULT_TOLERANCE_S, SIGNATURE_HEADER};
use kassa_payments::{
    verify_signature, CaptureMethod, CreateIntent, SecretString, StripeProcessor, WebhookEvent,
};
use kassa_processor_sim::{SimConfig, SimHandle};

pub const API_KEY: &str = "sk_test_helpers";
pub const WEBHOOK_SECRET: &[u8] = b"whsec_helpers";

pub struct TestSim {
    pub sim: SimHandle,
    pub processor: StripeProcessor,
}

impl TestSim {
    pub async fn start() -> Self {
        let sim = kassa_processor_sim::spawn(SimConfig {
            webhook_url: None,
            webhook_secret: WEBHOOK_SECRET.to_vec(),
            api_key: API_KEY.into(),
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
        let processor = client(&sim.base_url, API_KEY, Duration::from_secs(5));
        Self { sim, processor }
    }

    /// A client for the same simulator with another timeout or key.
    pub fn client(&self, api_key: &str, timeout: Duration) -> StripeProcessor {
        client(&self.sim.base_url, api_key, timeout)
    }
}

fn client(base_url: &str, api_key: &str, timeout: Duration) -> StripeProcessor {
    StripeProcessor::new(base_url, SecretString::new(api_key), timeout).expect("client builds")
}

/// A 12.50 EUR intent for order `order_id`, confirmed at once, captured automatically.
pub fn sale(payment_method: &str, order_id: &str) -> CreateIntent {
    CreateIntent {
        amount_minor: 1250,
        currency: "eur".into(),
        order_id: order_id.into(),
        payment_id: format!("pay-{order_id}"),
        payment_method: payment_method.into(),
        idempotency_key: format!("key-{order_id}"),
        capture_method: CaptureMethod::Automatic,
        confirm: true,
    }
}

/// A webhook endpoint on a free port that verifies each delivery's signature and records the
/// events it accepts, like Central's `/v1/webhooks/payments`.
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
}

struct ReceiverState {
    secret: Vec<u8>,
    events: Mutex<Vec<WebhookEvent>>,
    refused: AtomicU32,
    fail_next: AtomicU32,
}

impl Receiver {
    pub async fn start(secret: &[u8]) -> Self {
        let state = Arc::new(ReceiverState {
            secret: secret.to_vec(),
            events: Mutex::default(),
            refused: AtomicU32::new(0),
            fail_next: AtomicU32::new(0),
        });
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// Answers 500 to the next `n` correctly signed deliveries.
    pub fn fail_next(&self, n: u32) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    pub fn events(&self) -> Vec<WebhookEvent> {
        self.state.events.lock().expect("lock").clone()
    }

    pub fn event_types(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.r#type).collect()
    }

    /// Deliveries refused for a bad signature.
    pub fn refused(&self) -> u32 {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Waits until `n` events were accepted; returns them.
    pub async fn wait_for_events(&self, n: usize) -> Vec<WebhookEvent> {
        wait_until(Duration::from_secs(5), || self.events().len() >= n).await;
        self.events()
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    if verify_signature(header, &body, &state.secret, now, DEFAULT_TOLERANCE_S).is_err() {
        state.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::BAD_REQUEST;
    }
    let failing = state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let event: WebhookEvent = serde_json::from_slice(&body).expect("a webhook event");
    state.events.lock().expect("lock").push(event);
    StatusCode::OK
}

/// Polls `done` every 20 ms until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}
