//! A manager's catalog edits made at the register, online or not: queued with the version they
//! were based on, shown in the local catalog at once, pushed with `If-Match`. A 412 keeps both
//! versions so the UI can show them field by field; [`resolve`] builds the merged edit from the
//! manager's choice per field and queues it again on top of Central's version.

use std::collections::BTreeMap;

use chrono::Utc;
use kassa_domain::api::{Product, ProductInput};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use crate::catalog;
use crate::error::{corrupt, Context, Error, Result};
use crate::store::{now_ms, LocalDb, Tx};

/// The editable fields, in the order the UI lists them.
pub const FIELDS: [&str; 10] = [
    "sku",
    "name",
    "price",
    "tax_class",
    "barcodes",
    "description",
    "category",
    "brand",
    "attributes",
    "archived",
];

/// Edits pushed per sync round at most.
pub const EDITS_PER_ROUND_MAX: i64 = 100;

/// A queued edit.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub id: Uuid,
    /// `None` for a new product.
    pub product_id: Option<Uuid>,
    pub base_version: Option<i64>,
    pub input: ProductInput,
    pub status: String,
}

/// Which side of a conflict a field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Mine,
    Theirs,
}

/// One field of a conflicted edit: what the edit started from, what the manager wants, what
/// Central has now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDiff {
    pub field: &'static str,
    pub base: Value,
    pub mine: Value,
    pub theirs: Value,
    /// Mine and theirs differ: the manager must choose.
    pub differs: bool,
}

/// A 412 kept for the manager.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    pub edit_id: Uuid,
    pub product_id: Uuid,
    pub theirs_version: i64,
    pub fields: Vec<FieldDiff>,
}

/// The editable part of a product.
pub fn input_of(p: &Product) -> ProductInput {
    ProductInput {
        sku: p.sku.clone(),
        barcodes: p.barcodes.clone(),
        name: p.name.clone(),
        description: p.description.clone(),
        category: p.category.clone(),
        brand: p.brand.clone(),
        price: p.price,
        tax_class: p.tax_class,
        attributes: p.attributes.clone(),
        archived: p.archived,
    }
}

/// What the local catalog shows while an edit waits: the edit applied to the base.
fn preview(base: Option<&Product>, id: Uuid, input: &ProductInput) -> Product {
    Product {
        id,
        sku: input.sku.clone(),
        barcodes: input.barcodes.clone(),
        name: input.name.clone(),
        description: input.description.clone(),
        category: input.category.clone(),
        brand: input.brand.clone(),
        price: input.price,
        tax_class: input.tax_class,
        attributes: input.attributes.clone(),
        archived: input.archived,
        version: base.map_or(0, |b| b.version),
        updated_at: Utc::now(),
        change_seq: base.map_or(0, |b| b.change_seq),
    }
}

/// Queues an edit of `base` (the product as the manager saw it) and shows it locally at once.
pub async fn queue_update(db: &LocalDb, base: &Product, input: ProductInput) -> Result<Uuid> {
    queue(db, Some(base), input).await
}

/// Queues a new product; it shows locally under a provisional id until Central has it.
pub async fn queue_create(db: &LocalDb, input: ProductInput) -> Result<Uuid> {
    queue(db, None, input).await
}

async fn queue(db: &LocalDb, base: Option<&Product>, input: ProductInput) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let product_id = base.map(|b| b.id);
    let base_json = base
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| corrupt("product", e))?;
    let input_json = serde_json::to_string(&input).map_err(|e| corrupt("edit", e))?;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO product_edits (id, product_id, base_version, base, input, status, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
    )
    .bind(id.to_string())
    .bind(product_id.map(|p| p.to_string()))
    .bind(base.map(|b| b.version))
    .bind(base_json)
    .bind(input_json)
    .bind(now_ms())
    .bind(now_ms())
    .execute(&mut *tx)
    .await
    .context("queueing a product edit")?;
    let shown = preview(base, product_id.unwrap_or(id), &input);
    catalog::apply(&mut tx, &shown).await?;
    tx.commit().await.context("queueing a product edit")?;
    Ok(id)
}

/// The pending edits, oldest first.
pub async fn pending(db: &LocalDb) -> Result<Vec<Edit>> {
    let rows = sqlx::query(
        "SELECT id, product_id, base_version, input, status FROM product_edits
         WHERE status = 'pending' ORDER BY seq LIMIT ?",
    )
    .bind(EDITS_PER_ROUND_MAX)
    .fetch_all(db.pool())
    .await
    .context("reading queued edits")?;
    rows.iter().map(edit_from_row).collect()
}

fn edit_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Edit> {
    let parse = |s: String| Uuid::parse_str(&s).map_err(|e| corrupt("edit id", e));
    let input: String = row.get("input");
    Ok(Edit {
        id: parse(row.get("id"))?,
        product_id: row
            .get::<Option<String>, _>("product_id")
            .map(parse)
            .transpose()?,
        base_version: row.get("base_version"),
        input: serde_json::from_str(&input).map_err(|e| corrupt("edit", e))?,
        status: row.get("status"),
    })
}

/// Where one queued edit stands: the domain's type, shared with the UI.
pub use kassa_domain::EditState;

/// The latest `limit` edits made here, newest first.
pub async fn recent(db: &LocalDb, limit: u32) -> Result<Vec<EditState>> {
    let rows = sqlx::query(
        "SELECT id, product_id, base_version, input, status, last_error, updated_at
         FROM product_edits ORDER BY seq DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(db.reader())
    .await
    .context("reading the edit queue")?;
    rows.iter()
        .map(|row| {
            let edit = edit_from_row(row)?;
            let at: i64 = row.get("updated_at");
            Ok(EditState {
                id: edit.id,
                product_id: edit.product_id,
                sku: edit.input.sku.to_string(),
                name: edit.input.name,
                status: edit.status,
                last_error: row.get("last_error"),
                updated_at: chrono::DateTime::from_timestamp_millis(at)
                    .ok_or_else(|| Error::Corrupt(format!("edit time {at}")))?,
            })
        })
        .collect()
}

/// Does a product have an edit that Central has not taken yet (pending or in conflict)?
pub async fn is_unsettled(tx: &mut Tx, product_id: Uuid) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM product_edits WHERE product_id = ? AND status IN ('pending', 'conflict')",
    )
    .bind(product_id.to_string())
    .fetch_one(&mut **tx)
    .await
    .context("checking queued edits")?;
    Ok(n > 0)
}

/// Central took the edit: its row replaces the local one (and the provisional one of a create).
pub async fn mark_done(db: &LocalDb, edit: &Edit, product: &Product) -> Result<()> {
    let mut tx = db.begin_write().await?;
    if edit.product_id.is_none() {
        catalog::remove(&mut tx, edit.id).await?;
    }
    set_status(&mut tx, edit.id, "done", None, None).await?;
    catalog::apply(&mut tx, product).await?;
    tx.commit().await.context("settling an edit")?;
    Ok(())
}

/// Central refused the edit for good (a taken SKU, invalid input); the local row goes back to
/// Central's version at the next catalog pull.
pub async fn mark_rejected(db: &LocalDb, edit: &Edit, error: &str) -> Result<()> {
    let mut tx = db.begin_write().await?;
    set_status(&mut tx, edit.id, "rejected", None, Some(error)).await?;
    if edit.product_id.is_none() {
        catalog::remove(&mut tx, edit.id).await?;
    }
    tx.commit().await.context("rejecting an edit")?;
    Ok(())
}

/// A 412: keeps Central's row next to the edit for the manager.
pub async fn mark_conflict(db: &LocalDb, edit: &Edit, theirs: &Product) -> Result<()> {
    let theirs_json = serde_json::to_string(theirs).map_err(|e| corrupt("product", e))?;
    let mut tx = db.begin_write().await?;
    set_status(&mut tx, edit.id, "conflict", Some(&theirs_json), None).await?;
    tx.commit().await.context("recording a conflict")?;
    Ok(())
}

async fn set_status(
    tx: &mut Tx,
    id: Uuid,
    status: &str,
    theirs: Option<&str>,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE product_edits SET status = ?, theirs = COALESCE(?, theirs), last_error = ?,
            updated_at = ? WHERE id = ?",
    )
    .bind(status)
    .bind(theirs)
    .bind(error)
    .bind(now_ms())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .context("moving an edit")?;
    Ok(())
}

/// The conflicts waiting for a manager, oldest first.
pub async fn conflicts(db: &LocalDb) -> Result<Vec<Conflict>> {
    let rows = sqlx::query(
        "SELECT id, base, input, theirs FROM product_edits WHERE status = 'conflict' ORDER BY seq",
    )
    .fetch_all(db.pool())
    .await
    .context("reading conflicts")?;
    rows.iter().map(conflict_from_row).collect()
}

fn conflict_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Conflict> {
    let id: String = row.get("id");
    let base: Option<String> = row.get("base");
    let input: String = row.get("input");
    let theirs: Option<String> = row.get("theirs");
    let theirs: Product = serde_json::from_str(theirs.as_deref().unwrap_or(""))
        .map_err(|e| corrupt("conflict: Central's row", e))?;
    let base: Option<Product> = base
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("conflict: base", e))?;
    let mine: ProductInput = serde_json::from_str(&input).map_err(|e| corrupt("edit", e))?;
    Ok(Conflict {
        edit_id: Uuid::parse_str(&id).map_err(|e| corrupt("edit id", e))?,
        product_id: theirs.id,
        theirs_version: theirs.version,
        fields: diff(
            base.map(|b| input_of(&b)).as_ref(),
            &mine,
            &input_of(&theirs),
        )?,
    })
}

fn fields_of(input: &ProductInput) -> Result<serde_json::Map<String, Value>> {
    match serde_json::to_value(input).map_err(|e| corrupt("edit", e))? {
        Value::Object(map) => Ok(map),
        other => Err(Error::Corrupt(format!("an edit is not an object: {other}"))),
    }
}

/// Field-by-field comparison of base, mine and theirs.
pub fn diff(
    base: Option<&ProductInput>,
    mine: &ProductInput,
    theirs: &ProductInput,
) -> Result<Vec<FieldDiff>> {
    let base = base.map(fields_of).transpose()?.unwrap_or_default();
    let (mine, theirs) = (fields_of(mine)?, fields_of(theirs)?);
    Ok(FIELDS
        .iter()
        .map(|&field| {
            let get =
                |m: &serde_json::Map<String, Value>| m.get(field).cloned().unwrap_or(Value::Null);
            let (m, t) = (get(&mine), get(&theirs));
            FieldDiff {
                field,
                base: get(&base),
                differs: m != t,
                mine: m,
                theirs: t,
            }
        })
        .collect())
}

/// Merges per field: every field that differs must have a choice; the others are equal anyway.
pub fn merge(
    mine: &ProductInput,
    theirs: &ProductInput,
    choices: &BTreeMap<String, Side>,
) -> Result<ProductInput> {
    let mut merged = fields_of(theirs)?;
    let mine_fields = fields_of(mine)?;
    for d in diff(None, mine, theirs)?.iter().filter(|d| d.differs) {
        match choices.get(d.field) {
            Some(Side::Mine) => {
                merged.insert(d.field.to_owned(), d.mine.clone());
            }
            Some(Side::Theirs) => {}
            None => {
                return Err(Error::Invalid(format!(
                    "choose mine or theirs for {}",
                    d.field
                )))
            }
        }
    }
    if let Some(unknown) = choices
        .keys()
        .find(|k| !mine_fields.contains_key(k.as_str()))
    {
        return Err(Error::Invalid(format!("{unknown} is not a product field")));
    }
    serde_json::from_value(Value::Object(merged)).map_err(|e| Error::Invalid(e.to_string()))
}

/// The manager's resolution of a conflict: the merged edit is queued again on top of Central's
/// version (pushed at the next sync), and shown locally at once.
pub async fn resolve(
    db: &LocalDb,
    edit_id: Uuid,
    choices: &BTreeMap<String, Side>,
) -> Result<ProductInput> {
    let row =
        sqlx::query("SELECT input, theirs FROM product_edits WHERE id = ? AND status = 'conflict'")
            .bind(edit_id.to_string())
            .fetch_optional(db.pool())
            .await
            .context("reading a conflict")?
            .ok_or_else(|| Error::NotFound(format!("conflict {edit_id}")))?;
    let mine: ProductInput =
        serde_json::from_str(&row.get::<String, _>("input")).map_err(|e| corrupt("edit", e))?;
    let theirs: Product = serde_json::from_str(&row.get::<String, _>("theirs"))
        .map_err(|e| corrupt("conflict: Central's row", e))?;
    let merged = merge(&mine, &input_of(&theirs), choices)?;
    requeue(db, edit_id, &theirs, &merged).await?;
    Ok(merged)
}

async fn requeue(
    db: &LocalDb,
    edit_id: Uuid,
    theirs: &Product,
    merged: &ProductInput,
) -> Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE product_edits SET status = 'pending', base_version = ?, base = ?, input = ?,
            theirs = NULL, updated_at = ? WHERE id = ?",
    )
    .bind(theirs.version)
    .bind(serde_json::to_string(theirs).map_err(|e| corrupt("product", e))?)
    .bind(serde_json::to_string(merged).map_err(|e| corrupt("edit", e))?)
    .bind(now_ms())
    .bind(edit_id.to_string())
    .execute(&mut *tx)
    .await
    .context("queueing a resolved edit")?;
    catalog::apply(&mut tx, &preview(Some(theirs), theirs.id, merged)).await?;
    tx.commit().await.context("queueing a resolved edit")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kassa_domain::{Currency, Money, Sku, TaxClass};

    fn input(name: &str, price: &str) -> ProductInput {
        ProductInput {
            sku: Sku::parse("MUG-1").unwrap(),
            barcodes: vec![],
            name: name.into(),
            description: String::new(),
            category: "kitchen".into(),
            brand: String::new(),
            price: Money::parse(price, Currency::EUR).unwrap(),
            tax_class: TaxClass::Standard,
            attributes: BTreeMap::new(),
            archived: false,
        }
    }

    #[test]
    fn only_fields_that_differ_need_a_choice() {
        let mine = input("Mug", "4.50");
        let theirs = input("Big mug", "3.99");
        let diffs = diff(None, &mine, &theirs).unwrap();
        let differing: Vec<_> = diffs
            .iter()
            .filter(|d| d.differs)
            .map(|d| d.field)
            .collect();
        assert_eq!(differing, ["name", "price"]);
        assert!(merge(&mine, &theirs, &BTreeMap::new()).is_err());
        let choices = BTreeMap::from([
            ("name".to_owned(), Side::Theirs),
            ("price".to_owned(), Side::Mine),
        ]);
        let merged = merge(&mine, &theirs, &choices).unwrap();
        assert_eq!(merged.name, "Big mug");
        assert_eq!(merged.price, Money::parse("4.50", Currency::EUR).unwrap());
    }

    #[test]
    fn a_choice_for_an_unknown_field_is_refused() {
        let mine = input("Mug", "4.50");
        let choices = BTreeMap::from([("colour".to_owned(), Side::Mine)]);
        assert!(merge(&mine, &mine, &choices).is_err());
    }
}
