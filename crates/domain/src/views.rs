//! What the register core reports about its queues, as its UI shows it: the sync engine's
//! status, where a manager's catalog edit stands and an open stock shortfall. One type each for
//! the register core, the desktop shell and the wasm UI.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::StockDiscrepancy;

/// The sync engine's state, for the status bar and the sync panel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// Did the last contact with Central succeed?
    pub online: bool,
    pub last_sync: Option<DateTime<Utc>>,
    /// Sales waiting to reach Central.
    pub pending: i64,
    /// Sales Central refused (kept for a manager).
    pub rejected: i64,
    /// Catalog edits waiting for a manager's choice.
    pub conflicts: i64,
    pub last_error: Option<String>,
    /// Failed rounds in a row.
    pub failures: u32,
    /// Central's message while an admin holds it read-only (sales stay queued at the till).
    #[serde(default)]
    pub read_only: Option<String>,
}

/// Where one queued catalog edit stands, for the manager's catalog screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditState {
    pub id: Uuid,
    /// `None` for a new product not yet at Central.
    pub product_id: Option<Uuid>,
    pub sku: String,
    pub name: String,
    /// `pending` (queued), `done` (at Central), `conflict` or `rejected`.
    pub status: String,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// An open stock shortfall as the manager's *Shortfalls* screen shows it: Central's record, and
/// what this register knows of it. The receipt and the units sold are known when the sale was
/// made at this register, the product's name when the local catalog has the SKU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShortfallView {
    pub discrepancy: StockDiscrepancy,
    /// The sale's receipt number (`STORE-1-R1-000042`); `None` for another register's sale.
    pub receipt_no: Option<String>,
    /// The product's name in the local catalog.
    pub product_name: Option<String>,
    /// Units of the SKU the sale sold; `None` for another register's sale.
    pub ordered: Option<i64>,
}

impl ShortfallView {
    /// Units Central had and took for the sale: what it sold less what was short.
    pub fn taken(&self) -> Option<i64> {
        self.ordered
            .map(|ordered| (ordered - self.discrepancy.shortfall).max(0))
    }
}
