//! Group commit for order creation. Each `POST /v1/orders` queues its order; a writer takes the
//! orders waiting (whatever arrived while the previous batch ran, at most [`BATCH_ORDERS_MAX`];
//! it never sleeps to wait for more, so an idle Central answers one order as fast as before),
//! creates each in its own savepoint of one transaction, commits once, and only then answers
//! every order of the batch.
//!
//! - All-or-nothing per order: an order that fails (insufficient stock, an idempotency key
//!   already used, a bad line) rolls back to its savepoint and gets its own answer; the others
//!   stand.
//! - Nothing is reported created that is not durable: answers wait for the commit; a failed
//!   commit (or a transaction that broke half-way) answers every order of the batch 503
//!   `unavailable`, and none of them exists: the client retries with the same Idempotency-Key.
//! - One statement fewer per order for the key: the Idempotency-Key is claimed as the response
//!   is saved, at the end of the order's work ([`store::idempotency::save_in`]). A key recorded
//!   before, or by an earlier order of the same batch, makes the order roll back to its
//!   savepoint and answer as recorded (replay, 422 for another body, 409 while in flight). On
//!   PostgreSQL a concurrent save of the same key by another transaction waits for it, then
//!   replays.
//! - One writer per database: SQLite has one writer anyway, and on PostgreSQL a hot SKU's row
//!   lock would serialise several writers' batches, each holding it until its commit.
//!
//! Tracing: each order's work runs in its request's span, so its statements and events stay in
//! the request's trace; the batch's own statements (`BEGIN`, savepoints, `COMMIT`) run in an
//! `orders.group_commit` span of its own that links to every order's span.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use kassa_domain::api::CreateOrder;
use tokio::sync::{mpsc, oneshot, Mutex, RwLock};
use tracing::Instrument as _;

use crate::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::idempotency;
use crate::state::AppState;
use crate::store::events::NewEvent;
use crate::store::{self, now_ms, Tx};
use crate::telemetry::metrics::{ORDER_BATCHES, ORDER_BATCH_ORDERS};

/// Orders per transaction at most.
pub const BATCH_ORDERS_MAX: usize = 32;
/// Orders waiting for a writer at most; past it, 503 `overloaded` at once.
pub const QUEUE_ORDERS_MAX: usize = 1024;
/// `Retry-After` of an order refused because the queue is full.
const RETRY_AFTER_S: u64 = 1;

/// An order as asked, checked and past the hot-SKU gate, waiting to be created.
#[derive(Debug)]
pub struct Asked {
    pub caller: Caller,
    /// The Idempotency-Key's scope ([`crate::stock::scope`]) and the key.
    pub scope: String,
    pub key: String,
    /// [`idempotency::fingerprint`] of the request.
    pub request_hash: String,
    pub req: CreateOrder,
    /// The location's id when the hot-SKU gate looked it up; else the batch does.
    pub location_id: Option<String>,
}

/// What the orders of one batch read once: prices by SKU, location ids by code.
#[derive(Debug, Default)]
struct Reads {
    prices: super::Prices,
    locations: std::collections::HashMap<String, Option<String>>,
}

impl Reads {
    /// The id of the location the order is for, or 422 `unknown_location`.
    async fn location_id(&mut self, tx: &mut Tx, asked: &Asked) -> ApiResult<String> {
        if let Some(id) = &asked.location_id {
            return Ok(id.clone());
        }
        let code = asked.req.location.as_str();
        let known = match self.locations.get(code) {
            Some(known) => known.clone(),
            None => {
                let read = store::locations::find_by_code_in(tx, code)
                    .await?
                    .map(|l| l.id.to_string());
                self.locations.insert(code.to_owned(), read.clone());
                read
            }
        };
        known.ok_or_else(|| ApiError::Invalid {
            code: "unknown_location",
            message: format!("no location with code {code}"),
            details: serde_json::json!({ "location": code }),
        })
    }
}

/// The answer to one order: its response and whether it is a replay.
type Answer = ApiResult<(Response, bool)>;

#[derive(Debug)]
struct Job {
    state: AppState,
    asked: Asked,
    /// The request's span: the order's work runs in it.
    span: tracing::Span,
    answer: oneshot::Sender<Answer>,
}

/// The queue of orders waiting to be created, and its writer (started with the first order).
#[derive(Debug)]
pub struct GroupCommit {
    queue: mpsc::Sender<Job>,
    waiting: Arc<Mutex<mpsc::Receiver<Job>>>,
    writer: std::sync::Once,
    /// Orders a writer has taken into a batch since start.
    taken: Arc<AtomicU64>,
    /// Read by the writer between taking a batch's first order and the rest: [`GroupCommit::hold`].
    held: Arc<RwLock<()>>,
}

/// While it lives, the writer waits after taking a batch's first order; see [`GroupCommit::hold`].
#[derive(Debug)]
pub struct Held {
    _write: tokio::sync::OwnedRwLockWriteGuard<()>,
}

impl Default for GroupCommit {
    fn default() -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE_ORDERS_MAX);
        Self {
            queue,
            waiting: Arc::new(Mutex::new(waiting)),
            writer: std::sync::Once::new(),
            taken: Arc::default(),
            held: Arc::default(),
        }
    }
}

impl GroupCommit {
    /// Orders queued and not yet taken by a writer.
    pub fn waiting(&self) -> usize {
        QUEUE_ORDERS_MAX - self.queue.capacity()
    }

    /// Orders a writer has taken into a batch since start.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Holds the writer until the guard is dropped: it takes the next order as a batch's first
    /// and waits; the orders sent meanwhile queue, and make that batch with it when it goes.
    /// For tests that need a batch of known orders.
    pub async fn hold(&self) -> Held {
        Held {
            _write: self.held.clone().write_owned().await,
        }
    }

    /// Creates the order with the next group commit; answers once that commit is over.
    pub async fn create(&self, state: &AppState, asked: Asked) -> Answer {
        self.writer.call_once(|| {
            tokio::spawn(write(
                self.waiting.clone(),
                self.taken.clone(),
                self.held.clone(),
            ));
        });
        let (answer, answered) = oneshot::channel();
        let job = Job {
            state: state.clone(),
            asked,
            span: tracing::Span::current(),
            answer,
        };
        self.queue.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ApiError::Overloaded {
                retry_after_s: RETRY_AFTER_S,
            },
            mpsc::error::TrySendError::Closed(_) => ApiError::Unavailable,
        })?;
        // The writer went away without answering (the runtime is shutting down).
        answered.await.unwrap_or(Err(ApiError::Unavailable))
    }
}

/// The writer: a batch at a time, until Central's state is dropped.
async fn write(
    waiting: Arc<Mutex<mpsc::Receiver<Job>>>,
    taken: Arc<AtomicU64>,
    held: Arc<RwLock<()>>,
) {
    loop {
        let mut queue = waiting.lock().await;
        let Some(first) = queue.recv().await else {
            return;
        };
        taken.fetch_add(1, Ordering::Relaxed);
        drop(held.read().await);
        let span = tracing::info_span!(parent: None, "orders.group_commit", orders = tracing::field::Empty);
        let filled = fill(first, &mut queue, &taken, &span)
            .instrument(span.clone())
            .await;
        drop(queue);
        if let Some((tx, done)) = filled {
            span.record("orders", done.len());
            commit(tx, done).instrument(span).await;
        }
    }
}

/// Begins the batch's transaction and creates `first` and whatever waits after it in it.
/// `None` when the batch failed as a whole (every order has its answer then).
async fn fill(
    first: Job,
    queue: &mut mpsc::Receiver<Job>,
    taken: &AtomicU64,
    span: &tracing::Span,
) -> Option<(Tx, Vec<(Job, Answer)>)> {
    let state = first.state.clone();
    let began = async {
        let tx = state.db.begin_write().await?;
        let limit = crate::approvals::discount_limit_percent(&state)
            .await
            .map_err(|e| anyhow::anyhow!("reading the discount limit: {e}"))?;
        anyhow::Ok((tx, limit))
    }
    .await;
    let (mut tx, discount_limit) = match began {
        Ok(began) => began,
        Err(e) => {
            fail(vec![first], &e);
            return None;
        }
    };
    let mut reads = Reads::default();
    // The batch is what waits now; what arrives while it runs is the next batch's.
    let mut jobs = vec![first];
    while jobs.len() < BATCH_ORDERS_MAX {
        let Ok(job) = queue.try_recv() else {
            break;
        };
        taken.fetch_add(1, Ordering::Relaxed);
        jobs.push(job);
    }
    if let Err(e) = lock_stock(&state, &mut tx, &jobs, &mut reads).await {
        if let Err(rollback) = tx.rollback().await {
            tracing::warn!(error = %rollback, "rolling back a broken batch");
        }
        fail(jobs, &e);
        return None;
    }
    // The created orders' events, written in one insert before the commit.
    let mut events: Vec<NewEvent> = Vec::new();
    let mut done: Vec<(Job, Answer)> = Vec::new();
    let mut jobs = jobs.into_iter();
    while let Some(job) = jobs.next() {
        // A request gone before its turn (cut by the timeout, or its client left) is told
        // nothing, so nothing is done, as when a request's own transaction was dropped; a
        // retry with its key does the order.
        if !job.answer.is_closed() {
            span.follows_from(job.span.id());
            let outcome = item(&mut tx, &job, discount_limit, &mut reads, &mut events)
                .instrument(job.span.clone())
                .await;
            match outcome {
                Ok(answer) => done.push((job, answer)),
                Err(e) => {
                    if let Err(rollback) = tx.rollback().await {
                        tracing::warn!(error = %rollback, "rolling back a broken batch");
                    }
                    let mut failed: Vec<Job> = done.into_iter().map(|(job, _)| job).collect();
                    failed.push(job);
                    failed.extend(jobs);
                    fail(failed, &e);
                    return None;
                }
            }
        }
    }
    if let Err(e) = store::events::record_all(&mut tx, &events).await {
        if let Err(rollback) = tx.rollback().await {
            tracing::warn!(error = %rollback, "rolling back a broken batch");
        }
        fail(done.into_iter().map(|(job, _)| job).collect(), &e);
        return None;
    }
    Some((tx, done))
}

/// Locks the stock rows every order of the batch may update, before any of them runs, in the
/// one order every writer keeps (by location id, then SKU, as an offline batch does; PostgreSQL
/// `FOR UPDATE`, nothing on SQLite, whose writer is alone): two instances' batches that sell the
/// same SKUs in different orders would otherwise deadlock. A location that is not known is the
/// order's own error, answered when it runs.
async fn lock_stock(
    state: &AppState,
    tx: &mut Tx,
    jobs: &[Job],
    reads: &mut Reads,
) -> anyhow::Result<()> {
    use std::collections::{BTreeMap, BTreeSet};
    if state.db.for_update().is_empty() {
        return Ok(());
    }
    let mut wanted: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for job in jobs {
        let Ok(location_id) = reads.location_id(tx, &job.asked).await else {
            continue;
        };
        let skus = wanted.entry(location_id).or_default();
        skus.extend(job.asked.req.lines.iter().map(|l| l.sku.as_str()));
    }
    for (location_id, skus) in wanted {
        let skus: Vec<&str> = skus.into_iter().collect();
        store::stock::lock_rows(&state.db, tx, &location_id, &skus).await?;
    }
    Ok(())
}

/// Commits the batch, then answers each order; a failed commit answers every one 503.
async fn commit(tx: Tx, done: Vec<(Job, Answer)>) {
    match tx.commit().await {
        Ok(()) => {
            metrics::counter!(ORDER_BATCHES, "outcome" => "committed").increment(1);
            metrics::counter!(ORDER_BATCH_ORDERS).increment(done.len() as u64);
            for (job, answer) in done {
                // The client may have gone; its order stands (a retry replays it).
                let _ = job.answer.send(answer);
            }
        }
        Err(e) => fail(
            done.into_iter().map(|(job, _)| job).collect(),
            &anyhow::Error::from(e),
        ),
    }
}

/// Answers every order of a failed batch 503: none of them was created.
fn fail(jobs: Vec<Job>, error: &anyhow::Error) {
    metrics::counter!(ORDER_BATCHES, "outcome" => "failed").increment(1);
    tracing::error!(error = ?error, orders = jobs.len(), "an order batch failed: none of its orders was created");
    for job in jobs {
        let _ = job.answer.send(Err(ApiError::Unavailable));
    }
}

/// Creates one order in its own savepoint of `tx` and saves its answer under its key. `Err`
/// only when `tx` can no longer be used (the batch fails as a whole).
async fn item(
    tx: &mut Tx,
    job: &Job,
    discount_limit: u32,
    reads: &mut Reads,
    events: &mut Vec<NewEvent>,
) -> anyhow::Result<Answer> {
    let asked = &job.asked;
    let mark = tx.begin_item().await?;
    let work = async {
        let location_id = reads.location_id(tx, asked).await?;
        let (order, events) = super::create_in(
            &job.state,
            tx,
            asked,
            &location_id,
            discount_limit,
            &mut reads.prices,
        )
        .await?;
        let body = serde_json::to_string(&order).map_err(|e| ApiError::Internal(e.into()))?;
        Ok::<_, ApiError>((body, events))
    }
    .await;
    if job.answer.is_closed() {
        // Its request was cut while the order waited (for a lock): it was answered 503, so
        // the order goes, as when a request's own transaction was dropped.
        tx.rollback_item(mark).await?;
        return Ok(Err(ApiError::Unavailable));
    }
    let expired_before = now_ms() - idempotency::RETENTION_MS;
    let err = match work {
        Ok((body, order_events)) => {
            let response = (StatusCode::CREATED.as_u16(), body.as_str());
            if save(tx, asked, response, expired_before).await? {
                tx.release_item(mark).await?;
                events.extend(order_events);
                return Ok(Ok((
                    idempotency::json_response(StatusCode::CREATED, body),
                    false,
                )));
            }
            // The key was recorded first: this order's work goes, the record answers.
            tx.rollback_item(mark).await?;
            None
        }
        Err(err) => {
            tx.rollback_item(mark).await?;
            if idempotency::is_recorded(&err) {
                let (status, body) = err.render();
                let text = serde_json::to_string(&body)?;
                if save(tx, asked, (status.as_u16(), &text), expired_before).await? {
                    return Ok(Err(err));
                }
            }
            Some(err)
        }
    };
    let recorded =
        match idempotency::recorded_in(tx, &asked.scope, &asked.key, &asked.request_hash).await {
            // A failed statement outside the order's savepoint: on PostgreSQL the transaction
            // is aborted now, and its COMMIT would roll back without an error: the batch fails.
            Err(ApiError::Internal(e)) => return Err(e),
            recorded => recorded,
        };
    Ok(match (recorded, err) {
        (Ok(Some(replay)), _) => Ok((replay, true)),
        (Ok(None), Some(err)) | (Err(err), _) => Err(err),
        (Ok(None), None) => Err(ApiError::Internal(anyhow::anyhow!(
            "idempotency key {:?} was neither saved nor found",
            asked.key
        ))),
    })
}

async fn save(
    tx: &mut Tx,
    asked: &Asked,
    response: (u16, &str),
    expired_before: i64,
) -> anyhow::Result<bool> {
    store::idempotency::save_in(
        tx,
        &asked.scope,
        &asked.key,
        &asked.request_hash,
        response,
        expired_before,
    )
    .await
}
