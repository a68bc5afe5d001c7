//! Load shedding: a bound on the requests this instance has in flight
//! (`KASSA_INFLIGHT_MAX`), so a spike gets a fast `503 overloaded` with `Retry-After` instead of
//! a pile of timeouts, and so what pays keeps room when browsing floods in.
//!
//! Three classes, shed in this order:
//! - **browse** (product pages, search, recommendations, the spec): admitted while fewer than
//!   half of the non-reserved places are taken;
//! - **other** (carts, catalog edits, stock, lists): while the non-reserved places last;
//! - **essential** (orders with their payments and refunds, webhooks, register sync, leases, signing in,
//!   approvals): up to the bound; `KASSA_INFLIGHT_RESERVED_PERCENT` of it (25 % by default) is
//!   theirs alone. Health, readiness and metrics are never shed.
//!
//! The count is this instance's (each instance protects itself; the load balancer spreads the
//! load). A shed request did nothing, so any client may retry it after `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;
use crate::state::AppState;
use crate::telemetry::metrics::SHED_REQUESTS;

/// What a shed request is told to wait.
pub const RETRY_AFTER_S: u64 = 1;

/// A request's place in the shedding order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Browse,
    Other,
    Essential,
    /// Health, readiness, metrics: the load balancer and the monitoring must always get in.
    Never,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Browse => "browse",
            Class::Other => "other",
            Class::Essential => "essential",
            Class::Never => "never",
        }
    }

    /// The class of `method` on the route `route` (its template, `/v1/orders/{id}`).
    pub fn of(method: &Method, route: &str) -> Class {
        const ESSENTIAL: &[&str] = &[
            "/v1/orders",
            "/v1/webhooks/",
            "/v1/sync/",
            "/v1/stock/leases",
            "/v1/auth/",
            "/v1/approvals",
        ];
        const BROWSE: &[&str] = &["/v1/products", "/v1/search", "/v1/recommendations"];
        if matches!(route, "/health" | "/ready" | "/metrics") {
            Class::Never
        } else if ESSENTIAL.iter().any(|p| route.starts_with(p)) {
            Class::Essential
        } else if (*method == Method::GET || *method == Method::HEAD)
            && (BROWSE.iter().any(|p| route.starts_with(p)) || route == "/openapi.json")
        {
            Class::Browse
        } else {
            Class::Other
        }
    }
}

/// The in-flight count and its bounds.
#[derive(Debug)]
pub struct Inflight {
    now: AtomicUsize,
    max: usize,
    unreserved: usize,
}

impl Inflight {
    /// `max` requests at most; `reserved_percent` of them only for essential ones.
    pub fn new(max: usize, reserved_percent: u8) -> Self {
        let max = max.max(1);
        let reserved = max * usize::from(reserved_percent.min(100)) / 100;
        Self {
            now: AtomicUsize::new(0),
            max,
            unreserved: (max - reserved).max(1),
        }
    }

    fn bound(&self, class: Class) -> usize {
        match class {
            Class::Browse => (self.unreserved / 2).max(1),
            Class::Other => self.unreserved,
            Class::Essential => self.max,
            Class::Never => usize::MAX,
        }
    }

    /// A place for a request of `class`, or `None` when its share is taken.
    pub fn admit(&self, class: Class) -> Option<Place<'_>> {
        let bound = self.bound(class);
        let before = self.now.fetch_add(1, Ordering::AcqRel);
        if before >= bound {
            self.now.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Place(self))
    }

    /// Requests in flight now.
    pub fn now(&self) -> usize {
        self.now.load(Ordering::Acquire)
    }
}

/// A request's place; given back when the request ends (answered, failed or abandoned).
#[derive(Debug)]
pub struct Place<'a>(&'a Inflight);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Middleware: admits a request if its class has room, else answers `503 overloaded` at once.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let class = {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        Class::of(req.method(), route)
    };
    let Some(_place) = state.inflight.admit(class) else {
        metrics::counter!(SHED_REQUESTS, "class" => class.name()).increment(1);
        return ApiError::Overloaded {
            retry_after_s: RETRY_AFTER_S,
        }
        .into_response();
    };
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsing_is_shed_first_and_essentials_keep_their_share() {
        let gate = Inflight::new(8, 25);
        // 8 places, 2 reserved: browse up to 3, other up to 6, essential up to 8.
        let browse: Vec<_> = (0..3).map_while(|_| gate.admit(Class::Browse)).collect();
        assert_eq!(browse.len(), 3);
        assert!(gate.admit(Class::Browse).is_none(), "browse shed at 3");
        let other: Vec<_> = (0..3).map_while(|_| gate.admit(Class::Other)).collect();
        assert_eq!(other.len(), 3);
        assert!(gate.admit(Class::Other).is_none(), "other shed at 6");
        let essential: Vec<_> = (0..2).map_while(|_| gate.admit(Class::Essential)).collect();
        assert_eq!(essential.len(), 2);
        assert!(
            gate.admit(Class::Essential).is_none(),
            "essential shed at 8"
        );
        assert!(gate.admit(Class::Never).is_some(), "health is never shed");
        drop(browse);
        assert_eq!(gate.now(), 5);
        assert!(
            gate.admit(Class::Browse).is_none(),
            "still above browse's share"
        );
        drop(other);
        assert!(
            gate.admit(Class::Browse).is_some(),
            "room again once others end"
        );
    }

    #[test]
    fn routes_fall_in_their_class() {
        assert_eq!(Class::of(&Method::POST, "/v1/orders"), Class::Essential);
        assert_eq!(
            Class::of(&Method::POST, "/v1/sync/orders"),
            Class::Essential
        );
        assert_eq!(
            Class::of(&Method::POST, "/v1/webhooks/payments"),
            Class::Essential
        );
        assert_eq!(Class::of(&Method::GET, "/v1/products/{id}"), Class::Browse);
        assert_eq!(Class::of(&Method::GET, "/v1/search"), Class::Browse);
        assert_eq!(Class::of(&Method::PUT, "/v1/products/{id}"), Class::Other);
        assert_eq!(Class::of(&Method::POST, "/v1/carts"), Class::Other);
        assert_eq!(Class::of(&Method::GET, "/ready"), Class::Never);
    }
}
