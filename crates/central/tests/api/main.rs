//! Kassa Central's API tests: every story runs on SQLite and on PostgreSQL.

mod helpers;

mod auth;
mod carts;
mod catalog;
mod ops;
mod roles;
