//! "Frequently bought together" offline: each product's top-k partners, synced from Central's
//! recommendations feed into the local store, looked up against the local catalog.

use kassa_domain::api::{CopurchaseList, Product};
use serde::Serialize;
use uuid::Uuid;

use crate::catalog;
use crate::error::{Context, Result};
use crate::store::{LocalDb, Tx};

/// Partners returned by one lookup at most.
pub const LOOKUP_MAX: u32 = 20;

/// A recommended product with its co-purchase score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommended {
    pub product: Product,
    pub score: f64,
    pub support: i64,
}

/// Replaces a product's stored list (an empty list: no partner any more).
pub async fn apply(tx: &mut Tx, list: &CopurchaseList) -> Result<()> {
    let product_id = list.product_id.to_string();
    sqlx::query("DELETE FROM recommendations WHERE product_id = ?")
        .bind(&product_id)
        .execute(&mut **tx)
        .await
        .context("replacing a recommendation list")?;
    for (rank, item) in list.items.iter().enumerate() {
        sqlx::query(
            "INSERT INTO recommendations (product_id, rank, partner_id, score, support)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&product_id)
        .bind(i64::try_from(rank).unwrap_or(i64::MAX))
        .bind(item.product_id.to_string())
        .bind(item.score)
        .bind(item.support)
        .execute(&mut **tx)
        .await
        .context("storing a recommendation")?;
    }
    Ok(())
}

/// Forgets every stored list (Central switched recommendations off).
pub async fn forget_all(tx: &mut Tx) -> Result<()> {
    sqlx::query("DELETE FROM recommendations")
        .execute(&mut **tx)
        .await
        .context("forgetting the recommendation lists")?;
    Ok(())
}

/// The products most often bought with `product_id`, best first; partners that are not in the
/// local catalog (archived, or not yet pulled) are left out.
#[tracing::instrument(skip_all, fields(product = %product_id))]
pub async fn lookup(db: &LocalDb, product_id: Uuid, limit: u32) -> Result<Vec<Recommended>> {
    let rows: Vec<(String, f64, i64)> = sqlx::query_as(
        "SELECT r.partner_id, r.score, r.support FROM recommendations r
         JOIN products p ON p.id = r.partner_id
         WHERE r.product_id = ? ORDER BY r.rank LIMIT ?",
    )
    .bind(product_id.to_string())
    .bind(limit.min(LOOKUP_MAX))
    .fetch_all(db.reader())
    .await
    .context("looking up recommendations")?;
    let mut out = Vec::with_capacity(rows.len());
    for (partner, score, support) in rows {
        let Ok(id) = Uuid::parse_str(&partner) else {
            continue;
        };
        if let Some(product) = catalog::by_id(db, id).await? {
            out.push(Recommended {
                product,
                score,
                support,
            });
        }
    }
    Ok(out)
}
