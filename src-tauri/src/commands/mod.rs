//! The UI's commands, grouped by area; each is a few lines over `kassa_register::Register`.

pub mod catalog;
pub mod conflicts;
pub mod printing;
pub mod refunds;
pub mod reports;
pub mod sale;
pub mod session;
pub mod shift;
pub mod shortfalls;
pub mod stock;
pub mod sync;
