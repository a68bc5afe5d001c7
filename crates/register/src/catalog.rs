//! The local catalog cache: active products with a barcode index and an FTS5 search table,
//! fed by Central's delta feed (archived products are dropped) and by a manager's local edits.

use kassa_domain::api::Product;
use kassa_domain::Barcode;
use uuid::Uuid;

use crate::error::{corrupt, Context, Result};
use crate::store::{LocalDb, Tx};

/// The most hits one search returns.
pub const SEARCH_HITS_MAX: u32 = 50;
/// Search terms beyond this many are ignored (a scanner gun in the search box).
const SEARCH_TERMS_MAX: usize = 8;

/// Stores a product from the feed: upserted when active, dropped when archived.
pub async fn apply(tx: &mut Tx, product: &Product) -> Result<()> {
    remove(tx, product.id).await?;
    if product.archived {
        return Ok(());
    }
    insert(tx, product).await
}

/// Removes a product and its barcodes and search row (nothing if absent).
pub async fn remove(tx: &mut Tx, id: Uuid) -> Result<()> {
    let id = id.to_string();
    sqlx::query("DELETE FROM products_fts WHERE product_id = ?")
        .bind(&id)
        .execute(&mut **tx)
        .await
        .context("removing a product from search")?;
    sqlx::query("DELETE FROM products WHERE id = ?")
        .bind(&id)
        .execute(&mut **tx)
        .await
        .context("removing a product")?;
    Ok(())
}

async fn insert(tx: &mut Tx, p: &Product) -> Result<()> {
    // A SKU that moved to another product id: the newer row wins.
    sqlx::query("DELETE FROM products WHERE sku = ?")
        .bind(p.sku.as_str())
        .execute(&mut **tx)
        .await
        .context("freeing a SKU")?;
    let body = serde_json::to_string(p).map_err(|e| corrupt("product", e))?;
    sqlx::query(
        "INSERT INTO products (id, sku, name, category, brand, price_minor, currency, tax_class, version, body)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(p.id.to_string())
    .bind(p.sku.as_str())
    .bind(&p.name)
    .bind(&p.category)
    .bind(&p.brand)
    .bind(p.price.to_minor())
    .bind(p.price.currency().code())
    .bind(p.tax_class.as_str())
    .bind(p.version)
    .bind(body)
    .execute(&mut **tx)
    .await
    .context("storing a product")?;
    insert_barcodes(tx, p).await?;
    insert_search_row(tx, p).await
}

async fn insert_barcodes(tx: &mut Tx, p: &Product) -> Result<()> {
    for barcode in &p.barcodes {
        sqlx::query(
            "INSERT INTO product_barcodes (barcode, product_id) VALUES (?, ?)
             ON CONFLICT (barcode) DO UPDATE SET product_id = excluded.product_id",
        )
        .bind(barcode.as_str())
        .bind(p.id.to_string())
        .execute(&mut **tx)
        .await
        .context("indexing a barcode")?;
    }
    Ok(())
}

async fn insert_search_row(tx: &mut Tx, p: &Product) -> Result<()> {
    let barcodes: Vec<&str> = p.barcodes.iter().map(Barcode::as_str).collect();
    sqlx::query(
        "INSERT INTO products_fts (product_id, sku, name, brand, category, barcodes)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(p.id.to_string())
    .bind(p.sku.as_str())
    .bind(&p.name)
    .bind(&p.brand)
    .bind(&p.category)
    .bind(barcodes.join(" "))
    .execute(&mut **tx)
    .await
    .context("indexing a product for search")?;
    Ok(())
}

fn parse_body(body: &str) -> Result<Product> {
    serde_json::from_str(body).map_err(|e| corrupt("stored product", e))
}

/// The product a scanned barcode belongs to.
#[tracing::instrument(skip_all)]
pub async fn by_barcode(db: &LocalDb, barcode: &Barcode) -> Result<Option<Product>> {
    let body: Option<String> = sqlx::query_scalar(
        "SELECT p.body FROM product_barcodes b JOIN products p ON p.id = b.product_id
         WHERE b.barcode = ?",
    )
    .bind(barcode.as_str())
    .fetch_optional(db.reader())
    .await
    .context("looking up a barcode")?;
    body.as_deref().map(parse_body).transpose()
}

pub async fn by_sku(db: &LocalDb, sku: &str) -> Result<Option<Product>> {
    let body: Option<String> = sqlx::query_scalar("SELECT body FROM products WHERE sku = ?")
        .bind(sku)
        .fetch_optional(db.reader())
        .await
        .context("looking up a SKU")?;
    body.as_deref().map(parse_body).transpose()
}

pub async fn by_id(db: &LocalDb, id: Uuid) -> Result<Option<Product>> {
    let body: Option<String> = sqlx::query_scalar("SELECT body FROM products WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(db.reader())
        .await
        .context("looking up a product")?;
    body.as_deref().map(parse_body).transpose()
}

/// How many active products the cache holds.
pub async fn count(db: &LocalDb) -> Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(db.reader())
        .await
        .context("counting products")
}

/// Turns what the cashier typed into an FTS5 query: every word a prefix, all words required.
/// Quotes make any character safe; `None` when nothing searchable was typed.
pub fn fts_query(typed: &str) -> Option<String> {
    let terms: Vec<String> = typed
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(SEARCH_TERMS_MAX)
        .map(|t| format!("\"{}\"*", t.to_lowercase()))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// Instant search by name, SKU, brand, category or barcode, best match first.
#[tracing::instrument(skip_all)]
pub async fn search(db: &LocalDb, typed: &str, limit: u32) -> Result<Vec<Product>> {
    let Some(query) = fts_query(typed) else {
        return Ok(Vec::new());
    };
    let bodies: Vec<String> = sqlx::query_scalar(
        "SELECT p.body FROM products_fts f JOIN products p ON p.id = f.product_id
         WHERE products_fts MATCH ? ORDER BY bm25(products_fts, 0.0, 4.0, 8.0, 2.0, 1.0, 4.0), p.name
         LIMIT ?",
    )
    .bind(query)
    .bind(limit.min(SEARCH_HITS_MAX))
    .fetch_all(db.reader())
    .await
    .context("searching the catalog")?;
    bodies.iter().map(|b| parse_body(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_text_becomes_a_safe_prefix_query() {
        assert_eq!(fts_query("  "), None);
        assert_eq!(fts_query("Cof"), Some("\"cof\"*".into()));
        assert_eq!(
            fts_query("SKU-1 \"mug\" OR"),
            Some("\"sku\"* \"1\"* \"mug\"* \"or\"*".into())
        );
    }
}
