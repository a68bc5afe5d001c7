//! Pairing and sign-in: the register is paired once with Central (a manager's credentials give
//! it a register id and credential), then staff sign in with username and password. The access
//! token stays in memory; the refresh token and the register credential live in the
//! [`SecretStore`], and a refresh rotates the refresh token under a lock (reusing an old one
//! would revoke the session).

use std::future::Future;
use std::sync::Arc;

use kassa_domain::api::{CreateRegister, RegisterCredential};
use kassa_domain::Role;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::client::CentralClient;
use crate::error::{Error, Result};
use crate::identity::{self, Identity};
use crate::secrets::{Secret, SecretStore};
use crate::store::LocalDb;

const REGISTER_CREDENTIAL: &str = "register-credential";
const REFRESH_TOKEN: &str = "refresh-token";

/// Who is signed in, for the UI (no tokens in here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedIn {
    pub username: String,
    pub role: Role,
}

#[derive(Debug)]
struct Current {
    who: Option<SignedIn>,
    access: Option<Secret>,
}

/// The staff session at this register.
#[derive(Debug)]
pub struct Sessions {
    db: LocalDb,
    client: CentralClient,
    secrets: Arc<dyn SecretStore>,
    current: Mutex<Current>,
}

impl Sessions {
    pub fn new(db: LocalDb, client: CentralClient, secrets: Arc<dyn SecretStore>) -> Self {
        Self {
            db,
            client,
            secrets,
            current: Mutex::new(Current {
                who: None,
                access: None,
            }),
        }
    }

    pub fn secrets(&self) -> &dyn SecretStore {
        self.secrets.as_ref()
    }

    /// Pairs this register with Central: a manager signs in (without a register), creates the
    /// register at `location` under `register_code`, and the credential goes to the secret store.
    #[tracing::instrument(skip_all, fields(location, register_code))]
    pub async fn pair(
        &self,
        manager: &str,
        password: &str,
        location: &str,
        register_code: &str,
    ) -> Result<Identity> {
        identity::check_register_code(register_code)?;
        if identity::load(&self.db).await?.is_some() {
            return Err(Error::Invalid("this register is already paired".into()));
        }
        let tokens = self.client.login(manager, password, None).await?;
        let request = CreateRegister {
            location: location.to_owned(),
            name: register_code.to_owned(),
        };
        let created = self
            .client
            .create_register(&tokens.access_token, &request)
            .await?;
        let _ = self.client.logout(&tokens.access_token).await;
        self.secrets
            .set(REGISTER_CREDENTIAL, &Secret::new(created.credential))?;
        let identity = Identity {
            register_id: created.register_id,
            location: created.location,
            register_code: register_code.to_owned(),
            receipt_seq: 0,
        };
        identity::save(&self.db, &identity).await?;
        Ok(identity)
    }

    async fn register_credential(&self) -> Result<RegisterCredential> {
        let identity = identity::load(&self.db).await?.ok_or(Error::NotPaired)?;
        let credential = self
            .secrets
            .get(REGISTER_CREDENTIAL)?
            .ok_or(Error::NotPaired)?;
        Ok(RegisterCredential {
            id: identity.register_id,
            credential: credential.expose().to_owned(),
        })
    }

    /// Signs a staff member in at this register.
    #[tracing::instrument(skip_all, fields(username = %username))]
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<SignedIn> {
        let register = self.register_credential().await?;
        let mut current = self.current.lock().await;
        let tokens = self
            .client
            .login(username, password, Some(register))
            .await?;
        self.secrets
            .set(REFRESH_TOKEN, &Secret::new(tokens.refresh_token))?;
        let who = SignedIn {
            username: username.trim().to_lowercase(),
            role: tokens.role,
        };
        current.who = Some(who.clone());
        current.access = Some(Secret::new(tokens.access_token));
        Ok(who)
    }

    /// Ends the session here and at Central (best effort when Central is out of reach).
    pub async fn sign_out(&self) -> Result<()> {
        let mut current = self.current.lock().await;
        if let Some(access) = current.access.take() {
            if let Err(err) = self.client.logout(access.expose()).await {
                tracing::warn!(%err, "signing out at Central failed; the local session ends anyway");
            }
        }
        current.who = None;
        self.secrets.delete(REFRESH_TOKEN)
    }

    pub async fn signed_in(&self) -> Option<SignedIn> {
        self.current.lock().await.who.clone()
    }

    /// The current access token; after a restart, one is got from the stored refresh token.
    pub async fn access_token(&self) -> Result<Secret> {
        let access = self.current.lock().await.access.clone();
        match access {
            Some(token) => Ok(token),
            None => self.refresh(None).await,
        }
    }

    /// Rotates the session. `stale` is the access token that just failed: when another task
    /// already refreshed meanwhile, its new token is returned instead of rotating twice.
    pub async fn refresh(&self, stale: Option<&Secret>) -> Result<Secret> {
        let mut current = self.current.lock().await;
        if let Some(access) = &current.access {
            if stale.is_some_and(|s| s != access) {
                return Ok(access.clone());
            }
        }
        let refresh = self.secrets.get(REFRESH_TOKEN)?.ok_or(Error::NotSignedIn)?;
        let tokens = match self.client.refresh(refresh.expose()).await {
            Ok(tokens) => tokens,
            Err(Error::Api { status: 401, .. }) => {
                current.access = None;
                current.who = None;
                self.secrets.delete(REFRESH_TOKEN)?;
                return Err(Error::NotSignedIn);
            }
            Err(err) => return Err(err),
        };
        self.secrets
            .set(REFRESH_TOKEN, &Secret::new(tokens.refresh_token))?;
        let access = Secret::new(tokens.access_token);
        current.access = Some(access.clone());
        if let Some(who) = current.who.as_mut() {
            who.role = tokens.role;
        }
        Ok(access)
    }

    /// Runs `call` with the access token; on a 401 refreshes once and runs it again.
    pub async fn authed<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let token = self.access_token().await?;
        match call(token.clone()).await {
            Err(Error::Api { status: 401, .. }) => {
                let fresh = self.refresh(Some(&token)).await?;
                call(fresh).await
            }
            other => other,
        }
    }

    pub fn client(&self) -> &CentralClient {
        &self.client
    }
}
