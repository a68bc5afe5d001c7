//! Recommendations ("frequently bought together"): a batch job computes item-to-item co-purchase
//! scores over paid orders and stores the top-k per product; requests are served from memory,
//! re-ranked for the user; new `order.paid` events update the counts between batch runs.
//! The measure and the re-ranking rules are in [`model`] and `docs/recommendations.md`.

pub mod memory;
pub mod model;

use kassa_domain::maintenance::Feature;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use kassa_domain::api::{
    CopurchaseList, CopurchasePage, CopurchaseScore, Recommendations, RecommendedItem,
};
use kassa_domain::{Role, Sku};
use serde::Deserialize;
use uuid::Uuid;

pub use self::memory::Recommender;
use self::model::{Counts, Params, Scored};
use crate::http::cache;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, Browse, Json, Path, Query, Staff};
use crate::state::AppState;
use crate::store::{self, from_ms, now_ms, Db};

/// `limit` when the request gives none, and its bound.
const LIMIT_DEFAULT: usize = 10;
const LIMIT_MAX: usize = 50;
/// `order.paid` events read per query by the incremental updater.
const EVENTS_PER_READ_MAX: i64 = 500;
/// Lists per page of the delta feed.
const FEED_LIMIT_DEFAULT: i64 = 100;
const FEED_LIMIT_MAX: i64 = 500;

/// A recommender with the configured parameters, serving what the last batch stored.
pub async fn load(db: &Db, params: Params) -> anyhow::Result<Recommender> {
    let recommender = Recommender::new(params);
    let stored = store::recommend::load(db).await?;
    recommender.load_stored(stored.lists, stored.last_event_seq, stored.computed_at);
    Ok(recommender)
}

/// What one batch run did.
#[derive(Debug, Clone, Copy)]
pub struct BatchReport {
    pub orders: u64,
    pub lists: usize,
    pub lists_changed: usize,
    pub last_event_seq: i64,
}

/// The batch job: counts every PAID or FULFILLED order's basket (in one snapshot, together with
/// the newest event sequence so incremental updates continue exactly after it), computes every
/// product's top-k, stores them and swaps them into memory.
#[tracing::instrument(skip_all)]
pub async fn run_batch(db: &Db, recommender: &Recommender) -> anyhow::Result<BatchReport> {
    let mut tx = store::recommend::begin_snapshot(db).await?;
    let last_event_seq = store::recommend::max_event_seq(&mut tx).await?;
    let mut counts = Counts::default();
    let orders = store::recommend::paid_baskets(&mut tx, |basket| {
        counts.count(basket);
    })
    .await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    let lists = counts.all_lists(recommender.params());
    let now = now_ms();
    let lists_changed = store::recommend::save(db, &lists, last_event_seq, now).await?;
    let report = BatchReport {
        orders,
        lists: lists.len(),
        lists_changed,
        last_event_seq,
    };
    recommender.replace(counts, lists, last_event_seq, now);
    Ok(report)
}

/// The incremental updater: applies the `order.paid` events after the recommender's cursor
/// (polling the events table) through [`Recommender::apply_events`]. Nothing happens before the
/// first batch in this process. Returns how many orders were applied.
pub async fn apply_new_events(db: &Db, recommender: &Recommender) -> anyhow::Result<usize> {
    let mut applied = 0;
    loop {
        let Some(from) = recommender.cursor() else {
            return Ok(applied);
        };
        let events = store::recommend::paid_events_after(db, from, EVENTS_PER_READ_MAX).await?;
        let Some(&(to, _)) = events.last() else {
            return Ok(applied);
        };
        let mut baskets = Vec::with_capacity(events.len());
        for (_, order_id) in &events {
            baskets.push(store::recommend::order_products(db, *order_id).await?);
        }
        if recommender.apply_events(from, to, &baskets) {
            applied += events.len();
        }
        if i64::try_from(events.len()).unwrap_or(i64::MAX) < EVENTS_PER_READ_MAX {
            return Ok(applied);
        }
    }
}

/// Runs the batch every `interval` (the first right away, which also brings the counts the
/// incremental updater needs) and starts the incremental updater ([`spawn_updater`]).
pub fn spawn_recommender(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    spawn_updater(state.clone());
    tokio::spawn(async move {
        let mut batch = tokio::time::interval(interval);
        batch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            batch.tick().await;
            match run_batch(&state.db, &state.recommender).await {
                Ok(report) => tracing::info!(?report, "co-purchase scores computed"),
                Err(e) => tracing::warn!(error = ?e, "recommendation batch failed"),
            }
        }
    })
}

/// Applies new paid orders to the in-memory lists every `config.recommend_tick` (a batch running
/// meanwhile is safe: [`Recommender::apply_events`] refuses a stale cursor).
pub fn spawn_updater(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.recommend_tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match apply_new_events(&state.db, &state.recommender).await {
                Ok(0) => {}
                Ok(orders) => tracing::debug!(orders, "recommendations updated"),
                Err(e) => tracing::warn!(error = ?e, "recommendation update failed"),
            }
        }
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ForProductQuery {
    /// Re-rank for this user: drop what they bought, boost their categories. A customer may
    /// only name themselves.
    pub user: Option<Uuid>,
    /// At most this many items (default 10, at most 50: a larger one is cut to 50).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub limit: Option<usize>,
}

/// Products bought together with `product_id`, best first, re-ranked for `user`, in stock and
/// not archived.
#[utoipa::path(get, path = "/v1/recommendations/{product_id}", tag = "recommendations",
    params(ForProductQuery),
    responses((status = 200, body = Recommendations), (status = 304, description = "Not Modified"),
        (status = 401), (status = 403), (status = 404)))]
pub async fn for_product(
    State(state): State<AppState>,
    who: Browse,
    headers: HeaderMap,
    Path(product_id): Path<Uuid>,
    Query(q): Query<ForProductQuery>,
) -> ApiResult<Response> {
    crate::maintenance::features::require(&state, Feature::Recommendations).await?;
    match (&who.caller, q.user) {
        (None, Some(_)) => {
            return Err(ApiError::Unauthorized(
                "sign in to have recommendations re-ranked for a user",
            ))
        }
        (Some(caller), Some(user)) if caller.role == Role::Customer && user != caller.user_id => {
            return Err(ApiError::Forbidden)
        }
        _ => {}
    }
    let limit = match q.limit {
        None => LIMIT_DEFAULT,
        Some(0) => {
            return Err(ApiError::bad_request(
                "invalid_limit",
                "limit must be at least 1",
            ))
        }
        Some(n) => n.min(LIMIT_MAX),
    };
    if !store::recommend::product_exists(&state.db, product_id).await? {
        return Err(ApiError::NotFound("product"));
    }
    let (list, computed_at) = state.recommender.list(product_id);
    let ids: Vec<Uuid> = list.iter().map(|s| s.other).collect();
    let candidates = store::recommend::candidates(&state.db, &ids).await?;
    let history = match q.user {
        Some(user) => Some(store::recommend::history(&state.db, user).await?),
        None => None,
    };
    let ranked = model::rerank(&list, &candidates, history.as_ref(), limit);
    let items = ranked
        .iter()
        .filter_map(|s| {
            let c = candidates.get(&s.other)?;
            Some(RecommendedItem {
                product_id: s.other,
                sku: Sku::parse(&c.sku).ok()?,
                name: c.name.clone(),
                score: s.score,
            })
        })
        .collect();
    let answer = Recommendations {
        product_id,
        items,
        computed_at: computed_at.map(from_ms),
    };
    // Re-ranked for a user, the answer is theirs: never a shared cache's.
    let anonymous = who.anonymous() && q.user.is_none();
    Ok(cache::answer(
        &headers,
        anonymous,
        cache::RECOMMENDATIONS,
        cache::Tag::Body,
        &answer,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// The `next_cursor` of the previous page; omit for the start.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub since: Option<String>,
    /// Lists per page, at most 500 (a larger one is cut to 500).
    #[param(minimum = 1)]
    pub limit: Option<i64>,
}

fn score(s: &Scored) -> CopurchaseScore {
    CopurchaseScore {
        product_id: s.other,
        score: s.score,
        support: i64::try_from(s.support).unwrap_or(i64::MAX),
    }
}

/// The stored top-k lists changed after `since`, in change order (staff: registers sync these
/// with the catalog so "frequently bought together" works offline). An emptied list comes with
/// no items. Reflects the batch runs, not the incremental updates between them.
#[utoipa::path(get, path = "/v1/recommendations", tag = "recommendations", params(FeedQuery),
    responses((status = 200, body = CopurchasePage)))]
pub async fn feed(
    State(state): State<AppState>,
    _auth: Auth<Staff>,
    Query(q): Query<FeedQuery>,
) -> ApiResult<Json<CopurchasePage>> {
    crate::maintenance::features::require(&state, Feature::Recommendations).await?;
    let since = match q.since.as_deref() {
        None | Some("") => 0,
        Some(raw) => raw.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "since must be a cursor from next_cursor")
        })?,
    };
    let limit = q.limit.unwrap_or(FEED_LIMIT_DEFAULT);
    if limit < 1 {
        return Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be at least 1",
        ));
    }
    let lists =
        store::recommend::changed_since(&state.db, since, limit.min(FEED_LIMIT_MAX)).await?;
    let next = lists.last().map_or(since, |l| l.change_seq);
    Ok(Json(CopurchasePage {
        items: lists
            .iter()
            .map(|l| CopurchaseList {
                product_id: l.product_id,
                items: l.items.iter().map(score).collect(),
                computed_at: from_ms(l.computed_at),
                change_seq: l.change_seq,
            })
            .collect(),
        next_cursor: next.to_string(),
    }))
}
