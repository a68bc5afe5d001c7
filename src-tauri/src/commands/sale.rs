//! The open cart and checkout.

use kassa_domain::Receipt;
use kassa_domain::{Money, Sku};
use kassa_register::carts::CartView;
use kassa_register::Register;
use tauri::State;

use crate::error::{CommandError, CommandResult};

fn sku(typed: &str) -> CommandResult<Sku> {
    Sku::parse(typed).map_err(|e| CommandError::new("invalid", format!("not a SKU: {e}")))
}

#[tauri::command]
pub async fn cart(register: State<'_, Register>) -> CommandResult<CartView> {
    Ok(register.cart().await?)
}

/// A keyboard-wedge barcode into the open cart.
#[tauri::command]
pub async fn scan(register: State<'_, Register>, code: String) -> CommandResult<CartView> {
    Ok(register.scan(&code).await?)
}

#[tauri::command]
pub async fn add_sku(
    register: State<'_, Register>,
    sku: String,
    qty: u32,
) -> CommandResult<CartView> {
    Ok(register.add_sku(&self::sku(&sku)?, qty).await?)
}

/// 0 removes the line.
#[tauri::command]
pub async fn set_qty(
    register: State<'_, Register>,
    sku: String,
    qty: u32,
) -> CommandResult<CartView> {
    Ok(register.set_qty(&self::sku(&sku)?, qty).await?)
}

#[tauri::command]
pub async fn pay_cash(register: State<'_, Register>, tendered: Money) -> CommandResult<Receipt> {
    Ok(register.pay_cash(tendered).await?)
}

/// The open cart's whole total by card: through Central online; offline under the offline card
/// policy or refused (`card_unavailable`); `card_declined` leaves the cart open; `card_pending`
/// holds it until the sync engine knows the outcome.
#[tauri::command]
pub async fn pay_card(register: State<'_, Register>) -> CommandResult<Receipt> {
    Ok(register.pay_card().await?)
}
