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
    /// A streaming replica for reads (`KASSA_DATABASE_READ_URL`, PostgreSQL only).
    replica: Option<Arc<Replica>>,
    /// SQLite has one writer at a time. Queueing writers here, in order, instead of in SQLite's
    /// busy handler (which sleeps and retries with growing pauses) keeps tail latency flat.
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    /// Connections handed out by the primary's pools since start ([`Db::checkouts`]).
    checkouts: Arc<std::sync::atomic::AtomicU64>,
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

/// One item of a batch in a transaction ([`Tx::begin_item`]): where its counters start.
#[derive(Debug)]
#[must_use = "release the item or roll it back"]
pub struct Item {
    counts: usize,
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

    /// Marks where one item of a batch starts (`SAVEPOINT kassa_item`, apart from the one-level
    /// [`Tx::savepoint`] the item's own work may use). End it with [`Tx::release_item`] or
    /// [`Tx::rollback_item`]: only that item's writes and counters go.
    pub async fn begin_item(&mut self) -> anyhow::Result<Item> {
        self.run("SAVEPOINT kassa_item", "marking a batch item")
            .await?;
        Ok(Item {
            counts: self.counts.len(),
        })
    }

    /// Keeps what the item wrote (it commits with the batch). On PostgreSQL the savepoint is
    /// left open, not released (a round trip saved per item): the next item's nests in it, a
    /// rollback goes to the newest one of the name, and the commit ends them all; a batch of at
    /// most 32 items stays within PostgreSQL's 64 cached subtransactions per backend. On SQLite
    /// a release costs no round trip, while every open savepoint makes later page writes copy
    /// the page to its sub-journal again: released there.
    pub async fn release_item(&mut self, item: Item) -> anyhow::Result<()> {
        drop(item);
        if self.is_postgres() {
            return Ok(());
        }
        self.run("RELEASE SAVEPOINT kassa_item", "releasing a batch item")
            .await
    }

    /// True on PostgreSQL (a statement is a round trip there, worth folding into another).
    pub fn is_postgres(&self) -> bool {
        self.inner.backend_name() == "PostgreSQL"
    }

    /// Undoes what the item wrote, and its counters, and ends it.
    pub async fn rollback_item(&mut self, item: Item) -> anyhow::Result<()> {
        self.run(
            "ROLLBACK TO SAVEPOINT kassa_item",
            "rolling back a batch item",
        )
        .await?;
        self.counts.truncate(item.counts);
        self.savepoint_counts = self.savepoint_counts.filter(|mark| *mark <= item.counts);
        self.run("RELEASE SAVEPOINT kassa_item", "releasing a batch item")
            .await
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
    checkouts: &Arc<std::sync::atomic::AtomicU64>,
) -> AnyPoolOptions {
    use std::sync::atomic::Ordering;
    let busy_ms = limits.sqlite_busy_timeout_ms;
    let (reused, opened) = (checkouts.clone(), checkouts.clone());
    AnyPoolOptions::new()
        .max_connections(connections_max)
        .acquire_timeout(limits.acquire_timeout)
        // An idle connection handed out, or a new one (which skips `before_acquire`).
        .before_acquire(move |_conn, _meta| {
            reused.fetch_add(1, Ordering::Relaxed);
            Box::pin(async { Ok(true) })
        })
        .after_connect(move |conn, _meta| {
            opened.fetch_add(1, Ordering::Relaxed);
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

/// The PostgreSQL advisory lock Kassa's migrations run under (any fixed number no other lock
/// uses; sqlx's own migrator lock is taken inside it).
pub const MIGRATION_LOCK_KEY: i64 = 0x4b41_5353_4100_0001;

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
        let checkouts = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let pool = pool_options(backend, limits, limits.connections_max, "FULL", &checkouts)
            .connect_with(options.clone())
            .await
            .context("connecting to the database")?;
        let relaxed = match backend {
            Backend::Sqlite => Some(
                pool_options(backend, limits, 2, "NORMAL", &checkouts)
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
            replica: None,
            checkouts,
        })
    }

    /// Adds a streaming replica (`KASSA_DATABASE_READ_URL`) that [`Db::for_reads`] sends reads
    /// to. Connects lazily: a replica down at start-up only degrades reads to the primary.
    pub fn with_replica(
        mut self,
        url: &str,
        limits: &PoolLimits,
        wait_max: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            self.backend == Backend::Postgres
                && Backend::from_url(url).ok() == Some(Backend::Postgres),
            "KASSA_DATABASE_READ_URL is a PostgreSQL replica of a PostgreSQL primary"
        );
        let options =
            AnyConnectOptions::from_str(url).context("parsing KASSA_DATABASE_READ_URL")?;
        let pool = AnyPoolOptions::new()
            .max_connections(limits.connections_max)
            .acquire_timeout(REPLICA_CALL_TIMEOUT)
            .connect_lazy_with(options);
        ::metrics::gauge!(crate::telemetry::metrics::REPLICA_UP).set(1.0);
        self.replica = Some(Arc::new(Replica {
            pool,
            wait_max,
            down_until: std::sync::Mutex::new(None),
        }));
        Ok(self)
    }

    /// How many times the primary's pools handed out a connection: every statement and
    /// transaction takes one, so an unchanged count proves a request never touched the
    /// database (the hot-SKU gate's sold-out answers; tests and `./x bench flash-sale`).
    pub fn checkouts(&self) -> u64 {
        self.checkouts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// True when reads may go to a replica.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// The primary's WAL insert position now: at or past the commit record of every write this
    /// instance finished (the insert position, not the flushed one: with asynchronous commit a
    /// commit record may not be written out yet). A client that sends it back (`Kassa-Read-After`) reads its writes.
    pub async fn write_position(&self) -> anyhow::Result<WritePosition> {
        let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(&self.pool)
            .await
            .context("reading the write position")?;
        WritePosition::parse(&lsn).context("the primary's WAL position")
    }

    /// Where a read goes: the replica, once it has replayed past `after` (waiting at most the
    /// replica wait), else the primary; the primary when there is no replica or it is down.
    pub async fn for_reads(&self, after: Option<WritePosition>) -> Db {
        let Some(replica) = &self.replica else {
            return self.clone();
        };
        if replica.is_down() {
            return self.clone();
        }
        let deadline = tokio::time::Instant::now() + replica.wait_max;
        loop {
            let Some(replayed) = replica.replayed().await else {
                return self.clone();
            };
            // NULL: the "replica" is not in recovery (a primary): it has every write.
            let caught_up = match (after, replayed) {
                (None, _) | (_, None) => true,
                (Some(after), Some(replayed)) => replayed >= after,
            };
            if caught_up {
                return Db {
                    pool: replica.pool.clone(),
                    relaxed: None,
                    backend: self.backend,
                    sqlite_writer: self.sqlite_writer.clone(),
                    replica: None,
                    // The replica's checkouts are not the primary's.
                    checkouts: Arc::default(),
                };
            }
            if tokio::time::Instant::now() >= deadline {
                ::metrics::counter!(crate::telemetry::metrics::REPLICA_BEHIND).increment(1);
                return self.clone();
            }
            tokio::time::sleep(REPLICA_POLL).await;
        }
    }

    /// `None` without a replica; else whether it answers now (what `/ready` reports).
    pub async fn replica_answers(&self) -> Option<bool> {
        let replica = self.replica.as_ref()?;
        Some(replica.replayed().await.is_some())
    }
}

/// A client's read-your-writes token: a PostgreSQL WAL position (LSN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WritePosition(u64);

impl WritePosition {
    /// Parses PostgreSQL's `X/Y` (two hex halves).
    pub fn parse(lsn: &str) -> Option<Self> {
        let (high, low) = lsn.trim().split_once('/')?;
        if high.len() > 8 || low.len() > 8 {
            return None;
        }
        let high = u64::from_str_radix(high, 16).ok()?;
        let low = u64::from_str_radix(low, 16).ok()?;
        Some(Self((high << 32) | low))
    }
}

impl std::fmt::Display for WritePosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// A replica call slower than this counts as the replica being down.
pub const REPLICA_CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed call, reads skip the replica this long before trying it again.
pub const REPLICA_RETRY: Duration = Duration::from_secs(2);
/// How often a read waiting for the replica to catch up looks again.
const REPLICA_POLL: Duration = Duration::from_millis(10);

#[derive(Debug)]
struct Replica {
    pool: AnyPool,
    /// The longest a read waits for the replica to pass its client's write.
    wait_max: Duration,
    down_until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Replica {
    fn is_down(&self) -> bool {
        self.down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|until| std::time::Instant::now() < until)
    }

    /// What the replica has replayed (`Some(None)`: it is not in recovery); `None` when it does
    /// not answer (then it is marked down for [`REPLICA_RETRY`], logged once per outage).
    async fn replayed(&self) -> Option<Option<WritePosition>> {
        let query =
            sqlx::query_scalar::<_, Option<String>>("SELECT pg_last_wal_replay_lsn()::text")
                .fetch_one(&self.pool);
        let answer = tokio::time::timeout(REPLICA_CALL_TIMEOUT, query).await;
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match answer {
            Ok(Ok(lsn)) => {
                if down.take().is_some() {
                    tracing::info!("the read replica answers again");
                    ::metrics::gauge!(crate::telemetry::metrics::REPLICA_UP).set(1.0);
                }
                Some(lsn.as_deref().and_then(WritePosition::parse))
            }
            failed => {
                if down.is_none() {
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".into(),
                    };
                    tracing::warn!(
                        error,
                        "the read replica is unreachable: reads go to the primary"
                    );
                    ::metrics::gauge!(crate::telemetry::metrics::REPLICA_UP).set(0.0);
                }
                *down = Some(std::time::Instant::now() + REPLICA_RETRY);
                None
            }
        }
    }
}

impl Db {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies the embedded migrations for this backend. On PostgreSQL several instances may
    /// start at the same moment on one database: each waits for [`MIGRATION_LOCK_KEY`]
    /// (`pg_advisory_lock`, held by one connection), so migrations run once and the others find
    /// them applied. SQLite serialises writers on its own.
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => MIGRATOR_SQLITE
                .run(&self.pool)
                .await
                .context("applying migrations")?,
            Backend::Postgres => self.migrate_locked().await?,
        }
        Ok(())
    }

    async fn migrate_locked(&self) -> anyhow::Result<()> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("a connection for migrations")?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *conn)
            .await
            .context("waiting for the migration lock")?;
        let applied = MIGRATOR_POSTGRES
            .run(&mut *conn)
            .await
            .context("applying migrations");
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // A session lock lives as long as its connection: close it rather than pool it.
            let _ = sqlx::Connection::close(conn.detach()).await;
        }
        applied?;
        unlocked.context("releasing the migration lock")?;
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

#[cfg(test)]
mod write_position_tests {
    use super::WritePosition;

    #[test]
    fn positions_parse_compare_and_print_as_postgresql_writes_them() {
        let a = WritePosition::parse("16/B374D848").unwrap();
        let b = WritePosition::parse("17/0").unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "16/B374D848");
        assert_eq!(WritePosition::parse("0/1"), Some(WritePosition(1)));
        for bad in ["", "16", "x/1", "1/2/3", "123456789/0"] {
            assert_eq!(WritePosition::parse(bad), None, "{bad:?}");
        }
    }
}
