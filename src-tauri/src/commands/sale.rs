//! The open cart and checkout.

use kassa_domain::{Money, Sku};
use kassa_register::carts::CartView;
use kassa_register::sale::Receipt;
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

/// Card needs Central (the processor confirms through it): refused offline, and this register
/// core has no card checkout yet, so it says so rather than pretend.
#[tauri::command]
pub async fn pay_card(register: State<'_, Register>) -> CommandResult<Receipt> {
    if !register.sync_status().online {
        return Err(CommandError::new(
            "offline",
            "Card payments need Central and the register is offline: take cash.",
        ));
    }
    Err(CommandError::new(
        "card_unavailable",
        "Card payments are not connected at this register yet: take cash.",
    ))
}
