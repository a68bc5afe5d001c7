//! Refunds at the till: the recent sales to choose from, and a refund of returned lines with a
//! manager's approval (online only; the register says why when it cannot).

use kassa_domain::api::Refund;
use kassa_domain::{Receipt, Sku};
use kassa_register::Register;
use serde::Deserialize;
use tauri::State;
use uuid::Uuid;

use crate::error::{CommandError, CommandResult};

/// Sales the refund screen lists.
const RECENT_SALES_SHOWN: u32 = 30;

#[tauri::command]
pub async fn recent_sales(register: State<'_, Register>) -> CommandResult<Vec<Receipt>> {
    Ok(register.recent_sales(RECENT_SALES_SHOWN).await?)
}

/// The sale a scanned receipt code (or a typed receipt or online order number) names: this
/// till's from its own store, another till's of the store (or an online order) from Central.
#[tauri::command]
pub async fn find_sale(
    register: State<'_, Register>,
    code: String,
) -> CommandResult<kassa_register::returns::SaleToReturn> {
    Ok(register.find_sale(&code).await?)
}

/// One returned line: its SKU and how many units come back.
#[derive(Debug, Deserialize)]
pub struct Returned {
    pub sku: String,
    pub qty: u32,
}

#[tauri::command]
pub async fn refund(
    register: State<'_, Register>,
    order_id: Uuid,
    lines: Vec<Returned>,
    approval: Uuid,
) -> CommandResult<Refund> {
    let lines = lines
        .into_iter()
        .map(|l| {
            Sku::parse(&l.sku)
                .map(|sku| (sku, l.qty))
                .map_err(|e| CommandError::new("invalid", format!("not a SKU: {e}")))
        })
        .collect::<CommandResult<Vec<_>>>()?;
    Ok(register.refund(order_id, lines, approval).await?)
}
