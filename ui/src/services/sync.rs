//! The sync engine's state for the status bar.

use super::{call, NoArgs};
use crate::error::Error;
use crate::model::SyncStatus;

pub async fn status() -> Result<SyncStatus, Error> {
    call("sync_status", &NoArgs {}).await
}
