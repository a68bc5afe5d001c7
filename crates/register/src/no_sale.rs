//! "No sale": the cash drawer opened without a sale (change for a customer, a till check).
//! Only a manager may allow it (signed in, or approving at a cashier's till); each one is
//! recorded with who allowed it, who was signed in and why, and counted per period, so a day's
//! report or a shift's Z report shows how often the drawer opened with nothing sold. The
//! record and the drawer's pulse job are written in one transaction: a no-sale is never
//! counted without its pulse queued, nor pulsed without being counted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use crate::error::{corrupt, Context, Error, Result};
use crate::printer::Printing;
use crate::store::{now_ms, LocalDb};

/// The longest reason a no-sale keeps, in characters.
pub const REASON_CHARS_MAX: usize = 200;

/// One drawer opening with no sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoSale {
    pub id: Uuid,
    pub opened_at: DateTime<Utc>,
    /// The manager who allowed it.
    pub approved_by: String,
    /// Who was signed in at the till.
    pub signed_in: String,
    pub reason: String,
}

/// Records a no-sale and queues the drawer's pulse (`printing` must have a printer: without
/// one there is no drawer to open, and nothing is recorded).
#[tracing::instrument(skip_all, fields(approved_by))]
pub async fn record(
    db: &LocalDb,
    printing: &Printing,
    approved_by: &str,
    signed_in: &str,
    reason: &str,
) -> Result<NoSale> {
    let reason = reason.trim();
    if reason.chars().count() > REASON_CHARS_MAX {
        return Err(Error::Invalid(format!(
            "a no-sale's reason is at most {REASON_CHARS_MAX} characters"
        )));
    }
    if printing.config().is_none() {
        return Err(Error::Invalid(
            "no receipt printer is set up (KASSA_PRINTER), so there is no cash drawer to open"
                .into(),
        ));
    }
    let no_sale = NoSale {
        id: Uuid::now_v7(),
        opened_at: DateTime::from_timestamp_millis(now_ms()).unwrap_or_else(Utc::now),
        approved_by: approved_by.to_owned(),
        signed_in: signed_in.to_owned(),
        reason: reason.to_owned(),
    };
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO no_sales (id, opened_at, approved_by, signed_in, reason)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(no_sale.id.to_string())
    .bind(no_sale.opened_at.timestamp_millis())
    .bind(&no_sale.approved_by)
    .bind(&no_sale.signed_in)
    .bind(&no_sale.reason)
    .execute(&mut *tx)
    .await
    .context("recording a no-sale")?;
    printing.queue_drawer_on(&mut tx).await?;
    tx.commit().await.context("recording a no-sale")?;
    printing.kick();
    Ok(no_sale)
}

/// How many no-sales fell in `from..to` (a day, a shift).
pub async fn count_between(db: &LocalDb, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM no_sales WHERE opened_at >= ? AND opened_at < ?")
        .bind(from.timestamp_millis())
        .bind(to.timestamp_millis())
        .fetch_one(db.reader())
        .await
        .context("counting no-sales")
}

/// The no-sales in `from..to`, oldest first.
pub async fn between(db: &LocalDb, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<NoSale>> {
    let rows = sqlx::query(
        "SELECT id, opened_at, approved_by, signed_in, reason FROM no_sales
         WHERE opened_at >= ? AND opened_at < ? ORDER BY opened_at, id",
    )
    .bind(from.timestamp_millis())
    .bind(to.timestamp_millis())
    .fetch_all(db.reader())
    .await
    .context("listing no-sales")?;
    rows.iter()
        .map(|row| {
            let at: i64 = row.get("opened_at");
            Ok(NoSale {
                id: Uuid::parse_str(&row.get::<String, _>("id"))
                    .map_err(|e| corrupt("a no-sale's id", e))?,
                opened_at: DateTime::from_timestamp_millis(at)
                    .ok_or_else(|| corrupt("a no-sale's time", at))?,
                approved_by: row.get("approved_by"),
                signed_in: row.get("signed_in"),
                reason: row.get("reason"),
            })
        })
        .collect()
}
