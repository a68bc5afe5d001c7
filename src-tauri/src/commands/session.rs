//! Pairing, staff sign-in and who is signed in.

use kassa_register::session::SignedIn;
use kassa_register::Register;
use serde::Serialize;
use tauri::State;

use crate::error::CommandResult;

/// This till, for the status bar; `None` until it is paired.
#[derive(Debug, Serialize)]
pub struct IdentityView {
    pub location: String,
    pub register_code: String,
    /// `keyring` or `file`: where the credential and refresh token are kept.
    pub secrets: String,
}

async fn identity_view(register: &Register) -> CommandResult<Option<IdentityView>> {
    let secrets = format!("{:?}", register.sessions().secrets().backend()).to_lowercase();
    Ok(register.identity().await?.map(|i| IdentityView {
        location: i.location,
        register_code: i.register_code,
        secrets,
    }))
}

#[tauri::command]
pub async fn identity(register: State<'_, Register>) -> CommandResult<Option<IdentityView>> {
    identity_view(&register).await
}

#[tauri::command]
pub async fn pair(
    register: State<'_, Register>,
    manager: String,
    password: String,
    location: String,
    code: String,
) -> CommandResult<Option<IdentityView>> {
    register.pair(&manager, &password, &location, &code).await?;
    identity_view(&register).await
}

#[tauri::command]
pub async fn whoami(register: State<'_, Register>) -> CommandResult<Option<SignedIn>> {
    Ok(register.sessions().signed_in().await)
}

#[tauri::command]
pub async fn sign_in(
    register: State<'_, Register>,
    username: String,
    password: String,
) -> CommandResult<SignedIn> {
    Ok(register.sign_in(&username, &password).await?)
}

#[tauri::command]
pub async fn sign_out(register: State<'_, Register>) -> CommandResult<()> {
    Ok(register.sign_out().await?)
}
