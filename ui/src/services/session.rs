//! Pairing and staff sign-in.

use serde::Serialize;

use super::{call, NoArgs};
use crate::error::Error;
use crate::model::{Approval, RegisterIdentity, SignedIn};

#[derive(Serialize)]
struct Credentials<'a> {
    username: &'a str,
    password: &'a str,
}

#[derive(Serialize)]
struct Pairing<'a> {
    manager: &'a str,
    password: &'a str,
    location: &'a str,
    code: &'a str,
}

pub async fn identity() -> Result<Option<RegisterIdentity>, Error> {
    call("identity", &NoArgs {}).await
}

pub async fn pair(
    manager: &str,
    password: &str,
    location: &str,
    code: &str,
) -> Result<RegisterIdentity, Error> {
    call(
        "pair",
        &Pairing {
            manager,
            password,
            location,
            code,
        },
    )
    .await
}

pub async fn whoami() -> Result<Option<SignedIn>, Error> {
    call("whoami", &NoArgs {}).await
}

pub async fn sign_in(username: &str, password: &str) -> Result<SignedIn, Error> {
    call("sign_in", &Credentials { username, password }).await
}

pub async fn sign_out() -> Result<(), Error> {
    call("sign_out", &NoArgs {}).await
}

#[derive(Serialize)]
struct PinCredentials<'a> {
    username: &'a str,
    pin: &'a str,
}

#[derive(Serialize)]
struct ApprovalRequest<'a> {
    username: &'a str,
    secret: &'a str,
}

/// Signs in with the PIN a manager set (online, or offline against the register's verifier).
pub async fn sign_in_pin(username: &str, pin: &str) -> Result<SignedIn, Error> {
    call("sign_in_pin", &PinCredentials { username, pin }).await
}

/// A manager's approval, by their PIN or password typed at this till.
pub async fn approve(username: &str, secret: &str) -> Result<Approval, Error> {
    call("approve", &ApprovalRequest { username, secret }).await
}

#[derive(Serialize)]
struct NewPin<'a> {
    username: &'a str,
    pin: &'a str,
}

/// The signed-in manager sets a staff member's PIN at Central (online only).
pub async fn set_pin(username: &str, pin: &str) -> Result<(), Error> {
    call("set_pin", &NewPin { username, pin }).await
}
