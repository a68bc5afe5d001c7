//! Opening the register at start: the store, the secret store, the demo's pairing and sign-in
//! from the environment, and the background sync engine.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use kassa_register::{secrets, Register, RegisterConfig};

use crate::config::ShellConfig;

pub async fn open(config: &ShellConfig, data_dir: &Path) -> anyhow::Result<Register> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let secrets: Arc<dyn secrets::SecretStore> = Arc::from(
        secrets::choose(&config.secrets_service, &data_dir.join("secrets"))
            .context("choosing the secret store")?,
    );
    tracing::info!(backend = ?secrets.backend(), data_dir = %data_dir.display(),
        central = %config.central_url, "opening the register");
    let mut register_config =
        RegisterConfig::new(data_dir.join("register.db"), &config.central_url);
    if let Some(interval) = config.sync_interval {
        register_config.sync.interval = interval;
    }
    if let Some(max) = config.sync_backoff_max {
        register_config.sync.backoff_max = max;
        register_config.sync.backoff_base = register_config.sync.backoff_base.min(max);
    }
    register_config.limits.offline_card_limit = config.offline_card_limit;
    register_config.sync.lease_window = config.lease_window;
    register_config.printer = config.printer.clone();
    if let Some(token) = &config.card_payment_method {
        register_config.card_payment_method = token.clone();
    }
    let register = Register::open(register_config, secrets)
        .await
        .context("opening the register's store")?;
    if let (Some(pairing), None) = (&config.pairing, register.identity().await?) {
        match register
            .pair(
                &pairing.manager,
                &pairing.password,
                &pairing.location,
                &pairing.code,
            )
            .await
        {
            Ok(identity) => {
                tracing::info!(location = %identity.location, code = %identity.register_code, "paired")
            }
            Err(err) => {
                tracing::warn!(%err, "pairing from the environment failed; pair in the window")
            }
        }
    }
    if let Some(who) = &config.sign_in {
        if let Err(err) = register.sign_in(&who.username, &who.password).await {
            tracing::warn!(%err, "signing in from the environment failed; sign in in the window");
        }
    }
    // The engine runs as long as the app does; the process exit ends it.
    let _engine = register.start_sync(std::future::pending());
    Ok(register)
}
