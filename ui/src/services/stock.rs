//! A manager's stock adjustments and receiving.

use kassa_domain::api::StockReason;
use serde::Serialize;
use uuid::Uuid;

use super::{call, NoArgs};
use crate::error::Error;
use crate::model::{QueuedAdjustment, StockView};

#[derive(Serialize)]
struct Code<'a> {
    code: &'a str,
}

#[derive(Serialize)]
struct Adjust<'a> {
    sku: &'a str,
    delta: i64,
    reason: StockReason,
    note: Option<&'a str>,
}

/// A product by scanned barcode or typed SKU, with its available stock.
pub async fn lookup(code: &str) -> Result<StockView, Error> {
    call("stock_lookup", &Code { code }).await
}

pub async fn adjust(
    sku: &str,
    delta: i64,
    reason: StockReason,
    note: Option<&str>,
) -> Result<Uuid, Error> {
    call(
        "adjust_stock",
        &Adjust {
            sku,
            delta,
            reason,
            note,
        },
    )
    .await
}

pub async fn queue() -> Result<Vec<QueuedAdjustment>, Error> {
    call("stock_adjustments", &NoArgs {}).await
}
