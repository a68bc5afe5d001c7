//! What the shell's commands answer, as the UI reads it (serde mirrors of `kassa-register`'s
//! views, built from `kassa-domain` types). Pure: no web APIs, so it builds and tests on the host.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kassa_domain::api::Product;
use kassa_domain::{CartLine, Role, Totals};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The cart open at the till.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Cart {
    pub id: Uuid,
    pub status: String,
    pub label: String,
    pub lines: Vec<CartLine>,
    pub totals: Totals,
}

/// A completed sale, as printed: the domain's type, the one the register core makes.
pub use kassa_domain::{Receipt, ReceiptPayment, SaleMode};

/// The sync engine's state, for the status bar.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SyncStatus {
    pub online: bool,
    pub last_sync: Option<DateTime<Utc>>,
    pub pending: i64,
    pub rejected: i64,
    pub conflicts: i64,
    pub last_error: Option<String>,
    pub failures: u32,
}

/// The staff member signed in at this register.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SignedIn {
    pub username: String,
    pub role: Role,
}

impl SignedIn {
    /// Managers (and admins) resolve catalog conflicts.
    pub fn is_manager(&self) -> bool {
        matches!(self.role, Role::Manager | Role::Admin)
    }
}

/// Which store and till this register is; `None` from the shell until it is paired.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RegisterIdentity {
    pub location: String,
    pub register_code: String,
    /// Where the shell keeps secrets: `keyring` or `file`.
    pub secrets: String,
}

/// One field of a conflicted catalog edit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FieldDiff {
    pub field: String,
    pub base: Value,
    pub mine: Value,
    pub theirs: Value,
    pub differs: bool,
}

/// A manager's offline edit that Central refused (412): both versions, field by field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Conflict {
    pub edit_id: Uuid,
    pub product_id: Uuid,
    pub theirs_version: i64,
    pub fields: Vec<FieldDiff>,
}

/// A "frequently bought together" product.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Recommended {
    pub product: Product,
    pub score: f64,
    pub support: i64,
}

/// Which side of a conflict a field keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Mine,
    Theirs,
}

/// The manager's choices for one conflict, field name to side.
pub type Choices = BTreeMap<String, Side>;

/// The shell's error body: a machine-readable code and a sentence for the cashier.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ShellError {
    pub code: String,
    pub message: String,
}
