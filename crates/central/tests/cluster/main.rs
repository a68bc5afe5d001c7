//! Central scaled out: real `kassa-central serve` processes on one PostgreSQL, with Redis and
//! HAProxy, started on free loopback ports and stopped by each story. Stories skip (with a
//! message) when PostgreSQL, redis-server or haproxy is missing, unless `KASSA_REQUIRE_*` is set.

#![expect(
    clippy::unwrap_used,
    reason = "a failed unwrap is a failed test, with its location"
)]

mod harness;

mod clients;
mod failover;
mod guest_carts;
mod replica;
mod shared_state;
mod startup;
