//! Pairing and sign-in: the register is paired once with Central (a manager's credentials give
//! it a register id and credential), then staff sign in with username and password or PIN. The
//! access token stays in memory; the refresh token and the register credential live in the
//! [`SecretStore`], and a refresh rotates the refresh token under a lock (reusing an old one
//! would revoke the session).
//!
//! Offline sign-in: after each successful online sign-in the register keeps an argon2id
//! verifier of the secret used (never the secret), with the username and role. With Central out
//! of reach, staff who signed in here before sign in against it, until it is older than
//! `offline_max_age`; that session has no tokens (`SignedIn::offline`). A 401 from Central
//! deletes the verifier of the secret it refused.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use kassa_domain::api::{CreateRegister, RegisterCredential, TokenResponse};
use kassa_domain::Role;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::Mutex;

use crate::client::CentralClient;
use crate::error::{Context, Error, Result};
use crate::identity::{self, Identity};
use crate::secrets::{Secret, SecretStore};
use crate::store::{now_ms, LocalDb};

const REGISTER_CREDENTIAL: &str = "register-credential";
const REFRESH_TOKEN: &str = "refresh-token";

/// How long an offline sign-in verifier stays usable after the last online sign-in.
pub const OFFLINE_SIGN_IN_MAX_AGE_DEFAULT: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// Who is signed in, for the UI (no tokens in here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub username: String,
    pub role: Role,
    /// Signed in against the local verifier because Central was out of reach: no tokens, so
    /// nothing that needs Central (sales are recorded as offline sales).
    #[serde(default)]
    pub offline: bool,
}

/// What a staff member signs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    Password,
    Pin,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Password => "password",
            SecretKind::Pin => "PIN",
        }
    }

    fn column(self) -> &'static str {
        match self {
            SecretKind::Password => "password",
            SecretKind::Pin => "pin",
        }
    }

    /// A typed secret that looks like a PIN (4 to 8 digits) is tried as one first.
    pub fn guess(secret: &str) -> SecretKind {
        if (4..=8).contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_digit()) {
            SecretKind::Pin
        } else {
            SecretKind::Password
        }
    }
}

/// Usernames as Central compares them.
pub fn normalise(username: &str) -> String {
    username.trim().to_lowercase()
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
    offline_max_age: Duration,
    /// The register's own access token (role `register`), for sync with or without staff.
    device: Mutex<Option<Secret>>,
}

impl Sessions {
    pub fn new(
        db: LocalDb,
        client: CentralClient,
        secrets: Arc<dyn SecretStore>,
        offline_max_age: Duration,
    ) -> Self {
        Self {
            db,
            client,
            secrets,
            current: Mutex::new(Current {
                who: None,
                access: None,
            }),
            offline_max_age,
            device: Mutex::new(None),
        }
    }

    pub fn db(&self) -> &LocalDb {
        &self.db
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

    pub(crate) async fn register_credential(&self) -> Result<RegisterCredential> {
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

    /// Signs a staff member in at this register with their password (see [`Sessions::sign_in_with`]).
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<SignedIn> {
        self.sign_in_with(username, SecretKind::Password, password)
            .await
    }

    /// Signs a staff member in with the PIN a manager set (see [`Sessions::sign_in_with`]).
    pub async fn sign_in_pin(&self, username: &str, pin: &str) -> Result<SignedIn> {
        self.sign_in_with(username, SecretKind::Pin, pin).await
    }

    /// Signs in at Central; with Central out of reach, against the local verifier (an offline
    /// session, without tokens).
    #[tracing::instrument(skip_all, fields(username = %username, kind = kind.as_str()))]
    pub async fn sign_in_with(
        &self,
        username: &str,
        kind: SecretKind,
        secret: &str,
    ) -> Result<SignedIn> {
        let username = normalise(username);
        let mut current = self.current.lock().await;
        let who = match self.login(&username, kind, secret).await {
            Ok(tokens) => {
                self.secrets
                    .set(REFRESH_TOKEN, &Secret::new(tokens.refresh_token))?;
                current.access = Some(Secret::new(tokens.access_token));
                SignedIn {
                    username,
                    role: tokens.role,
                    offline: false,
                }
            }
            Err(Error::Unreachable { .. }) => {
                let role = self.check_offline(&username, kind, secret).await?;
                tracing::info!("Central is out of reach: signed in offline");
                // No tokens: nothing may run under the previous staff member's session.
                self.secrets.delete(REFRESH_TOKEN)?;
                current.access = None;
                SignedIn {
                    username,
                    role,
                    offline: true,
                }
            }
            Err(err) => return Err(err),
        };
        current.who = Some(who.clone());
        Ok(who)
    }

    /// Signs in at Central at this register, keeping a verifier of the secret for offline
    /// sign-in on success and deleting it on a 401.
    pub(crate) async fn login(
        &self,
        username: &str,
        kind: SecretKind,
        secret: &str,
    ) -> Result<TokenResponse> {
        let register = self.register_credential().await?;
        let answer = match kind {
            SecretKind::Password => self.client.login(username, secret, Some(register)).await,
            SecretKind::Pin => self.client.login_pin(username, secret, register).await,
        };
        match answer {
            Ok(tokens) => {
                keep_verifier(&self.db, username, kind, secret, tokens.role).await?;
                Ok(tokens)
            }
            Err(err @ Error::Api { status: 401, .. }) => {
                forget_verifier(&self.db, username, kind).await?;
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    /// The role a verifier gives `username` for `secret`, or why it gives none.
    pub(crate) async fn check_offline(
        &self,
        username: &str,
        kind: SecretKind,
        secret: &str,
    ) -> Result<Role> {
        check_verifier(&self.db, username, kind, secret, self.offline_max_age).await
    }

    /// The signed-in manager sets `username`'s PIN at Central (online only). A PIN that breaks
    /// the rule, or a name that cannot be a username, is refused here before Central is asked;
    /// a name Central does not know is an [`Error::NotFound`] that names it.
    pub async fn set_pin(&self, username: &str, pin: &str) -> Result<()> {
        if !kassa_domain::is_valid_pin(pin) {
            return Err(Error::Invalid(kassa_domain::PIN_RULE.into()));
        }
        let username =
            kassa_domain::Username::parse(username).map_err(|e| Error::Invalid(e.to_string()))?;
        if self.signed_in().await.is_some_and(|w| w.offline) {
            return Err(Error::Invalid(
                "setting a PIN needs Central; this session was opened offline".into(),
            ));
        }
        let answer = self
            .authed(|t| {
                let username = username.as_str();
                async move { self.client.set_pin(t.expose(), username, pin).await }
            })
            .await;
        match answer {
            Err(Error::Api { status: 404, .. }) => Err(Error::NotFound(format!(
                "no staff member named {username} at Central"
            ))),
            other => other,
        }
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

    /// Runs `call` with the register's device token (catalog, stock and recommendation pulls,
    /// offline sales), signing the register in with its credential when it has none or the
    /// token failed with a 401. Works with nobody signed in, and under an offline sign-in.
    pub async fn device_authed<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let token = self.device_token(None).await?;
        match call(token.clone()).await {
            Err(Error::Api { status: 401, .. }) => {
                let fresh = self.device_token(Some(&token)).await?;
                call(fresh).await
            }
            other => other,
        }
    }

    /// The device token; a new one when there is none or `stale` is the current one. Its
    /// refresh token is not kept: the register credential signs the register in again.
    async fn device_token(&self, stale: Option<&Secret>) -> Result<Secret> {
        let mut device = self.device.lock().await;
        if let Some(token) = device.as_ref() {
            if stale.is_none_or(|s| s != token) {
                return Ok(token.clone());
            }
        }
        let register = self.register_credential().await?;
        let tokens = self.client.device_login(register).await?;
        let token = Secret::new(tokens.access_token);
        *device = Some(token.clone());
        Ok(token)
    }

    pub fn client(&self) -> &CentralClient {
        &self.client
    }
}

/// Keeps (replaces) the verifier of `secret` for `username`: argon2id, off the async threads.
async fn keep_verifier(
    db: &LocalDb,
    username: &str,
    kind: SecretKind,
    secret: &str,
    role: Role,
) -> Result<()> {
    let secret = secret.to_owned();
    let verifier = tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| Error::Corrupt(format!("hashing task: {e}")))?
    .map_err(|e| Error::Corrupt(format!("hashing a verifier: {e}")))?;
    sqlx::query(
        "INSERT INTO staff_verifiers (username, kind, role, verifier, verified_at)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (username, kind) DO UPDATE SET
           role = excluded.role, verifier = excluded.verifier, verified_at = excluded.verified_at",
    )
    .bind(username)
    .bind(kind.column())
    .bind(role.as_str())
    .bind(verifier)
    .bind(now_ms())
    .execute(db.pool())
    .await
    .context("keeping an offline sign-in verifier")?;
    Ok(())
}

async fn forget_verifier(db: &LocalDb, username: &str, kind: SecretKind) -> Result<()> {
    sqlx::query("DELETE FROM staff_verifiers WHERE username = ? AND kind = ?")
        .bind(username)
        .bind(kind.column())
        .execute(db.pool())
        .await
        .context("deleting an offline sign-in verifier")?;
    Ok(())
}

async fn check_verifier(
    db: &LocalDb,
    username: &str,
    kind: SecretKind,
    secret: &str,
    max_age: Duration,
) -> Result<Role> {
    let row = sqlx::query(
        "SELECT role, verifier, verified_at FROM staff_verifiers WHERE username = ? AND kind = ?",
    )
    .bind(username)
    .bind(kind.column())
    .fetch_optional(db.pool())
    .await
    .context("reading an offline sign-in verifier")?
    .ok_or_else(|| {
        Error::Invalid(format!(
            "Central is out of reach and {username} has not signed in here online with a {} \
             before: offline sign-in is refused",
            kind.as_str()
        ))
    })?;
    let age_ms = now_ms().saturating_sub(row.get::<i64, _>("verified_at"));
    if u128::try_from(age_ms).unwrap_or(0) > max_age.as_millis() {
        return Err(Error::Invalid(format!(
            "Central is out of reach and {username}'s last online sign-in here is more than {} \
             days old: offline sign-in is refused until Central is back",
            max_age.as_secs() / 86_400
        )));
    }
    let verifier: String = row.get("verifier");
    let secret = secret.to_owned();
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&verifier).map(|h| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .map_err(|e| Error::Corrupt(format!("verifying task: {e}")))?
    .map_err(|e| Error::Corrupt(format!("stored verifier: {e}")))?;
    if !ok {
        return Err(Error::Invalid(format!(
            "wrong username or {} (checked offline: Central is out of reach)",
            kind.as_str()
        )));
    }
    let role: String = row.get("role");
    Role::from_str(&role).map_err(|e| Error::Corrupt(format!("stored role: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_to_eight_digits_are_tried_as_a_pin_first() {
        for pin in ["1234", "12345678", "0000"] {
            assert_eq!(SecretKind::guess(pin), SecretKind::Pin, "{pin}");
        }
        for password in ["123", "123456789", "12 34", "correct horse", "١٢٣٤"] {
            assert_eq!(
                SecretKind::guess(password),
                SecretKind::Password,
                "{password}"
            );
        }
    }
}
