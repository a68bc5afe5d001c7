//! The pieces of the screens: status bar, cart and totals, tender, receipt, suggestions, the
//! receipt printer and the no-sale.

pub mod approval;
pub mod cart;
pub mod discount;
pub mod parked;
pub mod printing;
pub mod receipt;
pub mod status_bar;
pub mod suggestions;
pub mod tender;
