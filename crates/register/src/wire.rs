//! Request and response bodies of `POST /v1/sync/orders`, which is newer than
//! `kassa_domain::api`, written to its contract.
//! Responses are read leniently (unknown fields ignored) so Central may add fields.

use chrono::{DateTime, Utc};
use kassa_domain::api::{ErrorDetail, Order};
use kassa_domain::{Money, Sku};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The most orders one `POST /v1/sync/orders` may carry.
pub const SYNC_BATCH_ORDERS_MAX: usize = 100;

/// One line of an offline sale, at the price the register charged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncLine {
    pub sku: Sku,
    pub qty: u32,
    pub unit_price: Money,
    pub discount: Option<Money>,
}

/// A payment taken offline (cash only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncPayment {
    pub method: String,
    pub amount: Money,
    pub tendered: Money,
}

/// A sale completed while Central was out of reach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncOrder {
    pub id: Uuid,
    pub location: String,
    pub lines: Vec<SyncLine>,
    pub payments: Vec<SyncPayment>,
    pub completed_at: DateTime<Utc>,
    pub receipt_no: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncOrdersRequest {
    pub orders: Vec<SyncOrder>,
}

/// What Central did with one synced order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SyncResult {
    Accepted {
        id: Uuid,
        order: Box<Order>,
        #[serde(default)]
        shortfalls: Vec<serde_json::Value>,
    },
    Rejected {
        id: Uuid,
        error: ErrorDetail,
    },
}

impl SyncResult {
    pub fn id(&self) -> Uuid {
        match self {
            SyncResult::Accepted { id, .. } | SyncResult::Rejected { id, .. } => *id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncOrdersResponse {
    pub results: Vec<SyncResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_result_parses_from_the_contract() {
        let id = Uuid::now_v7();
        let raw = serde_json::json!({"results":[{"id": id, "outcome":"rejected",
            "error":{"code":"invalid_order","message":"no lines","details":null}}]});
        let parsed: SyncOrdersResponse = serde_json::from_value(raw).unwrap();
        assert_eq!(parsed.results[0].id(), id);
        assert!(matches!(parsed.results[0], SyncResult::Rejected { .. }));
    }
}
