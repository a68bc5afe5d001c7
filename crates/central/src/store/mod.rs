//! Storage: one SQL layer over SQLite and PostgreSQL (sqlx `Any`), migrations, and write transactions.
//!
//! Queries are written once in the SQL both engines understand (`$1` placeholders, `RETURNING`,
//! `ON CONFLICT`); where the engines differ (transaction start, row locks) [`Backend`] decides.
//! Times are unix milliseconds, money is integer minor units, ids are UUID text.

pub mod approvals;
pub mod carts;
pub mod catalog;
pub mod events;
pub mod idempotency;
pub mod leases;
pub mod locations;
pub mod orders;
pub mod payments;
pub mod recommend;
pub mod registers;
pub mod relay;
pub mod sessions;
pub mod settings;
pub mod shifts;
pub mod stock;
pub mod sync;
pub mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};
use tracing::Instrument as _;

/// Which engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            anyhow::bail!("KASSA_DATABASE_URL must start with sqlite: or postgres://")
        }
    }
}

/// Pool sizes and timeouts; every one has a limit.
#[derive(Debug, Clone)]
pub struct PoolLimits {
    pub connections_max: u32,
    pub acquire_timeout: Duration,
    pub sqlite_busy_timeout_ms: u32,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            connections_max: 16,
            acquire_timeout: Duration::from_secs(10),
            sqlite_busy_timeout_ms: 10_000,
        }
    }
}

/// The database handle every capability uses.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    /// SQLite only: connections with `synchronous=NORMAL`, for [`Db::begin_write_relaxed`].
    relaxed: Option<AnyPool>,
    backend: Backend,
    /// SQLite has one writer at a time. Queueing writers here, in order, instead of in SQLite's
    /// busy handler (which sleeps and retries with growing pauses) keeps tail latency flat.
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
}

/// A write transaction. On SQLite it also holds the in-process writer lock until it ends.
/// Derefs to the connection, so `&mut **tx` is an executor inside the transaction.
#[derive(Debug)]
pub struct Tx {
    inner: Transaction<'static, Any>,
    _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// Counters to add when (and only if) the transaction commits.
    counts: Vec<Count>,
    /// `counts.len()` at the open savepoint: rolling back to it drops what came after.
    savepoint_counts: Option<usize>,
}

/// A metric counter increment waiting for its transaction's commit.
#[derive(Debug)]
struct Count {
    name: &'static str,
    labels: Vec<metrics::Label>,
    by: u64,
}

impl Tx {
    /// A transaction that holds no writer lock (reads).
    pub fn unlocked(inner: Transaction<'static, Any>) -> Self {
        Self::new(inner, None)
    }

    fn new(
        inner: Transaction<'static, Any>,
        writer: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Self {
        Self {
            inner,
            _writer: writer,
            counts: Vec::new(),
            savepoint_counts: None,
        }
    }

    /// Adds `by` to the counter `name` once this transaction commits (never if it rolls back, or
    /// rolls back to a savepoint taken before this call), so metrics agree with the database.
    pub fn count_on_commit(
        &mut self,
        name: &'static str,
        labels: &[(&'static str, &str)],
        by: u64,
    ) {
        let labels = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, (*v).to_owned()))
            .collect();
        self.counts.push(Count { name, labels, by });
    }

    /// Marks a point to roll back to (one level: `SAVEPOINT` on both backends). Pair it with
    /// [`Tx::release_savepoint`] or [`Tx::rollback_to_savepoint`].
    pub async fn savepoint(&mut self) -> anyhow::Result<()> {
        self.run("SAVEPOINT kassa_step", "marking a savepoint")
            .await?;
        self.savepoint_counts = Some(self.counts.len());
        Ok(())
    }

    /// Keeps what was written since [`Tx::savepoint`].
    pub async fn release_savepoint(&mut self) -> anyhow::Result<()> {
        self.run("RELEASE SAVEPOINT kassa_step", "releasing a savepoint")
            .await?;
        self.savepoint_counts = None;
        Ok(())
    }

    /// Undoes what was written since [`Tx::savepoint`] (also clears PostgreSQL's aborted
    /// state after a failed statement) and ends the savepoint.
    pub async fn rollback_to_savepoint(&mut self) -> anyhow::Result<()> {
        self.run(
            "ROLLBACK TO SAVEPOINT kassa_step",
            "rolling back to a savepoint",
        )
        .await?;
        if let Some(mark) = self.savepoint_counts {
            self.counts.truncate(mark);
        }
        self.release_savepoint().await
    }

    async fn run(&mut self, statement: &'static str, doing: &'static str) -> anyhow::Result<()> {
        use anyhow::Context as _;
        sqlx::query(statement)
            .execute(&mut *self.inner)
            .await
            .context(doing)?;
        Ok(())
    }

    /// Commits in a task of its own: a commit cancelled half-way (the client went away and its
    /// request future was dropped) could leave the connection in a state sqlx no longer knows.
    /// The writer lock is released only once the commit is over.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let Self {
            inner,
            _writer,
            counts,
            ..
        } = self;
        let commit = tokio::spawn(
            async move {
                let done = inner.commit().await;
                drop(_writer);
                done
            }
            .in_current_span(),
        );
        commit
            .await
            .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))??;
        for Count { name, labels, by } in counts {
            metrics::counter!(name, labels).increment(by);
        }
        Ok(())
    }

    /// Rolls back now (dropping a transaction rolls it back too, but only when its connection
    /// is next used), and only then lets the next writer in.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        let Self { inner, _writer, .. } = self;
        let done = inner.rollback().await;
        drop(_writer);
        done
    }
}

/// Begins a transaction in a task of its own, for the same reason as [`Tx::commit`]: sqlx 0.8
/// can leave `BEGIN IMMEDIATE` open on a pooled connection, unknown to it, when the future is
/// dropped at the wrong await; that connection then holds SQLite's write lock for good and every
/// later write fails. Detached, the begin always completes; if nobody is left to use the
/// transaction it is dropped, and dropping rolls it back.
async fn begin_detached(
    pool: &AnyPool,
    statement: Option<&'static str>,
) -> Result<Transaction<'static, Any>, sqlx::Error> {
    let pool = pool.clone();
    let begin = tokio::spawn(
        async move {
            match statement {
                Some(statement) => pool.begin_with(statement).await,
                None => pool.begin().await,
            }
        }
        .in_current_span(),
    );
    begin
        .await
        .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?
}

impl std::ops::Deref for Tx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

/// The pool for `backend`; SQLite connections get WAL, `synchronous` as given, a busy timeout
/// and foreign keys.
fn pool_options(
    backend: Backend,
    limits: &PoolLimits,
    connections_max: u32,
    synchronous: &'static str,
) -> AnyPoolOptions {
    let busy_ms = limits.sqlite_busy_timeout_ms;
    AnyPoolOptions::new()
        .max_connections(connections_max)
        .acquire_timeout(limits.acquire_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    let pragmas = format!(
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; \
                         PRAGMA busy_timeout={busy_ms}; PRAGMA foreign_keys=ON;"
                    );
                    conn.execute(pragmas.as_str()).await?;
                }
                Ok(())
            })
        })
}

static MIGRATOR_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/central/sqlite");
static MIGRATOR_POSTGRES: sqlx::migrate::Migrator =
    sqlx::migrate!("../../migrations/central/postgres");

impl Db {
    /// Connects; for SQLite creates the file and sets WAL, `synchronous=FULL` and a busy timeout
    /// on every connection.
    #[tracing::instrument(skip_all, fields(backend))]
    pub async fn connect(url: &str, limits: &PoolLimits) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        tracing::Span::current().record("backend", format!("{backend:?}"));
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url).context("parsing KASSA_DATABASE_URL")?;
        let pool = pool_options(backend, limits, limits.connections_max, "FULL")
            .connect_with(options.clone())
            .await
            .context("connecting to the database")?;
        let relaxed = match backend {
            Backend::Sqlite => Some(
                pool_options(backend, limits, 2, "NORMAL")
                    .connect_with(options)
                    .await
                    .context("connecting to the database")?,
            ),
            Backend::Postgres => None,
        };
        Ok(Self {
            pool,
            relaxed,
            backend,
            sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies the embedded migrations for this backend.
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &MIGRATOR_SQLITE,
            Backend::Postgres => &MIGRATOR_POSTGRES,
        };
        migrator
            .run(&self.pool)
            .await
            .context("applying migrations")?;
        Ok(())
    }

    /// Starts a transaction that will write. SQLite takes the write lock up front
    /// (`BEGIN IMMEDIATE`) so two writers queue on the busy timeout instead of one failing
    /// when it upgrades from reading to writing.
    pub async fn begin_write(&self) -> anyhow::Result<Tx> {
        let (inner, writer) = match self.backend {
            Backend::Sqlite => {
                let writer = self.sqlite_writer.clone().lock_owned().await;
                (
                    begin_detached(&self.pool, Some("BEGIN IMMEDIATE")).await,
                    Some(writer),
                )
            }
            Backend::Postgres => (begin_detached(&self.pool, None).await, None),
        };
        Ok(Tx::new(
            inner.context("starting a write transaction")?,
            writer,
        ))
    }

    /// A read transaction: no writer lock.
    pub async fn begin_read(&self) -> anyhow::Result<Tx> {
        let inner = self.pool.begin().await.context("starting a read")?;
        Ok(Tx::unlocked(inner))
    }

    /// A write transaction whose commit does not wait for the disk (SQLite `synchronous=NORMAL`,
    /// PostgreSQL `synchronous_commit = off`). Power loss may undo it, but never behind a later
    /// durable commit's back: both logs are sequential, so the next durable commit on this
    /// database makes it durable too. For rows that only matter while the work that follows
    /// them is in flight (an idempotency claim): if they are lost, that work never committed.
    pub async fn begin_write_relaxed(&self) -> anyhow::Result<Tx> {
        match (&self.relaxed, self.backend) {
            (Some(relaxed), Backend::Sqlite) => {
                let writer = self.sqlite_writer.clone().lock_owned().await;
                let inner = begin_detached(relaxed, Some("BEGIN IMMEDIATE"))
                    .await
                    .context("starting a relaxed write")?;
                Ok(Tx::new(inner, Some(writer)))
            }
            _ => {
                let mut tx = self.begin_write().await?;
                if self.backend == Backend::Postgres {
                    sqlx::query("SET LOCAL synchronous_commit = off")
                        .execute(&mut *tx)
                        .await
                        .context("relaxing the commit")?;
                }
                Ok(tx)
            }
        }
    }

    /// `SELECT 1`: is the database reachable?
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("pinging the database")?;
        Ok(())
    }

    /// ` FOR UPDATE` on PostgreSQL; nothing on SQLite, whose write transactions are serial.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

/// Now as unix milliseconds, the unit every timestamp column uses.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn from_ms(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// True when `err` is a unique-constraint violation (both engines).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// Takes the next value of a named counter inside `tx`. On PostgreSQL the row lock is held until
/// commit, so values become visible in the order they were taken: a reader paging by this
/// sequence never skips a row that commits later with a smaller number.
pub async fn next_counter(tx: &mut Tx, name: &str) -> anyhow::Result<i64> {
    let value: i64 =
        sqlx::query_scalar("UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value")
            .bind(name)
            .fetch_one(&mut **tx)
            .await
            .with_context(|| format!("taking counter {name}"))?;
    Ok(value)
}
