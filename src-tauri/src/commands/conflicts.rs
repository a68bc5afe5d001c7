//! A manager's conflicted catalog edits and the per-field choice that settles each.

use std::collections::BTreeMap;

use kassa_register::edits::{Conflict, Side};
use kassa_register::Register;
use tauri::State;
use uuid::Uuid;

use crate::error::CommandResult;

#[tauri::command]
pub async fn conflicts(register: State<'_, Register>) -> CommandResult<Vec<Conflict>> {
    Ok(register.conflicts().await?)
}

#[tauri::command]
pub async fn resolve_conflict(
    register: State<'_, Register>,
    edit_id: Uuid,
    choices: BTreeMap<String, Side>,
) -> CommandResult<()> {
    register.resolve_conflict(edit_id, &choices).await?;
    Ok(())
}
