//! SQL for carts: the cart rows, their lines (priced when added), the catalog prices and stock
//! figures a cart write reads, and the purge of expired carts.
//!
//! Every function but [`purge_expired`] runs inside the caller's transaction, so that the carts
//! capability can read, decide and write in one.

use anyhow::Context;
use kassa_domain::{Currency, Sku, TaxClass};
use sqlx::Row;

use super::{Db, Tx};

/// A cart as stored. Exactly one of `owner_id` (a user's cart) and `token_hash` (a guest's) is set.
/// A guest cart kept in Redis is this, as JSON (`carts::in_redis`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredCart {
    pub id: String,
    pub owner_id: Option<String>,
    pub token_hash: Option<String>,
    pub location_id: String,
    pub location_code: String,
    pub currency: Currency,
    pub expires_at: i64,
    pub version: i64,
    pub lines: Vec<StoredLine>,
}

/// A line with what the product was when it was added.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredLine {
    pub sku: Sku,
    pub qty: u32,
    pub unit_price_minor: i64,
    pub currency: Currency,
    pub name: String,
    pub tax_class: TaxClass,
    pub added_at: i64,
}

/// A product's current selling data, as a new cart line copies it.
#[derive(Debug, Clone)]
pub struct CatalogPrice {
    pub name: String,
    pub price_minor: i64,
    pub currency: Currency,
    pub tax_class: TaxClass,
    pub archived: bool,
}

fn currency(raw: &str) -> anyhow::Result<Currency> {
    raw.parse()
        .map_err(|e| anyhow::anyhow!("stored currency: {e}"))
}

fn tax_class(raw: &str) -> anyhow::Result<TaxClass> {
    raw.parse()
        .map_err(|e| anyhow::anyhow!("stored tax class: {e}"))
}

fn decode_line(row: &sqlx::any::AnyRow) -> anyhow::Result<StoredLine> {
    let sku: String = row.try_get("sku")?;
    let qty: i64 = row.try_get("qty")?;
    let line_currency: String = row.try_get("currency")?;
    let class: String = row.try_get("tax_class")?;
    Ok(StoredLine {
        sku: Sku::parse(&sku).context("stored sku")?,
        qty: u32::try_from(qty).context("stored qty")?,
        unit_price_minor: row.try_get("unit_price_minor")?,
        currency: currency(&line_currency)?,
        name: row.try_get("name")?,
        tax_class: tax_class(&class)?,
        added_at: row.try_get("added_at")?,
    })
}

/// Loads a cart with its lines; `lock` is [`Db::for_update`] when the caller will write it.
#[tracing::instrument(skip_all, fields(cart_id = id))]
pub async fn load(tx: &mut Tx, id: &str, lock: &str) -> anyhow::Result<Option<StoredCart>> {
    let sql = format!(
        "SELECT id, owner_id, token_hash, location_id, currency, expires_at, version FROM carts WHERE id = $1{lock}"
    );
    let Some(row) = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .context("loading cart")?
    else {
        return Ok(None);
    };
    let location_id: String = row.try_get("location_id")?;
    // Read apart from the cart so that a locked cart does not lock its location row too.
    let location_code: String = sqlx::query_scalar("SELECT code FROM locations WHERE id = $1")
        .bind(&location_id)
        .fetch_one(&mut **tx)
        .await
        .context("loading cart location")?;
    let lines = sqlx::query("SELECT * FROM cart_lines WHERE cart_id = $1 ORDER BY position")
        .bind(id)
        .fetch_all(&mut **tx)
        .await
        .context("loading cart lines")?;
    let cart_currency: String = row.try_get("currency")?;
    Ok(Some(StoredCart {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        token_hash: row.try_get("token_hash")?,
        location_id,
        location_code,
        currency: currency(&cart_currency)?,
        expires_at: row.try_get("expires_at")?,
        version: row.try_get("version")?,
        lines: lines
            .iter()
            .map(decode_line)
            .collect::<anyhow::Result<_>>()?,
    }))
}

/// The id of `owner_id`'s cart, live or expired, locked with `lock`.
#[tracing::instrument(skip_all)]
pub async fn user_cart_id(
    tx: &mut Tx,
    owner_id: &str,
    lock: &str,
) -> anyhow::Result<Option<String>> {
    let sql = format!("SELECT id FROM carts WHERE owner_id = $1{lock}");
    sqlx::query_scalar(&sql)
        .bind(owner_id)
        .fetch_optional(&mut **tx)
        .await
        .context("finding user cart")
}

/// A cart to insert, empty.
#[derive(Debug)]
pub struct NewCart<'a> {
    pub id: &'a str,
    pub owner_id: Option<&'a str>,
    pub token_hash: Option<&'a str>,
    pub location_id: &'a str,
    pub currency: Currency,
    pub expires_at: i64,
    pub now: i64,
}

/// Inserts an empty cart at version 1; `false` when the owner already has one (a concurrent
/// request made it first).
#[tracing::instrument(skip_all)]
pub async fn insert(tx: &mut Tx, cart: &NewCart<'_>) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO carts (id, owner_id, token_hash, location_id, currency, expires_at, created_at, \
         updated_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1) ON CONFLICT DO NOTHING",
    )
    .bind(cart.id)
    .bind(cart.owner_id)
    .bind(cart.token_hash)
    .bind(cart.location_id)
    .bind(cart.currency.code())
    .bind(cart.expires_at)
    .bind(cart.now)
    .execute(&mut **tx)
    .await
    .context("inserting cart")?;
    Ok(done.rows_affected() == 1)
}

/// Replaces a cart's lines, bumps its version and moves its expiry to `expires_at`.
#[tracing::instrument(skip_all, fields(cart_id = id, lines = lines.len()))]
pub async fn replace_lines(
    tx: &mut Tx,
    id: &str,
    lines: &[StoredLine],
    expires_at: i64,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM cart_lines WHERE cart_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .context("clearing cart lines")?;
    for (position, line) in lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO cart_lines (cart_id, sku, position, qty, unit_price_minor, currency, name, \
             tax_class, added_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(line.sku.as_ref())
        .bind(i64::try_from(position).context("line position")?)
        .bind(i64::from(line.qty))
        .bind(line.unit_price_minor)
        .bind(line.currency.code())
        .bind(&line.name)
        .bind(line.tax_class.to_string())
        .bind(line.added_at)
        .execute(&mut **tx)
        .await
        .context("inserting cart line")?;
    }
    sqlx::query(
        "UPDATE carts SET version = version + 1, updated_at = $1, expires_at = $2 WHERE id = $3",
    )
    .bind(now)
    .bind(expires_at)
    .bind(id)
    .execute(&mut **tx)
    .await
    .context("updating cart")?;
    Ok(())
}

/// Deletes a cart and its lines.
#[tracing::instrument(skip_all, fields(cart_id = id))]
pub async fn delete(tx: &mut Tx, id: &str) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM cart_lines WHERE cart_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .context("deleting cart lines")?;
    sqlx::query("DELETE FROM carts WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .context("deleting cart")?;
    Ok(())
}

/// Records that guest cart `id` (kept in Redis) was merged; `false` when it was already. The
/// record is the merge's proof against a second merge of the same cart, whatever Redis still
/// holds (the cart's key is deleted only after this commits); it is forgotten at `forget_at`,
/// when Redis has dropped the key anyway. On PostgreSQL a concurrent merge of the same cart
/// waits here for the first to end.
#[tracing::instrument(skip_all, fields(cart_id = id))]
pub async fn claim_merge(tx: &mut Tx, id: &str, forget_at: i64, now: i64) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO merged_guest_carts (cart_id, merged_at, forget_at) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(now)
    .bind(forget_at)
    .execute(&mut **tx)
    .await
    .context("recording a guest cart merge")?;
    Ok(done.rows_affected() == 1)
}

/// Forgets merge records whose `forget_at` is at or before `now`; returns how many.
#[tracing::instrument(skip_all)]
pub async fn forget_merges(db: &Db, now: i64) -> anyhow::Result<u64> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query("DELETE FROM merged_guest_carts WHERE forget_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("forgetting old guest cart merges")?;
    tx.commit().await.context("committing merge records")?;
    Ok(done.rows_affected())
}

/// The product's current name, price and tax class, by SKU.
#[tracing::instrument(skip_all, fields(%sku))]
pub async fn catalog_price(tx: &mut Tx, sku: &Sku) -> anyhow::Result<Option<CatalogPrice>> {
    let row = sqlx::query(
        "SELECT name, price_minor, currency, tax_class, archived FROM products WHERE sku = $1",
    )
    .bind(sku.as_ref())
    .fetch_optional(&mut **tx)
    .await
    .context("looking up product price")?;
    let Some(row) = row else { return Ok(None) };
    let price_currency: String = row.try_get("currency")?;
    let class: String = row.try_get("tax_class")?;
    let archived: i64 = row.try_get("archived")?;
    Ok(Some(CatalogPrice {
        name: row.try_get("name")?,
        price_minor: row.try_get("price_minor")?,
        currency: currency(&price_currency)?,
        tax_class: tax_class(&class)?,
        archived: archived != 0,
    }))
}

/// `on_hand − reserved` of `sku` at the location; 0 when there is no stock row.
#[tracing::instrument(skip_all, fields(%sku))]
pub async fn available(tx: &mut Tx, sku: &Sku, location_id: &str) -> anyhow::Result<i64> {
    let available: Option<i64> = sqlx::query_scalar(
        "SELECT on_hand - reserved FROM stock WHERE sku = $1 AND location_id = $2",
    )
    .bind(sku.as_ref())
    .bind(location_id)
    .fetch_optional(&mut **tx)
    .await
    .context("reading available stock")?;
    Ok(available.unwrap_or(0).max(0))
}

/// Deletes carts whose `expires_at` is at or before `now`, `batch_max` per transaction so that no
/// one transaction holds the write lock for long. Returns how many carts went.
#[tracing::instrument(skip_all)]
pub async fn purge_expired(db: &Db, now: i64, batch_max: i64) -> anyhow::Result<u64> {
    let mut purged = 0;
    loop {
        let mut tx = db.begin_write().await?;
        // Locked on PostgreSQL, which re-checks the expiry of a cart a concurrent write just
        // extended, so a cart written meanwhile is kept.
        let sql = format!(
            "SELECT id FROM carts WHERE expires_at <= $1 LIMIT $2{}",
            db.for_update()
        );
        let ids: Vec<String> = sqlx::query_scalar(&sql)
            .bind(now)
            .bind(batch_max)
            .fetch_all(&mut *tx)
            .await
            .context("finding expired carts")?;
        for id in &ids {
            delete(&mut tx, id).await?;
        }
        tx.commit().await.context("committing cart purge")?;
        purged += u64::try_from(ids.len()).unwrap_or(u64::MAX);
        if i64::try_from(ids.len()).unwrap_or(i64::MAX) < batch_max {
            return Ok(purged);
        }
    }
}
