//! The local SQLite store: opening it (WAL, `synchronous=FULL`, foreign keys), migrations, and
//! the small helpers every table module shares (time, money columns, cursors).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use kassa_domain::{Currency, Money};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::error::{Context, Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/register");

/// Reader connections: searches and lookups never wait for a sale's commit (WAL).
const READERS_MAX: u32 = 3;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The register's database: ONE writer connection, so writes queue in process and never meet
/// SQLITE_BUSY half-way, and a few read-only connections.
///
/// Write transactions use a plain `BEGIN`, not `BEGIN IMMEDIATE`: sqlx 0.8 leaves a custom
/// begin statement's transaction open forever when the caller is cancelled at the wrong
/// moment (it awaits again after the BEGIN ran), which the crash-safety test found. With a
/// single writer connection a deferred `BEGIN` cannot deadlock.
#[derive(Debug, Clone)]
pub struct LocalDb {
    writer: SqlitePool,
    reader: SqlitePool,
}

pub type Tx = Transaction<'static, Sqlite>;

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
}

impl LocalDb {
    /// Opens (creating if needed) the store at `path` and applies the migrations.
    #[tracing::instrument(skip_all, fields(path = %path.display()))]
    pub async fn open(path: &Path) -> Result<Self> {
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options(path).create_if_missing(true))
            .await
            .context("opening the local store")?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| Error::Corrupt(format!("applying the register migrations: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS_MAX)
            .connect_with(options(path).read_only(true))
            .await
            .context("opening the local store for reading")?;
        Ok(Self { writer, reader })
    }

    /// The writer connection (it reads too, seeing its own writes at once).
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// Read-only connections, for lookups and searches.
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// A write transaction on the one writer connection.
    pub async fn begin_write(&self) -> Result<Tx> {
        self.writer
            .begin()
            .await
            .context("starting a write transaction")
    }

    /// Closes every connection (the register shuts down, or a test simulates a crash).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Reads a money column pair back into [`Money`].
pub fn money(minor: i64, currency: &str) -> Result<Money> {
    let currency = Currency::from_str(currency).map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(Money::from_minor(minor, currency))
}

/// The stored cursor of a pulled feed (`None` before the first pull).
pub async fn cursor(db: &LocalDb, feed: &str) -> Result<Option<String>> {
    sqlx::query_scalar("SELECT cursor FROM sync_cursors WHERE feed = ?")
        .bind(feed)
        .fetch_optional(db.pool())
        .await
        .context("reading a sync cursor")
}

/// Moves a feed's cursor, in the transaction that stored what the page held.
pub async fn set_cursor(tx: &mut Tx, feed: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO sync_cursors (feed, cursor, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (feed) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
    )
    .bind(feed)
    .bind(value)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .context("moving a sync cursor")?;
    Ok(())
}
