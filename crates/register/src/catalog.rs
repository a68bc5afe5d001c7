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
    sqlx::query(
        "DELETE FROM products_fts WHERE rowid IN (SELECT search_rowid FROM products WHERE id = ?)",
    )
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
    sqlx::query(
        "DELETE FROM products_fts WHERE rowid IN (SELECT search_rowid FROM products WHERE sku = ?)",
    )
    .bind(p.sku.as_str())
    .execute(&mut **tx)
    .await
    .context("freeing a SKU's search row")?;
    sqlx::query("DELETE FROM products WHERE sku = ?")
        .bind(p.sku.as_str())
        .execute(&mut **tx)
        .await
        .context("freeing a SKU")?;
    let body = serde_json::to_string(p).map_err(|e| corrupt("product", e))?;
    let search_rowid = insert_search_row(tx, p).await?;
    sqlx::query(
        "INSERT INTO products (id, sku, name, category, brand, price_minor, currency, tax_class, version, body, search_rowid)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .bind(search_rowid)
    .execute(&mut **tx)
    .await
    .context("storing a product")?;
    insert_barcodes(tx, p).await
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

/// Indexes a product for search; returns the search row's rowid (kept on the product).
async fn insert_search_row(tx: &mut Tx, p: &Product) -> Result<i64> {
    let barcodes: Vec<&str> = p.barcodes.iter().map(Barcode::as_str).collect();
    let done = sqlx::query(
        "INSERT INTO products_fts (sku, name, brand, category, barcodes) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(p.sku.as_str())
    .bind(&p.name)
    .bind(&p.brand)
    .bind(&p.category)
    .bind(barcodes.join(" "))
    .execute(&mut **tx)
    .await
    .context("indexing a product for search")?;
    Ok(done.last_insert_rowid())
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
/// Quotes make any character safe; `None` when nothing searchable was typed. A lone letter
/// beside longer words is left out (`B-001234` searches `001234`): as a prefix it matches a
/// large part of the catalog, costs the most to intersect and narrows nothing.
pub fn fts_query(typed: &str) -> Option<String> {
    let words: Vec<&str> = typed
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(SEARCH_TERMS_MAX)
        .collect();
    let lone_letter = |w: &&str| w.chars().count() == 1 && w.chars().all(char::is_alphabetic);
    let longer = words.iter().any(|w| w.chars().count() > 1);
    let terms: Vec<String> = words
        .iter()
        .filter(|w| !(longer && lone_letter(w)))
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
        "SELECT p.body FROM (
             SELECT rowid, rank FROM products_fts WHERE products_fts MATCH ? ORDER BY rank LIMIT ?
         ) f JOIN products p ON p.search_rowid = f.rowid
         ORDER BY f.rank, p.name",
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
        assert_eq!(fts_query("B-001234"), Some("\"001234\"*".into()));
        assert_eq!(fts_query("b"), Some("\"b\"*".into()));
        assert_eq!(fts_query("a b"), Some("\"a\"* \"b\"*".into()));
    }
}

#[cfg(test)]
mod store_tests {
    use std::collections::BTreeMap;

    use kassa_domain::{Currency, Money, Sku, TaxClass};

    use super::*;

    fn product(id: Uuid, sku: &str, name: &str, barcode_body: &str) -> Product {
        Product {
            id,
            sku: Sku::parse(sku).unwrap(),
            barcodes: vec![Barcode::ean13_from_body(barcode_body).unwrap()],
            name: name.to_owned(),
            description: String::new(),
            category: "Pantry".into(),
            brand: "Kassa".into(),
            price: Money::from_minor(250, Currency::EUR),
            tax_class: TaxClass::Reduced,
            attributes: BTreeMap::new(),
            archived: false,
            version: 1,
            updated_at: chrono::Utc::now(),
            change_seq: 1,
        }
    }

    async fn names(db: &LocalDb, typed: &str) -> Vec<String> {
        search(db, typed, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect()
    }

    /// Updates, archiving and a SKU that moves to another product leave exactly one search
    /// row per stored product, each finding its own product.
    #[tokio::test]
    async fn search_rows_follow_every_change_of_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let db = LocalDb::open(&dir.path().join("r.db")).await.unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut tx = db.begin_write().await.unwrap();
        apply(&mut tx, &product(a, "A-1", "smoked salmon", "200000000001"))
            .await
            .unwrap();
        apply(&mut tx, &product(b, "B-1", "rustic bread", "200000000002"))
            .await
            .unwrap();
        // A renamed, then B archived, then A's SKU moves to a new product C.
        apply(&mut tx, &product(a, "A-1", "smoked trout", "200000000001"))
            .await
            .unwrap();
        let mut archived = product(b, "B-1", "rustic bread", "200000000002");
        archived.archived = true;
        apply(&mut tx, &archived).await.unwrap();
        let c = Uuid::now_v7();
        apply(&mut tx, &product(c, "A-1", "golden trout", "200000000003"))
            .await
            .unwrap();
        tx.commit().await.unwrap();

        assert_eq!(names(&db, "trout").await, vec!["golden trout".to_owned()]);
        assert!(names(&db, "salmon").await.is_empty());
        assert!(names(&db, "bread").await.is_empty());
        let search_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products_fts")
            .fetch_one(db.reader())
            .await
            .unwrap();
        assert_eq!((search_rows, count(&db).await.unwrap()), (1, 1));
        let found = by_barcode(&db, &Barcode::ean13_from_body("200000000003").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, c);
    }
}
