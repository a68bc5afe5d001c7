//! The in-memory top-k lists requests are served from, and the counts that let new paid orders
//! update them between batch runs.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use uuid::Uuid;

use super::model::{Counts, Params, Scored};
use crate::store::now_ms;

/// Shared by every request (in [`crate::AppState`]); writers hold the lock only to swap or patch
/// lists, never across I/O.
#[derive(Debug)]
pub struct Recommender {
    params: Params,
    inner: RwLock<Model>,
}

#[derive(Debug, Default)]
struct Model {
    lists: HashMap<Uuid, Vec<Scored>>,
    /// `None` until a batch ran in this process: lists loaded from the database come without
    /// the counts an incremental update needs.
    counts: Option<Counts>,
    /// The last `order.paid` event the lists reflect.
    last_event_seq: i64,
    computed_at: Option<i64>,
}

impl Recommender {
    pub fn new(params: Params) -> Self {
        Self {
            params,
            inner: RwLock::new(Model::default()),
        }
    }

    pub fn params(&self) -> Params {
        self.params
    }

    fn read(&self) -> RwLockReadGuard<'_, Model> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Model> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The top-k list of `product` (empty when it has none) and when the lists were computed.
    pub fn list(&self, product: Uuid) -> (Vec<Scored>, Option<i64>) {
        let model = self.read();
        (
            model.lists.get(&product).cloned().unwrap_or_default(),
            model.computed_at,
        )
    }

    /// Serves stored lists (at start-up) until a batch brings counts.
    pub fn load_stored(
        &self,
        lists: HashMap<Uuid, Vec<Scored>>,
        last_event_seq: i64,
        computed_at: Option<i64>,
    ) {
        *self.write() = Model {
            lists,
            counts: None,
            last_event_seq,
            computed_at,
        };
    }

    /// Swaps in a batch's result.
    pub fn replace(
        &self,
        counts: Counts,
        lists: HashMap<Uuid, Vec<Scored>>,
        last_event_seq: i64,
        computed_at: i64,
    ) {
        *self.write() = Model {
            lists,
            counts: Some(counts),
            last_event_seq,
            computed_at: Some(computed_at),
        };
    }

    /// The event sequence incremental updates continue from; `None` before the first batch.
    pub fn cursor(&self) -> Option<i64> {
        let model = self.read();
        model.counts.as_ref().map(|_| model.last_event_seq)
    }

    /// Counts one newly paid order (its products) and refreshes the lists it affects. This is
    /// the incremental updater's core, for the events poller and for a relay consumer alike.
    /// Returns false (and changes nothing) before the first batch has brought counts.
    pub fn apply_paid_order(&self, products: &[Uuid]) -> bool {
        let mut model = self.write();
        Self::apply(&mut model, self.params, products)
    }

    /// Applies the baskets of the `order.paid` events after `from_seq` up to `to_seq`, unless a
    /// batch moved the cursor meanwhile (then the caller reads again from the new cursor).
    pub fn apply_events(&self, from_seq: i64, to_seq: i64, baskets: &[Vec<Uuid>]) -> bool {
        let mut model = self.write();
        if model.counts.is_none() || model.last_event_seq != from_seq {
            return false;
        }
        for basket in baskets {
            Self::apply(&mut model, self.params, basket);
        }
        model.last_event_seq = to_seq;
        true
    }

    fn apply(model: &mut Model, params: Params, products: &[Uuid]) -> bool {
        let Some(counts) = model.counts.as_mut() else {
            return false;
        };
        let affected = counts.add_basket(products);
        for product in affected {
            let list = counts.top_k(product, params);
            if list.is_empty() {
                model.lists.remove(&product);
            } else {
                model.lists.insert(product, list);
            }
        }
        model.computed_at = Some(now_ms());
        true
    }
}
