//! Manager approvals at the till: a manager (or admin) types their PIN or password at the
//! cashier's till to allow one thing a cashier may not do alone (a discount above the limit, a
//! refund). Online the secret is checked by Central's login at this register, the manager's
//! session asks Central for an approval (`POST /v1/approvals`, which Central verifies when the
//! order comes), and the manager's access token stays here for the approved action (a refund
//! is made with it), then is logged out. Offline the secret is checked against the local
//! verifier, there is no token, and the register signs the approval with its approval key
//! (derived from its credential, which Central keeps from pairing) for Central to check at
//! sync; so it does too when Central does not answer the request for an approval. An approval
//! is valid for [`APPROVAL_TTL`] and is used once; the UI only ever sees its id and manager.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use hmac::{Hmac, Mac};
use kassa_domain::approval::{
    offline_approval_message, ApprovalRef, OfflineApproval, APPROVAL_KEY_CONTEXT,
};
use kassa_domain::Role;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::secrets::Secret;
use crate::session::{normalise, SecretKind, Sessions};

/// How long an approval may wait for the action it approves.
pub const APPROVAL_TTL: Duration = Duration::from_secs(5 * 60);
/// Approvals waiting at once, at most (a till needs one or two).
pub const APPROVALS_PENDING_MAX: usize = 16;

/// What the UI gets for an approval: its id and who gave it (no token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub id: Uuid,
    pub manager: String,
}

/// An approval being used: the manager, what Central verifies, and the manager's access token
/// when approved online.
#[derive(Debug)]
pub(crate) struct Granted {
    pub manager: String,
    pub approval: ApprovalRef,
    pub access: Option<Secret>,
    expires: Instant,
}

/// The approvals waiting at this register.
#[derive(Debug, Default)]
pub struct Approvals {
    pending: Mutex<HashMap<Uuid, Granted>>,
}

impl Approvals {
    /// Checks `username`'s `secret` (PIN or password) and records an approval if they are a
    /// manager or an admin.
    #[tracing::instrument(skip_all, fields(username = %username))]
    pub async fn approve(
        &self,
        sessions: &Sessions,
        username: &str,
        secret: &str,
    ) -> Result<Approval> {
        let manager = normalise(username);
        let (role, access) = check(sessions, &manager, secret).await?;
        if !role.at_least(Role::Manager) {
            if let Some(access) = access {
                logout(sessions, access).await;
            }
            return Err(Error::Invalid(format!(
                "{manager} is a {role}: only a manager or an admin can approve"
            )));
        }
        let expired = self.sweep();
        for access in expired {
            logout(sessions, access).await;
        }
        let (manager, approval) = match central_approval(sessions, &manager, access.as_ref()).await
        {
            Ok(granted) => granted,
            Err(err) => {
                if let Some(access) = access {
                    logout(sessions, access).await;
                }
                return Err(err);
            }
        };
        let id = approval.id;
        let granted = Granted {
            manager: manager.clone(),
            approval,
            access,
            expires: Instant::now() + APPROVAL_TTL,
        };
        let refused = {
            let mut pending = self.lock()?;
            if pending.len() >= APPROVALS_PENDING_MAX {
                Some(granted)
            } else {
                pending.insert(id, granted);
                None
            }
        };
        if let Some(granted) = refused {
            self.finish(sessions, granted).await;
            return Err(Error::Invalid(format!(
                "{APPROVALS_PENDING_MAX} approvals are waiting already; use or let them expire"
            )));
        }
        Ok(Approval { id, manager })
    }

    /// Takes an approval for use: refused when unknown, used already or expired.
    pub(crate) fn take(&self, id: Uuid, what: &str) -> Result<Granted> {
        let granted = self.lock()?.remove(&id);
        match granted {
            Some(granted) if granted.expires > Instant::now() => Ok(granted),
            Some(_) => Err(Error::ApprovalRequired(format!(
                "the manager's approval expired (it lasts {} minutes): {what} needs a new one",
                APPROVAL_TTL.as_secs() / 60
            ))),
            None => Err(Error::ApprovalRequired(format!(
                "that approval is unknown or used already: {what} needs a manager's approval"
            ))),
        }
    }

    /// Puts back an approval whose action failed before it was used.
    pub(crate) fn restore(&self, id: Uuid, granted: Granted) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(id, granted);
        }
    }

    /// Ends a used approval: its manager's session at Central is logged out.
    pub(crate) async fn finish(&self, sessions: &Sessions, granted: Granted) {
        if let Some(access) = granted.access {
            logout(sessions, access).await;
        }
    }

    /// Drops expired approvals and returns their tokens to log out.
    fn sweep(&self) -> Vec<Secret> {
        let now = Instant::now();
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        let expired: Vec<Uuid> = pending
            .iter()
            .filter(|(_, g)| g.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        expired
            .into_iter()
            .filter_map(|id| pending.remove(&id).and_then(|g| g.access))
            .collect()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<Uuid, Granted>>> {
        self.pending
            .lock()
            .map_err(|_| Error::Corrupt("the approvals lock is poisoned".into()))
    }
}

/// The manager's role, and an access token at this register when Central answered. A secret
/// that looks like a PIN is tried as one first, then (8 digits can be a password) as a password.
async fn check(
    sessions: &Sessions,
    username: &str,
    secret: &str,
) -> Result<(Role, Option<Secret>)> {
    let first = SecretKind::guess(secret);
    let mut kinds = vec![first];
    if first == SecretKind::Pin && secret.len() == 8 {
        kinds.push(SecretKind::Password);
    }
    let mut last = None;
    for &kind in &kinds {
        match sessions.login(username, kind, secret).await {
            Ok(tokens) => return Ok((tokens.role, Some(Secret::new(tokens.access_token)))),
            Err(Error::Unreachable { .. }) => {
                return check_offline(sessions, username, &kinds, secret).await
            }
            Err(err @ Error::Api { status: 401, .. }) => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or(Error::NotSignedIn))
}

/// Offline: the first kind whose verifier accepts the secret.
async fn check_offline(
    sessions: &Sessions,
    username: &str,
    kinds: &[SecretKind],
    secret: &str,
) -> Result<(Role, Option<Secret>)> {
    let mut last = None;
    for &kind in kinds {
        match sessions.check_offline(username, kind, secret).await {
            Ok(role) => return Ok((role, None)),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or(Error::NotSignedIn))
}

/// The manager's name and the approval Central will verify: with the manager's session (an
/// online check), the one Central grants; with none (checked offline), or when Central does not
/// answer the request for it, one this register signs.
async fn central_approval(
    sessions: &Sessions,
    manager: &str,
    access: Option<&Secret>,
) -> Result<(String, ApprovalRef)> {
    if let Some(access) = access {
        match sessions.client().grant_approval(access.expose()).await {
            Ok(granted) => {
                let approval = ApprovalRef {
                    id: granted.id,
                    offline: None,
                };
                return Ok((granted.manager, approval));
            }
            Err(err) if err.is_transient() => {
                tracing::info!(%err, "Central did not grant the approval; the register signs it");
            }
            Err(err) => return Err(err),
        }
    }
    Ok((manager.to_owned(), sign_offline(sessions, manager).await?))
}

/// An approval of `manager`'s (checked by this register) signed with the register's approval
/// key, as Central checks one given offline: a new id, now. Central verifies it whoever's
/// session sends the order, online or through sync.
pub(crate) async fn sign_offline(sessions: &Sessions, manager: &str) -> Result<ApprovalRef> {
    let register = sessions.register_credential().await?;
    let id = Uuid::now_v7();
    // Milliseconds, as the signed message and the stored JSON carry them.
    let approved_at = Utc::now().trunc_subsecs(3);
    let message = offline_approval_message(register.id, id, manager, approved_at);
    let key = ApprovalKey::derive(&register.credential)?;
    Ok(ApprovalRef {
        id,
        offline: Some(OfflineApproval {
            manager: manager.to_owned(),
            approved_at,
            signature: key.sign(&message)?,
        }),
    })
}

/// The register's approval key: HMAC-SHA256 of [`APPROVAL_KEY_CONTEXT`] keyed with its
/// credential (Central derives the same at pairing). `Debug` never shows it.
struct ApprovalKey([u8; 32]);

impl std::fmt::Debug for ApprovalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApprovalKey(***)")
    }
}

impl ApprovalKey {
    fn derive(credential: &str) -> Result<Self> {
        let mut mac = hmac_with(credential.as_bytes())?;
        mac.update(APPROVAL_KEY_CONTEXT.as_bytes());
        Ok(Self(mac.finalize().into_bytes().into()))
    }

    /// Lowercase hex HMAC-SHA256 of `message`.
    fn sign(&self, message: &str) -> Result<String> {
        let mut mac = hmac_with(&self.0)?;
        mac.update(message.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }
}

fn hmac_with(key: &[u8]) -> Result<Hmac<Sha256>> {
    <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|e| Error::Corrupt(format!("an HMAC key: {e}")))
}

async fn logout(sessions: &Sessions, access: Secret) {
    if let Err(err) = sessions.client().logout(access.expose()).await {
        tracing::warn!(%err, "logging out an approval's session failed; it expires on its own");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central keeps the key it derives from the credential at pairing; both must agree.
    #[test]
    fn the_approval_key_is_the_one_central_derives_from_the_credential() {
        let key = ApprovalKey::derive("credential-1").unwrap();
        assert_eq!(
            hex::encode(key.0),
            kassa_central::approvals::approval_key_hex("credential-1")
        );
        assert_ne!(
            hex::encode(ApprovalKey::derive("credential-2").unwrap().0),
            hex::encode(key.0)
        );
        assert_eq!(format!("{key:?}"), "ApprovalKey(***)");
        let signature = key.sign("message").unwrap();
        assert_eq!(signature.len(), 64);
        assert_eq!(signature, signature.to_lowercase());
        assert_ne!(key.sign("messagf").unwrap(), signature);
    }
}
