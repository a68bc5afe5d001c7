//! Pushing queued stock adjustments in order, each with its own Idempotency-Key: an attempt
//! whose answer was lost is sent again in a later round and Central moves the stock once.

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
        let key = queued.key()?;
        let key = &key;
        self.sessions
            .authed(|t| async move {
                self.client()
                    .adjust_stock(t.expose(), key, &queued.adjustment)
                    .await
            })
            .await
            .map(drop)
    }

    /// Settles a failed push; `Ok(false)` stops the round here (keep the order of movements).
    async fn adjustment_failed(&self, queued: &Queued, err: Error) -> Result<bool> {
        let why = err.to_string();
        match &err {
            // A cashier's session: it waits for a manager.
            Error::Api {
                status: 401 | 403, ..
            } => Ok(false),
            // The first attempt is still running at Central: the next round asks again.
            _ if err.api_code() == Some("idempotency_in_flight") => Err(err),
            Error::Api { status, .. } if *status < 500 && *status != 429 => {
                adjustments::settle(&self.db, queued.id, "rejected", Some(&why)).await?;
                Ok(true)
            }
            // Lost answers, timeouts, Central down: sent again with the same key next round.
            _ => {
                tracing::info!(id = %queued.id, %why, "stock adjustment not confirmed; it will be sent again");
                Err(err)
            }
        }
    }
}
