//! The receipt printer and the cash drawer: the queue and its state, a reprint (COPY n), "try
//! the printer again", the sales report on paper, and a manager's no-sale.

use kassa_register::no_sale::NoSale;
use kassa_register::printer::{PrintJob, PrinterStatus};
use kassa_register::Register;
use tauri::State;
use uuid::Uuid;

use crate::error::CommandResult;

/// Jobs the printing panel lists.
const JOBS_SHOWN: u32 = 20;

/// The printer (`printer` null: none, the web view prints), jobs waiting and why.
#[tauri::command]
pub async fn printer_status(register: State<'_, Register>) -> CommandResult<PrinterStatus> {
    Ok(register.printer_status().await?)
}

/// Waiting jobs first, then the latest printed.
#[tauri::command]
pub async fn print_jobs(register: State<'_, Register>) -> CommandResult<Vec<PrintJob>> {
    Ok(register.print_jobs(JOBS_SHOWN).await?)
}

/// Reprints a sale's receipt (by order id or receipt number) marked COPY n; answers n.
#[tauri::command]
pub async fn reprint(register: State<'_, Register>, sale: String) -> CommandResult<u32> {
    Ok(register.reprint(&sale).await?)
}

/// Tries the printer again now.
#[tauri::command]
pub fn retry_printing(register: State<'_, Register>) {
    register.retry_printing();
}

#[tauri::command]
pub async fn print_sales_report(register: State<'_, Register>, days: u32) -> CommandResult<i64> {
    Ok(register.print_sales_report(days).await?)
}

/// Prints the open shift's X report (`z_no` absent) or Z report `z_no` on the thermal printer.
#[tauri::command]
pub async fn print_shift_report(
    register: State<'_, Register>,
    z_no: Option<i64>,
) -> CommandResult<i64> {
    Ok(register.print_shift_report(z_no).await?)
}

/// Opens the drawer with no sale: a signed-in manager, or a cashier with a manager's
/// `approval` (`approval_required` without one).
#[tauri::command]
pub async fn no_sale(
    register: State<'_, Register>,
    reason: String,
    approval: Option<Uuid>,
) -> CommandResult<NoSale> {
    Ok(register.no_sale(&reason, approval).await?)
}
