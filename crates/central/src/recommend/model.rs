//! The co-purchase model without I/O: counts over order baskets, cosine scores, top-k lists, and
//! the request-time re-ranking for one user.
//!
//! The measure: n(a) is the number of paid orders holding product a, co(a,b) the number holding
//! both; score(a,b) = co(a,b) / sqrt(n(a)·n(b)) (cosine similarity of the two products' order
//! vectors, 0 to 1). Pairs with co(a,b) below the minimum support are left out; ties are broken
//! by support (more first), then by product id.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};

use uuid::Uuid;

/// At most this many distinct products of one order are counted: the pairs of a basket grow as
/// the square of its size, and a huge basket says little about what goes together.
pub const BASKET_PRODUCTS_MAX: usize = 64;

/// A user's score for a product in a category they bought from before is multiplied by this.
pub const CATEGORY_BOOST: f64 = 1.5;

/// How many lists to keep and which pairs count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub top_k: usize,
    pub min_support: u64,
}

/// One partner of a product, with its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub other: Uuid,
    pub score: f64,
    pub support: u64,
}

/// Best first: score, then support, then id.
fn best_first(a: &Scored, b: &Scored) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then(b.support.cmp(&a.support))
        .then(a.other.cmp(&b.other))
}

/// Order counts per product and per pair (symmetric).
#[derive(Debug, Default, Clone)]
pub struct Counts {
    n: HashMap<Uuid, u64>,
    co: HashMap<Uuid, HashMap<Uuid, u64>>,
}

impl Counts {
    /// Counts one paid order's basket (duplicates ignored, at most [`BASKET_PRODUCTS_MAX`]
    /// products); returns the basket as counted.
    pub fn count(&mut self, products: &[Uuid]) -> Vec<Uuid> {
        let basket: Vec<Uuid> = products
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .take(BASKET_PRODUCTS_MAX)
            .collect();
        for (i, a) in basket.iter().enumerate() {
            *self.n.entry(*a).or_default() += 1;
            for b in &basket[i + 1..] {
                *self.co.entry(*a).or_default().entry(*b).or_default() += 1;
                *self.co.entry(*b).or_default().entry(*a).or_default() += 1;
            }
        }
        basket
    }

    /// Counts a basket like [`Counts::count`] and returns the products whose lists may have
    /// changed: the basket's and all their partners (cosine depends on n of both sides).
    pub fn add_basket(&mut self, products: &[Uuid]) -> BTreeSet<Uuid> {
        let basket = self.count(products);
        let mut affected: BTreeSet<Uuid> = basket.iter().copied().collect();
        for a in &basket {
            if let Some(partners) = self.co.get(a) {
                affected.extend(partners.keys().copied());
            }
        }
        affected
    }

    /// The number of orders counted that hold `product`.
    pub fn orders_with(&self, product: Uuid) -> u64 {
        self.n.get(&product).copied().unwrap_or(0)
    }

    /// Every product seen in a basket.
    pub fn products(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.n.keys().copied()
    }

    /// The best `top_k` partners of `product` with support ≥ `min_support`.
    pub fn top_k(&self, product: Uuid, params: Params) -> Vec<Scored> {
        let Some(partners) = self.co.get(&product) else {
            return Vec::new();
        };
        let n_a = self.orders_with(product);
        let mut scored: Vec<Scored> = partners
            .iter()
            .filter(|(_, co)| **co >= params.min_support.max(1))
            .map(|(other, co)| Scored {
                other: *other,
                score: cosine(*co, n_a, self.orders_with(*other)),
                support: *co,
            })
            .collect();
        scored.sort_by(best_first);
        scored.truncate(params.top_k);
        scored
    }

    /// The top-k list of every product that has one.
    pub fn all_lists(&self, params: Params) -> HashMap<Uuid, Vec<Scored>> {
        self.products()
            .map(|p| (p, self.top_k(p, params)))
            .filter(|(_, list)| !list.is_empty())
            .collect()
    }
}

/// co / sqrt(n_a · n_b); 0 when either count is 0.
pub fn cosine(co: u64, n_a: u64, n_b: u64) -> f64 {
    if n_a == 0 || n_b == 0 {
        return 0.0;
    }
    co as f64 / ((n_a as f64) * (n_b as f64)).sqrt()
}

/// What the re-ranking needs to know about a candidate product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub sku: String,
    pub name: String,
    pub category: String,
    pub archived: bool,
    /// The most available (on_hand − reserved) at any one location.
    pub available: i64,
}

/// What a user bought before (their PAID and FULFILLED orders).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub bought: HashSet<Uuid>,
    pub categories: HashSet<String>,
}

/// Re-ranks a stored list for one request: drops products unknown, archived or out of stock
/// everywhere, and (with a user's history) products they already bought; multiplies the score
/// of products in a category they bought from by [`CATEGORY_BOOST`]; best first, at most
/// `limit`.
pub fn rerank(
    list: &[Scored],
    candidates: &HashMap<Uuid, Candidate>,
    history: Option<&History>,
    limit: usize,
) -> Vec<Scored> {
    let mut ranked: Vec<Scored> = list
        .iter()
        .filter_map(|s| {
            let c = candidates.get(&s.other)?;
            if c.archived || c.available <= 0 {
                return None;
            }
            let Some(h) = history else { return Some(*s) };
            if h.bought.contains(&s.other) {
                return None;
            }
            let boosted = !c.category.is_empty() && h.categories.contains(&c.category);
            Some(Scored {
                score: if boosted {
                    s.score * CATEGORY_BOOST
                } else {
                    s.score
                },
                ..*s
            })
        })
        .collect();
    ranked.sort_by(best_first);
    ranked.truncate(limit);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    const PARAMS: Params = Params {
        top_k: 10,
        min_support: 2,
    };

    #[test]
    fn cosine_of_always_together_is_one() {
        let mut counts = Counts::default();
        for _ in 0..3 {
            counts.add_basket(&[id(1), id(2)]);
        }
        let list = counts.top_k(id(1), PARAMS);
        assert_eq!(list.len(), 1);
        assert!((list[0].score - 1.0).abs() < 1e-12);
        assert_eq!(list[0].support, 3);
    }

    #[test]
    fn pairs_below_min_support_are_left_out_and_duplicates_count_once() {
        let mut counts = Counts::default();
        counts.add_basket(&[id(1), id(2), id(2)]);
        counts.add_basket(&[id(1), id(3)]);
        counts.add_basket(&[id(1), id(3)]);
        assert_eq!(counts.orders_with(id(2)), 1);
        let list = counts.top_k(id(1), PARAMS);
        assert_eq!(list.iter().map(|s| s.other).collect::<Vec<_>>(), [id(3)]);
        // co = 2, n(1) = 3, n(3) = 2.
        assert!((list[0].score - 2.0 / 6.0_f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn ties_go_to_support_then_id() {
        let mut counts = Counts::default();
        for _ in 0..2 {
            counts.add_basket(&[id(1), id(3)]);
            counts.add_basket(&[id(1), id(2)]);
        }
        let list = counts.top_k(id(1), PARAMS);
        assert_eq!(
            list.iter().map(|s| s.other).collect::<Vec<_>>(),
            [id(2), id(3)]
        );
    }

    #[test]
    fn adding_a_basket_reports_partners_of_its_products() {
        let mut counts = Counts::default();
        counts.add_basket(&[id(1), id(2)]);
        let affected = counts.add_basket(&[id(1), id(3)]);
        assert_eq!(affected, [id(1), id(2), id(3)].into_iter().collect());
    }

    fn candidate(category: &str, available: i64) -> Candidate {
        Candidate {
            sku: "S".into(),
            name: "N".into(),
            category: category.into(),
            archived: false,
            available,
        }
    }

    #[test]
    fn rerank_drops_bought_and_out_of_stock_and_boosts_categories() {
        let list = [
            Scored {
                other: id(1),
                score: 0.9,
                support: 5,
            },
            Scored {
                other: id(2),
                score: 0.8,
                support: 5,
            },
            Scored {
                other: id(3),
                score: 0.7,
                support: 5,
            },
            Scored {
                other: id(4),
                score: 0.6,
                support: 5,
            },
        ];
        let candidates: HashMap<Uuid, Candidate> = [
            (id(1), candidate("A", 1)),
            (id(2), candidate("A", 0)),
            (id(3), candidate("B", 3)),
            (id(4), candidate("C", 3)),
        ]
        .into_iter()
        .collect();
        let plain = rerank(&list, &candidates, None, 10);
        assert_eq!(
            plain.iter().map(|s| s.other).collect::<Vec<_>>(),
            [id(1), id(3), id(4)]
        );
        let history = History {
            bought: [id(1)].into_iter().collect(),
            categories: ["C".to_owned()].into_iter().collect(),
        };
        let personal = rerank(&list, &candidates, Some(&history), 10);
        assert_eq!(
            personal.iter().map(|s| s.other).collect::<Vec<_>>(),
            [id(4), id(3)]
        );
        assert!((personal[0].score - 0.9).abs() < 1e-12);
        assert_eq!(rerank(&list, &candidates, Some(&history), 1).len(), 1);
    }
}
