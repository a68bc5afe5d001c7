//! SQL for the catalog: products, their barcodes, and the change sequence the delta feed pages by.

use std::collections::HashMap;

use anyhow::Context;
use kassa_domain::api::{Product, ProductInput};
use kassa_domain::{Barcode, Currency, Money, Sku};
use sqlx::Row;
use uuid::Uuid;

use super::{from_ms, is_unique_violation, next_counter, now_ms, Db, Tx};

const CATALOG_COUNTER: &str = "catalog";

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("SKU {0} is already used by another product")]
    SkuTaken(String),
    #[error("barcode {0} is already used by another product")]
    BarcodeTaken(String),
    #[error("product not found")]
    NotFound,
    /// The product changed since the version the caller based its edit on.
    #[error("version conflict")]
    VersionConflict(Box<Product>),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        if is_unique_violation(&e) {
            // A concurrent writer took the SKU or barcode between our check and our insert.
            Self::SkuTaken("(taken concurrently)".into())
        } else {
            Self::Other(anyhow::Error::from(e).context("writing product"))
        }
    }
}

fn decode(row: &sqlx::any::AnyRow, barcodes: Vec<Barcode>) -> anyhow::Result<Product> {
    let id: String = row.try_get("id")?;
    let sku: String = row.try_get("sku")?;
    let currency: String = row.try_get("currency")?;
    let currency: Currency = currency
        .parse()
        .map_err(|e| anyhow::anyhow!("stored currency: {e}"))?;
    let tax_class: String = row.try_get("tax_class")?;
    let attributes: String = row.try_get("attributes")?;
    let archived: i64 = row.try_get("archived")?;
    Ok(Product {
        id: id.parse().context("product id")?,
        sku: Sku::parse(&sku).context("stored sku")?,
        barcodes,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        category: row.try_get("category")?,
        brand: row.try_get("brand")?,
        price: Money::from_minor(row.try_get("price_minor")?, currency),
        tax_class: tax_class
            .parse()
            .map_err(|e| anyhow::anyhow!("stored tax class: {e}"))?,
        attributes: serde_json::from_str(&attributes).context("stored attributes")?,
        archived: archived != 0,
        version: row.try_get("version")?,
        updated_at: from_ms(row.try_get("updated_at")?),
        change_seq: row.try_get("change_seq")?,
    })
}

/// Loads the barcodes of `ids`, in their stored order.
async fn barcodes_of<'e, E>(
    exec: E,
    ids: &[String],
) -> anyhow::Result<HashMap<String, Vec<Barcode>>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let mut map: HashMap<String, Vec<Barcode>> = HashMap::new();
    if ids.is_empty() {
        return Ok(map);
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT product_id, barcode FROM product_barcodes WHERE product_id IN ({}) ORDER BY product_id, position",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(id);
    }
    for row in query.fetch_all(exec).await.context("loading barcodes")? {
        let product_id: String = row.try_get("product_id")?;
        let barcode: String = row.try_get("barcode")?;
        map.entry(product_id)
            .or_default()
            .push(Barcode::parse(&barcode).context("stored barcode")?);
    }
    Ok(map)
}

async fn decode_all<'e, E>(exec: E, rows: Vec<sqlx::any::AnyRow>) -> anyhow::Result<Vec<Product>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut barcodes = barcodes_of(exec, &ids).await?;
    rows.iter()
        .zip(&ids)
        .map(|(row, id)| decode(row, barcodes.remove(id).unwrap_or_default()))
        .collect()
}

async fn get_in(tx: &mut Tx, id: &str) -> anyhow::Result<Option<Product>> {
    let row = sqlx::query("SELECT * FROM products WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .context("loading product")?;
    match row {
        Some(row) => Ok(decode_all(&mut **tx, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

#[tracing::instrument(skip_all, fields(%id))]
pub async fn get(db: &Db, id: Uuid) -> anyhow::Result<Option<Product>> {
    let row = sqlx::query("SELECT * FROM products WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await
        .context("loading product")?;
    match row {
        Some(row) => Ok(decode_all(db.pool(), vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// Products changed after `since` (exclusive), oldest change first, at most `limit`.
#[tracing::instrument(skip_all, fields(since, limit))]
pub async fn changed_since(db: &Db, since: i64, limit: i64) -> anyhow::Result<Vec<Product>> {
    let rows =
        sqlx::query("SELECT * FROM products WHERE change_seq > $1 ORDER BY change_seq LIMIT $2")
            .bind(since)
            .bind(limit)
            .fetch_all(db.pool())
            .await
            .context("reading the catalog feed")?;
    decode_all(db.pool(), rows).await
}

async fn check_unique(tx: &mut Tx, input: &ProductInput, own_id: &str) -> Result<(), WriteError> {
    let sku_owner: Option<String> = sqlx::query_scalar("SELECT id FROM products WHERE sku = $1")
        .bind(input.sku.as_ref())
        .fetch_optional(&mut **tx)
        .await
        .context("checking sku")?;
    if sku_owner.is_some_and(|owner| owner != own_id) {
        return Err(WriteError::SkuTaken(input.sku.to_string()));
    }
    for barcode in &input.barcodes {
        let owner: Option<String> =
            sqlx::query_scalar("SELECT product_id FROM product_barcodes WHERE barcode = $1")
                .bind(barcode.as_ref())
                .fetch_optional(&mut **tx)
                .await
                .context("checking barcode")?;
        if owner.is_some_and(|owner| owner != own_id) {
            return Err(WriteError::BarcodeTaken(barcode.to_string()));
        }
    }
    Ok(())
}

async fn write_barcodes(tx: &mut Tx, id: &str, barcodes: &[Barcode]) -> Result<(), WriteError> {
    sqlx::query("DELETE FROM product_barcodes WHERE product_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .context("clearing barcodes")?;
    for (position, barcode) in barcodes.iter().enumerate() {
        sqlx::query(
            "INSERT INTO product_barcodes (barcode, product_id, position) VALUES ($1, $2, $3)",
        )
        .bind(barcode.as_ref())
        .bind(id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn attributes_json(input: &ProductInput) -> anyhow::Result<String> {
    serde_json::to_string(&input.attributes).context("encoding attributes")
}

/// Writes `product.created` / `product.updated` in the write's transaction: what a consumer needs
/// to find the row again (the product itself is read from the catalog, at `change_seq` or later).
async fn record_change(
    tx: &mut Tx,
    event_type: &str,
    id: &str,
    sku: &Sku,
    version: i64,
    change_seq: i64,
) -> anyhow::Result<()> {
    let payload = serde_json::json!({
        "id": id, "sku": sku, "version": version, "change_seq": change_seq,
    });
    super::events::record(tx, event_type, "product", id, &payload).await?;
    Ok(())
}

/// Inserts a product at version 1.
#[tracing::instrument(skip_all, fields(sku = %input.sku))]
pub async fn insert(db: &Db, input: &ProductInput) -> Result<Product, WriteError> {
    let id = Uuid::now_v7().to_string();
    let mut tx = db.begin_write().await?;
    check_unique(&mut tx, input, &id).await?;
    insert_in(&mut tx, &id, input).await?;
    let product = get_in(&mut tx, &id)
        .await?
        .context("reading back the product")?;
    tx.commit().await.context("committing product")?;
    Ok(product)
}

/// Inserts many new products in one transaction (bulk imports, benchmarks): all or none.
#[tracing::instrument(skip_all, fields(n = inputs.len()))]
pub async fn insert_many(db: &Db, inputs: &[ProductInput]) -> Result<(), WriteError> {
    let mut tx = db.begin_write().await?;
    for input in inputs {
        let id = Uuid::now_v7().to_string();
        check_unique(&mut tx, input, &id).await?;
        insert_in(&mut tx, &id, input).await?;
    }
    tx.commit().await.context("committing products")?;
    Ok(())
}

async fn insert_in(tx: &mut Tx, id: &str, input: &ProductInput) -> Result<(), WriteError> {
    let seq = next_counter(tx, CATALOG_COUNTER).await?;
    let now = now_ms();
    sqlx::query(
        "INSERT INTO products (id, sku, name, description, category, brand, price_minor, currency, \
         tax_class, attributes, archived, version, change_seq, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $13, $13)",
    )
    .bind(id)
    .bind(input.sku.as_ref())
    .bind(&input.name)
    .bind(&input.description)
    .bind(&input.category)
    .bind(&input.brand)
    .bind(input.price.to_minor())
    .bind(input.price.currency().code())
    .bind(input.tax_class.to_string())
    .bind(attributes_json(input)?)
    .bind(i64::from(input.archived))
    .bind(seq)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    write_barcodes(tx, id, &input.barcodes).await?;
    record_change(tx, "product.created", id, &input.sku, 1, seq).await?;
    Ok(())
}

/// Replaces a product's editable fields if its version is still `expected_version`.
#[tracing::instrument(skip_all, fields(%id, expected_version))]
pub async fn update(
    db: &Db,
    id: Uuid,
    expected_version: i64,
    input: &ProductInput,
) -> Result<Product, WriteError> {
    let id = id.to_string();
    let mut tx = db.begin_write().await?;
    // The counter row lock also serialises concurrent edits of this product on PostgreSQL.
    let seq = next_counter(&mut tx, CATALOG_COUNTER).await?;
    let current = get_in(&mut tx, &id).await?.ok_or(WriteError::NotFound)?;
    if current.version != expected_version {
        return Err(WriteError::VersionConflict(Box::new(current)));
    }
    check_unique(&mut tx, input, &id).await?;
    sqlx::query(
        "UPDATE products SET sku = $1, name = $2, description = $3, category = $4, brand = $5, \
         price_minor = $6, currency = $7, tax_class = $8, attributes = $9, archived = $10, \
         version = version + 1, change_seq = $11, updated_at = $12 WHERE id = $13 AND version = $14",
    )
    .bind(input.sku.as_ref())
    .bind(&input.name)
    .bind(&input.description)
    .bind(&input.category)
    .bind(&input.brand)
    .bind(input.price.to_minor())
    .bind(input.price.currency().code())
    .bind(input.tax_class.to_string())
    .bind(attributes_json(input)?)
    .bind(i64::from(input.archived))
    .bind(seq)
    .bind(now_ms())
    .bind(&id)
    .bind(expected_version)
    .execute(&mut *tx)
    .await?;
    write_barcodes(&mut tx, &id, &input.barcodes).await?;
    let product = get_in(&mut tx, &id)
        .await?
        .context("reading back the product")?;
    record_change(
        &mut tx,
        "product.updated",
        &id,
        &product.sku,
        product.version,
        product.change_seq,
    )
    .await?;
    tx.commit().await.context("committing product update")?;
    Ok(product)
}

/// The product with this SKU (archived ones included; callers decide).
pub async fn by_sku(conn: &mut sqlx::AnyConnection, sku: &str) -> anyhow::Result<Option<Product>> {
    let row = sqlx::query("SELECT * FROM products WHERE sku = $1")
        .bind(sku)
        .fetch_optional(&mut *conn)
        .await
        .context("loading product by sku")?;
    match row {
        Some(row) => Ok(decode_all(&mut *conn, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// What pricing a line needs of a product.
#[derive(Debug, Clone)]
pub struct PriceRow {
    pub name: String,
    pub price: Money,
    pub tax_class: kassa_domain::TaxClass,
    pub archived: bool,
}

/// A product's name, price, tax class and archived flag by SKU, in one statement (no barcodes).
pub async fn price_by_sku(
    conn: &mut sqlx::AnyConnection,
    sku: &str,
) -> anyhow::Result<Option<PriceRow>> {
    let row = sqlx::query(
        "SELECT name, price_minor, currency, tax_class, archived FROM products WHERE sku = $1",
    )
    .bind(sku)
    .fetch_optional(&mut *conn)
    .await
    .context("loading a price by sku")?;
    let Some(row) = row else { return Ok(None) };
    let currency: String = row.try_get("currency")?;
    let currency: Currency = currency
        .parse()
        .map_err(|e| anyhow::anyhow!("stored currency: {e}"))?;
    let tax_class: String = row.try_get("tax_class")?;
    let archived: i64 = row.try_get("archived")?;
    Ok(Some(PriceRow {
        name: row.try_get("name")?,
        price: Money::from_minor(row.try_get("price_minor")?, currency),
        tax_class: tax_class
            .parse()
            .map_err(|e| anyhow::anyhow!("stored tax class: {e}"))?,
        archived: archived != 0,
    }))
}

/// Products whose stock changed at or after `since_ms` (any location), at most `limit`, in SKU
/// order after `after_sku` (the search index pages through them).
pub async fn stock_changed_since(
    db: &Db,
    since_ms: i64,
    after_sku: &str,
    limit: i64,
) -> anyhow::Result<Vec<Product>> {
    let rows = sqlx::query(
        "SELECT * FROM products WHERE sku > $1 AND sku IN \
         (SELECT sku FROM stock WHERE updated_at >= $2) ORDER BY sku LIMIT $3",
    )
    .bind(after_sku)
    .bind(since_ms)
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .context("reading products with changed stock")?;
    decode_all(db.pool(), rows).await
}
