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

impl ReceiptPayment {
    /// The spelling the register's store and reports use: `cash`, `card` or `card_offline`.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Cash { .. } => "cash",
            Self::Card { offline: false, .. } => "card",
            Self::Card { offline: true, .. } => "card_offline",
        }
    }
}

/// One payment of a sale: `amount` is the part of the total it pays (for cash, what stays in
/// the drawer: tendered − change). A sale paid by one method has one tender; a split sale
/// (cash and card, two cards) has one per part, in the order they were taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tender {
    pub amount: Money,
    pub payment: ReceiptPayment,
}

/// What the receipt prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub order_id: Uuid,
    pub receipt_no: String,
    pub location: String,
    pub lines: Vec<CartLine>,
    pub totals: Totals,
    /// Every payment of the sale, at least one (a sale of 0.00 has one cash tender of 0.00).
    /// They add up to `totals.total + cash_rounding`.
    pub payments: Vec<Tender>,
    /// The rounding of the final cash due by the store's rule (rounded − exact, negative when
    /// the customer paid less); absent when none (see [`crate::cash_rounding`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cash_rounding: Option<Money>,
    pub completed_at: DateTime<Utc>,
    pub mode: SaleMode,
}

impl Receipt {
    /// The first payment: the only one of a sale paid by one method.
    pub fn payment(&self) -> Option<&ReceiptPayment> {
        self.payments.first().map(|t| &t.payment)
    }

    /// Cash handed over, summed over the cash tenders; `None` without cash.
    pub fn tendered(&self) -> Option<Money> {
        self.cash_sum(|_, tendered, _| *tendered)
    }

    /// Change given (only ever from cash); `None` without cash.
    pub fn change(&self) -> Option<Money> {
        self.cash_sum(|_, _, change| *change)
    }

    /// What the customer paid: the total with the cash rounding.
    pub fn amount_paid(&self) -> Money {
        self.cash_rounding
            .and_then(|r| self.totals.total.checked_add(&r).ok())
            .unwrap_or(self.totals.total)
    }

    /// Several methods (or several cards) paid this sale.
    pub fn is_split(&self) -> bool {
        self.payments.len() > 1
    }

    fn cash_sum(&self, pick: impl Fn(&Money, &Money, &Money) -> Money) -> Option<Money> {
        let mut sum: Option<Money> = None;
        for t in &self.payments {
            if let ReceiptPayment::Cash { tendered, change } = &t.payment {
                let part = pick(&t.amount, tendered, change);
                sum = Some(match sum {
                    Some(s) => s.checked_add(&part).unwrap_or(s),
                    None => part,
                });
            }
        }
        sum
    }
}

/// A sale being paid in parts (split tender), as the payment screen shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitView {
    pub order_id: Uuid,
    pub cart_id: Uuid,
    pub total: Money,
    /// What the parts taken cover.
    pub paid: Money,
    /// What is still to pay: `total − paid`.
    pub due: Money,
    /// What is still to pay in cash: `due` rounded by the store's rule (equal to `due` where
    /// there is none), and its rounding (rounded − exact).
    #[serde(default)]
    pub due_in_cash: Option<Money>,
    #[serde(default)]
    pub cash_rounding: Option<Money>,
    pub parts: Vec<SplitPart>,
}

/// One part of a split sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitPart {
    pub part_no: i64,
    /// `paid`, or `pending` while a card part waits for the processor's answer.
    pub status: String,
    pub tender: Tender,
}

impl SplitView {
    /// A card part went (or is going) through Central: the order is there.
    pub fn online(&self) -> bool {
        self.parts.iter().any(|p| {
            matches!(
                p.tender.payment,
                ReceiptPayment::Card { offline: false, .. }
            )
        })
    }

    /// A card part was taken under the offline card policy.
    pub fn offline_card(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p.tender.payment, ReceiptPayment::Card { offline: true, .. }))
    }

    /// A card part waits for the processor's answer.
    pub fn pending(&self) -> bool {
        self.parts.iter().any(|p| p.status == "pending")
    }
}

/// Where a part left a split sale: still due, or complete with its receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SplitStep {
    Due(SplitView),
    Done(Box<Receipt>),
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
