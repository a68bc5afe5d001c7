//! Turning a search request into tantivy queries, and the facet counts.
//!
//! Text: every word of `q` must match name, brand, description or attributes; name and brand
//! also match with typos (edit distance 1 for words of 4–7 letters, 2 from 8). An exact SKU or
//! barcode match is boosted far above any text score, so it ranks first.
//!
//! Facets are disjunctive: the category counts apply every filter except the category filter,
//! and so on. One pass over the documents matching the text and `in_stock` counts them by
//! (category, brand, price bucket, inside the price filter), and every facet and the total are
//! sums over that small table.

use std::collections::HashMap;
use std::ops::Bound;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader, Term};

use super::index::{Fields, SearchIndex};

/// Lower bounds of the price buckets, in minor units (the last bucket has no upper bound).
pub const PRICE_BUCKETS_MINOR: [i64; 5] = [0, 500, 1000, 2000, 5000];
/// Words of a query that are used (the rest are ignored).
pub const QUERY_WORDS_MAX: usize = 8;
const EXACT_BOOST: f32 = 1000.0;

/// What a search asks for, already validated.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub q: String,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub min_price_minor: Option<i64>,
    pub max_price_minor: Option<i64>,
    pub in_stock: bool,
}

pub fn bucket_of(price_minor: i64) -> usize {
    PRICE_BUCKETS_MINOR
        .iter()
        .rposition(|lower| price_minor >= *lower)
        .unwrap_or(0)
}

impl Request {
    pub fn price_ok(&self, price_minor: i64) -> bool {
        self.min_price_minor.is_none_or(|m| price_minor >= m)
            && self.max_price_minor.is_none_or(|m| price_minor <= m)
    }
}

fn term(field: tantivy::schema::Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, text),
        IndexRecordOption::WithFreqs,
    ))
}

fn boosted(query: Box<dyn Query>, boost: f32) -> (Occur, Box<dyn Query>) {
    (Occur::Should, Box::new(BoostQuery::new(query, boost)))
}

fn typo_distance(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// The words of `q`, as the index's tokenizer cuts and lowercases them.
fn words(search: &SearchIndex, q: &str) -> Vec<String> {
    let Ok(mut analyzer) = search.index.tokenizer_for_field(search.fields.name) else {
        return Vec::new();
    };
    let mut stream = analyzer.token_stream(q);
    let mut out = Vec::new();
    while stream.advance() {
        if out.len() < QUERY_WORDS_MAX {
            out.push(stream.token().text.clone());
        }
    }
    out
}

/// One word: exact in any text field, or with typos in name and brand.
fn word_query(f: &Fields, word: &str) -> Box<dyn Query> {
    let mut should = vec![
        boosted(term(f.name, word), 3.0),
        boosted(term(f.brand_text, word), 2.0),
        boosted(term(f.description, word), 1.0),
        boosted(term(f.attributes, word), 1.0),
    ];
    let distance = typo_distance(word);
    if distance > 0 {
        for (field, boost) in [(f.name, 1.5), (f.brand_text, 1.0)] {
            let fuzzy = FuzzyTermQuery::new(Term::from_field_text(field, word), distance, true);
            should.push(boosted(Box::new(fuzzy), boost));
        }
    }
    Box::new(BooleanQuery::new(should))
}

/// The text part: all words, or an exact SKU or barcode; everything when `q` is empty.
pub fn text_query(search: &SearchIndex, q: &str) -> Box<dyn Query> {
    let q = q.trim();
    if q.is_empty() {
        return Box::new(AllQuery);
    }
    let f = &search.fields;
    let words = words(search, q);
    let mut should: Vec<(Occur, Box<dyn Query>)> = vec![
        boosted(term(f.sku, q), EXACT_BOOST),
        boosted(term(f.sku, &q.to_uppercase()), EXACT_BOOST),
        boosted(term(f.barcode, q), EXACT_BOOST),
    ];
    if !words.is_empty() {
        let all: Vec<(Occur, Box<dyn Query>)> = words
            .iter()
            .map(|w| (Occur::Must, word_query(f, w)))
            .collect();
        should.push((Occur::Should, Box::new(BooleanQuery::new(all))));
    }
    Box::new(BooleanQuery::new(should))
}

fn filter(clauses: &mut Vec<(Occur, Box<dyn Query>)>, query: Box<dyn Query>) {
    clauses.push((Occur::Must, query));
}

/// Text ∧ in_stock: what the facet counts start from.
pub fn base_query(search: &SearchIndex, req: &Request) -> Box<dyn Query> {
    let mut clauses = vec![(Occur::Must, text_query(search, &req.q))];
    if req.in_stock {
        filter(
            &mut clauses,
            Box::new(TermQuery::new(
                Term::from_field_u64(search.fields.in_stock, 1),
                IndexRecordOption::Basic,
            )),
        );
    }
    Box::new(BooleanQuery::new(clauses))
}

/// Text ∧ every filter: the hits.
pub fn full_query(search: &SearchIndex, req: &Request) -> Box<dyn Query> {
    let f = &search.fields;
    let mut clauses = vec![(Occur::Must, base_query(search, req))];
    if let Some(category) = &req.category {
        filter(&mut clauses, term(f.category, category));
    }
    if let Some(brand) = &req.brand {
        filter(&mut clauses, term(f.brand, brand));
    }
    if req.min_price_minor.is_some() || req.max_price_minor.is_some() {
        let bound = |v: Option<i64>| {
            v.map_or(Bound::Unbounded, |v| {
                Bound::Included(Term::from_field_i64(f.price_minor, v))
            })
        };
        filter(
            &mut clauses,
            Box::new(RangeQuery::new(
                bound(req.min_price_minor),
                bound(req.max_price_minor),
            )),
        );
    }
    Box::new(BooleanQuery::new(clauses))
}

/// (category, brand, price bucket, inside the price filter) → documents.
pub type FacetTable = HashMap<(String, String, usize, bool), u64>;

/// Counts the documents of the base query into a [`FacetTable`].
#[derive(Debug)]
pub struct FacetCollector {
    pub request: Request,
}

pub struct FacetSegment {
    category: Option<StrColumn>,
    brand: Option<StrColumn>,
    price: Column<i64>,
    request: Request,
    counts: HashMap<(u64, u64, usize, bool), u64>,
}

impl Collector for FacetCollector {
    type Fruit = FacetTable;
    type Child = FacetSegment;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<FacetSegment> {
        let fast = reader.fast_fields();
        Ok(FacetSegment {
            category: fast.str("category")?,
            brand: fast.str("brand")?,
            price: fast.i64("price_minor")?,
            request: self.request.clone(),
            counts: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FacetTable>) -> tantivy::Result<FacetTable> {
        let mut all = FacetTable::new();
        for fruit in fruits {
            for (key, n) in fruit {
                *all.entry(key).or_default() += n;
            }
        }
        Ok(all)
    }
}

fn first_ord(column: Option<&StrColumn>, doc: DocId) -> u64 {
    column
        .and_then(|c| c.term_ords(doc).next())
        .unwrap_or(u64::MAX)
}

fn ord_text(column: Option<&StrColumn>, ord: u64) -> String {
    let mut out = String::new();
    if let Some(c) = column {
        if ord != u64::MAX && c.ord_to_str(ord, &mut out).is_err() {
            out.clear();
        }
    }
    out
}

impl std::fmt::Debug for FacetSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FacetSegment")
            .field("counts", &self.counts.len())
            .finish_non_exhaustive()
    }
}

impl SegmentCollector for FacetSegment {
    type Fruit = FacetTable;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let price = self.price.first(doc).unwrap_or(0);
        let key = (
            first_ord(self.category.as_ref(), doc),
            first_ord(self.brand.as_ref(), doc),
            bucket_of(price),
            self.request.price_ok(price),
        );
        *self.counts.entry(key).or_default() += 1;
    }

    fn harvest(self) -> FacetTable {
        let mut out = FacetTable::new();
        for ((c, b, bucket, ok), n) in self.counts {
            let key = (
                ord_text(self.category.as_ref(), c),
                ord_text(self.brand.as_ref(), b),
                bucket,
                ok,
            );
            *out.entry(key).or_default() += n;
        }
        out
    }
}
