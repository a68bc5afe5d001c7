//! Pairing the till with Central, and staff sign-in.

use kassa_register::session::SignedIn;
use kassa_register::Register;
use serde::Serialize;
use tauri::State;

use super::{message, Answer};

/// Who this till is and who is signed in.
#[derive(Debug, Serialize)]
pub struct Who {
    pub paired: bool,
    pub location: Option<String>,
    pub register_code: Option<String>,
    pub signed_in: Option<SignedIn>,
    /// `keyring` or `file` (the 0600 fallback).
    pub secrets: kassa_register::secrets::Backend,
}

#[tauri::command]
pub async fn identity(register: State<'_, Register>) -> Answer<Who> {
    let identity = register.identity().await.map_err(message)?;
    Ok(Who {
        paired: identity.is_some(),
        location: identity.as_ref().map(|i| i.location.clone()),
        register_code: identity.map(|i| i.register_code),
        signed_in: register.sessions().signed_in().await,
        secrets: register.sessions().secrets().backend(),
    })
}

#[tauri::command]
pub async fn pair(
    register: State<'_, Register>,
    manager: String,
    password: String,
    location: String,
    code: String,
) -> Answer<()> {
    register
        .pair(&manager, &password, &location, &code)
        .await
        .map(drop)
        .map_err(message)
}

#[tauri::command]
pub async fn sign_in(
    register: State<'_, Register>,
    username: String,
    password: String,
) -> Answer<SignedIn> {
    register
        .sign_in(&username, &password)
        .await
        .map_err(message)
}

#[tauri::command]
pub async fn sign_out(register: State<'_, Register>) -> Answer<()> {
    register.sign_out().await.map_err(message)
}
