//! The receipt of a sale at the till, as the register prints it and the UI shows it: one type
//! for the register core, the desktop shell and the wasm UI.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CartLine, Money, Totals};

/// How a sale reaches Central: made while Central answered, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleMode {
    /// Through the normal checkout (`POST /v1/orders` and its payment).
    Online,
    /// Through `POST /v1/sync/orders` when the link is back.
    Offline,
}

impl SaleMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SaleMode::Online => "online",
            SaleMode::Offline => "offline",
        }
    }
}

/// How the customer paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum ReceiptPayment {
    /// Counted at the till.
    Cash { tendered: Money, change: Money },
    /// By card: `reference` is the processor's payment reference (online) or the reference
    /// the register made under its offline card policy (`offline`). Never card data.
    Card { reference: String, offline: bool },
}

/// What the receipt prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub order_id: Uuid,
    pub receipt_no: String,
    pub location: String,
    pub lines: Vec<CartLine>,
    pub totals: Totals,
    pub payment: ReceiptPayment,
    pub completed_at: DateTime<Utc>,
    pub mode: SaleMode,
}

impl Receipt {
    /// Cash handed over, for a cash sale.
    pub fn tendered(&self) -> Option<Money> {
        match &self.payment {
            ReceiptPayment::Cash { tendered, .. } => Some(*tendered),
            ReceiptPayment::Card { .. } => None,
        }
    }

    /// Change given, for a cash sale.
    pub fn change(&self) -> Option<Money> {
        match &self.payment {
            ReceiptPayment::Cash { change, .. } => Some(*change),
            ReceiptPayment::Card { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payments_say_their_method_on_the_wire_and_read_back() {
        let cash = ReceiptPayment::Cash {
            tendered: Money::parse("20.00", crate::Currency::EUR).unwrap(),
            change: Money::parse("7.50", crate::Currency::EUR).unwrap(),
        };
        let json = serde_json::to_value(&cash).unwrap();
        assert_eq!(json["method"], "cash");
        assert_eq!(
            serde_json::from_value::<ReceiptPayment>(json).unwrap(),
            cash
        );
        let card = ReceiptPayment::Card {
            reference: "pi_123".into(),
            offline: false,
        };
        let json = serde_json::to_value(&card).unwrap();
        assert_eq!(json["method"], "card");
        assert_eq!(json["offline"], false);
        assert_eq!(
            serde_json::from_value::<ReceiptPayment>(json).unwrap(),
            card
        );
        assert_eq!(
            serde_json::to_value(SaleMode::Offline).unwrap(),
            serde_json::json!("offline")
        );
    }
}
