//! The open cart and checkout.

use kassa_domain::{Money, Sku};
use kassa_domain::{Receipt, SplitStep, SplitView};
use kassa_register::carts::CartView;
use kassa_register::Register;
use serde::Serialize;
use tauri::State;
use uuid::Uuid;

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

/// A line's absolute discount; above the limit a cashier needs a manager's `approval`
/// (`approval_required` without one).
#[tauri::command]
pub async fn set_discount(
    register: State<'_, Register>,
    sku: String,
    discount: Money,
    approval: Option<Uuid>,
) -> CommandResult<CartView> {
    Ok(register
        .set_discount(&self::sku(&sku)?, discount, approval)
        .await?)
}

/// Parks the open cart under `label`; the answer is the new, empty open cart.
#[tauri::command]
pub async fn park(register: State<'_, Register>, label: String) -> CommandResult<CartView> {
    Ok(register.park(label.trim()).await?)
}

/// Makes a parked cart the open one again.
#[tauri::command]
pub async fn resume(register: State<'_, Register>, cart_id: Uuid) -> CommandResult<CartView> {
    Ok(register.resume(cart_id).await?)
}

#[tauri::command]
pub async fn parked(register: State<'_, Register>) -> CommandResult<Vec<CartView>> {
    Ok(register.parked().await?)
}

/// What this register believes is available of one SKU (`None`: never pulled), and offline
/// what it may still sell with no shortfall at Central (its stock lease; `None`: online, or no
/// lease of the SKU).
#[derive(Debug, Serialize)]
pub struct Available {
    pub sku: String,
    pub available: Option<i64>,
    pub at_till: Option<i64>,
}

/// Available stock of every line of the open cart, for the selling screen's warnings.
#[tauri::command]
pub async fn cart_stock(register: State<'_, Register>) -> CommandResult<Vec<Available>> {
    let cart = register.cart().await?;
    let offline = !register.sync_status().online;
    let mut levels = Vec::with_capacity(cart.lines.len());
    for line in &cart.lines {
        let at_till = if offline {
            register.lease_left(&line.sku).await?
        } else {
            None
        };
        levels.push(Available {
            sku: line.sku.to_string(),
            available: register.stock_available(&line.sku).await?,
            at_till,
        });
    }
    Ok(levels)
}

#[tauri::command]
pub async fn pay_cash(register: State<'_, Register>, tendered: Money) -> CommandResult<Receipt> {
    Ok(register.pay_cash(tendered).await?)
}

/// A manager's approval to sell the open cart offline past this till's stock lease (where the
/// location asks for one: `pay_cash`/`pay_card` answer `approval_required` without it).
#[tauri::command]
pub async fn approve_beyond_lease(
    register: State<'_, Register>,
    approval: Uuid,
) -> CommandResult<()> {
    Ok(register.approve_beyond_lease(approval).await?)
}

/// The open cart's whole total by card: through Central online; offline under the offline card
/// policy or refused (`card_unavailable`); `card_declined` leaves the cart open; `card_pending`
/// holds it until the sync engine knows the outcome.
#[tauri::command]
pub async fn pay_card(register: State<'_, Register>) -> CommandResult<Receipt> {
    Ok(register.pay_card().await?)
}

/// The store's cash rounding increment in minor units (0: none): the cash screen rounds the
/// due with it.
#[tauri::command]
pub async fn cash_rounding(register: State<'_, Register>) -> CommandResult<i64> {
    Ok(register.cash_rounding().await?.into())
}

/// The open cart's sale being paid in parts (split tender), if it is: its parts and the due.
#[tauri::command]
pub async fn split(register: State<'_, Register>) -> CommandResult<Option<SplitView>> {
    Ok(register.split().await?)
}

/// A cash part of the open cart's sale: less than the due stays a part; covering it completes
/// the sale (the rest is change).
#[tauri::command]
pub async fn pay_part_cash(
    register: State<'_, Register>,
    tendered: Money,
) -> CommandResult<SplitStep> {
    Ok(register.pay_part_cash(tendered).await?)
}

/// A card part of the open cart's sale, at most the due (card gives no change).
#[tauri::command]
pub async fn pay_part_card(
    register: State<'_, Register>,
    amount: Money,
) -> CommandResult<SplitStep> {
    Ok(register.pay_part_card(amount).await?)
}

/// Abandons the split sale: every part given back (a card part refunded at Central first).
#[tauri::command]
pub async fn void_split(register: State<'_, Register>) -> CommandResult<SplitView> {
    Ok(register.void_split().await?)
}
