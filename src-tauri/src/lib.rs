//! Kassa Register's desktop shell: opens the register core, starts its sync engine and exposes
//! thin commands to the UI, grouped by area in [`commands`]. All logic lives in
//! `kassa-register`.
//!
//! Configuration: `KASSA_CENTRAL_URL` (default `http://127.0.0.1:8080`), `KASSA_REGISTER_DATA`
//! (default: the app's data directory).

mod commands;

use std::path::PathBuf;
use std::sync::Arc;

use kassa_register::{secrets, Register, RegisterConfig};
use tauri::Manager;

/// Builds and runs the app.
pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kassa_register=info".into()),
        )
        .try_init();
    let context = tauri::generate_context!("../tauri.conf.json");
    let result = tauri::Builder::default()
        .setup(|app| {
            let register = tauri::async_runtime::block_on(open(app.handle()))?;
            let _sync =
                tauri::async_runtime::spawn(register.engine().clone().run(std::future::pending()));
            app.manage(register);
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::session::identity,
            commands::session::pair,
            commands::session::sign_in,
            commands::session::sign_out,
            commands::sale::cart,
            commands::sale::scan,
            commands::sale::search,
            commands::sale::add_sku,
            commands::sale::set_qty,
            commands::sale::pay_cash,
            commands::sale::park,
            commands::sale::resume,
            commands::sale::parked,
            commands::sync::sync_status,
            commands::sync::sync_now,
        ])
        .run(context);
    if let Err(err) = result {
        tracing::error!(%err, "the register app failed");
        std::process::exit(1);
    }
}

fn data_dir(app: &tauri::AppHandle) -> Result<PathBuf, Box<dyn std::error::Error>> {
    match std::env::var_os("KASSA_REGISTER_DATA") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(app.path().app_data_dir()?),
    }
}

async fn open(app: &tauri::AppHandle) -> Result<Register, Box<dyn std::error::Error>> {
    let dir = data_dir(app)?;
    std::fs::create_dir_all(&dir)?;
    let central =
        std::env::var("KASSA_CENTRAL_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let secrets: Arc<dyn secrets::SecretStore> =
        Arc::from(secrets::choose("kassa-register", &dir.join("secrets"))?);
    let config = RegisterConfig::new(dir.join("register.db"), &central);
    Ok(Register::open(config, secrets).await?)
}
