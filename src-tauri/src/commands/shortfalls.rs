//! The stock shortfalls offline sales left at Central, and a manager's note that resolves one
//! (online only; the register says why when it cannot).

use kassa_domain::api::StockDiscrepancy;
use kassa_domain::ShortfallView;
use kassa_register::Register;
use tauri::State;
use uuid::Uuid;

use crate::error::CommandResult;

/// The open shortfalls at this register's location, or at every location with `everywhere`.
#[tauri::command]
pub async fn shortfalls(
    register: State<'_, Register>,
    everywhere: bool,
) -> CommandResult<Vec<ShortfallView>> {
    Ok(register.shortfalls(everywhere).await?)
}

#[tauri::command]
pub async fn resolve_shortfall(
    register: State<'_, Register>,
    id: Uuid,
    note: String,
) -> CommandResult<StockDiscrepancy> {
    Ok(register.resolve_shortfall(id, &note).await?)
}
