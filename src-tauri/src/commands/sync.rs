//! The sync engine's state for the status bar, and "sync now".

use kassa_register::sync::SyncStatus;
use kassa_register::Register;
use tauri::State;

use crate::error::CommandResult;

#[tauri::command]
pub fn sync_status(register: State<'_, Register>) -> SyncStatus {
    register.sync_status()
}

/// Runs one round now; the answer is the state after it.
#[tauri::command]
pub async fn sync_now(register: State<'_, Register>) -> CommandResult<SyncStatus> {
    register.sync_now().await?;
    Ok(register.sync_status())
}
