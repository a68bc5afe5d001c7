//! The till's stock lease, refreshed every round while online, after the sales are pushed (so
//! Central's answer already counts them): Central's lease settings for the location are
//! pulled, a proposal is made from the till's own sales velocity
//! ([`kassa_domain::lease::propose`]) and the lease is taken (`POST`) or renewed and resized to
//! it (`PUT`, which also shrinks it when sales slow). Central's list of the register's active
//! leases is the truth: a lease granted whose answer was lost (a crash, a cut link) is adopted
//! the next round, and any extra one is returned.

use kassa_domain::lease::{LeaseRequest, LeaseUpdate};
use kassa_domain::IdempotencyKey;
use uuid::Uuid;

use super::Engine;
use crate::error::{corrupt, Result};
use crate::leases;
use crate::store::now_ms;

impl Engine {
    /// Takes, renews or resizes the till's lease; 1 when Central holds one for it afterwards.
    /// Does nothing when the engine is configured without leases.
    pub(super) async fn refresh_lease(&self, location: &str) -> Result<usize> {
        let Some(window) = self.config.lease_window else {
            return Ok(0);
        };
        let settings = self
            .sessions
            .device_authed(
                |t| async move { self.client().lease_settings(t.expose(), location).await },
            )
            .await?;
        leases::save_settings(&self.db, &settings).await?;
        if !settings.set_by_manager {
            // Leasing is the location's decision: until a manager sets its lease settings the
            // till sells as without leases (a lease it still holds runs out on its own).
            return Ok(0);
        }
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let velocities = leases::velocities(&self.db, location, now_ms() - window_ms).await?;
        let lines = kassa_domain::lease::propose(&settings, window.as_secs(), &velocities);
        let active = self
            .sessions
            .device_authed(|t| async move { self.client().active_leases(t.expose()).await })
            .await?
            .items;
        for extra in active.iter().skip(1) {
            self.return_one(extra.id).await?;
        }
        let lease = match active.first() {
            Some(held) => {
                let update = LeaseUpdate {
                    lines: Some(lines),
                    ttl_s: settings.horizon_s,
                };
                let (id, update) = (held.id, &update);
                self.sessions
                    .device_authed(|t| async move {
                        self.client().update_lease(t.expose(), id, update).await
                    })
                    .await?
            }
            None if lines.is_empty() => {
                leases::forget(&self.db).await?;
                return Ok(0);
            }
            None => {
                let request = LeaseRequest {
                    location: location.to_owned(),
                    register: None,
                    lines,
                    ttl_s: settings.horizon_s,
                };
                let key = IdempotencyKey::parse(&format!("register-lease-{}", Uuid::now_v7()))
                    .map_err(|e| corrupt("a lease key", e))?;
                let (key, request) = (&key, &request);
                self.sessions
                    .device_authed(|t| async move {
                        self.client().create_lease(t.expose(), key, request).await
                    })
                    .await?
            }
        };
        leases::save(&self.db, &lease).await?;
        Ok(1)
    }

    /// Returns a lease to Central; one Central already ended counts as returned.
    pub(crate) async fn return_one(&self, id: Uuid) -> Result<()> {
        let returned = self
            .sessions
            .device_authed(|t| async move { self.client().release_lease(t.expose(), id).await })
            .await;
        match returned {
            Ok(_) => Ok(()),
            Err(err) if err.api_code() == Some("lease_ended") => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Gives the till's lease back (shift close, clean shutdown); nothing to do without one.
    pub async fn return_lease(&self) -> Result<bool> {
        let Some(lease) = leases::current(&self.db).await? else {
            return Ok(false);
        };
        let _one_at_a_time = self.round.lock().await;
        self.return_one(lease.id).await?;
        leases::forget(&self.db).await?;
        Ok(true)
    }
}
