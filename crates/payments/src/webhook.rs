//! Processor webhooks: Stripe's `Stripe-Signature` scheme (HMAC-SHA256 over `"<t>.<body>"`
//! with a timestamp tolerance) and the event envelope with helpers for the fields Kassa reads.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::processor::IntentStatus;

type HmacSha256 = Hmac<Sha256>;

/// The header a signed webhook carries.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// Stripe's default tolerance between the signature's timestamp and now.
pub const DEFAULT_TOLERANCE_S: i64 = 300;

/// A bound on the header we parse: a real one holds a few signatures, not kilobytes.
const SIGNATURE_HEADER_LEN_MAX: usize = 4096;

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `t=` timestamp, no `v1=` signature, or an unreadable header.
    #[error("malformed signature header")]
    Malformed,
    /// No `v1` signature matches the body under our secret.
    #[error("no signature matches the payload")]
    NoMatch,
    /// The signature is authentic but its timestamp is outside the tolerance. `age_s` is
    /// negative when the timestamp lies in the future.
    #[error("signature timestamp outside the tolerance (age {age_s} s)")]
    Stale { age_s: i64 },
}

/// The `Stripe-Signature` header value for `payload` signed at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<hex hmac_sha256(secret, "<timestamp>.<payload>")>`.
pub fn sign_payload(secret: &[u8], timestamp: i64, payload: &[u8]) -> String {
    let mac = signed_mac(secret, timestamp, payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Checks a `Stripe-Signature` header against the raw request body.
///
/// Accepts when any `v1` entry matches (a secret being rolled gives two) and the timestamp is
/// within `tolerance_s` of `now_unix` either way. Other schemes (`v0=`) are ignored. Comparison
/// is constant-time.
pub fn verify_signature(
    header: &str,
    payload: &[u8],
    secret: &[u8],
    now_unix: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    if header.len() > SIGNATURE_HEADER_LEN_MAX {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" if timestamp.is_none() => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                );
            }
            "t" => return Err(SignatureError::Malformed),
            // An undecodable entry cannot match; others may.
            "v1" => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let mac = signed_mac(secret, timestamp, payload);
    if !signatures
        .iter()
        .any(|sig| mac.clone().verify_slice(sig).is_ok())
    {
        return Err(SignatureError::NoMatch);
    }
    let age_s = now_unix.saturating_sub(timestamp);
    if age_s > tolerance_s || age_s < tolerance_s.saturating_neg() {
        return Err(SignatureError::Stale { age_s });
    }
    Ok(())
}

fn signed_mac(secret: &[u8], timestamp: i64, payload: &[u8]) -> HmacSha256 {
    // HMAC hashes long keys and pads short ones: `new_from_slice` never fails for it.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// A processor event, as POSTed to the webhook endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// `evt_…`, unique per event: deliveries of the same event repeat it (dedupe on it).
    pub id: String,
    /// `payment_intent.created`, `payment_intent.succeeded`, `payment_intent.payment_failed`,
    /// `charge.refunded`, …
    pub r#type: String,
    /// Unix seconds when the event happened (not when it was delivered).
    pub created: i64,
    pub data: WebhookData,
}

/// The event's payload: the object (intent, charge…) as it was when the event happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookData {
    pub object: serde_json::Value,
}

/// What Kassa reads from a `payment_intent.*` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentEventData {
    pub intent_id: String,
    pub status: IntentStatus,
    /// `metadata[order_id]`, as Kassa sent it when creating the intent.
    pub order_id: Option<String>,
    /// `metadata[payment_id]`: the Kassa payment the intent was created for.
    pub payment_id: Option<String>,
    pub amount_received_minor: i64,
}

/// What Kassa reads from a `charge.refunded` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundEventData {
    pub intent_id: String,
    pub order_id: Option<String>,
    /// The total refunded so far on the charge, all refunds together.
    pub amount_refunded_minor: i64,
}

impl WebhookEvent {
    /// Verifies `header` against the raw `payload`, then parses it.
    pub fn from_signed(
        header: &str,
        payload: &[u8],
        secret: &[u8],
        now_unix: i64,
        tolerance_s: i64,
    ) -> Result<Self, WebhookError> {
        verify_signature(header, payload, secret, now_unix, tolerance_s)?;
        Ok(serde_json::from_slice(payload)?)
    }

    /// The intent's id, status, order id and amount received, for a `payment_intent.*` event;
    /// `None` for any other object or one missing those fields.
    pub fn payment_intent(&self) -> Option<IntentEventData> {
        let object = &self.data.object;
        if object.get("object")?.as_str()? != "payment_intent" {
            return None;
        }
        Some(IntentEventData {
            intent_id: object.get("id")?.as_str()?.to_owned(),
            status: IntentStatus::parse(object.get("status")?.as_str()?)?,
            order_id: metadata(object, "order_id"),
            payment_id: metadata(object, "payment_id"),
            amount_received_minor: object
                .get("amount_received")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0),
        })
    }

    /// The intent's id, order id and total refunded, for a `charge.refunded` event.
    pub fn charge_refund(&self) -> Option<RefundEventData> {
        let object = &self.data.object;
        if object.get("object")?.as_str()? != "charge" {
            return None;
        }
        Some(RefundEventData {
            intent_id: object.get("payment_intent")?.as_str()?.to_owned(),
            order_id: metadata(object, "order_id"),
            amount_refunded_minor: object.get("amount_refunded")?.as_i64()?,
        })
    }
}

fn metadata(object: &serde_json::Value, key: &str) -> Option<String> {
    Some(object.get("metadata")?.get(key)?.as_str()?.to_owned())
}

/// Why a webhook was refused by [`WebhookEvent::from_signed`].
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("unreadable webhook event: {0}")]
    Json(#[from] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_test_1","type":"payment_intent.succeeded"}"#;

    /// Computed outside Rust (python3 `hmac.new(secret, b"1700000000." + body, sha256)`), so a
    /// bug shared by `sign_payload` and `verify_signature` (and the simulator) cannot hide.
    const KNOWN_HEADER: &str =
        "t=1700000000,v1=510a6b23c205185db14dd02988bce5939164d8e977341d096cb9c4305b367fb8";

    #[test]
    fn signing_matches_the_known_answer() {
        assert_eq!(sign_payload(SECRET, NOW, BODY), KNOWN_HEADER);
    }

    #[test]
    fn the_known_answer_verifies() {
        assert_eq!(
            verify_signature(KNOWN_HEADER, BODY, SECRET, NOW, 300),
            Ok(())
        );
    }

    #[test]
    fn a_tampered_body_does_not_match() {
        let tampered = br#"{"id":"evt_test_1","type":"payment_intent.payment_failed"}"#;
        assert_eq!(
            verify_signature(KNOWN_HEADER, tampered, SECRET, NOW, 300),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_wrong_secret_does_not_match() {
        assert_eq!(
            verify_signature(KNOWN_HEADER, BODY, b"whsec_other", NOW, 300),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_changed_timestamp_does_not_match() {
        let header = KNOWN_HEADER.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify_signature(&header, BODY, SECRET, NOW, 300),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn an_old_signature_is_stale() {
        assert_eq!(
            verify_signature(KNOWN_HEADER, BODY, SECRET, NOW + 301, 300),
            Err(SignatureError::Stale { age_s: 301 })
        );
        assert_eq!(
            verify_signature(KNOWN_HEADER, BODY, SECRET, NOW + 300, 300),
            Ok(())
        );
    }

    #[test]
    fn a_signature_from_the_future_is_refused() {
        assert_eq!(
            verify_signature(KNOWN_HEADER, BODY, SECRET, NOW - 301, 300),
            Err(SignatureError::Stale { age_s: -301 })
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in [
            "",
            "garbage",
            "v1=510a6b23",
            "t=1700000000",
            "t=soon,v1=510a6b23",
            "t=1700000000,t=1700000000,v1=00",
            "t=1700000000,v0=abcd",
        ] {
            assert_eq!(
                verify_signature(header, BODY, SECRET, NOW, 300),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
        let long = format!("{KNOWN_HEADER},{}", "v0=aa,".repeat(1000));
        assert_eq!(
            verify_signature(&long, BODY, SECRET, NOW, 300),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn any_matching_v1_among_several_is_accepted() {
        let good = KNOWN_HEADER.trim_start_matches("t=1700000000,");
        let header = format!("t=1700000000, v1=deadbeef, v1=zz-not-hex, v0=cafe, {good}");
        assert_eq!(verify_signature(&header, BODY, SECRET, NOW, 300), Ok(()));
    }

    #[test]
    fn intent_fields_come_out_of_a_payment_intent_event() {
        let event: WebhookEvent = serde_json::from_value(serde_json::json!({
            "id": "evt_1", "type": "payment_intent.succeeded", "created": NOW,
            "data": {"object": {"id": "pi_1", "object": "payment_intent", "status": "succeeded",
                "amount": 1250, "amount_received": 1250, "metadata": {"order_id": "ord-1", "payment_id": "pay-1"}}}
        }))
        .expect("event");
        assert_eq!(
            event.payment_intent(),
            Some(IntentEventData {
                intent_id: "pi_1".into(),
                status: IntentStatus::Succeeded,
                order_id: Some("ord-1".into()),
                payment_id: Some("pay-1".into()),
                amount_received_minor: 1250,
            })
        );
        assert_eq!(event.charge_refund(), None);
    }

    #[test]
    fn from_signed_checks_then_parses() {
        let payload = br#"{"id":"evt_2","type":"charge.refunded","created":1700000000,"data":{"object":{"object":"charge","payment_intent":"pi_2","amount_refunded":500,"metadata":{}}}}"#;
        let header = sign_payload(SECRET, NOW, payload);
        let event = WebhookEvent::from_signed(&header, payload, SECRET, NOW, 300).expect("valid");
        assert_eq!(
            event.charge_refund(),
            Some(RefundEventData {
                intent_id: "pi_2".into(),
                order_id: None,
                amount_refunded_minor: 500
            })
        );
        assert!(matches!(
            WebhookEvent::from_signed(&header, payload, b"nope", NOW, 300),
            Err(WebhookError::Signature(SignatureError::NoMatch))
        ));
    }
}
