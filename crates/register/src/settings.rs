//! What Central decides for every till, as last pulled by the sync round
//! (`GET /v1/settings/sale`): the cashier's discount limit. Until the first pull the
//! register's configuration ([`crate::sale::SaleLimits`]) applies. And the store's time zone
//! (from `GET /v1/locations`), by which reports and Z reports group days: UTC until pulled.
//! And the store's cash rounding rule (from the same list): none until pulled.

use kassa_domain::approval::SaleSettings;

use crate::error::{corrupt, Context, Result};
use crate::store::{now_ms, LocalDb};

const SALE: &str = "sale";

/// The sale settings last pulled from Central, or `None` before the first pull.
pub async fn sale(db: &LocalDb) -> Result<Option<SaleSettings>> {
    let value: Option<String> =
        sqlx::query_scalar("SELECT value FROM central_settings WHERE name = ?")
            .bind(SALE)
            .fetch_optional(db.reader())
            .await
            .context("reading Central's sale settings")?;
    value
        .map(|v| serde_json::from_str(&v).map_err(|e| corrupt("stored sale settings", e)))
        .transpose()
}

/// Keeps the sale settings Central answered.
pub async fn save_sale(db: &LocalDb, settings: &SaleSettings) -> Result<()> {
    let value = serde_json::to_string(settings).map_err(|e| corrupt("sale settings", e))?;
    sqlx::query(
        "INSERT INTO central_settings (name, value, pulled_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, pulled_at = excluded.pulled_at",
    )
    .bind(SALE)
    .bind(value)
    .bind(now_ms())
    .execute(db.pool())
    .await
    .context("keeping Central's sale settings")?;
    Ok(())
}

/// The cashier's discount limit (percent of a line): Central's once pulled, else `default`.
pub async fn discount_limit_percent(db: &LocalDb, default: u32) -> Result<u32> {
    Ok(sale(db)
        .await?
        .map_or(default, |s| s.discount_limit_percent)
        .min(100))
}

const TIME_ZONE: &str = "time_zone";

/// Keeps the store's time zone (an IANA name) as Central has it.
pub async fn save_time_zone(db: &LocalDb, name: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO central_settings (name, value, pulled_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, pulled_at = excluded.pulled_at",
    )
    .bind(TIME_ZONE)
    .bind(name)
    .bind(now_ms())
    .execute(db.pool())
    .await
    .context("keeping the store's time zone")?;
    Ok(())
}

/// The store's time zone: as last pulled, UTC before the first pull (or for a name this
/// machine's time zone database does not know, which is logged).
pub async fn time_zone_on(conn: &mut sqlx::SqliteConnection) -> Result<jiff::tz::TimeZone> {
    let name: Option<String> =
        sqlx::query_scalar("SELECT value FROM central_settings WHERE name = ?")
            .bind(TIME_ZONE)
            .fetch_optional(&mut *conn)
            .await
            .context("reading the store's time zone")?;
    Ok(name.map_or(jiff::tz::TimeZone::UTC, |name| {
        jiff::tz::TimeZone::get(&name).unwrap_or_else(|err| {
            tracing::warn!(%name, %err, "unknown time zone; days are UTC days");
            jiff::tz::TimeZone::UTC
        })
    }))
}

/// [`time_zone_on`] from the pool.
pub async fn time_zone(db: &LocalDb) -> Result<jiff::tz::TimeZone> {
    let mut conn = db
        .reader()
        .acquire()
        .await
        .context("reading the store's time zone")?;
    time_zone_on(&mut conn).await
}

const CASH_ROUNDING: &str = "cash_rounding";

/// Keeps the store's cash rounding rule as Central has it.
pub async fn save_cash_rounding(db: &LocalDb, rule: kassa_domain::CashRounding) -> Result<()> {
    sqlx::query(
        "INSERT INTO central_settings (name, value, pulled_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, pulled_at = excluded.pulled_at",
    )
    .bind(CASH_ROUNDING)
    .bind(rule.to_string())
    .bind(now_ms())
    .execute(db.pool())
    .await
    .context("keeping the store's cash rounding")?;
    Ok(())
}

/// The store's cash rounding rule: as last pulled, none before the first pull.
pub async fn cash_rounding_on(
    conn: &mut sqlx::SqliteConnection,
) -> Result<kassa_domain::CashRounding> {
    let value: Option<String> =
        sqlx::query_scalar("SELECT value FROM central_settings WHERE name = ?")
            .bind(CASH_ROUNDING)
            .fetch_optional(&mut *conn)
            .await
            .context("reading the store's cash rounding")?;
    let Some(value) = value else {
        return Ok(kassa_domain::CashRounding::NONE);
    };
    value
        .parse::<i64>()
        .ok()
        .and_then(|minor| kassa_domain::CashRounding::new(minor).ok())
        .ok_or_else(|| crate::error::corrupt("the cash rounding setting", value))
}

/// [`cash_rounding_on`] from the pool.
pub async fn cash_rounding(db: &LocalDb) -> Result<kassa_domain::CashRounding> {
    let mut conn = db
        .reader()
        .acquire()
        .await
        .context("reading the store's cash rounding")?;
    cash_rounding_on(&mut conn).await
}
