//! Kassa's pure domain: money, tax, receipt maths, the order state machine and validated ids.
//!
//! Nothing here does I/O or reads a clock, so Central, the register and the wasm UI all compute
//! the same receipts and accept the same input. Types that cross the HTTP API derive
//! `utoipa::ToSchema` when the `openapi` feature is on.

pub mod api;
pub mod approval;
pub mod cart;
pub mod cash_rounding;
pub mod ids;
pub mod lease;
pub mod maintenance;
pub mod money;
pub mod order;
pub mod receipt;
pub mod report;
pub mod shift;
pub mod tax;
pub mod views;

pub use cart::{
    check_line_qty, compute_totals, CartError, CartLine, LineTotal, QtyOutOfRange, TaxLine, Totals,
    CART_LINES_MAX, LINE_QTY_MAX,
};
pub use cash_rounding::{final_cash_part, CashRounding, InvalidCashRounding, RoundedCash};
pub use ids::{
    ean13_check_digit, is_valid_pin, Barcode, BarcodeKind, IdError, IdempotencyKey, Role, Sku,
    Username, PIN_RULE,
};
pub use money::{round_money, try_round_money, Currency, Money, MoneyError};
pub use order::{IllegalTransition, OrderEvent, OrderStatus, UnknownOrderStatus};
pub use receipt::{Receipt, ReceiptPayment, SaleMode, SplitPart, SplitStep, SplitView, Tender};
pub use report::{DayTotal, MethodTotal, SalesReport, TaxTotal};
pub use shift::{
    CashCount, CashMovement, CashSummary, DenominationCount, MovementKind, ShiftCount, ShiftError,
    ShiftList, ShiftReport, ShiftSummary, StoreDay, ZGap, ZReceived,
};
pub use tax::{PriceMode, TaxClass, TaxError, TaxRate, TaxTable};
pub use views::{EditState, ShortfallView, SyncStatus};

/// Untrusted input quoted in an error message, cut to a length that is safe to log and echo.
pub(crate) fn clipped(s: &str) -> String {
    const CHARS_MAX: usize = 40;
    if s.chars().count() <= CHARS_MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(CHARS_MAX).collect();
        out.push('…');
        out
    }
}
