//! The open cart and checkout.

use kassa_domain::Money;
use serde::Serialize;

use super::{call, NoArgs};
use crate::error::Error;
use crate::model::{Cart, Receipt};

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

pub async fn pay_cash(tendered: Money) -> Result<Receipt, Error> {
    call("pay_cash", &Tendered { tendered }).await
}

pub async fn pay_card() -> Result<Receipt, Error> {
    call("pay_card", &NoArgs {}).await
}
