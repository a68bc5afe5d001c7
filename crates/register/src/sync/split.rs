//! Card parts of a split sale through Central: the order (the sale's id and key, made once
//! for every part), then the part's payment (its own key), the outcome written locally; the
//! parts a crash or a silent processor left pending are settled each round; and a split sale
//! voided after a card part went through Central is refunded by cancelling its order (Central
//! gives back what a cancelled order had paid).

use std::time::Duration;

use kassa_domain::api::{Payment, PaymentMethod, PaymentStatus};
use kassa_domain::OrderStatus;
use uuid::Uuid;

use super::cards::Sent;
use super::Engine;
use crate::error::{Error, Result};
use crate::split::{self, CardPart, SplitView, Step};

/// Looks at a part's payment Central accepted as pending (202) before the cashier is told so.
const PENDING_POLLS_MAX: u32 = 10;
const PENDING_POLL_PAUSE: Duration = Duration::from_millis(300);

/// What became of a card part's payment.
enum Outcome {
    Paid(String),
    /// Declined or refused: no money moved.
    Refused(Error),
    /// Central never heard of it.
    NotSent(Error),
    Unknown(Error),
}

impl Engine {
    /// Takes `amount` of the open cart's sale by card through Central. A decline leaves the
    /// part out and says why; an unknown outcome is [`Error::CardPending`] (the part stays
    /// pending, and a sync round settles it); a request that never reached Central is returned
    /// as is (the caller may apply the offline card policy).
    pub async fn pay_card_part(
        &self,
        cart_id: Uuid,
        amount: kassa_domain::Money,
        payment_method: &str,
    ) -> Result<Step> {
        let _one_at_a_time = self.card.lock().await;
        let part = split::begin_card_part(&self.db, cart_id, amount, payment_method).await?;
        match self.charge_part(&part, true).await {
            Outcome::Paid(reference) => self.part_paid(&part, &reference).await,
            Outcome::Refused(err) | Outcome::NotSent(err) => {
                split::drop_card_part(&self.db, &part).await?;
                Err(err)
            }
            Outcome::Unknown(err) => {
                split::note_part_error(&self.db, &part, &err.to_string()).await?;
                Err(Error::CardPending(format!(
                    "The card part's outcome is not known yet ({err}). It is settled as soon as \
                     Central knows; do not charge again."
                )))
            }
        }
    }

    /// Settles the card parts a crash or a silent processor left pending; returns how many
    /// settled. Only finishes what Central received: a part it never got goes (the customer
    /// pays it again, or another way).
    pub(super) async fn settle_split_parts(&self) -> Result<usize> {
        let _one_at_a_time = self.card.lock().await;
        let mut settled = 0;
        for cart_id in split::with_pending_parts(&self.db).await? {
            for part in split::pending_card_parts(&self.db, cart_id).await? {
                match self.charge_part(&part, false).await {
                    Outcome::Paid(reference) => {
                        self.part_paid(&part, &reference).await?;
                    }
                    Outcome::Refused(err) | Outcome::NotSent(err) => {
                        tracing::info!(order = %part.order_id, part = part.part_no, %err, "card part not taken");
                        split::drop_card_part(&self.db, &part).await?;
                    }
                    Outcome::Unknown(err) => {
                        split::note_part_error(&self.db, &part, &err.to_string()).await?;
                        return Err(err);
                    }
                }
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Voids the split sale of `cart_id`: a card part that went through Central is refunded by
    /// cancelling the order there (refused while one waits for the processor); then every part
    /// is given back locally and the cart is free.
    pub async fn void_split(&self, cart_id: Uuid) -> Result<SplitView> {
        let _one_at_a_time = self.card.lock().await;
        let split = split::view(&self.db, cart_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no split payment holds cart {cart_id}")))?;
        if !split.online() {
            return split::void(&self.db, cart_id).await;
        }
        if split.parts.iter().any(|p| p.status == "pending") {
            return Err(Error::CardPending(
                "a card part waits for the processor's answer: void the sale once it is known"
                    .into(),
            ));
        }
        let cancelled = self
            .sessions
            .authed(|t| async move { self.client().cancel_order(t.expose(), split.order_id).await })
            .await;
        match cancelled {
            Ok(order) if order.status == OrderStatus::Cancelled => {}
            Ok(order) => {
                return Err(Error::Invalid(format!(
                    "Central's order is {}, not cancelled: the card part is not refunded yet",
                    order.status
                )))
            }
            // Never made at Central: nothing was charged there.
            Err(Error::Api { status: 404, .. }) => {}
            Err(err) => return Err(err),
        }
        split::forget(&self.db, split.order_id).await?;
        Ok(split)
    }

    /// The part is paid: written down, and the sale completed when it covers the due (with
    /// Central's order as it stands, done at once when the card parts paid it all).
    async fn part_paid(&self, part: &CardPart, reference: &str) -> Result<Step> {
        // The pending part counts in the split's paid sum already.
        let covers = split::view(&self.db, part.cart_id)
            .await?
            .is_some_and(|s| s.due.is_zero());
        let order = if covers {
            self.fetch(part.order_id).await.ok()
        } else {
            None
        };
        split::card_part_paid(&self.db, part, reference, order.as_ref()).await
    }

    /// Drives one part's payment as far as it goes. `fresh`: the till's own try, which may
    /// create the order and send the payment; otherwise the payment is sent again (its key
    /// replays Central's answer) only when Central holds more card payments than the parts
    /// known paid: otherwise it never got there.
    async fn charge_part(&self, part: &CardPart, fresh: bool) -> Outcome {
        if fresh {
            let order = self
                .order_for_cart(part.order_id, part.cart_id, &part.location, &part.order_key)
                .await;
            let order = match order {
                Ok(order) => order,
                Err(err) if err.never_sent() => return Outcome::NotSent(err),
                // No payment was sent: nothing to settle, the part goes either way.
                Err(err) => return Outcome::Refused(err),
            };
            if order.status != OrderStatus::Reserved {
                return Outcome::Refused(Error::Invalid(format!(
                    "Central's order is {}: the card was not charged",
                    order.status
                )));
            }
            if order.totals.total != part.total {
                return Outcome::Refused(Error::Invalid(format!(
                    "Central prices this sale at {}, the till at {}: sync the catalog and try \
                     again",
                    order.totals.total, part.total
                )));
            }
        } else {
            match self.landed(part).await {
                Ok(true) => {}
                Ok(false) => {
                    return Outcome::NotSent(Error::Invalid(
                        "the card part never reached Central".into(),
                    ))
                }
                Err(err) => return Outcome::Unknown(err),
            }
        }
        self.send_part(part).await
    }

    /// Did this part's payment reach Central? Central holds more card payments (not failed)
    /// for the order than the parts already paid here.
    async fn landed(&self, part: &CardPart) -> Result<bool> {
        let at_central = match self.payments(part.order_id).await {
            Ok(list) => list,
            Err(Error::Api { status: 404, .. }) => return Ok(false),
            Err(err) => return Err(err),
        };
        let card_payments = at_central
            .iter()
            .filter(|p| p.method == PaymentMethod::Card && p.status != PaymentStatus::Failed)
            .count();
        let paid_here = split::view(&self.db, part.cart_id)
            .await?
            .map(|s| {
                s.parts
                    .iter()
                    .filter(|p| {
                        p.status == "paid"
                            && matches!(
                                p.tender.payment,
                                kassa_domain::ReceiptPayment::Card { offline: false, .. }
                            )
                    })
                    .count()
            })
            .unwrap_or(0);
        Ok(card_payments > paid_here)
    }

    /// Sends the part's payment (same key, same body every time), retrying a lost answer.
    async fn send_part(&self, part: &CardPart) -> Outcome {
        let sent = self
            .send_card_payment(
                part.order_id,
                &part.payment_key,
                part.amount,
                &part.payment_method,
            )
            .await;
        match sent {
            Sent::Answered(payment) => self.part_outcome(part.order_id, payment).await,
            Sent::Refused(err) => Outcome::Refused(err),
            Sent::Unknown(err) => Outcome::Unknown(err),
        }
    }

    async fn part_outcome(&self, order_id: Uuid, payment: Payment) -> Outcome {
        let mut payment = payment;
        for _ in 0..PENDING_POLLS_MAX {
            match payment.status {
                PaymentStatus::Succeeded => {
                    return Outcome::Paid(
                        payment
                            .processor_ref
                            .clone()
                            .unwrap_or_else(|| payment.id.to_string()),
                    )
                }
                PaymentStatus::Failed => {
                    return Outcome::Refused(Error::Invalid(format!(
                        "the card was declined ({})",
                        payment.failure_code.as_deref().unwrap_or("no reason given")
                    )))
                }
                PaymentStatus::Pending => {}
            }
            tokio::time::sleep(PENDING_POLL_PAUSE).await;
            match self.payments(order_id).await {
                Ok(list) => {
                    if let Some(now) = list.into_iter().find(|p| p.id == payment.id) {
                        payment = now;
                    }
                }
                Err(err) => return Outcome::Unknown(err),
            }
        }
        Outcome::Unknown(Error::CardPending(
            "the processor has not confirmed the card part yet".into(),
        ))
    }
}
