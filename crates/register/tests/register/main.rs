//! The register against a real Kassa Central started in-process on port 0 (SQLite), reached
//! through a proxy that can cut every connection at any moment.

#![expect(
    clippy::unwrap_used,
    reason = "a failed unwrap is a failed test, with its location"
)]

mod helpers;

mod approvals;
mod card;
mod catalog;
mod cluster;
mod crash;
mod degrade;
mod edits;
mod leases;
mod manager;
mod offline;
mod printing;
mod returns;
mod rounding;
mod rounds;
mod sale;
mod shifts;
mod shortfalls;
mod split;
mod staff;
mod unpaid;
mod zero_total;
