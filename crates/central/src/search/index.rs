//! The search index on disk (tantivy): its schema, one document per live product, and the
//! refresher that keeps it near real time by following the catalog change feed (`change_seq`,
//! gap-free and in commit order) and the stock rows that changed (for `in_stock`). The last
//! applied change sequence is stored in the index's own commit payload, so a restart resumes
//! where it stopped and `kassa-central reindex` rebuilds from scratch.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use anyhow::Context;
use kassa_domain::api::Product;
use sqlx::Row;
use tantivy::schema::{Field, Schema, FAST, INDEXED, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::store::{self, now_ms, Db};

/// Products read from the database per round trip while catching up.
const REFRESH_BATCH_PRODUCTS: i64 = 1000;
/// Stock rows changed this long before the previous check are looked at again (a write that
/// committed late with an earlier timestamp is still seen).
const STOCK_OVERLAP_MS: i64 = 5000;
/// The index writer's memory budget.
const WRITER_HEAP_BYTES: usize = 50_000_000;

/// The schema's fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub id: Field,
    pub sku: Field,
    pub barcode: Field,
    pub name: Field,
    pub description: Field,
    pub brand_text: Field,
    pub attributes: Field,
    pub category: Field,
    pub brand: Field,
    pub price_minor: Field,
    pub currency: Field,
    pub in_stock: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        sku: b.add_text_field("sku", STRING | STORED),
        barcode: b.add_text_field("barcode", STRING),
        name: b.add_text_field("name", TEXT | STORED),
        description: b.add_text_field("description", TEXT),
        brand_text: b.add_text_field("brand_text", TEXT),
        attributes: b.add_text_field("attributes", TEXT),
        category: b.add_text_field("category", STRING | FAST | STORED),
        brand: b.add_text_field("brand", STRING | FAST | STORED),
        price_minor: b.add_i64_field("price_minor", INDEXED | FAST | STORED),
        currency: b.add_text_field("currency", STRING | STORED),
        in_stock: b.add_u64_field("in_stock", INDEXED | FAST | STORED),
    };
    (b.build(), fields)
}

/// The index with its reader and its one writer.
pub struct SearchIndex {
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Fields,
    writer: Mutex<IndexWriter>,
    /// Held while a commit makes its documents visible and records its sequence, and while a
    /// search takes its view: a search never sees documents newer than the sequence it reports.
    view: std::sync::RwLock<()>,
    /// The catalog change sequence applied so far.
    applied_seq: AtomicI64,
    /// Stock rows changed at or after this (ms) still need a look.
    stock_checked_ms: AtomicI64,
    /// When the index last caught up with the database (ms).
    caught_up_ms: AtomicI64,
    /// The database the stored index was built from (its `database_id` setting), as read from
    /// the last commit; checked against the database at the first refresh.
    built_from: Mutex<Option<String>>,
    /// The database id once checked: the check reads (and may write) a settings row, so it runs
    /// at the first refresh only, not on every tick.
    origin: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("applied_seq", &self.applied_seq())
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens the index in `dir` (creating it), or an in-memory one when `dir` is `None`.
    pub fn open(dir: Option<&Path>) -> anyhow::Result<Self> {
        let (schema, fields) = schema();
        let index = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating search index dir {}", dir.display()))?;
                let mmap = tantivy::directory::MmapDirectory::open(dir)
                    .with_context(|| format!("opening search index dir {}", dir.display()))?;
                Index::open_or_create(mmap, schema).context("opening the search index")?
            }
            None => Index::create_in_ram(schema),
        };
        // The commit payload is `<database id> <applied change_seq>`.
        let payload = index
            .load_metas()
            .context("reading the search index's metadata")?
            .payload
            .unwrap_or_default();
        let (built_from, applied) = payload.split_once(' ').unwrap_or(("", "0"));
        let applied = applied.parse::<i64>().unwrap_or(0);
        let built_from = Some(built_from.to_owned()).filter(|b| !b.is_empty());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .context("opening the search index reader")?;
        let writer = index
            .writer_with_num_threads(1, WRITER_HEAP_BYTES)
            .context("opening the search index writer")?;
        Ok(Self {
            index,
            reader,
            fields,
            writer: Mutex::new(writer),
            view: std::sync::RwLock::new(()),
            applied_seq: AtomicI64::new(applied),
            stock_checked_ms: AtomicI64::new(0),
            caught_up_ms: AtomicI64::new(0),
            built_from: Mutex::new(built_from),
            origin: std::sync::OnceLock::new(),
        })
    }

    /// The searcher as of now and the catalog sequence its documents include, taken together.
    pub fn view(&self) -> (tantivy::Searcher, i64) {
        let _view = self.view.read().unwrap_or_else(|e| e.into_inner());
        (self.reader.searcher(), self.applied_seq())
    }

    pub fn applied_seq(&self) -> i64 {
        self.applied_seq.load(Ordering::Acquire)
    }

    /// Milliseconds since the index last caught up with the database (`u64::MAX` before it ever
    /// did).
    pub fn lag_ms(&self) -> u64 {
        let at = self.caught_up_ms.load(Ordering::Acquire);
        if at == 0 {
            return u64::MAX;
        }
        u64::try_from(now_ms() - at).unwrap_or(0)
    }

    fn document(&self, p: &Product, in_stock: bool) -> TantivyDocument {
        let f = &self.fields;
        let attributes: Vec<String> = p
            .attributes
            .values()
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let mut d = doc!(
            f.id => p.id.to_string(),
            f.sku => p.sku.as_ref(),
            f.name => p.name.as_str(),
            f.description => p.description.as_str(),
            f.brand_text => p.brand.as_str(),
            f.attributes => attributes.join(" "),
            f.category => p.category.as_str(),
            f.brand => p.brand.as_str(),
            f.price_minor => p.price.to_minor(),
            f.currency => p.price.currency().code(),
            f.in_stock => u64::from(in_stock),
        );
        for barcode in &p.barcodes {
            d.add_text(f.barcode, barcode.as_ref());
        }
        d
    }

    /// Replaces the documents of `products` (archived ones are only removed).
    fn apply(&self, products: &[Product], stock: &HashMap<String, i64>) -> anyhow::Result<()> {
        let writer = self
            .writer
            .lock()
            .map_err(|_| anyhow::anyhow!("search writer poisoned"))?;
        for p in products {
            writer.delete_term(Term::from_field_text(self.fields.id, &p.id.to_string()));
            if !p.archived {
                let in_stock = stock.get(p.sku.as_ref()).copied().unwrap_or(0) > 0;
                writer
                    .add_document(self.document(p, in_stock))
                    .context("adding a search document")?;
            }
        }
        Ok(())
    }

    /// Commits with the database id and applied sequence as payload and makes the change
    /// searchable.
    fn commit(&self, database_id: &str, applied_seq: i64) -> anyhow::Result<()> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| anyhow::anyhow!("search writer poisoned"))?;
        let mut prepared = writer.prepare_commit().context("preparing search commit")?;
        prepared.set_payload(&format!("{database_id} {applied_seq}"));
        prepared.commit().context("committing the search index")?;
        drop(writer);
        let _view = self.view.write().unwrap_or_else(|e| e.into_inner());
        self.reader
            .reload()
            .context("reloading the search reader")?;
        self.applied_seq.store(applied_seq, Ordering::Release);
        Ok(())
    }

    /// Empties the index (for a rebuild).
    fn clear(&self) -> anyhow::Result<()> {
        let writer = self
            .writer
            .lock()
            .map_err(|_| anyhow::anyhow!("search writer poisoned"))?;
        writer
            .delete_all_documents()
            .context("clearing the search index")?;
        Ok(())
    }
}

/// Available units per SKU over every location, for `skus`.
async fn available_by_sku(db: &Db, skus: &[String]) -> anyhow::Result<HashMap<String, i64>> {
    let mut out = HashMap::new();
    for chunk in skus.chunks(500) {
        let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT sku, CAST(SUM(on_hand - reserved) AS BIGINT) AS available FROM stock \
             WHERE sku IN ({}) GROUP BY sku",
            params.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for sku in chunk {
            query = query.bind(sku);
        }
        for row in query
            .fetch_all(db.pool())
            .await
            .context("reading stock for search")?
        {
            out.insert(row.try_get("sku")?, row.try_get("available")?);
        }
    }
    Ok(out)
}

async fn index_products(
    search: &std::sync::Arc<SearchIndex>,
    db: &Db,
    products: Vec<Product>,
) -> anyhow::Result<()> {
    let skus: Vec<String> = products.iter().map(|p| p.sku.to_string()).collect();
    let stock = available_by_sku(db, &skus).await?;
    let search = search.clone();
    tokio::task::spawn_blocking(move || search.apply(&products, &stock))
        .await
        .context("search indexing task")?
}

/// The database's id; an index built from another database (a reset, a restore, another
/// deployment's directory) is emptied so it is rebuilt from this one.
async fn check_origin(search: &SearchIndex, db: &Db) -> anyhow::Result<String> {
    if let Some(id) = search.origin.get() {
        return Ok(id.clone());
    }
    let id = store::settings::get_or_init(db, "database_id", || uuid::Uuid::new_v4().to_string())
        .await?;
    let stale = {
        let built = search
            .built_from
            .lock()
            .map_err(|_| anyhow::anyhow!("search origin poisoned"))?;
        built.as_deref().is_some_and(|b| b != id)
    };
    if stale {
        tracing::warn!("the search index was built from another database: rebuilding it");
        search.clear()?;
        search.applied_seq.store(0, Ordering::Release);
        search.stock_checked_ms.store(0, Ordering::Release);
    }
    *search
        .built_from
        .lock()
        .map_err(|_| anyhow::anyhow!("search origin poisoned"))? = Some(id.clone());
    Ok(search.origin.get_or_init(|| id).clone())
}

/// Brings the index up to date with the database: catalog changes after the applied sequence,
/// and products whose stock moved. Returns how many products were (re)indexed.
pub async fn refresh(search: &std::sync::Arc<SearchIndex>, db: &Db) -> anyhow::Result<usize> {
    refresh_following(search, db, |_| {}).await
}

/// [`refresh`], showing each page of the catalog change feed to `follow` as well (the product
/// cache keeps the new versions).
#[tracing::instrument(skip_all)]
pub async fn refresh_following(
    search: &std::sync::Arc<SearchIndex>,
    db: &Db,
    mut follow: impl FnMut(&[Product]),
) -> anyhow::Result<usize> {
    let started = now_ms();
    let database_id = check_origin(search, db).await?;
    let mut seq = search.applied_seq();
    let mut changed = 0;
    loop {
        let batch = store::catalog::changed_since(db, seq, REFRESH_BATCH_PRODUCTS).await?;
        let Some(last) = batch.last() else { break };
        seq = last.change_seq;
        follow(&batch);
        let full = i64::try_from(batch.len()).unwrap_or(0) == REFRESH_BATCH_PRODUCTS;
        changed += batch.len();
        index_products(search, db, batch).await?;
        if !full {
            break;
        }
    }
    // After a restart (nothing checked yet) every product with stock is looked at once.
    let checked = search.stock_checked_ms.load(Ordering::Acquire);
    let stock_since = if checked == 0 {
        0
    } else {
        checked - STOCK_OVERLAP_MS
    };
    let mut after = String::new();
    loop {
        let moved =
            store::catalog::stock_changed_since(db, stock_since, &after, REFRESH_BATCH_PRODUCTS)
                .await?;
        let Some(last) = moved.last() else { break };
        after = last.sku.to_string();
        let full = i64::try_from(moved.len()).unwrap_or(0) == REFRESH_BATCH_PRODUCTS;
        changed += moved.len();
        index_products(search, db, moved).await?;
        if !full {
            break;
        }
    }
    if changed > 0 || search.applied_seq() != seq {
        let s = search.clone();
        tokio::task::spawn_blocking(move || s.commit(&database_id, seq))
            .await
            .context("search commit task")??;
    }
    search.stock_checked_ms.store(started, Ordering::Release);
    search.caught_up_ms.store(started, Ordering::Release);
    Ok(changed)
}

/// Rebuilds the index from the database (`kassa-central reindex`).
pub async fn rebuild(search: &std::sync::Arc<SearchIndex>, db: &Db) -> anyhow::Result<usize> {
    search.clear()?;
    search.applied_seq.store(0, Ordering::Release);
    search.stock_checked_ms.store(0, Ordering::Release);
    let n = refresh(search, db).await?;
    let s = search.clone();
    let seq = search.applied_seq();
    let database_id = check_origin(search, db).await?;
    tokio::task::spawn_blocking(move || s.commit(&database_id, seq))
        .await
        .context("search commit task")??;
    Ok(n)
}
