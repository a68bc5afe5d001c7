//! Pushing queued stock adjustments in order. An adjustment is sent at most once unless the
//! request provably never reached Central (connection refused): a lost answer makes it
//! `uncertain` for a manager, since Central's route has no idempotency key.

use super::Engine;
use crate::adjustments::{self, Queued};
use crate::error::{Error, Result};

impl Engine {
    /// Pushes pending adjustments; returns how many settled.
    pub(super) async fn push_adjustments(&self) -> Result<usize> {
        let mut settled = 0;
        for queued in adjustments::with_status(&self.db, "pending").await? {
            match self.push_adjustment(&queued).await {
                Ok(()) => adjustments::settle(&self.db, queued.id, "done", None).await?,
                Err(err) => {
                    if !self.adjustment_failed(&queued, err).await? {
                        break;
                    }
                }
            }
            settled += 1;
        }
        Ok(settled)
    }

    async fn push_adjustment(&self, queued: &Queued) -> Result<()> {
        self.sessions
            .authed(|t| async move {
                self.client()
                    .adjust_stock(t.expose(), &queued.adjustment)
                    .await
            })
            .await
            .map(drop)
    }

    /// Settles a failed push; `Ok(false)` stops the round here (keep the order of movements).
    async fn adjustment_failed(&self, queued: &Queued, err: Error) -> Result<bool> {
        if err.never_sent() {
            return Err(err);
        }
        let why = err.to_string();
        match &err {
            // A cashier's session: it waits for a manager.
            Error::Api {
                status: 401 | 403, ..
            } => Ok(false),
            Error::Api { status, .. } if *status < 500 && *status != 429 => {
                adjustments::settle(&self.db, queued.id, "rejected", Some(&why)).await?;
                Ok(true)
            }
            _ => {
                tracing::warn!(id = %queued.id, %why, "stock adjustment's answer lost; a manager must check it");
                adjustments::settle(&self.db, queued.id, "uncertain", Some(&why)).await?;
                Err(err)
            }
        }
    }
}
