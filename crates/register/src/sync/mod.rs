//! The sync engine: a background task that pushes the outbox, the Z reports and the queued
//! catalog edits,
//! settles card payments and refunds left pending, pulls the catalog and stock, takes or
//! renews the till's stock lease, and pulls recommendations and Central's sale settings, with a clear state (online or offline, last
//! sync, pending count, last error) and exponential backoff with jitter while Central is away.

mod adjustments;
mod backoff;
mod cards;
mod edits;
mod leases;
mod orders;
mod pull;
mod refunds;
mod shifts;
mod split;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{watch, Mutex, Notify};

pub use self::backoff::Backoff;
use crate::client::CentralClient;
use crate::error::{Error, Result};
use crate::identity;
use crate::outbox;
use crate::session::Sessions;
use crate::store::LocalDb;

/// How the engine paces itself; every wait has a bound.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Between rounds while all is well.
    pub interval: Duration,
    /// First retry delay after a failure, and the most a retry waits.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Stock levels pulled per round, in pages of up to 1000 (`GET /v1/stock`).
    pub stock_skus_per_round: u32,
    /// Stock leases: the sales over this window set the till's sales velocity, from which it
    /// leases stock at Central every round (see [`leases`]). `None`: the till holds no lease.
    pub lease_window: Option<Duration>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            stock_skus_per_round: 5_000,
            lease_window: None,
        }
    }
}

/// What the status line shows: the domain's type, shared with the UI.
pub use kassa_domain::SyncStatus;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Card payments left pending (a crash, a silent processor) that settled.
    pub card_sales_settled: usize,
    pub sales_settled: usize,
    /// Refunds Central made that the till had not written down (a crash, a failed write).
    pub refunds_settled: usize,
    /// Z reports delivered to Central.
    pub z_reports_pushed: usize,
    pub edits_pushed: usize,
    pub adjustments_pushed: usize,
    pub products_changed: usize,
    pub stock_levels: usize,
    /// The till's stock lease taken or renewed (1), or none held (0).
    pub leases_refreshed: usize,
    pub recommendation_lists: usize,
    /// Central's sale settings pulled (1, or 0 when that step failed).
    pub settings_pulled: usize,
    /// Steps that failed without ending the round (the status line says why).
    pub steps_failed: usize,
}

/// The steps of a round that failed, and the first one's error.
#[derive(Debug, Default)]
struct Failed {
    count: usize,
    first: Option<String>,
}

impl Failed {
    /// A step's count, or 0 when it failed; `Err` only when the round must end here.
    fn keep(&mut self, step: &'static str, result: Result<usize>) -> Result<usize> {
        match result {
            Ok(count) => Ok(count),
            Err(err) if ends_round(&err) => Err(err),
            Err(err) => {
                tracing::warn!(step, %err, "sync step failed; the round goes on");
                self.count += 1;
                self.first.get_or_insert_with(|| format!("{step}: {err}"));
                Ok(0)
            }
        }
    }
}

/// Central out of reach or shedding load (every later step would fail the same way, or add
/// to the load), or no register to sync.
fn ends_round(err: &Error) -> bool {
    matches!(err, Error::Unreachable { .. } | Error::NotPaired)
        || err.api_code() == Some("overloaded")
}

/// The engine; cheap to share (`Arc`), one round at a time.
#[derive(Debug)]
pub struct Engine {
    db: LocalDb,
    sessions: Arc<Sessions>,
    config: SyncConfig,
    status: watch::Sender<SyncStatus>,
    kick: Notify,
    round: Mutex<()>,
    /// One card payment (the till's, or the engine settling one) at a time.
    card: Mutex<()>,
    /// When the catalog feed was last pulled to its end (reported to Central as its age).
    catalog_pulled_at: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Engine {
    pub fn new(db: LocalDb, sessions: Arc<Sessions>, config: SyncConfig) -> Self {
        Self {
            db,
            sessions,
            config,
            status: watch::Sender::new(SyncStatus::default()),
            kick: Notify::new(),
            round: Mutex::new(()),
            card: Mutex::new(()),
            catalog_pulled_at: std::sync::Mutex::new(None),
        }
    }

    fn client(&self) -> &CentralClient {
        self.sessions.client()
    }

    pub fn status(&self) -> SyncStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change (the UI's indicator).
    pub fn subscribe(&self) -> watch::Receiver<SyncStatus> {
        self.status.subscribe()
    }

    /// Wakes the background task now (a sale was made, the cashier pressed "sync").
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// One full round: settle card payments, push sales, settle refunds, push edits, pull
    /// catalog, stock, recommendations and sale settings.
    /// The status is updated whatever happens.
    #[tracing::instrument(name = "sync round", skip_all)]
    pub async fn run_once(&self) -> Result<RoundReport> {
        let _one_at_a_time = self.round.lock().await;
        let result = self.round().await;
        self.record(&result).await;
        result.map(|(report, _)| report)
    }

    /// Runs every step even when one fails: a failure is kept for the status line and the
    /// next step runs, so one kind of stuck work (a card record to cancel with nobody signed
    /// in, an edit Central refuses) never holds back the others, offline sales above all.
    /// Only Central out of reach ends the round early: every later step would fail the same way.
    async fn round(&self) -> Result<(RoundReport, Option<String>)> {
        let identity = identity::load(&self.db).await?.ok_or(Error::NotPaired)?;
        self.report_to_central().await;
        let mut failed = Failed::default();
        let card_sales_settled = failed.keep("card payments", self.settle_cards().await)?
            + failed.keep("split card parts", self.settle_split_parts().await)?;
        let sales_settled = failed.keep("sales", self.push_outbox().await)?;
        let refunds_settled = failed.keep("refunds", self.settle_refunds().await)?;
        let z_reports_pushed = failed.keep("Z reports", self.push_z_reports().await)?;
        let edits_pushed = failed.keep("catalog edits", self.push_edits().await)?;
        let adjustments_pushed = failed.keep("stock adjustments", self.push_adjustments().await)?;
        let catalog = self.pull_catalog().await;
        if catalog.is_ok() {
            if let Ok(mut at) = self.catalog_pulled_at.lock() {
                *at = Some(std::time::Instant::now());
            }
        }
        let products_changed = failed.keep("catalog", catalog)?;
        let stock_levels = failed.keep("stock", self.pull_stock(&identity.location).await)?;
        let leases_refreshed =
            failed.keep("stock lease", self.refresh_lease(&identity.location).await)?;
        let recommendation_lists =
            failed.keep("recommendations", self.pull_recommendations().await)?;
        let settings_pulled = failed.keep("sale settings", self.pull_settings().await)?;
        let report = RoundReport {
            card_sales_settled,
            sales_settled,
            refunds_settled,
            z_reports_pushed,
            edits_pushed,
            adjustments_pushed,
            products_changed,
            stock_levels,
            leases_refreshed,
            recommendation_lists,
            settings_pulled,
            steps_failed: failed.count,
        };
        Ok((report, failed.first))
    }

    /// Tells the client what this round's calls report to Central: the outbox's depth and the
    /// age of its oldest sale, and how old the catalog copy is.
    async fn report_to_central(&self) {
        let (queue_orders, oldest) = match outbox::backlog(&self.db).await {
            Ok(backlog) => backlog,
            Err(err) => {
                tracing::warn!(%err, "reading the outbox backlog failed");
                return;
            }
        };
        let oldest_unsynced_s = oldest.map_or(0, |at| (Utc::now() - at).num_seconds().max(0));
        let catalog_age_s = self
            .catalog_pulled_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .map(|at| i64::try_from(at.elapsed().as_secs()).unwrap_or(i64::MAX));
        self.client().set_report(crate::client::SyncReport {
            queue_orders,
            oldest_unsynced_s,
            catalog_age_s,
        });
    }

    async fn record(&self, result: &Result<(RoundReport, Option<String>)>) {
        let counts = outbox::counts(&self.db).await.unwrap_or_default();
        let conflicts = crate::edits::conflicts(&self.db)
            .await
            .map_or(0, |c| i64::try_from(c.len()).unwrap_or(i64::MAX));
        self.status.send_modify(|s| {
            s.pending = counts.pending;
            s.rejected = counts.rejected;
            s.conflicts = conflicts;
            match result {
                Ok((_, step_error)) => {
                    s.online = true;
                    s.last_sync = Some(Utc::now());
                    s.last_error.clone_from(step_error);
                    s.failures = 0;
                }
                Err(err) => {
                    // Central answered (with an error) unless it could not be reached at all.
                    s.online = !err.is_transient() && !matches!(err, Error::NotPaired);
                    s.last_error = Some(err.to_string());
                    s.failures = s.failures.saturating_add(1);
                }
            }
        });
    }

    /// Refreshes the pending count after a sale without waiting for a round.
    pub async fn note_sale(&self) {
        if let Ok(counts) = outbox::counts(&self.db).await {
            self.status.send_modify(|s| s.pending = counts.pending);
        }
        self.kick();
    }

    /// Runs rounds until `shutdown` resolves: every `interval` while all is well, after a
    /// backoff delay with jitter after a failure, and at once when kicked.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let mut backoff = Backoff::new(self.config.backoff_base, self.config.backoff_max);
        tokio::pin!(shutdown);
        loop {
            let (delay, wake_on_kick) = match self.run_once().await {
                Ok(_) => {
                    backoff.reset();
                    (self.config.interval, true)
                }
                Err(err) => {
                    tracing::info!(%err, "sync round failed; backing off");
                    // Sales made while Central is away must not cut the backoff short, nor
                    // the wait an overloaded Central asked for (`Retry-After`).
                    let delay = backoff.next_delay(&mut rand::thread_rng());
                    (delay.max(err.retry_after().unwrap_or_default()), false)
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(delay) => {}
                () = self.kick.notified(), if wake_on_kick => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kassa_domain::api::ErrorDetail;

    use super::*;

    fn answered(status: u16, code: &str, details: serde_json::Value) -> Error {
        Error::Api {
            status,
            detail: ErrorDetail {
                code: code.into(),
                message: "from Central".into(),
                details,
            },
        }
    }

    #[test]
    fn an_overloaded_central_ends_the_round_and_sets_the_wait() {
        let shed = answered(503, "overloaded", serde_json::json!({ "retry_after_s": 7 }));
        assert!(ends_round(&shed), "every later call would add to the load");
        assert_eq!(shed.retry_after(), Some(Duration::from_secs(7)));
        let read_only = answered(503, "read_only", serde_json::json!({ "retry_after_s": 30 }));
        assert!(
            !ends_round(&read_only),
            "reads and pulls go on in read-only mode"
        );
        assert_eq!(read_only.retry_after(), Some(Duration::from_secs(30)));
        let refused = answered(422, "invalid_lines", serde_json::Value::Null);
        assert!(!ends_round(&refused));
        assert_eq!(refused.retry_after(), None);
    }
}
