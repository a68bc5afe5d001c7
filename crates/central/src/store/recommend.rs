//! SQL for recommendations: the baskets of paid orders, the stored top-k lists with their change
//! cursor, the `order.paid` events read by the incremental updater, and what re-ranking needs
//! (candidate products with their stock, a user's purchase history).

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use futures::TryStreamExt;
use sqlx::Row;
use uuid::Uuid;

use super::{next_counter, Backend, Db, Tx};
use crate::recommend::model::{Candidate, History, Scored};

/// The statuses whose orders count as purchases (offline-synced sales arrive PAID).
const PURCHASED: &str = "('PAID', 'FULFILLED')";
const LIST_COUNTER: &str = "recommend";
/// Rows per multi-row INSERT (5 parameters each).
const INSERT_ROWS_MAX: usize = 100;

fn parse_id(raw: &str) -> anyhow::Result<Uuid> {
    raw.parse().with_context(|| format!("stored id {raw:?}"))
}

/// A read-only transaction that sees one snapshot for all its statements (PostgreSQL
/// `REPEATABLE READ`; SQLite's WAL read transaction keeps its first read's snapshot).
pub async fn begin_snapshot(db: &Db) -> anyhow::Result<Tx> {
    let tx = match db.backend() {
        Backend::Sqlite => db.pool().begin().await,
        Backend::Postgres => {
            db.pool()
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
        }
    };
    Ok(Tx::unlocked(tx.context("starting a snapshot read")?))
}

/// The newest event sequence number visible (0 when there is none).
pub async fn max_event_seq(tx: &mut Tx) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM events")
        .fetch_one(&mut **tx)
        .await
        .context("reading the newest event sequence")
}

/// Streams the basket (product ids) of every PAID or FULFILLED order to `each`, one order at a
/// time, without holding all orders in memory.
#[tracing::instrument(skip_all)]
pub async fn paid_baskets(tx: &mut Tx, mut each: impl FnMut(&[Uuid])) -> anyhow::Result<u64> {
    let sql = format!(
        "SELECT o.id AS order_id, p.id AS product_id FROM orders o \
         JOIN order_lines l ON l.order_id = o.id JOIN products p ON p.sku = l.sku \
         WHERE o.status IN {PURCHASED} ORDER BY o.id"
    );
    let mut rows = sqlx::query(&sql).fetch(&mut **tx);
    let mut current: Option<String> = None;
    let mut basket: Vec<Uuid> = Vec::new();
    let mut orders = 0;
    while let Some(row) = rows.try_next().await.context("reading paid baskets")? {
        let order_id: String = row.try_get("order_id")?;
        let product_id: String = row.try_get("product_id")?;
        if current.as_deref() != Some(order_id.as_str()) {
            if !basket.is_empty() {
                each(&basket);
                orders += 1;
            }
            basket.clear();
            current = Some(order_id);
        }
        basket.push(parse_id(&product_id)?);
    }
    if !basket.is_empty() {
        each(&basket);
        orders += 1;
    }
    Ok(orders)
}

/// The stored lists, each best first.
pub type Lists = HashMap<Uuid, Vec<Scored>>;

async fn lists_in(conn: &mut sqlx::AnyConnection) -> anyhow::Result<Lists> {
    let rows = sqlx::query(
        "SELECT product_id, other_id, score, support FROM copurchase_scores \
         ORDER BY product_id, score DESC, support DESC, other_id",
    )
    .fetch_all(&mut *conn)
    .await
    .context("loading co-purchase scores")?;
    let mut lists: Lists = HashMap::new();
    for row in rows {
        let product_id: String = row.try_get("product_id")?;
        let other_id: String = row.try_get("other_id")?;
        let support: i64 = row.try_get("support")?;
        lists
            .entry(parse_id(&product_id)?)
            .or_default()
            .push(Scored {
                other: parse_id(&other_id)?,
                score: row.try_get("score")?,
                support: u64::try_from(support).context("stored support")?,
            });
    }
    Ok(lists)
}

/// What the last batch stored: the lists, the last event it reflects and when it ran.
#[derive(Debug, Default)]
pub struct Stored {
    pub lists: Lists,
    pub last_event_seq: i64,
    pub computed_at: Option<i64>,
}

#[tracing::instrument(skip_all)]
pub async fn load(db: &Db) -> anyhow::Result<Stored> {
    let mut conn = db
        .pool()
        .acquire()
        .await
        .context("acquiring a connection")?;
    let lists = lists_in(&mut conn).await?;
    let state = sqlx::query("SELECT last_event_seq, computed_at FROM recommend_state WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await
        .context("loading the recommender's state")?;
    let (last_event_seq, computed_at) = match state {
        Some(row) => (
            row.try_get("last_event_seq")?,
            Some(row.try_get("computed_at")?),
        ),
        None => (0, None),
    };
    Ok(Stored {
        lists,
        last_event_seq,
        computed_at,
    })
}

fn same_list(a: &[Scored], b: &[Scored]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.other == y.other && x.support == y.support && (x.score - y.score).abs() < 1e-9
        })
}

/// Replaces the stored lists with `lists` in one transaction. Only lists that changed are
/// rewritten, and each of those (an emptied one too) takes a new change sequence for the
/// register's delta sync. Returns how many lists changed.
#[tracing::instrument(skip_all, fields(lists = lists.len()))]
pub async fn save(db: &Db, lists: &Lists, last_event_seq: i64, now: i64) -> anyhow::Result<usize> {
    let mut tx = db.begin_write().await?;
    let old = lists_in(&mut tx).await?;
    let mut changed: Vec<Uuid> = old
        .keys()
        .filter(|p| !lists.contains_key(p))
        .copied()
        .collect();
    changed.extend(
        lists
            .iter()
            .filter(|(p, list)| old.get(p).is_none_or(|o| !same_list(o, list)))
            .map(|(p, _)| *p),
    );
    changed.sort_unstable();
    for product in &changed {
        let product_id = product.to_string();
        sqlx::query("DELETE FROM copurchase_scores WHERE product_id = $1")
            .bind(&product_id)
            .execute(&mut *tx)
            .await
            .context("deleting an old co-purchase list")?;
        let seq = next_counter(&mut tx, LIST_COUNTER).await?;
        sqlx::query(
            "INSERT INTO copurchase_lists (product_id, change_seq, computed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (product_id) DO UPDATE SET change_seq = $2, computed_at = $3",
        )
        .bind(&product_id)
        .bind(seq)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("marking a co-purchase list changed")?;
    }
    let rows: Vec<(Uuid, &Scored)> = changed
        .iter()
        .filter_map(|p| lists.get(p).map(|l| (p, l)))
        .flat_map(|(p, l)| l.iter().map(move |s| (*p, s)))
        .collect();
    for chunk in rows.chunks(INSERT_ROWS_MAX) {
        insert_scores(&mut tx, chunk, now).await?;
    }
    sqlx::query(
        "INSERT INTO recommend_state (id, last_event_seq, computed_at) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET last_event_seq = $1, computed_at = $2",
    )
    .bind(last_event_seq)
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("saving the recommender's state")?;
    tx.commit().await.context("committing co-purchase scores")?;
    Ok(changed.len())
}

async fn insert_scores(tx: &mut Tx, rows: &[(Uuid, &Scored)], now: i64) -> anyhow::Result<()> {
    let values: Vec<String> = (0..rows.len())
        .map(|i| {
            let b = i * 5;
            format!(
                "(${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO copurchase_scores (product_id, other_id, score, support, computed_at) VALUES {}",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (product, s) in rows {
        query = query
            .bind(product.to_string())
            .bind(s.other.to_string())
            .bind(s.score)
            .bind(i64::try_from(s.support).unwrap_or(i64::MAX))
            .bind(now);
    }
    query
        .execute(&mut **tx)
        .await
        .context("inserting co-purchase scores")?;
    Ok(())
}

/// A changed list for the delta feed.
#[derive(Debug)]
pub struct ChangedList {
    pub product_id: Uuid,
    pub change_seq: i64,
    pub computed_at: i64,
    pub items: Vec<Scored>,
}

/// Lists changed after `since` (exclusive), in change order, at most `limit`.
#[tracing::instrument(skip_all, fields(since, limit))]
pub async fn changed_since(db: &Db, since: i64, limit: i64) -> anyhow::Result<Vec<ChangedList>> {
    let rows = sqlx::query(
        "SELECT l.product_id, l.change_seq, l.computed_at, s.other_id, s.score, s.support \
         FROM (SELECT * FROM copurchase_lists WHERE change_seq > $1 ORDER BY change_seq LIMIT $2) l \
         LEFT JOIN copurchase_scores s ON s.product_id = l.product_id \
         ORDER BY l.change_seq, s.score DESC, s.support DESC, s.other_id",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .context("loading changed co-purchase lists")?;
    let mut out: Vec<ChangedList> = Vec::new();
    for row in rows {
        let change_seq: i64 = row.try_get("change_seq")?;
        if out.last().is_none_or(|l| l.change_seq != change_seq) {
            let product_id: String = row.try_get("product_id")?;
            out.push(ChangedList {
                product_id: parse_id(&product_id)?,
                change_seq,
                computed_at: row.try_get("computed_at")?,
                items: Vec::new(),
            });
        }
        let other: Option<String> = row.try_get("other_id")?;
        if let (Some(other), Some(list)) = (other, out.last_mut()) {
            let support: i64 = row.try_get("support")?;
            list.items.push(Scored {
                other: parse_id(&other)?,
                score: row.try_get("score")?,
                support: u64::try_from(support).context("stored support")?,
            });
        }
    }
    Ok(out)
}

/// `order.paid` events after `seq`, oldest first, at most `limit`: (seq, order id).
pub async fn paid_events_after(db: &Db, seq: i64, limit: i64) -> anyhow::Result<Vec<(i64, Uuid)>> {
    let rows = sqlx::query(
        "SELECT seq, aggregate_id FROM events WHERE seq > $1 AND type = 'order.paid' \
         ORDER BY seq LIMIT $2",
    )
    .bind(seq)
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .context("reading order.paid events")?;
    rows.iter()
        .map(|r| {
            let order_id: String = r.try_get("aggregate_id")?;
            Ok((r.try_get("seq")?, parse_id(&order_id)?))
        })
        .collect()
}

/// The products of one order's lines (lines whose SKU no longer names a product are skipped).
pub async fn order_products(db: &Db, order_id: Uuid) -> anyhow::Result<Vec<Uuid>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT p.id FROM order_lines l JOIN products p ON p.sku = l.sku WHERE l.order_id = $1",
    )
    .bind(order_id.to_string())
    .fetch_all(db.pool())
    .await
    .context("reading an order's products")?;
    ids.iter().map(|id| parse_id(id)).collect()
}

pub async fn product_exists(db: &Db, id: Uuid) -> anyhow::Result<bool> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM products WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await
        .context("checking a product")?;
    Ok(found.is_some())
}

/// The candidates among `ids`, with the most stock available at any one location.
#[tracing::instrument(skip_all, fields(candidates = ids.len()))]
pub async fn candidates(db: &Db, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Candidate>> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT p.id, p.sku, p.name, p.category, p.archived, \
         (SELECT CAST(COALESCE(MAX(s.on_hand - s.reserved), 0) AS BIGINT) FROM stock s \
          WHERE s.sku = p.sku) AS available \
         FROM products p WHERE p.id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(id.to_string());
    }
    for row in query
        .fetch_all(db.pool())
        .await
        .context("loading candidates")?
    {
        let id: String = row.try_get("id")?;
        let archived: i64 = row.try_get("archived")?;
        out.insert(
            parse_id(&id)?,
            Candidate {
                sku: row.try_get("sku")?,
                name: row.try_get("name")?,
                category: row.try_get("category")?,
                archived: archived != 0,
                available: row.try_get("available")?,
            },
        );
    }
    Ok(out)
}

/// What `user` bought: the products and categories of their PAID and FULFILLED orders.
#[tracing::instrument(skip_all)]
pub async fn history(db: &Db, user: Uuid) -> anyhow::Result<History> {
    let sql = format!(
        "SELECT DISTINCT p.id, p.category FROM orders o \
         JOIN order_lines l ON l.order_id = o.id JOIN products p ON p.sku = l.sku \
         WHERE o.owner_id = $1 AND o.status IN {PURCHASED}"
    );
    let rows = sqlx::query(&sql)
        .bind(user.to_string())
        .fetch_all(db.pool())
        .await
        .context("loading a user's purchases")?;
    let mut bought = HashSet::new();
    let mut categories = HashSet::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        bought.insert(parse_id(&id)?);
        categories.insert(row.try_get::<String, _>("category")?);
    }
    Ok(History { bought, categories })
}
