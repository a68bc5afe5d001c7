//! Refunds the till asked Central for and did not write down (a crash, a failed local write,
//! an answer that never came): each round reads the order's refunds at Central on the
//! register's own device session (no manager needed) and settles each pending row from them.

use std::time::Duration;

use kassa_domain::api::PaymentStatus;

use super::Engine;
use crate::error::{Error, Result};
use crate::refunds::{self, PendingRefund, Restock};
use crate::store::now_ms;

/// How long a refund Central has no trace of stays pending: longer than any request of the
/// till's could still be running at Central (its timeouts, Central's idempotency lease), so
/// "not there" then means "never made". Until then a retry with the same approval may send it.
const REFUND_UNKNOWN_FORGET_AFTER: Duration = Duration::from_secs(10 * 60);

impl Engine {
    /// Settles every pending refund Central has decided; returns how many settled.
    pub(super) async fn settle_refunds(&self) -> Result<usize> {
        let mut settled = 0;
        for pending in refunds::unsettled(&self.db).await? {
            let listed = self
                .sessions
                .device_authed(|t| {
                    let order_id = pending.order_id;
                    async move { self.client().refunds(t.expose(), order_id).await }
                })
                .await;
            let list = match listed {
                Ok(list) => list,
                Err(Error::Api { status: 404, .. }) => Vec::new(),
                Err(err) if err.is_transient() => return Err(err),
                Err(err) => {
                    refunds::note_error(&self.db, pending.id, &err.to_string()).await?;
                    continue;
                }
            };
            if self.settle_refund(&pending, &list).await? {
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Settles one pending refund from Central's list of its order's refunds; `true` if it did.
    async fn settle_refund(
        &self,
        pending: &PendingRefund,
        central: &[kassa_domain::api::Refund],
    ) -> Result<bool> {
        match central.iter().find(|r| r.id == pending.id) {
            Some(refund) if refund.status == PaymentStatus::Succeeded => {
                tracing::info!(refund = %pending.id, "refund made at Central; recorded now");
                refunds::settle(&self.db, pending, refund, Restock::ByPull).await?;
                Ok(true)
            }
            Some(refund) if refund.status == PaymentStatus::Failed => {
                tracing::info!(refund = %pending.id, "Central refused the refund; nothing was given back");
                refunds::forget(&self.db, pending.id).await?;
                Ok(true)
            }
            // Central is still waiting for the processor: a manager's retry finishes it.
            Some(_) => Ok(false),
            None => {
                let age_ms = now_ms().saturating_sub(pending.created_at);
                let forget_ms =
                    i64::try_from(REFUND_UNKNOWN_FORGET_AFTER.as_millis()).unwrap_or(i64::MAX);
                if age_ms < forget_ms {
                    return Ok(false);
                }
                tracing::info!(refund = %pending.id, "Central never made the refund; forgotten");
                refunds::forget(&self.db, pending.id).await?;
                Ok(true)
            }
        }
    }
}
