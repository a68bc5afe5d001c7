//! Pulling from Central: the catalog delta feed (archived products dropped, products with an
//! unsettled local edit left alone), the stock levels of this register's location (a thousand
//! SKUs a request, round-robin over the catalog) and the recommendation lists. All three are
//! cursor-paged feeds pulled by one loop ([`Engine::pull_feed`]); each page is stored in one
//! transaction with its cursor. Central's sale settings (the cashier's discount limit) are one
//! small document, pulled whole every round.

use kassa_domain::api::{CopurchaseList, Product, StockLevel, StockPage, STOCK_PAGE_LIMIT_MAX};

use super::Engine;
use crate::client::CentralClient;
use crate::error::{Context, Result};
use crate::store::{self, Tx};
use crate::{catalog, edits, recommend, settings, stock};

/// Items per catalog and recommendation page, and pages per round at most.
const FEED_PAGE_LIMIT: u32 = 500;
const FEED_PAGES_PER_ROUND_MAX: usize = 200;

/// One page as a feed answers it.
struct Page<T> {
    items: Vec<T>,
    /// The cursor to store (where the next pull starts).
    next: String,
    /// Is there more after this page?
    more: bool,
}

/// A cursor-paged feed pulled from Central into the local store.
trait Feed {
    type Item;
    /// The feed's row in `sync_cursors`.
    const CURSOR: &'static str;
    async fn fetch(
        &self,
        client: &CentralClient,
        token: &str,
        cursor: &str,
    ) -> Result<Page<Self::Item>>;
    async fn apply(&self, tx: &mut Tx, items: &[Self::Item]) -> Result<()>;
}

/// `GET /v1/products?since=`: changes since the cursor.
struct Catalog;

impl Feed for Catalog {
    type Item = Product;
    const CURSOR: &'static str = "products";

    async fn fetch(
        &self,
        client: &CentralClient,
        token: &str,
        cursor: &str,
    ) -> Result<Page<Product>> {
        let page = client
            .products_since(token, cursor, FEED_PAGE_LIMIT)
            .await?;
        let more = page.items.len() >= FEED_PAGE_LIMIT as usize;
        Ok(Page {
            items: page.items,
            next: page.next_cursor,
            more,
        })
    }

    async fn apply(&self, tx: &mut Tx, items: &[Product]) -> Result<()> {
        for product in items {
            if !edits::is_unsettled(tx, product.id).await? {
                catalog::apply(tx, product).await?;
            }
        }
        Ok(())
    }
}

/// `GET /v1/recommendations?since=`: lists changed since the cursor.
struct Recommendations;

impl Feed for Recommendations {
    type Item = CopurchaseList;
    const CURSOR: &'static str = "recommendations";

    async fn fetch(
        &self,
        client: &CentralClient,
        token: &str,
        cursor: &str,
    ) -> Result<Page<CopurchaseList>> {
        let page = client
            .recommendations_since(token, cursor, FEED_PAGE_LIMIT)
            .await?;
        let more = page.items.len() >= FEED_PAGE_LIMIT as usize;
        Ok(Page {
            items: page.items,
            next: page.next_cursor,
            more,
        })
    }

    async fn apply(&self, tx: &mut Tx, items: &[CopurchaseList]) -> Result<()> {
        for list in items {
            recommend::apply(tx, list).await?;
        }
        Ok(())
    }
}

/// `GET /v1/stock?location=&after=`: levels by SKU; after the last SKU it starts over.
struct Stock<'a> {
    location: &'a str,
    limit: u32,
}

impl Feed for Stock<'_> {
    type Item = StockLevel;
    const CURSOR: &'static str = "stock";

    async fn fetch(
        &self,
        client: &CentralClient,
        token: &str,
        cursor: &str,
    ) -> Result<Page<StockLevel>> {
        let StockPage { items, next_cursor } = client
            .stock_page(token, self.location, cursor, self.limit)
            .await?;
        Ok(Page {
            items,
            more: next_cursor.is_some(),
            next: next_cursor.unwrap_or_default(),
        })
    }

    async fn apply(&self, tx: &mut Tx, items: &[StockLevel]) -> Result<()> {
        for level in items {
            stock::save(tx, level).await?;
        }
        Ok(())
    }
}

impl Engine {
    /// Pulls catalog changes until the feed is exhausted; returns how many products changed.
    pub(super) async fn pull_catalog(&self) -> Result<usize> {
        self.pull_feed(&Catalog, FEED_PAGES_PER_ROUND_MAX).await
    }

    /// Pulls the recommendation lists changed since the last pull. Switched off at Central
    /// (`feature_disabled`), the till forgets its lists, so its suggestions disappear, and pulls
    /// them all again once the feature is back.
    pub(super) async fn pull_recommendations(&self) -> Result<usize> {
        match self
            .pull_feed(&Recommendations, FEED_PAGES_PER_ROUND_MAX)
            .await
        {
            Err(err) if err.api_code() == Some("feature_disabled") => {
                let mut tx = self.db.begin_write().await?;
                recommend::forget_all(&mut tx).await?;
                store::set_cursor(&mut tx, Recommendations::CURSOR, "").await?;
                tx.commit()
                    .await
                    .context("forgetting switched-off recommendations")?;
                Ok(0)
            }
            other => other,
        }
    }

    /// Pulls up to `stock_skus_per_round` stock levels at this register's location in pages
    /// of up to [`STOCK_PAGE_LIMIT_MAX`], continuing where the last round stopped and starting
    /// over after the last SKU.
    pub(super) async fn pull_stock(&self, location: &str) -> Result<usize> {
        let per_round = self.config.stock_skus_per_round.max(1);
        let limit = per_round.min(STOCK_PAGE_LIMIT_MAX);
        let pages = per_round.div_ceil(limit) as usize;
        self.pull_feed(&Stock { location, limit }, pages).await
    }

    /// Pulls the sale settings every till obeys (`GET /v1/settings/sale`) and keeps them, and
    /// whether Central is read-only (the status bar shows its message).
    pub(super) async fn pull_settings(&self) -> Result<usize> {
        let sale = self
            .sessions
            .device_authed(|t| async move { self.client().sale_settings(t.expose()).await })
            .await?;
        settings::save_sale(&self.db, &sale).await?;
        let mode = self
            .sessions
            .device_authed(|t| async move { self.client().read_only(t.expose()).await })
            .await?;
        let notice = mode.enabled.then(|| {
            if mode.message.is_empty() {
                "Central is read-only for now".to_owned()
            } else {
                mode.message
            }
        });
        self.status.send_modify(|s| s.read_only = notice);
        let identity = crate::identity::load(&self.db)
            .await?
            .ok_or(crate::Error::NotPaired)?;
        let locations = self
            .sessions
            .device_authed(|t| async move { self.client().locations(t.expose()).await })
            .await?;
        if let Some(here) = locations.iter().find(|l| l.code == identity.location) {
            settings::save_time_zone(&self.db, &here.time_zone).await?;
            settings::save_cash_rounding(&self.db, here.cash_rounding).await?;
        }
        Ok(1)
    }

    /// The one paging loop: fetch the page after the stored cursor, store it with the new
    /// cursor in one transaction, until the feed says there is no more or `pages_max` pages.
    async fn pull_feed<F: Feed>(&self, feed: &F, pages_max: usize) -> Result<usize> {
        let mut pulled = 0;
        for _ in 0..pages_max {
            let cursor = store::cursor(&self.db, F::CURSOR)
                .await?
                .unwrap_or_default();
            let page = self
                .sessions
                .device_authed(|t| {
                    let cursor = &cursor;
                    async move { feed.fetch(self.client(), t.expose(), cursor).await }
                })
                .await?;
            let mut tx = self.db.begin_write().await?;
            feed.apply(&mut tx, &page.items).await?;
            store::set_cursor(&mut tx, F::CURSOR, &page.next).await?;
            tx.commit().await.context("storing a pulled page")?;
            pulled += page.items.len();
            if !page.more {
                break;
            }
        }
        Ok(pulled)
    }
}
