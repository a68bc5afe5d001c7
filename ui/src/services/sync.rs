//! The sync engine's state for the status bar.

use super::{call, NoArgs};
use crate::error::Error;
use crate::model::SyncStatus;

pub async fn status() -> Result<SyncStatus, Error> {
    call("sync_status", &NoArgs {}).await
}

/// Runs one sync round now; the answer is the state after it.
pub async fn sync_now() -> Result<SyncStatus, Error> {
    call("sync_now", &NoArgs {}).await
}
