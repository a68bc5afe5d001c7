//! Stock leases: stock reserved at Central for one register, which its offline sales consume
//! with no shortfall. The wire types of `/v1/stock/leases` and `/v1/settings/leases`, and the
//! register's proposal maths (how much of each SKU to ask for), pure so both sides and the
//! benchmarks compute the same thing.
//!
//! A lease line keeps its books: `remaining = granted − consumed − released`. Leased units count
//! as reserved at Central, so available = on_hand − reserved leaves them out for everyone else.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::LineRequest;
use crate::Sku;

/// A lease lasts at most this long: a register renews it while it is online.
pub const LEASE_TTL_S_MAX: u64 = 7 * 24 * 3600;
/// Leases listed per `GET /v1/stock/leases`, newest first.
pub const LEASE_LIST_MAX: usize = 100;

/// `POST /v1/stock/leases` (Idempotency-Key required): lease `lines` at `location` for
/// `ttl_s` seconds. `register` names the till when a manager asks away from it; a register's
/// own session leases for itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// Location code: the register's own.
    pub location: String,
    #[serde(default)]
    pub register: Option<Uuid>,
    pub lines: Vec<LineRequest>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 604_800))]
    pub ttl_s: u64,
}

/// `PUT /v1/stock/leases/{id}`: renew (a new expiry, `ttl_s` from now) and optionally resize:
/// `lines` are the units the register wants to hold now per SKU (grown up to what is
/// available, shrunk by giving units back); a SKU of the lease left out is given back whole.
/// Without `lines` only the expiry moves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseUpdate {
    #[serde(default)]
    pub lines: Option<Vec<LineRequest>>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 604_800))]
    pub ttl_s: u64,
}

/// One SKU of a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LeaseLine {
    pub sku: Sku,
    /// What the register last asked to hold.
    pub requested: i64,
    /// Every unit ever reserved for this line (grants and growths).
    pub granted: i64,
    /// Units the register's sales took from the lease.
    pub consumed: i64,
    /// Units given back (shrinks, release, expiry).
    pub released: i64,
    /// Units still held: `granted − consumed − released`; the till may sell these offline with
    /// no shortfall.
    pub remaining: i64,
}

/// A lease as Central keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Lease {
    pub id: Uuid,
    pub register: Uuid,
    /// Location code.
    pub location: String,
    /// `active`, `released` or `expired`.
    pub status: String,
    pub lines: Vec<LeaseLine>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/stock/leases?register=…`: newest first, at most [`LEASE_LIST_MAX`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LeaseList {
    pub items: Vec<Lease>,
}

/// What a till does when an offline sale goes past its lease.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BeyondLease {
    /// Sell, and say the sale goes past what the till holds.
    #[default]
    Warn,
    /// Sell only with a manager's approval.
    Approval,
}

/// `GET/PUT /v1/settings/leases`: how the registers of one location size their leases (a
/// manager's setting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseSettings {
    /// Location code.
    pub location: String,
    /// The offline time a lease should cover, in seconds (60 s to 7 days).
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 604_800))]
    pub horizon_s: u64,
    /// The most one register may lease of a SKU, as a share of what is available (1 to 100).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub cap_percent: u32,
    /// Units a top seller is leased at least (0 to 1000), cap permitting.
    #[cfg_attr(feature = "openapi", schema(maximum = 1000))]
    pub floor_units: u32,
    /// How many of the register's best sellers get the floor (0 to 500).
    #[cfg_attr(feature = "openapi", schema(maximum = 500))]
    pub top_sellers: u32,
    #[serde(default)]
    pub beyond: BeyondLease,
    /// Whether a manager has set these for the location (in answers; a `PUT` ignores it). A
    /// till leases only where they are set: the defaults are an answer, not a shop's decision.
    #[serde(default)]
    pub set_by_manager: bool,
}

impl LeaseSettings {
    pub const HORIZON_S_MIN: u64 = 60;
    pub const FLOOR_UNITS_MAX: u32 = 1000;
    pub const TOP_SELLERS_MAX: u32 = 500;

    /// What a location uses until a manager says otherwise: four hours, a quarter of what is
    /// available, two units of the ten best sellers, a warning past the lease.
    pub fn default_for(location: &str) -> Self {
        Self {
            location: location.to_owned(),
            horizon_s: 4 * 3600,
            cap_percent: 25,
            floor_units: 2,
            top_sellers: 10,
            beyond: BeyondLease::Warn,
            set_by_manager: false,
        }
    }

    /// The first rule the settings break, as (code field, message).
    pub fn check(&self) -> Result<(), String> {
        if !(Self::HORIZON_S_MIN..=LEASE_TTL_S_MAX).contains(&self.horizon_s) {
            return Err(format!(
                "horizon_s is {} to {LEASE_TTL_S_MAX} seconds",
                Self::HORIZON_S_MIN
            ));
        }
        if !(1..=100).contains(&self.cap_percent) {
            return Err("cap_percent is 1 to 100".into());
        }
        if self.floor_units > Self::FLOOR_UNITS_MAX {
            return Err(format!("floor_units is 0 to {}", Self::FLOOR_UNITS_MAX));
        }
        if self.top_sellers > Self::TOP_SELLERS_MAX {
            return Err(format!("top_sellers is 0 to {}", Self::TOP_SELLERS_MAX));
        }
        Ok(())
    }
}

/// One SKU's figures for a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Velocity {
    /// Units this register sold over the observed window.
    pub sold: u64,
    /// Units available at the location now, the register's own lease included.
    pub available: i64,
}

/// How many units of each SKU a register should hold: its sales rate over `window_s` carried
/// over the settings' horizon (rounded up), at least the floor for its `top_sellers` best
/// sellers, never more than `cap_percent` of what is available (rounded down), and never a
/// line of 0. A SKU it never sold gets nothing unless it is a top seller (it cannot be).
pub fn propose(
    settings: &LeaseSettings,
    window_s: u64,
    skus: &BTreeMap<Sku, Velocity>,
) -> Vec<LineRequest> {
    let window_s = window_s.max(1);
    let mut by_sales: Vec<(&Sku, &Velocity)> = skus.iter().filter(|(_, v)| v.sold > 0).collect();
    // Best sellers first; the SKU breaks ties so the choice is stable.
    by_sales.sort_by(|a, b| b.1.sold.cmp(&a.1.sold).then(a.0.cmp(b.0)));
    let top = usize::try_from(settings.top_sellers).unwrap_or(usize::MAX);
    let mut lines = Vec::new();
    for (rank, (sku, v)) in by_sales.into_iter().enumerate() {
        let expected =
            (u128::from(v.sold) * u128::from(settings.horizon_s)).div_ceil(u128::from(window_s));
        let floor = if rank < top {
            u128::from(settings.floor_units)
        } else {
            0
        };
        let available = u128::try_from(v.available.max(0)).unwrap_or(0);
        let cap = available * u128::from(settings.cap_percent) / 100;
        let qty = expected
            .max(floor)
            .min(cap)
            .min(u128::from(crate::LINE_QTY_MAX));
        if qty > 0 {
            lines.push(LineRequest {
                sku: (*sku).clone(),
                qty: u32::try_from(qty).unwrap_or(crate::LINE_QTY_MAX),
            });
        }
    }
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    lines.truncate(crate::CART_LINES_MAX);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn settings() -> LeaseSettings {
        LeaseSettings {
            horizon_s: 3600,
            cap_percent: 50,
            floor_units: 3,
            top_sellers: 1,
            ..LeaseSettings::default_for("STORE-1")
        }
    }

    #[test]
    fn the_rate_is_carried_over_the_horizon_and_capped_by_a_share_of_available() {
        let skus = BTreeMap::from([
            // 10 an hour over 2 hours: 10 for an hour's horizon.
            (
                sku("A"),
                Velocity {
                    sold: 20,
                    available: 100,
                },
            ),
            // 60 an hour, but only 50 % of 30 available.
            (
                sku("B"),
                Velocity {
                    sold: 120,
                    available: 30,
                },
            ),
            // 1 in 2 hours: rounded up to 1 (not a top seller: B sells most).
            (
                sku("C"),
                Velocity {
                    sold: 1,
                    available: 100,
                },
            ),
            // Never sold: nothing.
            (
                sku("D"),
                Velocity {
                    sold: 0,
                    available: 100,
                },
            ),
        ]);
        let lines = propose(&settings(), 7200, &skus);
        let got: Vec<(&str, u32)> = lines.iter().map(|l| (l.sku.as_ref(), l.qty)).collect();
        assert_eq!(got, vec![("A", 10), ("B", 15), ("C", 1)]);
    }

    #[test]
    fn top_sellers_get_the_floor_and_nothing_available_gives_no_line() {
        let skus = BTreeMap::from([
            (
                sku("A"),
                Velocity {
                    sold: 2,
                    available: 100,
                },
            ),
            (
                sku("B"),
                Velocity {
                    sold: 1,
                    available: 100,
                },
            ),
            (
                sku("C"),
                Velocity {
                    sold: 9,
                    available: 1,
                },
            ),
        ]);
        // C sells most but 50 % of 1 is 0; A is second and not top: 1 (rate), B 1.
        let lines = propose(&settings(), 36_000, &skus);
        let got: Vec<(&str, u32)> = lines.iter().map(|l| (l.sku.as_ref(), l.qty)).collect();
        assert_eq!(got, vec![("A", 1), ("B", 1)]);
        let more = LeaseSettings {
            top_sellers: 2,
            ..settings()
        };
        let lines = propose(&more, 36_000, &skus);
        let got: Vec<(&str, u32)> = lines.iter().map(|l| (l.sku.as_ref(), l.qty)).collect();
        assert_eq!(got, vec![("A", 3), ("B", 1)]);
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        assert!(settings().check().is_ok());
        for bad in [
            LeaseSettings {
                horizon_s: 59,
                ..settings()
            },
            LeaseSettings {
                cap_percent: 0,
                ..settings()
            },
            LeaseSettings {
                cap_percent: 101,
                ..settings()
            },
            LeaseSettings {
                floor_units: 1001,
                ..settings()
            },
            LeaseSettings {
                top_sellers: 501,
                ..settings()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
