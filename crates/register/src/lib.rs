//! Kassa Register's core without a GUI: everything the Tauri shell calls.
//!
//! [`Register`] ties together the local store ([`store`]), the catalog cache ([`catalog`]),
//! carts ([`carts`]), checkout ([`sale`], card payments in [`card`], [`split`] tender) and its [`outbox`],
//! sign-in ([`session`], secrets in [`secrets`]), managers' [`approval`]s, the [`settings`]
//! Central decides for every till, the [`sync`] engine and its [`client`] for Central, a
//! manager's offline catalog [`edits`] and [`adjustments`] of stock, the stock [`shortfalls`]
//! offline sales left at Central, the till's stock [`leases`] (what it may sell offline with no
//! shortfall), the offline [`recommend`]ations, the till's [`shifts`] (float, cash movements,
//! blind count, X and Z reports), thermal [`printer`]s (receipts, reports, the cash drawer) and
//! the drawer's audited [`no_sale`]s. Totals are `kassa_domain`'s, the code
//! Central runs, so a receipt never differs from Central's by a cent.

pub mod adjustments;
pub mod approval;
pub mod card;
pub mod carts;
pub mod catalog;
pub mod client;
pub mod edits;
pub mod error;
pub mod identity;
pub mod leases;
pub mod no_sale;
pub mod outbox;
pub mod printer;
pub mod recommend;
pub mod refunds;
pub mod report;
pub mod returns;
pub mod sale;
pub mod secrets;
pub mod session;
pub mod settings;
pub mod shifts;
pub mod shortfalls;
pub mod split;
pub mod stock;
pub mod store;
pub mod sync;
pub mod telemetry;

mod register;

pub use error::{Error, Result};
pub use register::{Register, RegisterConfig};
