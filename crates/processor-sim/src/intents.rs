//! The simulated processor's books: PaymentIntents and refunds in memory, and the operations
//! on them (create, confirm, capture, refund), each returning an [`Outcome`]: the HTTP answer,
//! the events it emits and how to deliver them. No I/O here; `api` does HTTP, `webhooks` sends.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kassa_payments::IntentStatus;
use serde_json::{json, Value};

use crate::params::Params;
use crate::webhooks::{new_event, WebhookMode, WebhookPlan};

/// How long `pm_sim_timeout` holds its answer: longer than any sane client timeout.
pub const TIMEOUT_HOLD: Duration = Duration::from_secs(30);

/// Stripe's largest amount (in minor units) for most currencies.
const AMOUNT_MAX: i64 = 99_999_999;

/// What the card behind a payment-method token does when charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Card {
    Approve,
    Decline {
        code: &'static str,
        decline_code: &'static str,
        message: &'static str,
    },
    /// Approves, but the answer is held for [`TIMEOUT_HOLD`].
    Timeout,
    /// Fails with a 500 before doing anything.
    Error500,
    /// Confirmed as `processing`; succeeds later, by itself ([`Outcome::settle_later`]).
    Processing,
}

/// Splits `pm_card_visa__twice` into the card's behaviour and the webhook mode suffix.
fn parse_payment_method(token: &str) -> Result<(Card, Option<WebhookMode>), Outcome> {
    let (base, mode) = match token.rsplit_once("__") {
        Some((base, suffix)) => {
            let mode = WebhookMode::parse(suffix).ok_or_else(|| {
                Outcome::invalid(
                    "payment_method",
                    "resource_missing",
                    &format!("Unknown simulator webhook mode suffix: '{suffix}'"),
                )
            })?;
            (base, Some(mode))
        }
        None => (token, None),
    };
    let card = match base {
        "pm_card_visa" | "pm_card_visa_debit" | "pm_card_mastercard" | "pm_card_amex" => {
            Card::Approve
        }
        "pm_card_chargeDeclined" => Card::Decline {
            code: "card_declined",
            decline_code: "generic_decline",
            message: "Your card was declined.",
        },
        "pm_card_chargeDeclinedInsufficientFunds" => Card::Decline {
            code: "card_declined",
            decline_code: "insufficient_funds",
            message: "Your card has insufficient funds.",
        },
        "pm_card_chargeDeclinedExpiredCard" => Card::Decline {
            code: "expired_card",
            decline_code: "expired_card",
            message: "Your card has expired.",
        },
        "pm_sim_timeout" => Card::Timeout,
        "pm_sim_error500" => Card::Error500,
        "pm_sim_processing" => Card::Processing,
        _ => {
            return Err(Outcome::invalid(
                "payment_method",
                "resource_missing",
                &format!("No such PaymentMethod: '{token}'"),
            ))
        }
    };
    Ok((card, mode))
}

#[derive(Debug, Clone)]
pub struct IntentRecord {
    id: String,
    amount: i64,
    currency: String,
    status: IntentStatus,
    capture_method: String,
    payment_method: Option<String>,
    metadata: BTreeMap<String, String>,
    amount_capturable: i64,
    amount_received: i64,
    amount_refunded: i64,
    /// How many refunds were made from it.
    refunds: u32,
    last_payment_error: Option<Value>,
    latest_charge: Option<String>,
    created: i64,
    plan: WebhookPlan,
    /// `metadata[sim_delay_ms]` when given: how long `pm_sim_processing` stays `processing`.
    processing_delay: Option<Duration>,
}

impl IntentRecord {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": self.amount_capturable,
            "amount_received": self.amount_received,
            "capture_method": self.capture_method,
            "confirmation_method": "automatic",
            "created": self.created,
            "currency": self.currency,
            "last_payment_error": self.last_payment_error,
            "latest_charge": self.latest_charge,
            "livemode": false,
            "metadata": self.metadata,
            "payment_method": self.payment_method,
            "status": self.status.as_str(),
        })
    }

    /// The charge behind a captured intent, as `charge.refunded` carries it.
    fn charge_json(&self) -> Value {
        json!({
            "id": self.latest_charge,
            "object": "charge",
            "amount": self.amount,
            "amount_captured": self.amount_received,
            "amount_refunded": self.amount_refunded,
            "captured": true,
            "created": self.created,
            "currency": self.currency,
            "livemode": false,
            "metadata": self.metadata,
            "paid": true,
            "payment_intent": self.id,
            "payment_method": self.payment_method,
            "refunded": self.amount_refunded >= self.amount_received,
            "status": "succeeded",
        })
    }

    fn event(&self, kind: &str, now: i64) -> Value {
        new_event(kind, now, self.to_json())
    }
}

/// The simulator's books. Bounded: past [`INTENTS_MAX`] intents, new ones are refused.
#[derive(Debug, Default)]
pub struct Store {
    intents: HashMap<String, IntentRecord>,
}

/// A bound on intents kept in memory (a simulator, not a database).
const INTENTS_MAX: usize = 1_000_000;

/// The result of one operation: the answer, whether an idempotency key may replay it, and the
/// events it emitted with their delivery plan.
#[derive(Debug)]
pub struct Outcome {
    pub status: u16,
    pub body: Value,
    /// Stripe saves every answer of a request that started executing (including 402 and 500),
    /// but not a request refused by validation, so a corrected retry may reuse the key.
    pub save: bool,
    pub events: Vec<Value>,
    pub plan: WebhookPlan,
    /// Hold the answer this long (the `pm_sim_timeout` card).
    pub hold: Option<Duration>,
    /// An intent left `processing` (the `pm_sim_processing` card): it succeeds after its delay
    /// ([`Store::finish_processing`]).
    pub settle_later: Option<Box<Processing>>,
}

/// An intent that succeeds by itself after `delay` (`None`: the simulator's processing delay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processing {
    pub intent_id: String,
    pub delay: Option<Duration>,
}

impl Outcome {
    fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body,
            save: true,
            events: Vec::new(),
            plan: WebhookPlan::default(),
            hold: None,
            settle_later: None,
        }
    }

    /// A 400 `invalid_request_error`, not saved under the idempotency key.
    pub fn invalid(param: &str, code: &str, message: &str) -> Self {
        Self::error(
            400,
            "invalid_request_error",
            Some(code),
            message,
            Some(param),
        )
    }

    pub fn error(
        status: u16,
        kind: &str,
        code: Option<&str>,
        message: &str,
        param: Option<&str>,
    ) -> Self {
        let mut error = json!({"type": kind, "message": message});
        if let Some(code) = code {
            error["code"] = json!(code);
        }
        if let Some(param) = param {
            error["param"] = json!(param);
        }
        Self {
            status,
            body: json!({ "error": error }),
            save: matches!(status, 402 | 500..=599),
            events: Vec::new(),
            plan: WebhookPlan::default(),
            hold: None,
            settle_later: None,
        }
    }

    fn not_found(kind: &str, id: &str) -> Self {
        Self::error(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such {kind}: '{id}'"),
            Some("id"),
        )
    }

    fn unexpected_state(intent: &IntentRecord, action: &str) -> Self {
        Self::invalid(
            "intent",
            "payment_intent_unexpected_state",
            &format!(
                "You cannot {action} this PaymentIntent because it has a status of {}.",
                intent.status.as_str()
            ),
        )
    }

    fn with_events(mut self, events: Vec<Value>, plan: WebhookPlan) -> Self {
        self.events = events;
        self.plan = plan;
        self
    }
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

fn parse_amount(params: &Params, name: &str) -> Result<Option<i64>, Outcome> {
    let Some(raw) = params.get(name) else {
        return Ok(None);
    };
    match raw.parse::<i64>() {
        Ok(amount) if (1..=AMOUNT_MAX).contains(&amount) => Ok(Some(amount)),
        _ => Err(Outcome::invalid(
            name,
            "parameter_invalid_integer",
            &format!("Invalid {name}: must be an integer between 1 and {AMOUNT_MAX}"),
        )),
    }
}

fn parse_bool(params: &Params, name: &str) -> Result<bool, Outcome> {
    match params.get(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(Outcome::invalid(
            name,
            "parameter_invalid_boolean",
            &format!("Invalid boolean: {name} must be true or false"),
        )),
    }
}

impl Store {
    /// What each intent made for `metadata[order_id] = order_id` holds, oldest first.
    pub fn intents_of_order(&self, order_id: &str) -> Vec<crate::IntentSummary> {
        let mut found: Vec<_> = self
            .intents
            .values()
            .filter(|i| i.metadata.get("order_id").map(String::as_str) == Some(order_id))
            .map(|i| crate::IntentSummary {
                id: i.id.clone(),
                status: i.status,
                amount_minor: i.amount,
                received_minor: i.amount_received,
                refunded_minor: i.amount_refunded,
                refunds: i.refunds,
                payment_id: i.metadata.get("payment_id").cloned(),
                created: i.created,
            })
            .collect();
        found.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        found
    }

    pub fn intent_json(&self, id: &str) -> Outcome {
        match self.intents.get(id) {
            Some(intent) => Outcome::ok(intent.to_json()),
            None => Outcome::not_found("payment_intent", id),
        }
    }

    /// `POST /v1/payment_intents`.
    pub fn create_intent(&mut self, params: &Params, now: i64) -> Outcome {
        match self.try_create_intent(params, now) {
            Ok(outcome) | Err(outcome) => outcome,
        }
    }

    fn try_create_intent(&mut self, params: &Params, now: i64) -> Result<Outcome, Outcome> {
        params.allow_only(&[
            "amount",
            "currency",
            "payment_method",
            "confirm",
            "capture_method",
            "description",
            "metadata",
        ])?;
        let amount = parse_amount(params, "amount")?.ok_or_else(|| {
            Outcome::invalid(
                "amount",
                "parameter_missing",
                "Missing required param: amount.",
            )
        })?;
        let currency = params.get("currency").unwrap_or_default();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(Outcome::invalid(
                "currency",
                "parameter_invalid_string",
                "Invalid currency: use a lowercase three-letter ISO code",
            ));
        }
        let capture_method = match params.get("capture_method").unwrap_or("automatic") {
            "automatic" | "automatic_async" => "automatic",
            "manual" => "manual",
            _ => {
                return Err(Outcome::invalid(
                    "capture_method",
                    "parameter_invalid_string",
                    "Invalid capture_method: automatic, automatic_async or manual",
                ))
            }
        };
        let confirm = parse_bool(params, "confirm")?;
        let payment_method = params.get("payment_method").map(str::to_owned);
        let card = match &payment_method {
            Some(token) => Some(parse_payment_method(token)?),
            None if confirm => {
                return Err(Outcome::invalid(
                    "payment_method",
                    "parameter_missing",
                    "You must provide a payment_method to confirm a PaymentIntent.",
                ))
            }
            None => None,
        };
        let metadata = params.metadata();
        let plan = WebhookPlan::from_request(&metadata, card.and_then(|(_, mode)| mode))?;
        let processing_delay = metadata.contains_key("sim_delay_ms").then_some(plan.delay);
        if self.intents.len() >= INTENTS_MAX {
            return Err(Outcome::error(
                429,
                "api_error",
                Some("rate_limit"),
                "The simulator holds too many intents; restart it.",
                None,
            ));
        }
        if confirm && matches!(card, Some((Card::Error500, _))) {
            return Ok(internal_error());
        }
        let mut intent = IntentRecord {
            id: new_id("pi"),
            amount,
            currency: currency.to_owned(),
            status: if payment_method.is_some() {
                IntentStatus::RequiresConfirmation
            } else {
                IntentStatus::RequiresPaymentMethod
            },
            capture_method: capture_method.to_owned(),
            payment_method,
            metadata,
            amount_capturable: 0,
            amount_received: 0,
            amount_refunded: 0,
            refunds: 0,
            last_payment_error: None,
            latest_charge: None,
            created: now,
            plan,
            processing_delay,
        };
        let mut events = vec![intent.event("payment_intent.created", now)];
        let outcome = match card {
            Some((card, _)) if confirm => charge(&mut intent, card, now, &mut events),
            _ => Outcome::ok(intent.to_json()),
        };
        let outcome = outcome.with_events(events, intent.plan);
        self.intents.insert(intent.id.clone(), intent);
        Ok(outcome)
    }

    /// `POST /v1/payment_intents/{id}/confirm`.
    pub fn confirm_intent(&mut self, id: &str, params: &Params, now: i64) -> Outcome {
        if let Err(outcome) = params.allow_only(&["payment_method"]) {
            return outcome;
        }
        let Some(intent) = self.intents.get_mut(id) else {
            return Outcome::not_found("payment_intent", id);
        };
        if !matches!(
            intent.status,
            IntentStatus::RequiresConfirmation | IntentStatus::RequiresPaymentMethod
        ) {
            return Outcome::unexpected_state(intent, "confirm");
        }
        let Some(token) = params
            .get("payment_method")
            .map(str::to_owned)
            .or_else(|| intent.payment_method.clone())
        else {
            return Outcome::invalid(
                "payment_method",
                "parameter_missing",
                "You must provide a payment_method to confirm a PaymentIntent.",
            );
        };
        let card = match parse_payment_method(&token) {
            Ok((card, _)) => card,
            Err(outcome) => return outcome,
        };
        if card == Card::Error500 {
            return internal_error();
        }
        intent.payment_method = Some(token);
        let mut events = Vec::new();
        charge(intent, card, now, &mut events).with_events(events, intent.plan)
    }

    /// A `processing` intent's delay is over: the card is approved (`succeeded`, or
    /// `requires_capture` for a manual capture). Returns its events and their delivery plan;
    /// nothing when the intent is no longer processing.
    pub fn finish_processing(&mut self, id: &str, now: i64) -> Option<(Vec<Value>, WebhookPlan)> {
        let intent = self.intents.get_mut(id)?;
        if intent.status != IntentStatus::Processing {
            return None;
        }
        let mut events = Vec::new();
        approve(intent, now, &mut events);
        Some((events, intent.plan))
    }

    /// `POST /v1/payment_intents/{id}/capture`.
    pub fn capture_intent(&mut self, id: &str, params: &Params, now: i64) -> Outcome {
        if let Err(outcome) = params.allow_only(&["amount_to_capture"]) {
            return outcome;
        }
        let Some(intent) = self.intents.get_mut(id) else {
            return Outcome::not_found("payment_intent", id);
        };
        if intent.status != IntentStatus::RequiresCapture {
            return Outcome::unexpected_state(intent, "capture");
        }
        let amount = match parse_amount(params, "amount_to_capture") {
            Ok(amount) => amount.unwrap_or(intent.amount_capturable),
            Err(outcome) => return outcome,
        };
        if amount > intent.amount_capturable {
            return Outcome::invalid(
                "amount_to_capture",
                "amount_too_large",
                &format!(
                    "The amount to capture ({amount}) is greater than the amount capturable ({}).",
                    intent.amount_capturable
                ),
            );
        }
        intent.status = IntentStatus::Succeeded;
        intent.amount_capturable = 0;
        intent.amount_received = amount;
        intent.latest_charge = Some(new_id("ch"));
        let events = vec![intent.event("payment_intent.succeeded", now)];
        Outcome::ok(intent.to_json()).with_events(events, intent.plan)
    }

    /// `POST /v1/refunds`.
    pub fn refund(&mut self, params: &Params, now: i64) -> Outcome {
        match self.try_refund(params, now) {
            Ok(outcome) | Err(outcome) => outcome,
        }
    }

    fn try_refund(&mut self, params: &Params, now: i64) -> Result<Outcome, Outcome> {
        params.allow_only(&["payment_intent", "amount", "reason", "metadata"])?;
        let id = params.get("payment_intent").ok_or_else(|| {
            Outcome::invalid(
                "payment_intent",
                "parameter_missing",
                "Missing required param: payment_intent.",
            )
        })?;
        let intent = self.intents.get_mut(id).ok_or_else(|| {
            Outcome::invalid(
                "payment_intent",
                "resource_missing",
                &format!("No such payment_intent: '{id}'"),
            )
        })?;
        if intent.status != IntentStatus::Succeeded {
            return Err(Outcome::unexpected_state(intent, "refund"));
        }
        let refundable = intent.amount_received - intent.amount_refunded;
        if refundable == 0 {
            return Err(Outcome::invalid(
                "payment_intent",
                "charge_already_refunded",
                "This charge has already been refunded in full.",
            ));
        }
        let amount = parse_amount(params, "amount")?.unwrap_or(refundable);
        if amount > refundable {
            return Err(Outcome::invalid(
                "amount",
                "amount_too_large",
                &format!(
                    "Refund amount ({amount}) is greater than unrefunded amount on charge ({refundable})."
                ),
            ));
        }
        intent.amount_refunded += amount;
        intent.refunds += 1;
        let refund = json!({
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "charge": intent.latest_charge,
            "created": now,
            "currency": intent.currency,
            "metadata": {},
            "payment_intent": intent.id,
            "reason": params.get("reason"),
            "status": "succeeded",
        });
        let events = vec![new_event("charge.refunded", now, intent.charge_json())];
        Ok(Outcome::ok(refund).with_events(events, intent.plan))
    }
}

/// Charges the card of a confirmable intent; pushes the events that follows.
fn charge(intent: &mut IntentRecord, card: Card, now: i64, events: &mut Vec<Value>) -> Outcome {
    match card {
        Card::Approve | Card::Timeout => {
            approve(intent, now, events);
            let mut outcome = Outcome::ok(intent.to_json());
            if card == Card::Timeout {
                outcome.hold = Some(TIMEOUT_HOLD);
            }
            outcome
        }
        Card::Decline {
            code,
            decline_code,
            message,
        } => {
            let error = json!({
                "type": "card_error",
                "code": code,
                "decline_code": decline_code,
                "message": message,
            });
            intent.status = IntentStatus::RequiresPaymentMethod;
            intent.payment_method = None;
            intent.last_payment_error = Some(error.clone());
            events.push(intent.event("payment_intent.payment_failed", now));
            let mut body = json!({ "error": error });
            body["error"]["payment_intent"] = intent.to_json();
            Outcome {
                status: 402,
                body,
                save: true,
                events: Vec::new(),
                plan: WebhookPlan::default(),
                hold: None,
                settle_later: None,
            }
        }
        Card::Processing => {
            intent.last_payment_error = None;
            intent.status = IntentStatus::Processing;
            let mut outcome = Outcome::ok(intent.to_json());
            outcome.settle_later = Some(Box::new(Processing {
                intent_id: intent.id.clone(),
                delay: intent.processing_delay,
            }));
            outcome
        }
        // Handled by the callers before anything changes.
        Card::Error500 => internal_error(),
    }
}

/// The card is approved: captured at once (`succeeded`) or held for a manual capture.
fn approve(intent: &mut IntentRecord, now: i64, events: &mut Vec<Value>) {
    intent.last_payment_error = None;
    if intent.capture_method == "manual" {
        intent.status = IntentStatus::RequiresCapture;
        intent.amount_capturable = intent.amount;
    } else {
        intent.status = IntentStatus::Succeeded;
        intent.amount_received = intent.amount;
        intent.latest_charge = Some(new_id("ch"));
        events.push(intent.event("payment_intent.succeeded", now));
    }
}

fn internal_error() -> Outcome {
    Outcome::error(
        500,
        "api_error",
        None,
        "An unknown error occurred (simulated by pm_sim_error500).",
        None,
    )
}

impl WebhookPlan {
    /// `metadata[sim_webhook]` (else the token's suffix, else normal) and `metadata[sim_delay_ms]`.
    fn from_request(
        metadata: &BTreeMap<String, String>,
        suffix: Option<WebhookMode>,
    ) -> Result<Self, Outcome> {
        let mode = match metadata.get("sim_webhook") {
            Some(raw) => WebhookMode::parse(raw).ok_or_else(|| {
                Outcome::invalid(
                    "metadata[sim_webhook]",
                    "parameter_invalid_string",
                    "sim_webhook must be normal, twice, late, out_of_order or none",
                )
            })?,
            None => suffix.unwrap_or(WebhookMode::Normal),
        };
        let delay = match metadata.get("sim_delay_ms") {
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms <= crate::webhooks::LATE_DELAY_MAX_MS)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    Outcome::invalid(
                        "metadata[sim_delay_ms]",
                        "parameter_invalid_integer",
                        "sim_delay_ms must be an integer number of milliseconds up to 60000",
                    )
                })?,
            None => crate::webhooks::LATE_DELAY_DEFAULT,
        };
        Ok(Self { mode, delay })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_suffix_names_the_webhook_mode() {
        assert_eq!(
            parse_payment_method("pm_card_visa__out_of_order").ok(),
            Some((Card::Approve, Some(WebhookMode::OutOfOrder)))
        );
        assert!(parse_payment_method("pm_card_visa__sideways").is_err());
        assert!(parse_payment_method("pm_unknown").is_err());
        assert_eq!(
            parse_payment_method("pm_sim_processing__twice").ok(),
            Some((Card::Processing, Some(WebhookMode::Twice)))
        );
    }

    #[test]
    fn a_processing_intent_succeeds_once_when_its_delay_is_over() {
        let mut store = Store::default();
        let params = Params::parse(
            b"amount=500&currency=eur&payment_method=pm_sim_processing&confirm=true&metadata[sim_delay_ms]=50",
        )
        .expect("parse");
        let outcome = store.create_intent(&params, 1);
        assert_eq!(outcome.status, 200);
        assert_eq!(outcome.body["status"], "processing");
        let types: Vec<_> = outcome.events.iter().map(|e| e["type"].clone()).collect();
        assert_eq!(types, ["payment_intent.created"], "no success yet");
        let later = outcome.settle_later.expect("settles later");
        assert_eq!(later.delay, Some(Duration::from_millis(50)));

        let (events, _) = store
            .finish_processing(&later.intent_id, 2)
            .expect("settled");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["type"], "payment_intent.succeeded");
        assert_eq!(events[0]["data"]["object"]["amount_received"], 500);
        assert_eq!(
            store.intent_json(&later.intent_id).body["status"],
            "succeeded"
        );
        assert!(
            store.finish_processing(&later.intent_id, 3).is_none(),
            "once"
        );
    }
}
