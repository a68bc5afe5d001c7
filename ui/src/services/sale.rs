//! The open cart and checkout.

use kassa_domain::Money;
use serde::Serialize;

use super::{call, NoArgs};
use crate::error::Error;
use crate::model::{Available, Cart, Receipt, SplitStep, SplitView};
use uuid::Uuid;

#[derive(Serialize)]
struct Scanned<'a> {
    code: &'a str,
}

#[derive(Serialize)]
struct SkuQty<'a> {
    sku: &'a str,
    qty: u32,
}

#[derive(Serialize)]
struct Tendered {
    tendered: Money,
}

pub async fn cart() -> Result<Cart, Error> {
    call("cart", &NoArgs {}).await
}

pub async fn scan(code: &str) -> Result<Cart, Error> {
    call("scan", &Scanned { code }).await
}

pub async fn add_sku(sku: &str) -> Result<Cart, Error> {
    call("add_sku", &SkuQty { sku, qty: 1 }).await
}

/// Sets a line's quantity; 0 removes the line.
pub async fn set_qty(sku: &str, qty: u32) -> Result<Cart, Error> {
    call("set_qty", &SkuQty { sku, qty }).await
}

#[derive(Serialize)]
struct Label<'a> {
    label: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CartId {
    cart_id: Uuid,
}

/// Parks the open cart; the answer is the new, empty open cart.
pub async fn park(label: &str) -> Result<Cart, Error> {
    call("park", &Label { label }).await
}

pub async fn resume(cart_id: Uuid) -> Result<Cart, Error> {
    call("resume", &CartId { cart_id }).await
}

pub async fn parked() -> Result<Vec<Cart>, Error> {
    call("parked", &NoArgs {}).await
}

/// Available stock of the open cart's lines.
pub async fn cart_stock() -> Result<Vec<Available>, Error> {
    call("cart_stock", &NoArgs {}).await
}

pub async fn pay_cash(tendered: Money) -> Result<Receipt, Error> {
    call("pay_cash", &Tendered { tendered }).await
}

pub async fn pay_card() -> Result<Receipt, Error> {
    call("pay_card", &NoArgs {}).await
}

#[derive(Serialize)]
struct Amount {
    amount: Money,
}

/// The open cart's sale being paid in parts, if it is.
/// The store's cash rounding increment in minor units (0: none).
pub async fn cash_rounding() -> Result<i64, Error> {
    call("cash_rounding", &NoArgs {}).await
}

pub async fn split() -> Result<Option<SplitView>, Error> {
    call("split", &NoArgs {}).await
}

/// A cash part: less than the due stays a part, covering it completes the sale.
pub async fn pay_part_cash(tendered: Money) -> Result<SplitStep, Error> {
    call("pay_part_cash", &Tendered { tendered }).await
}

/// A card part of at most the due.
pub async fn pay_part_card(amount: Money) -> Result<SplitStep, Error> {
    call("pay_part_card", &Amount { amount }).await
}

/// Abandons the split sale: every part given back.
pub async fn void_split() -> Result<SplitView, Error> {
    call("void_split", &NoArgs {}).await
}

#[derive(Serialize)]
struct ApprovalId {
    approval: Uuid,
}

/// A manager's approval to sell the open cart offline past the till's stock lease.
pub async fn approve_beyond_lease(approval: Uuid) -> Result<(), Error> {
    call("approve_beyond_lease", &ApprovalId { approval }).await
}

#[derive(Serialize)]
struct Discount<'a> {
    sku: &'a str,
    discount: Money,
    approval: Option<Uuid>,
}

/// Sets a line's absolute discount; above the limit a cashier needs a manager's `approval`
/// (the error code is `approval_required` without one).
pub async fn set_discount(
    sku: &str,
    discount: Money,
    approval: Option<Uuid>,
) -> Result<Cart, Error> {
    call(
        "set_discount",
        &Discount {
            sku,
            discount,
            approval,
        },
    )
    .await
}
