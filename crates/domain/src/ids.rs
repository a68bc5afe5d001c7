//! Validated identifiers people type or scan: SKUs, barcodes, idempotency keys, usernames, roles.
//!
//! Each is a newtype with a private field made only by `parse` (also `FromStr`, `TryFrom<String>`
//! and serde), so holding one proves it is valid. Every type serialises as a plain string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused. Messages name the value so a cashier can see what was scanned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {len} characters long; at least {min} are required")]
    TooShort {
        kind: &'static str,
        len: usize,
        min: usize,
    },
    #[error("{kind} is {len} characters long; at most {max} are allowed")]
    TooLong {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{kind} {value:?} contains {ch:?}; allowed are {allowed}")]
    InvalidChar {
        kind: &'static str,
        value: String,
        ch: char,
        allowed: &'static str,
    },
    #[error("barcode {value} has {len} digits; expected 8 (EAN-8), 12 (UPC-A) or 13 (EAN-13)")]
    BarcodeLength { value: String, len: usize },
    #[error("barcode {value} has check digit {found}, expected {expected}")]
    BarcodeCheckDigit {
        value: String,
        found: u8,
        expected: u8,
    },
    #[error("unknown role {value:?}; expected admin, manager, cashier or customer")]
    UnknownRole { value: String },
}

/// Checks the length in characters, then each character against `allowed`.
fn check_chars(
    kind: &'static str,
    value: &str,
    (min, max): (usize, usize),
    allowed: (&'static str, fn(char) -> bool),
) -> Result<(), IdError> {
    let len = value.chars().count();
    if len == 0 {
        return Err(IdError::Empty { kind });
    }
    if len < min {
        return Err(IdError::TooShort { kind, len, min });
    }
    // Length before content, so an error never echoes an arbitrarily long input.
    if len > max {
        return Err(IdError::TooLong { kind, len, max });
    }
    match value.chars().find(|&c| !allowed.1(c)) {
        Some(ch) => Err(IdError::InvalidChar {
            kind,
            value: value.to_owned(),
            ch,
            allowed: allowed.0,
        }),
        None => Ok(()),
    }
}

/// The shared plumbing of a string newtype: `Display`, `AsRef<str>`, `FromStr`,
/// `TryFrom<String>` and `From<Self> for String` (which serde uses).
macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

/// A stock-keeping unit: 1..=64 of `A-Z a-z 0-9 . _ -`, surrounding whitespace trimmed.
///
/// Case is kept as given (and so is significant): SKUs are printed on labels and shelf tags, and
/// rewriting them would make Kassa disagree with the paper in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(example = "COFFEE-500G", pattern = r"^[A-Za-z0-9._-]{1,64}$")
)]
pub struct Sku(String);

impl Sku {
    pub const LEN_MAX: usize = 64;
    /// What [`Sku::parse`] accepts once trimmed, as a regular expression (the OpenAPI schema's).
    pub const PATTERN: &str = r"^[A-Za-z0-9._-]{1,64}$";

    pub fn parse(s: &str) -> Result<Sku, IdError> {
        let s = s.trim();
        check_chars(
            "SKU",
            s,
            (1, Self::LEN_MAX),
            ("ASCII letters, digits, '.', '_' and '-'", |c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
            }),
        )?;
        Ok(Sku(s.to_owned()))
    }
}

string_newtype!(Sku);

/// Which symbology a [`Barcode`] is, told apart by its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BarcodeKind {
    Ean13,
    UpcA,
    Ean8,
}

/// A retail barcode with a valid check digit: EAN-13, UPC-A (12 digits) or EAN-8.
///
/// Kept as scanned (a UPC-A stays 12 digits); [`Barcode::gtin13`] gives the 13-digit form under
/// which a UPC-A and its EAN-13 spelling are the same product.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(example = "4006381333931", pattern = "^([0-9]{8}|[0-9]{12,13})$")
)]
pub struct Barcode(String);

impl Barcode {
    /// Parses a scanned code; surrounding whitespace (a scanner's trailing newline) is trimmed.
    pub fn parse(s: &str) -> Result<Barcode, IdError> {
        let s = s.trim();
        let len = s.chars().count();
        // Longer than any symbology: refuse before echoing it back in an error.
        if len > 13 {
            return Err(IdError::BarcodeLength {
                value: crate::clipped(s),
                len,
            });
        }
        check_chars("barcode", s, (1, 13), ("digits", |c| c.is_ascii_digit()))?;
        if !matches!(len, 8 | 12 | 13) {
            return Err(IdError::BarcodeLength {
                value: s.to_owned(),
                len,
            });
        }
        let (body, check) = s.split_at(len - 1);
        let found = digit_values(check)[0];
        let expected = gtin_check_digit(&digit_values(body));
        if found != expected {
            return Err(IdError::BarcodeCheckDigit {
                value: s.to_owned(),
                found,
                expected,
            });
        }
        Ok(Barcode(s.to_owned()))
    }

    /// Completes a 12-digit body with its check digit, for making demo and test data.
    pub fn ean13_from_body(body12: &str) -> Result<Barcode, IdError> {
        let check = ean13_check_digit(body12)?;
        Barcode::parse(&format!("{body12}{check}"))
    }

    pub fn kind(&self) -> BarcodeKind {
        match self.0.len() {
            13 => BarcodeKind::Ean13,
            12 => BarcodeKind::UpcA,
            _ => BarcodeKind::Ean8,
        }
    }

    /// The GTIN-13 form for EAN-13 and UPC-A (a UPC-A is an EAN-13 with a leading zero);
    /// `None` for EAN-8, which has no 13-digit equivalent.
    pub fn gtin13(&self) -> Option<String> {
        match self.kind() {
            BarcodeKind::Ean13 => Some(self.0.clone()),
            BarcodeKind::UpcA => Some(format!("0{}", self.0)),
            BarcodeKind::Ean8 => None,
        }
    }
}

string_newtype!(Barcode);

/// The EAN-13 check digit for the first 12 digits.
///
/// Returns an error, rather than a wrong digit, if `first12` is not exactly 12 ASCII digits.
pub fn ean13_check_digit(first12: &str) -> Result<u8, IdError> {
    let len = first12.chars().count();
    if len > 12 {
        return Err(IdError::TooLong {
            kind: "EAN-13 body",
            len,
            max: 12,
        });
    }
    check_chars(
        "EAN-13 body",
        first12,
        (12, 12),
        ("digits", |c| c.is_ascii_digit()),
    )?;
    Ok(gtin_check_digit(&digit_values(first12)))
}

fn digit_values(digits: &str) -> Vec<u8> {
    digits.bytes().map(|b| b - b'0').collect()
}

/// The GS1 check digit for any GTIN body: weights 3, 1, 3, … from the rightmost digit.
fn gtin_check_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| u32::from(d) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    // `sum % 10 < 10`, so the result is a single digit.
    u8::try_from((10 - sum % 10) % 10).unwrap_or_else(|_| unreachable!("a digit"))
}

/// The `Idempotency-Key` a client sends: 1..=255 printable ASCII characters, not all blank.
///
/// Kept byte for byte (no trimming): the key is opaque, and two keys differing only in
/// whitespace are two keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Long enough for a UUID or a hash with a prefix; short enough to index cheaply.
    pub const LEN_MAX: usize = 255;

    pub fn parse(s: &str) -> Result<IdempotencyKey, IdError> {
        check_chars(
            "idempotency key",
            s,
            (1, Self::LEN_MAX),
            ("printable ASCII", |c| matches!(c, ' '..='~')),
        )?;
        if s.trim().is_empty() {
            return Err(IdError::Empty {
                kind: "idempotency key",
            });
        }
        Ok(IdempotencyKey(s.to_owned()))
    }
}

string_newtype!(IdempotencyKey);

/// A login name: 3..=64 of `a-z 0-9 . _ -`, trimmed and lowercased on parse so that "Anna" and
/// "anna" cannot be two accounts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(example = "anna.cashier", pattern = r"^[A-Za-z0-9._-]{3,64}$")
)]
pub struct Username(String);

impl Username {
    pub const LEN_MIN: usize = 3;
    pub const LEN_MAX: usize = 64;
    /// What [`Username::parse`] accepts once trimmed, before lowercasing, as a regular
    /// expression (the OpenAPI schema's).
    pub const PATTERN: &str = r"^[A-Za-z0-9._-]{3,64}$";

    pub fn parse(s: &str) -> Result<Username, IdError> {
        let s = s.trim().to_ascii_lowercase();
        check_chars(
            "username",
            &s,
            (Self::LEN_MIN, Self::LEN_MAX),
            ("lowercase ASCII letters, digits, '.', '_' and '-'", |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            }),
        )?;
        Ok(Username(s))
    }
}

string_newtype!(Username);

/// What a staff PIN must be, said to whoever typed one that is not.
pub const PIN_RULE: &str = "a PIN is 4 to 8 digits";

/// Is `pin` a staff PIN: 4 to 8 ASCII digits? (Short, so Central accepts one only with a
/// register's credential and locks PIN sign-in after a few wrong tries.) Central, the register
/// and its UI check PINs with this one rule.
pub fn is_valid_pin(pin: &str) -> bool {
    (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// What a user may do. Ordered by privilege: Admin > Manager > Cashier > Customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    Admin,
    Manager,
    Cashier,
    Customer,
    /// Not a user's role: a paired register's device session (catalog, stock and
    /// recommendation reads and `POST /v1/sync/orders` only), so a till syncs with nobody
    /// signed in.
    Register,
}

impl Role {
    /// The roles users have, most privileged first ([`Role::Register`] is a device's).
    pub const ALL: [Role; 4] = [Role::Admin, Role::Manager, Role::Cashier, Role::Customer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Cashier => "cashier",
            Role::Customer => "customer",
            Role::Register => "register",
        }
    }

    /// Whether this role may do what `other` may: `Manager.at_least(Cashier)` is true.
    pub fn at_least(self, other: Role) -> bool {
        self.rank() >= other.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Role::Customer | Role::Register => 0,
            Role::Cashier => 1,
            Role::Manager => 2,
            Role::Admin => 3,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .chain([Role::Register])
            .find(|r| r.as_str() == s)
            .ok_or_else(|| IdError::UnknownRole {
                value: crate::clipped(s),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_four_to_eight_ascii_digits() {
        for good in ["2468", "13579", "12345678"] {
            assert!(is_valid_pin(good), "{good}");
        }
        for bad in ["", "123", "123456789", "12a4", " 2468", "２４６８", "24.8"] {
            assert!(!is_valid_pin(bad), "{bad}");
        }
    }
    use proptest::prelude::*;

    #[test]
    fn sku_is_trimmed_and_keeps_its_case() {
        assert_eq!(
            Sku::parse("  Coffee-500g ").unwrap().as_str(),
            "Coffee-500g"
        );
        assert_eq!(Sku::parse("A.B_C-1").unwrap().to_string(), "A.B_C-1");
        assert_eq!(Sku::parse("   "), Err(IdError::Empty { kind: "SKU" }));
        assert_eq!(
            Sku::parse(&"A".repeat(65)),
            Err(IdError::TooLong {
                kind: "SKU",
                len: 65,
                max: 64
            })
        );
        assert!(Sku::parse(&"A".repeat(64)).is_ok());
        let err = Sku::parse("COF FEE").unwrap_err();
        assert_eq!(
            err.to_string(),
            "SKU \"COF FEE\" contains ' '; allowed are ASCII letters, digits, '.', '_' and '-'"
        );
        assert!(Sku::parse("CAFÉ").is_err());
    }

    #[test]
    fn sku_serde_validates() {
        let sku: Sku = serde_json::from_str("\"ABC-1\"").unwrap();
        assert_eq!(serde_json::to_string(&sku).unwrap(), "\"ABC-1\"");
        assert!(serde_json::from_str::<Sku>("\"\"").is_err());
    }

    #[test]
    fn known_barcodes_are_valid() {
        let ean = Barcode::parse("4006381333931").unwrap();
        assert_eq!(ean.kind(), BarcodeKind::Ean13);
        let upc = Barcode::parse("036000291452").unwrap();
        assert_eq!(upc.kind(), BarcodeKind::UpcA);
        assert_eq!(upc.gtin13().as_deref(), Some("0036000291452"));
        assert!(Barcode::parse("0036000291452").is_ok());
        let ean8 = Barcode::parse("96385074").unwrap();
        assert_eq!(ean8.kind(), BarcodeKind::Ean8);
        assert_eq!(ean8.gtin13(), None);
        assert_eq!(Barcode::parse("4006381333931\n").unwrap(), ean);
    }

    #[test]
    fn barcode_errors_say_what_is_wrong() {
        assert_eq!(
            Barcode::parse("4006381333932").unwrap_err().to_string(),
            "barcode 4006381333932 has check digit 2, expected 1"
        );
        assert_eq!(
            Barcode::parse("12345").unwrap_err().to_string(),
            "barcode 12345 has 5 digits; expected 8 (EAN-8), 12 (UPC-A) or 13 (EAN-13)"
        );
        assert!(matches!(
            Barcode::parse("40063813339X1"),
            Err(IdError::InvalidChar { ch: 'X', .. })
        ));
        assert!(matches!(
            Barcode::parse(&"1".repeat(1000)),
            Err(IdError::BarcodeLength { len: 1000, .. })
        ));
        assert_eq!(Barcode::parse(""), Err(IdError::Empty { kind: "barcode" }));
    }

    #[test]
    fn ean13_check_digit_completes_bodies() {
        assert_eq!(ean13_check_digit("400638133393"), Ok(1));
        assert_eq!(
            Barcode::ean13_from_body("400638133393").unwrap().as_str(),
            "4006381333931"
        );
        assert!(ean13_check_digit("40063813339").is_err());
        assert!(ean13_check_digit("4006381333931").is_err());
        assert!(ean13_check_digit("40063813339a").is_err());
    }

    #[test]
    fn idempotency_keys() {
        assert!(IdempotencyKey::parse("0190a4b2-7c1e-7d3a-9f00-1234567890ab").is_ok());
        assert_eq!(
            IdempotencyKey::parse(" a b ").unwrap().as_str(),
            " a b ",
            "kept byte for byte"
        );
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("   ").is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("ключ").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn usernames_are_normalised_to_lowercase() {
        assert_eq!(Username::parse(" Anna.K ").unwrap().as_str(), "anna.k");
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert!(Username::parse("anna k").is_err());
        assert!(Username::parse("anna@shop").is_err());
        let u: Username = serde_json::from_str("\"BOB_1\"").unwrap();
        assert_eq!(u.as_str(), "bob_1");
    }

    #[test]
    fn roles_are_ordered_by_privilege() {
        use Role::*;
        for (i, high) in Role::ALL.into_iter().enumerate() {
            for (j, low) in Role::ALL.into_iter().enumerate() {
                // ALL is listed from most to least privileged.
                assert_eq!(high.at_least(low), i <= j, "{high} at_least {low}");
            }
        }
        assert!(Admin.at_least(Customer));
        assert!(!Cashier.at_least(Manager));
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        assert_eq!(
            "root".parse::<Role>().unwrap_err().to_string(),
            "unknown role \"root\"; expected admin, manager, cashier or customer"
        );
    }

    proptest! {
        #[test]
        fn every_ean13_body_makes_a_valid_barcode(body in "[0-9]{12}") {
            let code = Barcode::ean13_from_body(&body)?;
            prop_assert_eq!(Barcode::parse(code.as_str())?, code.clone());
            // Changing the check digit to any other digit is caught.
            let check = code.as_str().as_bytes()[12] - b'0';
            let wrong = (check + 1) % 10;
            let is_check_digit_error = matches!(
                Barcode::parse(&format!("{body}{wrong}")),
                Err(IdError::BarcodeCheckDigit { .. })
            );
            prop_assert!(is_check_digit_error);
        }

        #[test]
        fn valid_skus_round_trip(s in "[A-Za-z0-9._-]{1,64}") {
            let sku = Sku::parse(&s)?;
            prop_assert_eq!(sku.as_str(), s.as_str());
            let json = serde_json::to_string(&sku).unwrap();
            prop_assert_eq!(serde_json::from_str::<Sku>(&json).unwrap(), sku);
        }
    }
}
