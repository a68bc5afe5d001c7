//! Kassa Central's API tests: every story runs on SQLite and on PostgreSQL.

#![expect(
    clippy::unwrap_used,
    reason = "a failed unwrap is a failed test, with its location"
)]

mod helpers;

mod approvals;
mod auth;
mod browse;
mod carts;
mod cash_rounding;
mod catalog;
mod checkout;
mod crash;
mod events;
mod group_commit;
mod guest_carts;
mod hot_gate;
mod leases;
mod maintenance;
mod model;
mod money;
mod ops;
mod payments;
mod recommend;
mod roles;
mod search;
mod shifts;
mod staff;
mod stock_pages;
mod sync;
mod telemetry;
mod till_retries;
