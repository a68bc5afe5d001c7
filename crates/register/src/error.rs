//! The register library's one error type, and `.context()` for its I/O results.

use kassa_domain::api::ErrorDetail;

/// Everything a register operation can fail with; the Tauri shell turns it into a message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local SQLite store failed (the context says doing what).
    #[error("local store: {context}: {source}")]
    Db {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// Central could not be reached (connection refused, timeout, broken connection).
    #[error("Central unreachable: {context}: {source}")]
    Unreachable {
        context: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// Central answered with an error body.
    #[error("Central said {status} {}: {}", detail.code, detail.message)]
    Api { status: u16, detail: ErrorDetail },
    /// A stored or received value is not what it must be (a bug or a corrupted store).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The cashier or manager asked for something that cannot be done; the message says why.
    #[error("{0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The outbox holds its maximum of unsynced sales; selling waits for the link to return.
    #[error(
        "{pending} sales wait to be synced, the most this register may hold; reconnect to Central"
    )]
    OutboxFull { pending: i64 },
    /// The signed-in cashier asked for something only a manager may allow (a discount above
    /// the limit) without a valid manager's approval; the message says what is needed.
    #[error("{0}")]
    ApprovalRequired(String),
    /// No staff member is signed in, or the session ended.
    #[error("not signed in")]
    NotSignedIn,
    /// The signed-in staff member's role may not do this (a cashier at a manager's screen).
    #[error("{0}")]
    Forbidden(String),
    /// This needs Central, which is out of reach or which the session cannot speak to (it was
    /// opened offline); the message says what lives at Central and what to do.
    #[error("{0}")]
    Offline(String),
    /// Selling, refunds and cash movements need an open shift (or one not yet counted); the
    /// message says what to do.
    #[error("{0}")]
    NoShift(String),
    /// The register has not been paired with Central yet.
    #[error("this register is not paired with Central")]
    NotPaired,
    /// A card payment cannot be taken: Central is out of reach and the offline card policy is
    /// off or the sale is above its limit (the message says which, and the limit).
    #[error("{0}")]
    CardUnavailable(String),
    /// A card payment's outcome is not known yet (the processor has not answered); its cart
    /// stays held and the sync engine finishes the sale, or gives the cart back, when it is.
    #[error("{0}")]
    CardPending(String),
    /// The receipt printer did not take a document (off, unplugged, out of paper, or a
    /// build without its connection); the message names the printer.
    #[error("{0}")]
    Printer(String),
    #[error("secret store: {0}")]
    Secrets(String),
    #[error(transparent)]
    Cart(#[from] kassa_domain::CartError),
    #[error(transparent)]
    Money(#[from] kassa_domain::MoneyError),
}

impl Error {
    /// Is this worth retrying later (network down, Central overloaded or restarting)?
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Api { status, detail } => {
                *status >= 500 || *status == 429 || detail.code == "idempotency_in_flight"
            }
            _ => false,
        }
    }

    /// Did the request never reach Central (nothing can have been applied)?
    pub fn never_sent(&self) -> bool {
        matches!(self, Error::Unreachable { source, .. } if source.is_connect())
            || matches!(self, Error::NotSignedIn | Error::NotPaired)
    }

    /// How long Central asked to be left alone (`Retry-After` of a 503 `overloaded` or
    /// `read_only`, or a 429), from its error body.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Api { status, detail } if *status == 503 || *status == 429 => detail
                .details
                .get("retry_after_s")
                .and_then(serde_json::Value::as_u64)
                .map(std::time::Duration::from_secs),
            _ => None,
        }
    }

    /// The error code when Central answered with an error body.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            Error::Api { detail, .. } => Some(detail.code.as_str()),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds what was being done to a failed I/O call, like `anyhow::Context` but typed.
pub trait Context<T> {
    fn context(self, context: &'static str) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, sqlx::Error> {
    fn context(self, context: &'static str) -> Result<T> {
        self.map_err(|source| Error::Db { context, source })
    }
}

impl<T> Context<T> for std::result::Result<T, reqwest::Error> {
    fn context(self, context: &'static str) -> Result<T> {
        self.map_err(|source| Error::Unreachable { context, source })
    }
}

/// JSON stored by this register that no longer parses is corruption, not bad input.
pub(crate) fn corrupt(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("{what}: {err}"))
}
