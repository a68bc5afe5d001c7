//! A manager's stock adjustments and receiving, and the queue they wait in.

use kassa_domain::api::{Product, StockReason};
use kassa_register::adjustments::Queued;
use kassa_register::{catalog, Register};
use serde::Serialize;
use tauri::State;
use uuid::Uuid;

use crate::error::{CommandError, CommandResult};

/// Adjustments the stock screen shows.
const ADJUSTMENTS_SHOWN_MAX: u32 = 20;

/// A product and what this register believes is available of it.
#[derive(Debug, Serialize)]
pub struct StockView {
    pub product: Product,
    pub available: Option<i64>,
}

/// Finds a product by scanned barcode or typed SKU, with its available stock.
#[tauri::command]
pub async fn stock_lookup(register: State<'_, Register>, code: String) -> CommandResult<StockView> {
    let code = code.trim();
    let by_sku = match kassa_domain::Sku::parse(code) {
        Ok(sku) => catalog::by_sku(register.db(), sku.as_str()).await?,
        Err(_) => None,
    };
    let product = match by_sku {
        Some(product) => product,
        None => register.lookup_barcode(code).await.map_err(|_| {
            CommandError::new(
                "not_found",
                format!("no product with SKU or barcode {code}"),
            )
        })?,
    };
    let available = register.stock_available(&product.sku).await?;
    Ok(StockView { product, available })
}

/// Queues an adjustment or receiving at this register's location.
#[tauri::command]
pub async fn adjust_stock(
    register: State<'_, Register>,
    sku: String,
    delta: i64,
    reason: StockReason,
    note: Option<String>,
) -> CommandResult<Uuid> {
    let sku = kassa_domain::Sku::parse(sku.trim())
        .map_err(|e| CommandError::new("invalid", format!("not a SKU: {e}")))?;
    let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    Ok(register.adjust_stock(&sku, delta, reason, note).await?)
}

#[tauri::command]
pub async fn stock_adjustments(register: State<'_, Register>) -> CommandResult<Vec<Queued>> {
    Ok(register.stock_adjustments(ADJUSTMENTS_SHOWN_MAX).await?)
}
