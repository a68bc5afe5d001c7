//! A string secret (API key, webhook secret) whose `Debug` never shows the value.

use std::fmt;

/// A secret string. `Debug` prints `SecretString("[REDACTED]")`; read it with
/// [`SecretString::expose_secret`] only where it is sent or used as a key.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(\"[REDACTED]\")")
    }
}

#[cfg(test)]
mod tests {
    use super::SecretString;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = SecretString::new("sk_test_very_secret");
        let shown = format!("{secret:?}");
        assert!(!shown.contains("very_secret"), "{shown}");
        assert_eq!(secret.expose_secret(), "sk_test_very_secret");
    }
}
