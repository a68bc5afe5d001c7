//! Refunds at the till: the recent sales and a refund with a manager's approval.

use kassa_domain::api::Refund;
use serde::Serialize;
use uuid::Uuid;

use super::{call, NoArgs};
use crate::error::Error;
use crate::model::{Receipt, SaleToReturn};

#[derive(Serialize)]
struct Returned<'a> {
    sku: &'a str,
    qty: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefundRequest<'a> {
    order_id: Uuid,
    lines: Vec<Returned<'a>>,
    approval: Uuid,
}

pub async fn recent_sales() -> Result<Vec<Receipt>, Error> {
    call("recent_sales", &NoArgs {}).await
}

pub async fn refund(
    order_id: Uuid,
    lines: &[(String, u32)],
    approval: Uuid,
) -> Result<Refund, Error> {
    let lines = lines
        .iter()
        .map(|(sku, qty)| Returned { sku, qty: *qty })
        .collect();
    call(
        "refund",
        &RefundRequest {
            order_id,
            lines,
            approval,
        },
    )
    .await
}

#[derive(Serialize)]
struct Code<'a> {
    code: &'a str,
}

/// The sale a scanned receipt code (or typed number) names: this till's, or at Central.
pub async fn find_sale(code: &str) -> Result<SaleToReturn, Error> {
    call("find_sale", &Code { code }).await
}
