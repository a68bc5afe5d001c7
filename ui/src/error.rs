//! What a call to the shell can fail with, in words a cashier can act on.

use std::fmt;

use crate::model::ShellError;

/// A failed shell command.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The register refused or failed; `code` is machine-readable (`not_found`, `offline`, …).
    Shell(ShellError),
    /// The answer did not have the expected shape (a UI/shell mismatch: a bug).
    Decode(String),
    /// `window.__TAURI__` is missing: the page is not running inside the desktop shell.
    NoShell(String),
}

impl Error {
    pub fn code(&self) -> &str {
        match self {
            Error::Shell(e) => &e.code,
            Error::Decode(_) => "decode",
            Error::NoShell(_) => "no_shell",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shell(e) => f.write_str(&e.message),
            Error::Decode(e) => write!(f, "unexpected answer from the register: {e}"),
            Error::NoShell(e) => write!(f, "not running in Kassa Register's window: {e}"),
        }
    }
}
