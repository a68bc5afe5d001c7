//! The selling screen: scan, search, cart lines, park and resume, cash checkout.

use std::str::FromStr;

use kassa_domain::api::Product;
use kassa_domain::{Money, Sku};
use kassa_register::carts::CartView;
use kassa_register::sale::Receipt;
use kassa_register::Register;
use tauri::State;
use uuid::Uuid;

use super::{message, Answer};

fn sku(raw: &str) -> Answer<Sku> {
    Sku::from_str(raw).map_err(|e| e.to_string())
}

#[tauri::command]
pub async fn cart(register: State<'_, Register>) -> Answer<CartView> {
    register.cart().await.map_err(message)
}

#[tauri::command]
pub async fn scan(register: State<'_, Register>, code: String) -> Answer<CartView> {
    register.scan(&code).await.map_err(message)
}

#[tauri::command]
pub async fn search(register: State<'_, Register>, query: String) -> Answer<Vec<Product>> {
    register.search(&query, 20).await.map_err(message)
}

#[tauri::command]
pub async fn add_sku(
    register: State<'_, Register>,
    sku_code: String,
    qty: u32,
) -> Answer<CartView> {
    register
        .add_sku(&sku(&sku_code)?, qty)
        .await
        .map_err(message)
}

#[tauri::command]
pub async fn set_qty(
    register: State<'_, Register>,
    sku_code: String,
    qty: u32,
) -> Answer<CartView> {
    register
        .set_qty(&sku(&sku_code)?, qty)
        .await
        .map_err(message)
}

/// Cash checkout; `tendered` is a decimal string in the cart's currency ("20.00").
#[tauri::command]
pub async fn pay_cash(register: State<'_, Register>, tendered: String) -> Answer<Receipt> {
    let cart = register.cart().await.map_err(message)?;
    let tendered =
        Money::parse(tendered.trim(), cart.totals.currency).map_err(|e| e.to_string())?;
    register.pay_cash(tendered).await.map_err(message)
}

#[tauri::command]
pub async fn park(register: State<'_, Register>, label: String) -> Answer<CartView> {
    register.park(&label).await.map_err(message)
}

#[tauri::command]
pub async fn resume(register: State<'_, Register>, id: Uuid) -> Answer<CartView> {
    register.resume(id).await.map_err(message)
}

#[tauri::command]
pub async fn parked(register: State<'_, Register>) -> Answer<Vec<CartView>> {
    register.parked().await.map_err(message)
}
