//! Delivering Z reports to Central in Z number order, with the register's device session (no
//! one need be signed in after the close). Central keeps each once per (register, Z number):
//! a report whose answer was lost is sent again and Central answers 200, so it is marked
//! delivered exactly once. A report Central refuses for good (a reused number, an inconsistent
//! report) stops the delivery here, with Central's words on the status line, so the order holds.

use super::Engine;
use crate::error::Result;
use crate::shifts;

/// Z reports delivered per round at most (a till closes once or twice a day).
const Z_REPORTS_PER_ROUND_MAX: u32 = 50;

impl Engine {
    /// Delivers the Z reports Central has not confirmed; returns how many it confirmed.
    pub(super) async fn push_z_reports(&self) -> Result<usize> {
        let mut pushed = 0;
        for report in shifts::unsynced(&self.db, Z_REPORTS_PER_ROUND_MAX).await? {
            let Some(z_no) = report.z_no else { continue };
            let report = &report;
            let received = self
                .sessions
                .device_authed(
                    |t| async move { self.client().sync_shift(t.expose(), report).await },
                )
                .await?;
            if let Some(gap) = &received.gap {
                tracing::warn!(
                    z_no,
                    from = gap.from,
                    to = gap.to,
                    "Central reports Z numbers missing below this one"
                );
            }
            shifts::mark_synced(&self.db, z_no).await?;
            pushed += 1;
        }
        Ok(pushed)
    }
}
