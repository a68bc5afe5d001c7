//! The commands the UI invokes, one module per area; each is a few lines over `Register`.
//! Errors reach the UI as their message.

pub mod sale;
pub mod session;
pub mod sync;

/// What a command returns: errors become the message the UI shows.
pub type Answer<T> = Result<T, String>;

pub fn message(err: kassa_register::Error) -> String {
    err.to_string()
}
