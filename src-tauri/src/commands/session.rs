//! Pairing, staff sign-in and who is signed in.

use kassa_register::approval::Approval;
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

/// Signs in with the PIN a manager set (offline against the register's verifier too).
#[tauri::command]
pub async fn sign_in_pin(
    register: State<'_, Register>,
    username: String,
    pin: String,
) -> CommandResult<SignedIn> {
    Ok(register.sign_in_pin(&username, &pin).await?)
}

/// A manager's approval at this till, by PIN or password; the UI only gets its id.
#[tauri::command]
pub async fn approve(
    register: State<'_, Register>,
    username: String,
    secret: String,
) -> CommandResult<Approval> {
    Ok(register.approve(&username, &secret).await?)
}

/// The signed-in manager sets a staff member's PIN at Central (online only).
#[tauri::command]
pub async fn set_pin(
    register: State<'_, Register>,
    username: String,
    pin: String,
) -> CommandResult<()> {
    Ok(register.set_pin(&username, &pin).await?)
}

#[tauri::command]
pub async fn sign_out(register: State<'_, Register>) -> CommandResult<()> {
    Ok(register.sign_out().await?)
}
