//! Pulling from Central: the catalog delta feed (archived products dropped, products with an
//! unsettled local edit left alone), stock levels round-robin over the local SKUs, and the
//! recommendation lists. Each page is stored in one transaction with its cursor.

use kassa_domain::Sku;

use super::Engine;
use crate::error::{Context, Result};
use crate::store::{self, LocalDb};
use crate::{catalog, edits, recommend, stock};

/// Items per feed page, and pages per round at most.
const FEED_PAGE_LIMIT: u32 = 500;
const FEED_PAGES_PER_ROUND_MAX: usize = 200;

impl Engine {
    /// Pulls catalog changes until the feed is exhausted; returns how many products changed.
    pub(super) async fn pull_catalog(&self) -> Result<usize> {
        let mut changed = 0;
        for _ in 0..FEED_PAGES_PER_ROUND_MAX {
            let since = store::cursor(&self.db, "products")
                .await?
                .unwrap_or_default();
            let page = self
                .sessions
                .device_authed(|t| {
                    let since = &since;
                    async move {
                        self.client()
                            .products_since(t.expose(), since, FEED_PAGE_LIMIT)
                            .await
                    }
                })
                .await?;
            let mut tx = self.db.begin_write().await?;
            for product in &page.items {
                if !edits::is_unsettled(&mut tx, product.id).await? {
                    catalog::apply(&mut tx, product).await?;
                }
            }
            store::set_cursor(&mut tx, "products", &page.next_cursor).await?;
            tx.commit().await.context("storing a catalog page")?;
            changed += page.items.len();
            if page.items.len() < FEED_PAGE_LIMIT as usize {
                break;
            }
        }
        Ok(changed)
    }

    /// Pulls the recommendation lists changed since the last pull.
    pub(super) async fn pull_recommendations(&self) -> Result<usize> {
        let mut changed = 0;
        for _ in 0..FEED_PAGES_PER_ROUND_MAX {
            let since = store::cursor(&self.db, "recommendations")
                .await?
                .unwrap_or_default();
            let page = self
                .sessions
                .device_authed(|t| {
                    let since = &since;
                    async move {
                        self.client()
                            .recommendations_since(t.expose(), since, FEED_PAGE_LIMIT)
                            .await
                    }
                })
                .await?;
            let mut tx = self.db.begin_write().await?;
            for list in &page.items {
                recommend::apply(&mut tx, list).await?;
            }
            store::set_cursor(&mut tx, "recommendations", &page.next_cursor).await?;
            tx.commit().await.context("storing recommendations")?;
            changed += page.items.len();
            if page.items.len() < FEED_PAGE_LIMIT as usize {
                break;
            }
        }
        Ok(changed)
    }

    /// Pulls the stock of up to `stock_skus_per_round` SKUs at this register's location,
    /// continuing where the last round stopped and starting over after the last SKU.
    pub(super) async fn pull_stock(&self, location: &str) -> Result<usize> {
        let after = store::cursor(&self.db, "stock").await?.unwrap_or_default();
        let skus = stock::skus_after(&self.db, &after, self.config.stock_skus_per_round).await?;
        let mut levels = Vec::with_capacity(skus.len());
        for sku in &skus {
            let Ok(sku) = Sku::parse(sku) else { continue };
            let level = self
                .sessions
                .device_authed(|t| {
                    let sku = &sku;
                    async move { self.client().stock(t.expose(), sku, location).await }
                })
                .await?;
            levels.push(level);
        }
        let next = if skus.len() < self.config.stock_skus_per_round as usize {
            String::new()
        } else {
            skus.last().cloned().unwrap_or_default()
        };
        save_levels(&self.db, &levels, &next).await?;
        Ok(levels.len())
    }
}

async fn save_levels(
    db: &LocalDb,
    levels: &[kassa_domain::api::StockLevel],
    next: &str,
) -> Result<()> {
    let mut tx = db.begin_write().await?;
    for level in levels {
        stock::save(&mut tx, level).await?;
    }
    store::set_cursor(&mut tx, "stock", next).await?;
    tx.commit().await.context("storing stock levels")?;
    Ok(())
}
