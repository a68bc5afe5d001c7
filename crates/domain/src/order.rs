//! The order state machine: the statuses an order has, the events that move it, and which moves
//! are legal.
//!
//! ```text
//! CREATED --reserve--> RESERVED --pay--> PAID --fulfill--> FULFILLED
//!    |                    |                |                   |
//!    +------cancel--------+--> CANCELLED   +------refund-------+--> REFUNDED
//! ```
//!
//! This is the only place the transitions are written down; Central stores the status and
//! turns an [`IllegalTransition`] into a 409 carrying the current status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OrderStatus {
    Created,
    Reserved,
    Paid,
    Fulfilled,
    Cancelled,
    Refunded,
}

/// Something that happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OrderEvent {
    Reserve,
    Pay,
    Fulfill,
    Cancel,
    Refund,
}

/// An event that the order's current status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} an order that is {from}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub event: OrderEvent,
}

/// A status string that is not one of [`OrderStatus`]'s spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown order status {value:?}; expected CREATED, RESERVED, PAID, FULFILLED, CANCELLED or REFUNDED"
)]
pub struct UnknownOrderStatus {
    pub value: String,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Created,
        OrderStatus::Reserved,
        OrderStatus::Paid,
        OrderStatus::Fulfilled,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
    ];

    /// The status after `event`, or why the event is not allowed now.
    pub fn apply(self, event: OrderEvent) -> Result<OrderStatus, IllegalTransition> {
        use OrderEvent as E;
        use OrderStatus as S;
        match (self, event) {
            (S::Created, E::Reserve) => Ok(S::Reserved),
            (S::Reserved, E::Pay) => Ok(S::Paid),
            (S::Paid, E::Fulfill) => Ok(S::Fulfilled),
            (S::Created | S::Reserved, E::Cancel) => Ok(S::Cancelled),
            (S::Paid | S::Fulfilled, E::Refund) => Ok(S::Refunded),
            (from, event) => Err(IllegalTransition { from, event }),
        }
    }

    /// No event moves an order out of a terminal status.
    pub fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Cancelled | OrderStatus::Refunded)
    }

    /// The wire and database spelling: `"CREATED"`, `"RESERVED"`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "CREATED",
            OrderStatus::Reserved => "RESERVED",
            OrderStatus::Paid => "PAID",
            OrderStatus::Fulfilled => "FULFILLED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Refunded => "REFUNDED",
        }
    }

    /// The type of the event row written when an order enters this status.
    pub fn event_type(self) -> &'static str {
        match self {
            OrderStatus::Created => "order.created",
            OrderStatus::Reserved => "order.reserved",
            OrderStatus::Paid => "order.paid",
            OrderStatus::Fulfilled => "order.fulfilled",
            OrderStatus::Cancelled => "order.cancelled",
            OrderStatus::Refunded => "order.refunded",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = UnknownOrderStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownOrderStatus {
                value: crate::clipped(s),
            })
    }
}

impl OrderEvent {
    pub const ALL: [OrderEvent; 5] = [
        OrderEvent::Reserve,
        OrderEvent::Pay,
        OrderEvent::Fulfill,
        OrderEvent::Cancel,
        OrderEvent::Refund,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderEvent::Reserve => "reserve",
            OrderEvent::Pay => "pay",
            OrderEvent::Fulfill => "fulfill",
            OrderEvent::Cancel => "cancel",
            OrderEvent::Refund => "refund",
        }
    }
}

impl fmt::Display for OrderEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderEvent as E;
    use OrderStatus as S;

    /// The whole table, written out independently of `apply`'s match.
    fn expected(from: S, event: E) -> Option<S> {
        let allowed = [
            (S::Created, E::Reserve, S::Reserved),
            (S::Reserved, E::Pay, S::Paid),
            (S::Paid, E::Fulfill, S::Fulfilled),
            (S::Created, E::Cancel, S::Cancelled),
            (S::Reserved, E::Cancel, S::Cancelled),
            (S::Paid, E::Refund, S::Refunded),
            (S::Fulfilled, E::Refund, S::Refunded),
        ];
        allowed
            .into_iter()
            .find(|&(f, e, _)| f == from && e == event)
            .map(|(_, _, to)| to)
    }

    #[test]
    fn every_status_event_pair_matches_the_table() {
        let mut legal = 0;
        for from in S::ALL {
            for event in E::ALL {
                match expected(from, event) {
                    Some(to) => {
                        legal += 1;
                        assert_eq!(from.apply(event), Ok(to), "{from} --{event}-->");
                    }
                    None => assert_eq!(
                        from.apply(event),
                        Err(IllegalTransition { from, event }),
                        "{from} --{event}--> should be illegal"
                    ),
                }
            }
        }
        assert_eq!(legal, 7);
    }

    #[test]
    fn terminal_statuses_accept_no_event() {
        for status in S::ALL {
            let any_legal = E::ALL.into_iter().any(|e| status.apply(e).is_ok());
            assert_eq!(status.is_terminal(), !any_legal, "{status}");
        }
    }

    #[test]
    fn the_happy_path_reaches_fulfilled() {
        let status = [E::Reserve, E::Pay, E::Fulfill]
            .into_iter()
            .try_fold(S::Created, S::apply);
        assert_eq!(status, Ok(S::Fulfilled));
    }

    #[test]
    fn illegal_transition_names_status_and_event() {
        let err = S::Cancelled.apply(E::Pay).unwrap_err();
        assert_eq!(err.to_string(), "cannot pay an order that is CANCELLED");
    }

    #[test]
    fn spellings_round_trip() {
        for status in S::ALL {
            assert_eq!(status.as_str().parse::<S>().unwrap(), status);
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
            assert_eq!(
                status.event_type(),
                format!("order.{}", status.as_str().to_lowercase())
            );
        }
        assert!("paid".parse::<S>().is_err());
        assert_eq!(serde_json::to_string(&E::Fulfill).unwrap(), "\"fulfill\"");
    }
}
