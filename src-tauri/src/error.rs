//! The one error the commands return: a machine-readable code and a sentence for the cashier.
//! Store and secret failures are logged here and shown without their internals.

use kassa_register::Error;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct CommandError {
    pub code: String,
    pub message: String,
}

impl CommandError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl From<Error> for CommandError {
    fn from(err: Error) -> Self {
        let code = match &err {
            Error::NotFound(_) => "not_found",
            Error::Invalid(_) | Error::Cart(_) | Error::Money(_) => "invalid",
            Error::Unreachable { .. } => {
                return Self::new(
                    "offline",
                    "Kassa Central is out of reach; try again when the register is online.",
                )
            }
            Error::Api { detail, .. } => return Self::new(&detail.code, detail.message.clone()),
            Error::OutboxFull { .. } => "outbox_full",
            Error::Offline(_) => "offline",
            Error::CardUnavailable(_) => "card_unavailable",
            Error::CardPending(_) => "card_pending",
            Error::NotSignedIn => "not_signed_in",
            Error::ApprovalRequired(_) => "approval_required",
            Error::NotPaired => "not_paired",
            Error::Forbidden(_) => "forbidden",
            Error::NoShift(_) => "no_shift",
            Error::Printer(_) => "printer",
            // The store, the secrets, corruption (and whatever the library adds): logged, not shown.
            _ => {
                tracing::error!(%err, "register failure");
                return Self::new(
                    "internal",
                    "The register failed to save or read its data; see its log.",
                );
            }
        };
        Self::new(code, err.to_string())
    }
}

pub type CommandResult<T> = Result<T, CommandError>;
