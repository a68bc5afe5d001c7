//! The manager's sales report of this register.

use kassa_domain::SalesReport;
use kassa_register::Register;
use tauri::State;

use crate::error::CommandResult;

#[tauri::command]
pub async fn sales_report(register: State<'_, Register>, days: u32) -> CommandResult<SalesReport> {
    Ok(register.sales_report(days).await?)
}
