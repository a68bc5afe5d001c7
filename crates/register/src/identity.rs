//! The register's identity: its id at Central, its location, its short code, and the receipt
//! sequence that numbers its sales `<store>-<register>-<sequence>` (unique, monotonic).

use sqlx::Row;
use uuid::Uuid;

use crate::error::{Context, Error, Result};
use crate::store::{now_ms, LocalDb, Tx};

/// Receipt sequences are printed with at least this many digits.
const RECEIPT_SEQ_DIGITS: usize = 6;
/// A register code is short: it is printed in every receipt number.
const REGISTER_CODE_LEN_MAX: usize = 16;

/// Who this register is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub register_id: Uuid,
    /// The location code (the store), e.g. `STORE-1`.
    pub location: String,
    /// The register's short code, e.g. `R1`.
    pub register_code: String,
    /// The last receipt sequence used.
    pub receipt_seq: i64,
}

/// Checks a register code: 1 to 16 ASCII letters, digits or `-`.
pub fn check_register_code(code: &str) -> Result<()> {
    let ok = !code.is_empty()
        && code.len() <= REGISTER_CODE_LEN_MAX
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "register code {code:?} must be 1 to {REGISTER_CODE_LEN_MAX} letters, digits or '-'"
        )))
    }
}

/// A receipt number: `STORE-1-R1-000042`.
pub fn receipt_no(identity: &Identity, seq: i64) -> String {
    format!(
        "{}-{}-{:0width$}",
        identity.location,
        identity.register_code,
        seq,
        width = RECEIPT_SEQ_DIGITS
    )
}

/// Stores the identity once, after pairing; a register is paired only once.
pub async fn save(db: &LocalDb, identity: &Identity) -> Result<()> {
    check_register_code(&identity.register_code)?;
    let done = sqlx::query(
        "INSERT INTO identity (singleton, register_id, location, register_code, receipt_seq, paired_at)
         VALUES (1, ?, ?, ?, 0, ?) ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(identity.register_id.to_string())
    .bind(&identity.location)
    .bind(&identity.register_code)
    .bind(now_ms())
    .execute(db.pool())
    .await
    .context("saving the register's identity")?;
    if done.rows_affected() == 0 {
        return Err(Error::Invalid("this register is already paired".into()));
    }
    Ok(())
}

/// The identity, or `None` before pairing.
pub async fn load(db: &LocalDb) -> Result<Option<Identity>> {
    let row = sqlx::query(
        "SELECT register_id, location, register_code, receipt_seq FROM identity WHERE singleton = 1",
    )
    .fetch_optional(db.pool())
    .await
    .context("loading the register's identity")?;
    row.map(|r| {
        let id: String = r.get("register_id");
        Ok(Identity {
            register_id: Uuid::parse_str(&id).map_err(|e| Error::Corrupt(e.to_string()))?,
            location: r.get("location"),
            register_code: r.get("register_code"),
            receipt_seq: r.get("receipt_seq"),
        })
    })
    .transpose()
}

/// Takes the next receipt number inside the sale's transaction, so a rolled-back sale gives
/// its number back and numbers stay gap-free and monotonic.
pub async fn next_receipt_no(tx: &mut Tx) -> Result<String> {
    let row = sqlx::query(
        "UPDATE identity SET receipt_seq = receipt_seq + 1 WHERE singleton = 1
         RETURNING location, register_code, receipt_seq",
    )
    .fetch_optional(&mut **tx)
    .await
    .context("taking a receipt number")?
    .ok_or(Error::NotPaired)?;
    let identity = Identity {
        register_id: Uuid::nil(),
        location: row.get("location"),
        register_code: row.get("register_code"),
        receipt_seq: row.get("receipt_seq"),
    };
    Ok(receipt_no(&identity, identity.receipt_seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_numbers_are_store_register_sequence() {
        let identity = Identity {
            register_id: Uuid::nil(),
            location: "STORE-1".into(),
            register_code: "R1".into(),
            receipt_seq: 0,
        };
        assert_eq!(receipt_no(&identity, 42), "STORE-1-R1-000042");
        assert_eq!(receipt_no(&identity, 1_234_567), "STORE-1-R1-1234567");
    }

    #[test]
    fn register_codes_are_short_and_plain() {
        assert!(check_register_code("R1").is_ok());
        assert!(check_register_code("").is_err());
        assert!(check_register_code("R 1").is_err());
        assert!(check_register_code(&"R".repeat(17)).is_err());
    }
}
