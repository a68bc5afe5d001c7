//! Thermal printing: receipts, reports and the cash drawer on an ESC/POS printer.
//!
//! Every document is built from a small layout model ([`layout::Document`], made by
//! [`documents`]), rendered to ESC/POS by the `escpos` crate for the paper's width (58 or
//! 80 mm) and sent to the printer `KASSA_PRINTER` names ([`destination`]). Printing goes
//! through a queue in the register's SQLite (`print_jobs`): a sale writes its receipt's job
//! and returns at once; [`Printing::run`] prints the jobs in order in the background and keeps
//! a job whose printer is off, retrying with a backoff, so a printer that is off never blocks
//! or loses a sale. A reprint is the sale's next copy (COPY n on paper), counted per sale.
//! The cash drawer hangs off the printer: a job can pulse it first (a cash sale, a no-sale),
//! unless it waited longer than [`DRAWER_PULSE_STALE_MS`] (a drawer must not spring open
//! minutes after the sale when a printer comes back). With no printer configured nothing is
//! queued and the web view's print stays the way to a receipt.

pub mod destination;
pub mod documents;
pub mod layout;

use std::sync::{Arc, Weak};
use std::time::Duration;

use kassa_domain::Receipt;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::Notify;
use uuid::Uuid;

pub use destination::{Destination, Paper};
pub use documents::ReceiptStyle;
pub use layout::{Block, Document, Drawer};

use crate::error::{corrupt, Context, Error, Result};
use crate::store::{now_ms, LocalDb};

/// A drawer pulse waiting longer than this is dropped (the job prints without it).
pub const DRAWER_PULSE_STALE_MS: i64 = 60_000;
/// Jobs waiting at once, at most: past it a sale still completes, its receipt is not queued
/// (a reprint from the recent sales prints it later) and the log says so.
pub const PRINT_QUEUE_MAX: i64 = 500;
/// Jobs listed at most by [`Printing::jobs`].
pub const JOBS_LISTED_MAX: u32 = 100;

/// The till's printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterConfig {
    pub destination: Destination,
    pub paper: Paper,
    pub style: ReceiptStyle,
    /// The longest wait between two tries at a printer that is off.
    pub retry_max: Duration,
}

impl PrinterConfig {
    pub fn new(destination: Destination) -> Self {
        Self {
            destination,
            paper: Paper::default(),
            style: ReceiptStyle::default(),
            retry_max: Duration::from_secs(10),
        }
    }
}

/// What kind of document a job prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Receipt,
    Report,
    /// A drawer pulse alone (a no-sale).
    Drawer,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            JobKind::Receipt => "receipt",
            JobKind::Report => "report",
            JobKind::Drawer => "drawer",
        }
    }
}

/// A print job as the till lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintJob {
    pub id: i64,
    pub kind: JobKind,
    pub title: String,
    pub order_id: Option<Uuid>,
    /// 0: the original; n: the sale's n-th copy.
    pub copy_no: u32,
    /// `queued`, `printed` or `expired`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub printed_at: Option<i64>,
}

/// Where printing stands, for the till's bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterStatus {
    /// `KASSA_PRINTER`, or `None`: no printer, the web view prints.
    pub printer: Option<String>,
    pub paper_mm: Option<u32>,
    /// Jobs waiting for the printer.
    pub queued: i64,
    /// The last failure, while jobs wait.
    pub last_error: Option<String>,
}

/// The print queue and its printer.
#[derive(Debug)]
pub struct Printing {
    db: LocalDb,
    config: Option<PrinterConfig>,
    wake: Arc<Notify>,
    /// One job on its way to the printer at a time (the worker, or a test's direct drain).
    sending: tokio::sync::Mutex<()>,
}

impl Printing {
    pub fn new(db: LocalDb, config: Option<PrinterConfig>) -> Self {
        Self {
            db,
            config,
            wake: Arc::new(Notify::new()),
            sending: tokio::sync::Mutex::new(()),
        }
    }

    pub fn config(&self) -> Option<&PrinterConfig> {
        self.config.as_ref()
    }

    fn printer(&self) -> Result<&PrinterConfig> {
        self.config.as_ref().ok_or_else(|| {
            Error::Invalid(
                "no receipt printer is set up (KASSA_PRINTER): print from the receipt screen"
                    .into(),
            )
        })
    }

    /// Queues a sale's receipt (its original, copy 0), pulsing the drawer first with
    /// [`Drawer::Open`]. `None` when no printer is set up. Queued once per sale.
    pub async fn queue_receipt(&self, receipt: &Receipt, drawer: Drawer) -> Result<Option<i64>> {
        let Some(config) = &self.config else {
            return Ok(None);
        };
        let doc = documents::receipt(receipt, &config.style, None);
        let title = format!("Receipt {}", receipt.receipt_no);
        let job = Job {
            kind: JobKind::Receipt,
            order_id: Some(receipt.order_id),
            copy_no: 0,
            title: &title,
            document: &doc,
            drawer,
        };
        let id = insert(&self.db, &job).await?;
        self.wake.notify_one();
        Ok(id)
    }

    /// Queues the next copy of a sale's receipt, marked COPY n; n is returned.
    pub async fn reprint(&self, receipt: &Receipt) -> Result<u32> {
        let config = self.printer()?;
        let mut tx = self.db.begin_write().await?;
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(copy_no) FROM print_jobs WHERE order_id = ?")
                .bind(receipt.order_id.to_string())
                .fetch_one(&mut *tx)
                .await
                .context("reading a receipt's copies")?;
        let copy_no = u32::try_from(last.unwrap_or(0) + 1)
            .map_err(|e| corrupt("a receipt's copy number", e))?;
        let doc = documents::receipt(receipt, &config.style, Some(copy_no));
        let title = format!("Receipt {} COPY {copy_no}", receipt.receipt_no);
        let job = Job {
            kind: JobKind::Receipt,
            order_id: Some(receipt.order_id),
            copy_no,
            title: &title,
            document: &doc,
            drawer: Drawer::Closed,
        };
        insert_on(&mut tx, &job, true).await?;
        tx.commit().await.context("queueing a reprint")?;
        self.wake.notify_one();
        Ok(copy_no)
    }

    /// Queues any document (a report, part A's Z report): printed and cut in queue order.
    pub async fn queue_document(&self, title: &str, document: &Document) -> Result<i64> {
        self.printer()?;
        let job = Job {
            kind: JobKind::Report,
            order_id: None,
            copy_no: 0,
            title,
            document,
            drawer: Drawer::Closed,
        };
        let mut tx = self.db.begin_write().await?;
        let id = insert_on(&mut tx, &job, true).await?;
        tx.commit().await.context("queueing a document")?;
        self.wake.notify_one();
        id.ok_or_else(|| corrupt("a print job", "not inserted"))
    }

    /// Queues a drawer pulse alone (a no-sale), in `tx` (the no-sale's record).
    pub(crate) async fn queue_drawer_on(&self, tx: &mut crate::store::Tx) -> Result<()> {
        self.printer()?;
        let job = Job {
            kind: JobKind::Drawer,
            order_id: None,
            copy_no: 0,
            title: "Cash drawer",
            document: &Document::new(),
            drawer: Drawer::Open,
        };
        insert_on(tx, &job, true).await?;
        Ok(())
    }

    /// Wakes the worker (after a job was queued in a caller's transaction, or "retry now").
    pub fn kick(&self) {
        self.wake.notify_one();
    }

    /// How many copies of a sale's receipt were printed or queued (reprints; the original
    /// not counted).
    pub async fn copies(&self, order_id: Uuid) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM print_jobs WHERE order_id = ? AND copy_no > 0")
            .bind(order_id.to_string())
            .fetch_one(self.db.reader())
            .await
            .context("counting a receipt's copies")
    }

    /// The jobs still waiting, then the latest others, newest first, `limit` at most.
    pub async fn jobs(&self, limit: u32) -> Result<Vec<PrintJob>> {
        let rows = sqlx::query(
            "SELECT id, kind, title, order_id, copy_no, status, attempts, last_error, created_at,
                    printed_at
             FROM print_jobs ORDER BY status = 'queued' DESC, id DESC LIMIT ?",
        )
        .bind(limit.min(JOBS_LISTED_MAX))
        .fetch_all(self.db.reader())
        .await
        .context("listing print jobs")?;
        rows.iter().map(job_from_row).collect()
    }

    pub async fn status(&self) -> Result<PrinterStatus> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS queued,
                    (SELECT last_error FROM print_jobs WHERE status = 'queued'
                     AND last_error IS NOT NULL ORDER BY id LIMIT 1) AS last_error
             FROM print_jobs WHERE status = 'queued'",
        )
        .fetch_one(self.db.reader())
        .await
        .context("reading the print queue")?;
        Ok(PrinterStatus {
            printer: self.config.as_ref().map(|c| c.destination.to_string()),
            paper_mm: self.config.as_ref().map(|c| match c.paper {
                Paper::Mm58 => 58,
                Paper::Mm80 => 80,
            }),
            queued: row.get("queued"),
            last_error: row.get("last_error"),
        })
    }

    /// Prints the oldest waiting job; `Ok(false)` when none waits (or no printer is set up),
    /// an error when the printer did not take it (it stays queued, its error noted).
    #[tracing::instrument(skip_all)]
    pub async fn print_next(&self) -> Result<bool> {
        let Some(config) = &self.config else {
            return Ok(false);
        };
        let _one = self.sending.lock().await;
        let row = sqlx::query(
            "SELECT id, kind, document, open_drawer, created_at FROM print_jobs
             WHERE status = 'queued' ORDER BY id LIMIT 1",
        )
        .fetch_optional(self.db.pool())
        .await
        .context("reading the print queue")?;
        let Some(row) = row else {
            return Ok(false);
        };
        let id: i64 = row.get("id");
        let fresh = now_ms() - row.get::<i64, _>("created_at") <= DRAWER_PULSE_STALE_MS;
        let drawer = if row.get::<i64, _>("open_drawer") == 1 && fresh {
            Drawer::Open
        } else {
            Drawer::Closed
        };
        let document: Document = serde_json::from_str(&row.get::<String, _>("document"))
            .map_err(|e| corrupt("a print job's document", e))?;
        if row.get::<String, _>("kind") == "drawer" && drawer == Drawer::Closed {
            finish(&self.db, id, "expired").await?;
            return Ok(true);
        }
        let bytes = layout::render(&document, config.paper, drawer)?;
        let destination = config.destination.clone();
        let sent = tokio::task::spawn_blocking(move || destination::send(&destination, &bytes))
            .await
            .map_err(|e| Error::Printer(format!("the printing thread failed: {e}")))?;
        match sent {
            Ok(()) => {
                finish(&self.db, id, "printed").await?;
                tracing::info!(job = id, "printed");
                Ok(true)
            }
            Err(err) => {
                sqlx::query(
                    "UPDATE print_jobs SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                )
                .bind(err.to_string())
                .bind(id)
                .execute(self.db.pool())
                .await
                .context("noting a print failure")?;
                Err(err)
            }
        }
    }

    /// Prints queued jobs until the queue is empty or the printer fails (its error).
    pub async fn drain(&self) -> Result<usize> {
        let mut printed = 0;
        while self.print_next().await? {
            printed += 1;
        }
        Ok(printed)
    }

    /// The background printer: drains the queue whenever woken (a job queued) and every
    /// `retry` while jobs wait, doubling the wait after each failure up to the configured
    /// maximum. Ends when the last handle to `this` is dropped.
    pub async fn run(this: Weak<Printing>) {
        let mut wait = RETRY_FIRST;
        loop {
            let (wake, retry_max) = {
                let Some(printing) = this.upgrade() else {
                    return;
                };
                let Some(config) = printing.config.clone() else {
                    return;
                };
                match printing.drain().await {
                    Ok(_) => wait = RETRY_FIRST,
                    Err(err) => {
                        tracing::warn!(%err, "a print job waits for the printer");
                        wait = (wait * 2).min(config.retry_max);
                    }
                }
                (printing.wake.clone(), config.retry_max)
            };
            let idle = if wait == RETRY_FIRST {
                retry_max.max(RETRY_FIRST)
            } else {
                wait
            };
            let _ = tokio::time::timeout(idle, wake.notified()).await;
        }
    }
}

/// The first wait after a failure (then doubled up to [`PrinterConfig::retry_max`]).
const RETRY_FIRST: Duration = Duration::from_millis(250);

struct Job<'a> {
    kind: JobKind,
    order_id: Option<Uuid>,
    copy_no: u32,
    title: &'a str,
    document: &'a Document,
    drawer: Drawer,
}

async fn insert(db: &LocalDb, job: &Job<'_>) -> Result<Option<i64>> {
    let mut tx = db.begin_write().await?;
    let id = insert_on(&mut tx, job, false).await?;
    tx.commit().await.context("queueing a print job")?;
    Ok(id)
}

/// Inserts a job; `None` when the queue is full (a receipt: the sale stands, the log says so)
/// or the sale's original is already queued. `must` refuses a full queue with an error
/// instead (a reprint, a report: the person asking sees why).
async fn insert_on(tx: &mut crate::store::Tx, job: &Job<'_>, must: bool) -> Result<Option<i64>> {
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM print_jobs WHERE status = 'queued'")
        .fetch_one(&mut **tx)
        .await
        .context("counting the print queue")?;
    if queued >= PRINT_QUEUE_MAX {
        let why = format!(
            "{queued} documents wait for the printer, the most this till queues: check the printer"
        );
        if must {
            return Err(Error::Invalid(why));
        }
        tracing::warn!(title = job.title, "{why}; not queued");
        return Ok(None);
    }
    let document =
        serde_json::to_string(job.document).map_err(|e| corrupt("a print job's document", e))?;
    let id = sqlx::query_scalar(
        "INSERT INTO print_jobs (kind, order_id, copy_no, title, document, open_drawer, status,
            created_at)
         VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)
         ON CONFLICT (order_id, copy_no) DO NOTHING RETURNING id",
    )
    .bind(job.kind.as_str())
    .bind(job.order_id.map(|id| id.to_string()))
    .bind(job.copy_no)
    .bind(job.title)
    .bind(document)
    .bind(i64::from(job.drawer == Drawer::Open))
    .bind(now_ms())
    .fetch_optional(&mut **tx)
    .await
    .context("queueing a print job")?;
    Ok(id)
}

async fn finish(db: &LocalDb, id: i64, status: &str) -> Result<()> {
    sqlx::query("UPDATE print_jobs SET status = ?, printed_at = ?, last_error = NULL WHERE id = ?")
        .bind(status)
        .bind(now_ms())
        .bind(id)
        .execute(db.pool())
        .await
        .context("marking a print job done")?;
    Ok(())
}

fn job_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<PrintJob> {
    let kind = match row.get::<String, _>("kind").as_str() {
        "receipt" => JobKind::Receipt,
        "report" => JobKind::Report,
        "drawer" => JobKind::Drawer,
        other => return Err(corrupt("a print job's kind", other)),
    };
    let order_id = row
        .get::<Option<String>, _>("order_id")
        .map(|id| Uuid::parse_str(&id))
        .transpose()
        .map_err(|e| corrupt("a print job's sale", e))?;
    Ok(PrintJob {
        id: row.get("id"),
        kind,
        title: row.get("title"),
        order_id,
        copy_no: u32::try_from(row.get::<i64, _>("copy_no"))
            .map_err(|e| corrupt("a copy number", e))?,
        status: row.get("status"),
        attempts: row.get("attempts"),
        last_error: row.get("last_error"),
        created_at: row.get("created_at"),
        printed_at: row.get("printed_at"),
    })
}

/// Prints the test page straight to the printer (no queue, no register store): what
/// `kassa-register --print-test` runs to set a printer up. It pulses the drawer and cuts.
pub fn print_test_page(config: &PrinterConfig) -> Result<()> {
    let doc = documents::test_page(
        &config.destination.to_string(),
        config.paper.chars_per_line(),
    );
    let bytes = layout::render(&doc, config.paper, Drawer::Open)?;
    destination::send(&config.destination, &bytes)
}
