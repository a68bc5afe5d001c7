//! What the shell's commands answer, as the UI reads it: `kassa-domain`'s own types where the
//! register core answers with one (receipts, the report, the sync status, catalog edits, stock
//! shortfalls), serde mirrors of the rest. Pure: no web APIs, so it builds and tests on the host.

use std::collections::BTreeMap;

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
pub use kassa_domain::{Receipt, ReceiptPayment, SaleMode, SplitStep, SplitView, Tender};

/// A shift's figures, the blind count and cash movements: the domain's types.
pub use kassa_domain::shift::{
    CashCount, DenominationCount, MovementKind, ShiftCount, ShiftReport,
};

/// Where the shift stands (the shell's `shift_state`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ShiftState {
    pub x_report: Option<ShiftReport>,
    pub count: Option<ShiftCount>,
    pub denominations: Vec<kassa_domain::Money>,
    pub text: Option<String>,
}

/// A Z report with its text for the screen.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ZReportView {
    pub report: ShiftReport,
    pub text: String,
}

/// The sync engine's state and a catalog edit's: the domain's types, the register core's.
pub use kassa_domain::{EditState, SyncStatus};

/// The staff member signed in at this register.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SignedIn {
    pub username: String,
    pub role: Role,
    /// Signed in against the register's own verifier because Central was out of reach.
    #[serde(default)]
    pub offline: bool,
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

/// What the register believes is available of one SKU of the open cart, and offline what it
/// may still sell with no shortfall at Central (its stock lease).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Available {
    pub sku: String,
    pub available: Option<i64>,
    #[serde(default)]
    pub at_till: Option<i64>,
}

/// A product with its available stock, for the stock screen.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StockView {
    pub product: Product,
    pub available: Option<i64>,
}

/// A stock adjustment made here and where it stands.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QueuedAdjustment {
    pub id: Uuid,
    /// `pending`, `done`, `rejected` or `uncertain`.
    pub status: String,
    pub adjustment: Adjustment,
    pub last_error: Option<String>,
}

/// One stock movement as queued.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Adjustment {
    pub sku: String,
    pub location: String,
    pub delta: i64,
    /// `receiving`, `adjustment`, `count_correction` or `return`.
    pub reason: String,
    pub note: Option<String>,
}

/// An open stock shortfall with what this register knows of it, and Central's record that a
/// resolution answers with: the domain's types, the register core's.
pub use kassa_domain::api::StockDiscrepancy;
pub use kassa_domain::ShortfallView;

/// This register's sales report: the domain's type, the one the register core makes.
pub use kassa_domain::{DayTotal, MethodTotal, SalesReport, TaxTotal};

/// A manager's approval given at this till: its id (the register keeps any token) and who.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Approval {
    pub id: Uuid,
    pub manager: String,
}

/// A line of a sale being returned (the register core's `returns::ReturnLine`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReturnLine {
    pub sku: kassa_domain::Sku,
    pub name: String,
    pub qty: u32,
    /// Units already returned, as Central last said.
    pub returned: u32,
    pub unit_price: kassa_domain::Money,
    pub total: kassa_domain::Money,
}

/// A sale opened for a refund (the register core's `returns::SaleToReturn`): one of this
/// till's, or found at Central by the code on its receipt.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SaleToReturn {
    pub order_id: Uuid,
    pub receipt_no: Option<String>,
    pub location: String,
    pub at_this_till: bool,
    pub source: String,
    pub completed_at: chrono::DateTime<chrono::Utc>,
    pub lines: Vec<ReturnLine>,
    pub total: kassa_domain::Money,
}

/// The receipt printer's state (`printer` null: none, the web view prints).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct PrinterStatus {
    pub printer: Option<String>,
    pub paper_mm: Option<u32>,
    pub queued: i64,
    pub last_error: Option<String>,
}

/// A no-sale as recorded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NoSale {
    pub id: Uuid,
    pub approved_by: String,
    pub signed_in: String,
    pub reason: String,
}
