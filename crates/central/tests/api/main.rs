//! Kassa Central's API tests: every story runs on SQLite and on PostgreSQL.

mod helpers;

mod auth;
mod catalog;
mod checkout;
mod ops;
mod roles;
