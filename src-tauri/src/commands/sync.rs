//! The online/offline indicator and the "sync now" button.

use kassa_register::sync::SyncStatus;
use kassa_register::Register;
use tauri::State;

use super::{message, Answer};

#[tauri::command]
pub fn sync_status(register: State<'_, Register>) -> SyncStatus {
    register.sync_status()
}

#[tauri::command]
pub async fn sync_now(register: State<'_, Register>) -> Answer<SyncStatus> {
    register.sync_now().await.map_err(message)?;
    Ok(register.sync_status())
}
