//! Catalog search: `GET /v1/search` over a tantivy index kept on disk beside the database,
//! refreshed near real time from the catalog change feed and stock changes (see [`index`]),
//! with typo tolerance, exact SKU/barcode matches first, filters, disjunctive facet counts and
//! price buckets (see [`query`]). Each Central instance keeps its own index.

pub mod answer_cache;
pub mod index;
pub mod query;

use kassa_domain::maintenance::Feature;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use kassa_domain::api::{FacetCount, PriceBucket, SearchFacets, SearchHit, SearchResponse};
use kassa_domain::{Currency, Money};
use serde::Deserialize;
use tantivy::collector::TopDocs;
use tantivy::schema::Value;
use tantivy::{DocAddress, Order, Score, TantivyDocument};

use self::index::SearchIndex;
use self::query::{FacetCollector, FacetTable, Request, PRICE_BUCKETS_MINOR};
use crate::http::cache;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Browse, Query};
use crate::state::AppState;

/// Hits per page at most.
pub const PAGE_SIZE_MAX: u32 = 50;
/// Pages beyond this are refused (deep paging costs; refine the query instead).
pub const PAGE_MAX: u32 = 200;
pub const Q_CHARS_MAX: usize = 200;

/// Where the index lives by default: beside a SQLite database file (`kassa-central.db` →
/// `kassa-central.search/`), else `kassa-search/` in the working dir (`KASSA_SEARCH_DIR`
/// overrides both).
pub fn default_index_dir(database_url: &str) -> PathBuf {
    let file = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest));
    match file {
        Some(path) if !path.is_empty() && path != ":memory:" => {
            PathBuf::from(path).with_extension("search")
        }
        _ => PathBuf::from("kassa-search"),
    }
}

/// Opens the index for `config` (in memory when `search_dir` is `None`).
pub fn open(config: &crate::Config) -> anyhow::Result<Arc<SearchIndex>> {
    Ok(Arc::new(SearchIndex::open(config.search_dir.as_deref())?))
}

/// Keeps the index fresh, and this instance's product cache with it: a refresh every
/// `interval` until the process ends.
pub fn spawn_refresher(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let follow = |changed: &[_]| state.products.follow(changed);
            if let Err(e) = index::refresh_following(&state.search, &state.db, follow).await {
                tracing::warn!(error = ?e, "search index refresh failed");
            }
        }
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words (typos forgiven), or an exact SKU or barcode; at most 200 characters.
    #[param(max_length = 200)]
    pub q: Option<String>,
    pub category: Option<String>,
    pub brand: Option<String>,
    /// Decimal, in the shop's currency: `2.50`.
    #[param(pattern = "^[0-9]{1,12}([.][0-9]{1,2})?$")]
    pub min_price: Option<String>,
    #[param(pattern = "^[0-9]{1,12}([.][0-9]{1,2})?$")]
    pub max_price: Option<String>,
    /// Only products available somewhere.
    pub in_stock: Option<bool>,
    /// Comma-separated: `category,brand,price`.
    #[param(pattern = "^(category|brand|price)(,(category|brand|price))*$")]
    pub facets: Option<String>,
    /// `relevance` (default), `price_asc`, `price_desc`.
    #[param(pattern = "^(relevance|price_asc|price_desc)$")]
    pub sort: Option<String>,
    /// From 1 to 200.
    #[param(minimum = 1, maximum = 200)]
    pub page: Option<u32>,
    /// 1 to 50 (default 20).
    #[param(minimum = 1, maximum = 50)]
    pub page_size: Option<u32>,
}

/// How to rank and which facets to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Relevance,
    PriceAsc,
    PriceDesc,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    pub category: bool,
    pub brand: bool,
    pub price: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub facets: Wanted,
    pub sort: Sort,
    pub page: u32,
    pub page_size: u32,
    pub currency: Currency,
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

fn price_minor(raw: Option<&str>, currency: Currency) -> ApiResult<Option<i64>> {
    raw.map(|s| {
        Money::parse(s, currency)
            .map(|m| m.to_minor())
            .map_err(|e| bad("invalid_price", format!("{s:?}: {e}")))
    })
    .transpose()
}

/// Validates the query string into a request and options.
pub fn parse(q: SearchQuery, currency: Currency) -> ApiResult<(Request, Options)> {
    let text = q.q.unwrap_or_default();
    if text.chars().count() > Q_CHARS_MAX {
        return Err(bad(
            "query_too_long",
            format!("q is at most {Q_CHARS_MAX} characters"),
        ));
    }
    let mut wanted = Wanted::default();
    for name in q
        .facets
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
    {
        match name.trim() {
            "category" => wanted.category = true,
            "brand" => wanted.brand = true,
            "price" => wanted.price = true,
            other => {
                return Err(bad(
                    "unknown_facet",
                    format!("unknown facet {other:?}; facets: category, brand, price"),
                ))
            }
        }
    }
    let sort = match q.sort.as_deref().unwrap_or("relevance") {
        "relevance" => Sort::Relevance,
        "price_asc" => Sort::PriceAsc,
        "price_desc" => Sort::PriceDesc,
        other => {
            return Err(bad(
                "unknown_sort",
                format!("unknown sort {other:?}; sorts: relevance, price_asc, price_desc"),
            ))
        }
    };
    let page = q.page.unwrap_or(1);
    let page_size = q.page_size.unwrap_or(20);
    if !(1..=PAGE_MAX).contains(&page) || !(1..=PAGE_SIZE_MAX).contains(&page_size) {
        return Err(bad(
            "invalid_page",
            format!("page is 1 to {PAGE_MAX}, page_size 1 to {PAGE_SIZE_MAX}"),
        ));
    }
    let request = Request {
        q: text,
        category: q.category.filter(|c| !c.is_empty()),
        brand: q.brand.filter(|b| !b.is_empty()),
        min_price_minor: price_minor(q.min_price.as_deref(), currency)?,
        max_price_minor: price_minor(q.max_price.as_deref(), currency)?,
        in_stock: q.in_stock.unwrap_or(false),
    };
    Ok((
        request,
        Options {
            facets: wanted,
            sort,
            page,
            page_size,
            currency,
        },
    ))
}

fn hit(search: &SearchIndex, doc: &TantivyDocument, score: Score) -> anyhow::Result<SearchHit> {
    let f = &search.fields;
    let text = |field| {
        doc.get_first(field)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let currency: Currency = text(f.currency)
        .parse()
        .map_err(|e| anyhow::anyhow!("indexed currency: {e}"))?;
    let price = doc
        .get_first(f.price_minor)
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    Ok(SearchHit {
        id: text(f.id).parse().context("indexed id")?,
        sku: text(f.sku),
        name: text(f.name),
        brand: text(f.brand),
        category: text(f.category),
        price: Money::from_minor(price, currency),
        in_stock: doc.get_first(f.in_stock).and_then(|v| v.as_u64()) == Some(1),
        score,
    })
}

fn top(
    searcher: &tantivy::Searcher,
    query: &dyn tantivy::query::Query,
    opts: &Options,
) -> anyhow::Result<Vec<(Score, DocAddress)>> {
    let offset = usize::try_from((opts.page - 1) * opts.page_size).unwrap_or(0);
    let limit = usize::try_from(opts.page_size).unwrap_or(1);
    let docs = TopDocs::with_limit(limit).and_offset(offset);
    let field = "price_minor";
    Ok(match opts.sort {
        Sort::Relevance => searcher.search(query, &docs.order_by_score())?,
        Sort::PriceAsc | Sort::PriceDesc => {
            let order = if opts.sort == Sort::PriceAsc {
                Order::Asc
            } else {
                Order::Desc
            };
            searcher
                .search(query, &docs.order_by_fast_field::<i64>(field, order))?
                .into_iter()
                .map(|(_, addr)| (0.0, addr))
                .collect()
        }
    })
}

fn counts(
    table: &FacetTable,
    key: impl Fn(&(String, String, usize, bool)) -> Option<String>,
) -> Vec<FacetCount> {
    let mut by: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for (k, n) in table {
        if let Some(value) = key(k) {
            *by.entry(value).or_default() += n;
        }
    }
    let mut out: Vec<FacetCount> = by
        .into_iter()
        .map(|(value, count)| FacetCount { value, count })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    out
}

/// The facets and total from one pass over the base query's documents.
fn facets(table: &FacetTable, req: &Request, opts: &Options) -> (SearchFacets, u64) {
    let cat_ok = |c: &str| req.category.as_deref().is_none_or(|want| want == c);
    let brand_ok = |b: &str| req.brand.as_deref().is_none_or(|want| want == b);
    let total = table
        .iter()
        .filter(|((c, b, _, p), _)| cat_ok(c) && brand_ok(b) && *p)
        .map(|(_, n)| n)
        .sum();
    let mut out = SearchFacets::default();
    if opts.facets.category {
        out.category = Some(counts(table, |(c, b, _, p)| {
            (brand_ok(b) && *p).then(|| c.clone())
        }));
    }
    if opts.facets.brand {
        out.brand = Some(counts(table, |(c, b, _, p)| {
            (cat_ok(c) && *p).then(|| b.clone())
        }));
    }
    if opts.facets.price {
        let mut buckets = vec![0u64; PRICE_BUCKETS_MINOR.len()];
        for ((c, b, bucket, _), n) in table {
            if cat_ok(c) && brand_ok(b) {
                buckets[*bucket] += n;
            }
        }
        out.price = Some(
            buckets
                .into_iter()
                .enumerate()
                .map(|(i, count)| PriceBucket {
                    min: Money::from_minor(PRICE_BUCKETS_MINOR[i], opts.currency),
                    max: PRICE_BUCKETS_MINOR
                        .get(i + 1)
                        .map(|m| Money::from_minor(*m, opts.currency)),
                    count,
                })
                .collect(),
        );
    }
    (out, total)
}

/// Runs a search on the index as it is now (no I/O besides the index itself): what the API
/// answers, and what the benchmark measures raw.
pub fn run(search: &SearchIndex, req: &Request, opts: &Options) -> anyhow::Result<SearchResponse> {
    let (searcher, applied_seq) = search.view();
    let table = searcher.search(
        &query::base_query(search, req),
        &FacetCollector {
            request: req.clone(),
        },
    )?;
    let (facets, total) = facets(&table, req, opts);
    let hits = top(&searcher, &*query::full_query(search, req), opts)?
        .into_iter()
        .map(|(score, addr)| hit(search, &searcher.doc(addr)?, score))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(SearchResponse {
        hits,
        facets,
        total,
        page: opts.page,
        page_size: opts.page_size,
        index_lag_ms: search.lag_ms(),
        applied_seq,
    })
}

/// Searches the catalog, for anyone, signed in or not (archived products are never found).
#[utoipa::path(get, path = "/v1/search", tag = "search", params(SearchQuery),
    responses((status = 200, body = SearchResponse), (status = 304, description = "Not Modified"),
        (status = 400)))]
pub async fn search(
    State(state): State<AppState>,
    who: Browse,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Response> {
    let (req, opts) = parse(q, state.config.shop_currency)?;
    if opts.facets != Wanted::default() {
        crate::maintenance::features::require(&state, Feature::SearchFacets).await?;
    }
    let generation = state.search.reader.searcher().generation().generation_id();
    let kept = state
        .searches
        .get_or_find(generation, uri.query().unwrap_or(""), || {
            // The same hits, facets and index position are the same answer, however long
            // ago the index last caught up.
            let answer = SearchResponse {
                index_lag_ms: 0,
                ..run(&state.search, &req, &opts)?
            };
            let digest = cache::digest(&answer);
            Ok(answer_cache::Kept { answer, digest })
        })?;
    let found = SearchResponse {
        index_lag_ms: state.search.lag_ms(),
        ..kept.answer.clone()
    };
    Ok(cache::answer(
        &headers,
        who.anonymous(),
        cache::SEARCH,
        cache::Tag::Digest(kept.digest.clone()),
        &found,
    ))
}
