//! Stripe-style form parameters (`amount=1250&metadata[order_id]=…`), with the checks every
//! endpoint shares: unknown parameters and card numbers are refused.

use std::collections::BTreeMap;

use crate::intents::Outcome;

/// A bound on parameters per request; Stripe's own metadata limit is 50 keys.
const PARAMS_MAX: usize = 64;

/// The decoded form, in the order sent.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(body: &[u8]) -> Result<Self, Outcome> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| {
            Outcome::invalid(
                "body",
                "parameter_invalid_string",
                "Invalid request body: send application/x-www-form-urlencoded parameters.",
            )
        })?;
        if pairs.len() > PARAMS_MAX {
            return Err(Outcome::invalid(
                "body",
                "parameter_invalid_string",
                "Too many parameters.",
            ));
        }
        let params = Self(pairs);
        params.refuse_card_numbers()?;
        Ok(params)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// `metadata[key]=value` pairs.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter_map(|(key, value)| {
                let inner = key.strip_prefix("metadata[")?.strip_suffix(']')?;
                Some((inner.to_owned(), value.clone()))
            })
            .collect()
    }

    /// Refuses any parameter not in `allowed` (`"metadata"` allows `metadata[…]`), as Stripe does.
    pub fn allow_only(&self, allowed: &[&str]) -> Result<(), Outcome> {
        for (key, _) in &self.0 {
            let name = key.split('[').next().unwrap_or(key);
            let bracketed_ok = name == "metadata" && key.ends_with(']');
            if !allowed.contains(&name) || (key.contains('[') && !bracketed_ok) {
                return Err(Outcome::invalid(
                    key,
                    "parameter_unknown",
                    &format!("Received unknown parameter: {key}"),
                ));
            }
        }
        Ok(())
    }

    /// Kassa never handles card numbers, so the simulator refuses anything shaped like one
    /// (13–19 digits, spaces and dashes aside) in any parameter, and never echoes it back.
    fn refuse_card_numbers(&self) -> Result<(), Outcome> {
        match self.0.iter().find(|(_, value)| looks_like_pan(value)) {
            Some((key, _)) => Err(Outcome::invalid(
                key,
                "card_number_not_allowed",
                "Raw card numbers are not accepted; send a payment method token such as pm_card_visa.",
            )),
            None => Ok(()),
        }
    }
}

fn looks_like_pan(value: &str) -> bool {
    let mut digits = 0;
    for c in value.chars() {
        match c {
            '0'..='9' => digits += 1,
            ' ' | '-' => {}
            _ => return false,
        }
    }
    (13..=19).contains(&digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_refused_in_any_parameter() {
        for body in [
            "payment_method=4242424242424242",
            "payment_method=4242+4242+4242+4242",
            "amount=100&metadata[note]=4000-0000-0000-0002",
        ] {
            let err = Params::parse(body.as_bytes()).expect_err(body);
            assert_eq!(err.status, 400);
            assert_eq!(err.body["error"]["code"], "card_number_not_allowed");
            assert!(!err.body.to_string().contains("4242"), "echoed the PAN");
        }
        assert!(Params::parse(b"amount=1250&payment_method=pm_card_visa").is_ok());
    }

    #[test]
    fn metadata_and_unknown_parameters() {
        let params = Params::parse(b"amount=1&metadata[order_id]=o-1&metadata[sim_webhook]=twice")
            .expect("parse");
        assert_eq!(
            params.metadata().get("order_id").map(String::as_str),
            Some("o-1")
        );
        assert!(params.allow_only(&["amount", "metadata"]).is_ok());
        assert!(params.allow_only(&["amount"]).is_err());
        let nested = Params::parse(b"amount[x]=1").expect("parse");
        assert!(nested.allow_only(&["amount"]).is_err());
    }
}
