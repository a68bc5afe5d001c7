//! Card payments through Central, the half that talks to it: create the order (its key), pay
//! by card (its key), and settle whatever a crash or a silent processor left pending. Every try
//! of a sale sends the same two requests with the same two keys, so Central makes one order and
//! one payment of it whatever is retried; one lock keeps the till's payment and the engine's
//! settling from working on the same record at once.

use std::time::Duration;

use kassa_domain::api::{
    CreateOrder, CreatePayment, Order, OrderLineRequest, Payment, PaymentMethod, PaymentStatus,
};
use kassa_domain::OrderStatus;
use uuid::Uuid;

use super::Engine;
use crate::card::{self, CardSale};
use crate::carts;
use crate::error::{Error, Result};
use crate::sale::Receipt;

/// Tries of one payment request whose answer was lost or whose processor did not answer.
const PAY_TRIES_MAX: u32 = 3;
const PAY_RETRY_PAUSE: Duration = Duration::from_millis(300);
/// Looks at a payment Central accepted as pending (202) before the cashier is told so.
const PENDING_POLLS_MAX: u32 = 10;
const PENDING_POLL_PAUSE: Duration = Duration::from_millis(300);

/// What became of a card payment.
#[derive(Debug)]
/// What sending a card payment came to.
pub(super) enum Sent {
    /// Central answered with the payment (succeeded, failed or still pending).
    Answered(Payment),
    /// Central refused the request: no money moved.
    Refused(Error),
    /// No answer after every try: the payment may or may not exist.
    Unknown(Error),
}

enum Charged {
    /// Central has the order PAID by this card; `reference` is the processor's.
    Paid {
        order: Box<Order>,
        reference: String,
    },
    /// Declined, or Central refused the order: no money moved.
    Refused(Error),
    /// Central never heard of the sale.
    NotSent(Error),
    /// Not known yet; the record stays and the engine asks again.
    Unknown(Error),
}

impl Engine {
    /// Pays the open cart `cart_id` by card through Central: the record that holds the cart,
    /// the order, the payment, and the outcome written locally. A decline or refusal leaves the
    /// cart open and says why; an unknown outcome is [`Error::CardPending`] (the cart stays held
    /// until a sync round settles it); a request that never reached Central is returned as is
    /// (the caller may apply the offline card policy).
    pub async fn pay_card(&self, cart_id: Uuid, payment_method: &str) -> Result<Receipt> {
        let _one_at_a_time = self.card.lock().await;
        let card = card::begin(&self.db, cart_id, payment_method).await?;
        match self.charge(&card, true).await {
            Charged::Paid { order, reference } => {
                card::complete(&self.db, &card, &reference, &order).await
            }
            Charged::Refused(err) => {
                card::release(&self.db, card.order_id, &err.to_string()).await?;
                if let Err(cancel) = self.cancel_at_central(&card).await {
                    tracing::info!(order = %card.order_id, %cancel, "cancel deferred to the next sync round");
                }
                Err(err)
            }
            Charged::NotSent(err) => {
                card::forget(&self.db, card.order_id).await?;
                Err(err)
            }
            Charged::Unknown(err) => {
                card::note_error(&self.db, card.order_id, &err.to_string()).await?;
                Err(Error::CardPending(format!(
                    "The card payment's outcome is not known yet ({err}). The sale completes, or \
                     the cart comes back, as soon as Central knows; do not charge again."
                )))
            }
        }
    }

    /// Settles every card payment a crash or a silent processor left behind; returns how many
    /// settled. Only ever finishes what was started: a payment Central never received is not
    /// sent now (the customer may be gone), its cart comes back. A record that cannot settle
    /// now (nobody signed in to cancel its order) waits without holding back the others; the
    /// first such failure is returned after all were tried, Central out of reach at once.
    pub(super) async fn settle_cards(&self) -> Result<usize> {
        let _one_at_a_time = self.card.lock().await;
        let mut settled = 0;
        let mut first_failure = None;
        for card in card::unsettled(&self.db).await? {
            match self.settle_card(&card).await {
                Ok(true) => settled += 1,
                Ok(false) => {}
                Err(err @ Error::Unreachable { .. }) => return Err(err),
                Err(err) => {
                    tracing::info!(order = %card.order_id, %err, "card record left for a later round");
                    first_failure.get_or_insert(err);
                }
            }
        }
        match first_failure {
            Some(err) => Err(err),
            None => Ok(settled),
        }
    }

    /// Settles one record as far as Central allows now; `true` if it is settled.
    async fn settle_card(&self, card: &CardSale) -> Result<bool> {
        if card.status == "cancelling" {
            self.cancel_at_central(card).await?;
            return Ok(true);
        }
        match self.charge(card, false).await {
            Charged::Paid { order, reference } => {
                card::complete(&self.db, card, &reference, &order).await?;
            }
            Charged::NotSent(err) => {
                tracing::info!(order = %card.order_id, %err, "card payment not taken; the cart is back");
                card::release(&self.db, card.order_id, &err.to_string()).await?;
                self.cancel_at_central(card).await?;
            }
            Charged::Refused(err) => return self.cancel_before_release(card, err).await,
            Charged::Unknown(err) => {
                card::note_error(&self.db, card.order_id, &err.to_string()).await?;
                if matches!(err, Error::Unreachable { .. }) {
                    return Err(err);
                }
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A record whose order Central holds unpaid: the payment the till sent before it gave up
    /// may still land (its row not yet written when the till looked), so the order is cancelled
    /// at Central before the cart comes back. Central refusing the cancel means a payment is in
    /// flight (the record waits, the cart stays held) or landed (the sale completes); never is
    /// the cart given back to be charged again while the first charge can still go through.
    async fn cancel_before_release(&self, card: &CardSale, why: Error) -> Result<bool> {
        let cancelled = self
            .sessions
            .authed(|t| async move { self.client().cancel_order(t.expose(), card.order_id).await })
            .await;
        match cancelled {
            Ok(_) | Err(Error::Api { status: 404, .. }) => {}
            Err(Error::Api { status: 409, .. }) => {
                let order = self.fetch(card.order_id).await?;
                match order.status {
                    OrderStatus::Paid | OrderStatus::Fulfilled => {
                        return match self.paid(card.order_id).await {
                            Charged::Paid { order, reference } => {
                                card::complete(&self.db, card, &reference, &order).await?;
                                Ok(true)
                            }
                            _ => Ok(false),
                        };
                    }
                    OrderStatus::Cancelled => {}
                    _ => {
                        tracing::info!(order = %card.order_id, "a card payment is in flight; the cart stays held");
                        card::note_error(&self.db, card.order_id, "a card payment is in flight")
                            .await?;
                        return Ok(false);
                    }
                }
            }
            Err(err) => {
                card::note_error(&self.db, card.order_id, &err.to_string()).await?;
                return Err(err);
            }
        }
        tracing::info!(order = %card.order_id, %why, "card payment not taken; the cart is back");
        card::forget(&self.db, card.order_id).await?;
        Ok(true)
    }

    /// Drives one card sale as far as it goes. `fresh`: the till's own try, which may create
    /// the order and send the payment; otherwise only what Central already holds is finished.
    async fn charge(&self, card: &CardSale, fresh: bool) -> Charged {
        let order = if fresh {
            match self.card_order(card).await {
                Ok(order) => order,
                Err(err) => return classify(err),
            }
        } else {
            // Only Central's own "no such order" proves it never heard of the sale.
            match self.fetch(card.order_id).await {
                Ok(order) => order,
                Err(err @ Error::Api { status: 404, .. }) => return Charged::NotSent(err),
                Err(err) => return Charged::Unknown(err),
            }
        };
        match order.status {
            OrderStatus::Paid | OrderStatus::Fulfilled => return self.paid(card.order_id).await,
            OrderStatus::Reserved => {}
            other => {
                return Charged::Refused(Error::Invalid(format!(
                    "Central's order is {other}: the card was not charged"
                )))
            }
        }
        if order.totals.total != card.total {
            return Charged::Refused(Error::Invalid(format!(
                "Central prices this sale at {}, the till at {}: sync the catalog and try again",
                order.totals.total, card.total
            )));
        }
        if !fresh {
            match self.payments(card.order_id).await {
                Ok(list) if list.iter().any(|p| p.status == PaymentStatus::Pending) => {}
                Ok(_) => {
                    return Charged::Refused(Error::Invalid(
                        "the card was not charged (declined, or never sent)".into(),
                    ))
                }
                Err(err) => return Charged::Unknown(err),
            }
        }
        self.pay_by_card(card).await
    }

    /// `POST /v1/orders` for the held cart (its key); an order Central already has is read.
    async fn card_order(&self, card: &CardSale) -> Result<Order> {
        self.order_for_cart(card.order_id, card.cart_id, &card.location, &card.order_key)
            .await
    }

    /// `POST /v1/orders` of cart `cart_id` as order `order_id` with `key`; an order Central
    /// already has is read.
    pub(super) async fn order_for_cart(
        &self,
        order_id: Uuid,
        cart_id: Uuid,
        location: &str,
        key: &kassa_domain::IdempotencyKey,
    ) -> Result<Order> {
        let cart = carts::load(&self.db, cart_id).await?;
        let body = CreateOrder {
            id: Some(order_id),
            location: location.to_owned(),
            lines: cart
                .lines
                .iter()
                .map(|l| {
                    let approved = cart.discount_approvals.iter().find(|a| a.sku == l.sku);
                    OrderLineRequest {
                        sku: l.sku.clone(),
                        qty: l.qty,
                        discount: (!l.discount.is_zero()).then_some(l.discount),
                        discount_approved_by: approved.map(|a| a.manager.clone()),
                        discount_approval: approved.and_then(|a| a.approval().cloned()),
                    }
                })
                .collect(),
        };
        let created = self
            .sessions
            .authed(|t| {
                let body = &body;
                async move { self.client().create_order(t.expose(), key, body).await }
            })
            .await;
        match created {
            Err(err) if err.api_code() == Some("order_exists") => self.fetch(order_id).await,
            other => other,
        }
    }

    /// Sends the payment (same key, same body every time), retrying a lost or unknown answer.
    async fn pay_by_card(&self, card: &CardSale) -> Charged {
        let sent = self
            .send_card_payment(
                card.order_id,
                &card.payment_key,
                card.total,
                &card.payment_method,
            )
            .await;
        match sent {
            Sent::Answered(payment) => self.after_payment(card.order_id, &payment).await,
            Sent::Refused(err) => Charged::Refused(err),
            Sent::Unknown(err) => Charged::Unknown(err),
        }
    }

    /// Sends a card payment for `order_id` under `key` (the same body every time), retrying an
    /// answer that was lost or transient at most [`PAY_TRIES_MAX`] times: a whole card sale's and
    /// a split sale's card part alike.
    pub(super) async fn send_card_payment(
        &self,
        order_id: Uuid,
        key: &kassa_domain::IdempotencyKey,
        amount: kassa_domain::Money,
        payment_method: &str,
    ) -> Sent {
        let body = CreatePayment {
            method: PaymentMethod::Card,
            amount,
            tendered: None,
            cash_rounding: None,
            payment_method: Some(payment_method.to_owned()),
        };
        let mut last = None;
        for try_no in 0..PAY_TRIES_MAX {
            let sent = self
                .sessions
                .authed(|t| {
                    let body = &body;
                    async move { self.client().pay(t.expose(), key, order_id, body).await }
                })
                .await;
            match sent {
                Ok(payment) => return Sent::Answered(payment),
                Err(err) if err.is_transient() => {
                    tracing::info!(order = %order_id, %err, try_no, "card payment answer unknown; retrying with the same key");
                    last = Some(err);
                    tokio::time::sleep(PAY_RETRY_PAUSE * (try_no + 1)).await;
                }
                Err(err) => return Sent::Refused(err),
            }
        }
        Sent::Unknown(last.unwrap_or_else(|| Error::CardPending("no answer".into())))
    }

    async fn after_payment(&self, order_id: Uuid, payment: &Payment) -> Charged {
        match payment.status {
            PaymentStatus::Succeeded => self.paid(order_id).await,
            PaymentStatus::Failed => Charged::Refused(Error::Invalid(format!(
                "the card was declined ({})",
                payment.failure_code.as_deref().unwrap_or("no reason given")
            ))),
            PaymentStatus::Pending => self.wait_pending(order_id).await,
        }
    }

    /// A 202: the processor settles later (its webhook); look a few times, then say pending.
    async fn wait_pending(&self, order_id: Uuid) -> Charged {
        for _ in 0..PENDING_POLLS_MAX {
            tokio::time::sleep(PENDING_POLL_PAUSE).await;
            match self.payments(order_id).await {
                Ok(list) if list.iter().any(|p| p.status == PaymentStatus::Succeeded) => {
                    return self.paid(order_id).await
                }
                Ok(list) if list.iter().all(|p| p.status == PaymentStatus::Failed) => {
                    return Charged::Refused(Error::Invalid("the card was declined".into()))
                }
                Ok(_) => {}
                Err(err) => return Charged::Unknown(err),
            }
        }
        Charged::Unknown(Error::CardPending(
            "the processor has not confirmed the payment yet".into(),
        ))
    }

    /// The order is PAID: read it and the card payment's reference.
    async fn paid(&self, order_id: Uuid) -> Charged {
        let read = async {
            let order = self.fetch(order_id).await?;
            let payments = self.payments(order_id).await?;
            let payment = payments
                .iter()
                .find(|p| p.method == PaymentMethod::Card && p.status == PaymentStatus::Succeeded)
                .ok_or_else(|| {
                    Error::Corrupt(format!("order {order_id} is paid without a card payment"))
                })?;
            let reference = payment
                .processor_ref
                .clone()
                .unwrap_or_else(|| payment.id.to_string());
            Ok::<_, Error>((order, reference))
        };
        match read.await {
            Ok((order, reference)) => Charged::Paid {
                order: Box::new(order),
                reference,
            },
            Err(err) => Charged::Unknown(err),
        }
    }

    /// Cancels the record's order at Central (stock released) and forgets the record; an order
    /// Central never made, or one already cancelled, counts as done.
    async fn cancel_at_central(&self, card: &CardSale) -> Result<()> {
        let cancelled = self
            .sessions
            .authed(|t| async move { self.client().cancel_order(t.expose(), card.order_id).await })
            .await;
        match cancelled {
            Ok(_) => {}
            Err(Error::Api { status: 404, .. }) => {}
            Err(Error::Api {
                status: 409,
                detail,
            }) => {
                tracing::warn!(order = %card.order_id, code = %detail.code, "declined card sale's order could not be cancelled; leaving it to Central");
            }
            Err(err) => {
                card::note_error(&self.db, card.order_id, &err.to_string()).await?;
                return Err(err);
            }
        }
        card::forget(&self.db, card.order_id).await
    }

    pub(super) async fn fetch(&self, order_id: Uuid) -> Result<Order> {
        self.sessions
            .authed(|t| async move { self.client().order(t.expose(), order_id).await })
            .await
    }

    pub(super) async fn payments(&self, order_id: Uuid) -> Result<Vec<Payment>> {
        self.sessions
            .authed(|t| async move { self.client().payments(t.expose(), order_id).await })
            .await
    }
}

/// The till's `POST /v1/orders` failed: never sent (connection refused, nobody signed in),
/// unknown (retry later), or refused for good.
fn classify(err: Error) -> Charged {
    if err.never_sent() {
        Charged::NotSent(err)
    } else if err.is_transient() {
        Charged::Unknown(err)
    } else {
        Charged::Refused(err)
    }
}
