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

/// Connections in the pool: SQLite has one writer; a few readers keep search responsive.
const CONNECTIONS_MAX: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The register's database.
#[derive(Debug, Clone)]
pub struct LocalDb {
    pool: SqlitePool,
}

pub type Tx = Transaction<'static, Sqlite>;

impl LocalDb {
    /// Opens (creating if needed) the store at `path` and applies the migrations.
    #[tracing::instrument(skip_all, fields(path = %path.display()))]
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(CONNECTIONS_MAX)
            .connect_with(options)
            .await
            .context("opening the local store")?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| Error::Corrupt(format!("applying the register migrations: {e}")))?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction that takes SQLite's write lock at once (`BEGIN IMMEDIATE`), so two
    /// writers queue instead of failing half-way with SQLITE_BUSY.
    pub async fn begin_write(&self) -> Result<Tx> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("starting a write transaction")
    }

    /// Closes every connection (the register shuts down, or a test simulates a crash).
    pub async fn close(&self) {
        self.pool.close().await;
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
