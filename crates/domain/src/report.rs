//! A register's sales report as the register core computes it and the UI shows it: one type
//! for the core, the desktop shell and the wasm UI. Refunds given at the register are shown
//! apart and taken off: every total comes as gross (what was sold), refunds and net.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{Currency, Money, TaxClass};

/// Sales and refunds of one payment method. A card refund counts against the card method of
/// the sale it refunds, a cash refund against `cash`, whatever the sale was paid with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MethodTotal {
    /// `cash`, `card` or `card_offline`, as the register records the payment.
    pub method: String,
    pub sales: i64,
    /// What the sales took, discounts taken off.
    pub gross: Money,
    /// What went back to customers this way.
    pub refunds: Money,
    /// `gross - refunds`.
    pub net: Money,
}

/// Tax collected in one tax class at one rate (on the sales; refunds are not broken down).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaxTotal {
    pub tax_class: TaxClass,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "21"))]
    pub rate: Decimal,
    pub net: Money,
    pub tax: Money,
    pub gross: Money,
}

/// One day (UTC) of sales and of the refunds given that day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayTotal {
    pub day: NaiveDate,
    pub sales: i64,
    pub gross: Money,
    pub refunds: Money,
    pub net: Money,
    /// Tax on the day's sales.
    pub tax: Money,
}

/// A register's report over `from..=to` (UTC days).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SalesReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub currency: Currency,
    pub sales: i64,
    /// What customers paid, discounts taken off.
    pub gross: Money,
    /// Refunds given at this register in the window (of sales made in it or before).
    pub refund_count: i64,
    pub refunds: Money,
    /// `gross - refunds`.
    pub net: Money,
    pub discounts: Money,
    /// Tax on the sales.
    pub tax: Money,
    /// The sum of the cash roundings of the sales (rounded − exact): what customers paid is
    /// `gross + cash_rounding`, and the cash method's total includes it. Absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cash_rounding: Option<Money>,
    /// Sales still waiting to reach Central.
    pub pending_sync: i64,
    /// Payment methods in name order.
    pub by_method: Vec<MethodTotal>,
    /// Tax classes in [`TaxClass::ALL`] order, then by rate.
    pub taxes: Vec<TaxTotal>,
    /// Days with sales or refunds, oldest first.
    pub by_day: Vec<DayTotal>,
}
