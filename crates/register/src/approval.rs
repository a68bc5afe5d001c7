//! Manager approvals at the till: a manager (or admin) types their PIN or password at the
//! cashier's till to allow one thing a cashier may not do alone (a discount above the limit, a
//! refund). Online the secret is checked by Central's login at this register, and the
//! manager's access token stays here for the approved action (a refund is made with it), then
//! is logged out; offline it is checked against the local verifier and there is no token. An
//! approval is valid for [`APPROVAL_TTL`] and is used once; the UI only ever sees its id.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kassa_domain::Role;
use serde::{Deserialize, Serialize};
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

/// An approval being used: the manager, and their access token when approved online.
#[derive(Debug)]
pub(crate) struct Granted {
    pub manager: String,
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
        let id = Uuid::now_v7();
        let granted = Granted {
            manager: manager.clone(),
            access,
            expires: Instant::now() + APPROVAL_TTL,
        };
        {
            let mut pending = self.lock()?;
            if pending.len() >= APPROVALS_PENDING_MAX {
                return Err(Error::Invalid(format!(
                    "{APPROVALS_PENDING_MAX} approvals are waiting already; use or let them expire"
                )));
            }
            pending.insert(id, granted);
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

async fn logout(sessions: &Sessions, access: Secret) {
    if let Err(err) = sessions.client().logout(access.expose()).await {
        tracing::warn!(%err, "logging out an approval's session failed; it expires on its own");
    }
}
