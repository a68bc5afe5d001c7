//! Pushing the outbox: sales made online go through the normal checkout (`POST /v1/orders`,
//! then the cash payment), sales made offline through `POST /v1/sync/orders` in batches of at
//! most 100, always in the order they were made and with each sale's own idempotency keys, so
//! a retry after a lost answer never makes a second order or payment.

use kassa_domain::api::{
    CreatePayment, Order, PaymentMethod, SyncOrderResult, SyncOrdersRequest, SYNC_BATCH_ORDERS_MAX,
};
use kassa_domain::{Money, OrderStatus, ReceiptPayment};

use super::Engine;
use crate::error::{Context, Error, Result};
use crate::outbox::{self, Entry};
use crate::store::Tx;

/// Batches pushed per round at most, so pulls get their turn during a long drain.
const BATCHES_PER_ROUND_MAX: usize = 50;

impl Engine {
    /// Pushes the outbox until it is empty or a delivery fails; returns how many sales settled.
    pub(super) async fn push_outbox(&self) -> Result<usize> {
        let mut settled = 0;
        for _ in 0..BATCHES_PER_ROUND_MAX {
            let entries = outbox::next(&self.db, SYNC_BATCH_ORDERS_MAX).await?;
            let Some(first) = entries.first() else {
                break;
            };
            if first.mode == "online" {
                self.push_online(first).await?;
                settled += 1;
            } else {
                let run: Vec<&Entry> = entries.iter().take_while(|e| e.mode == "offline").collect();
                settled += self.push_offline(&run).await?;
            }
        }
        Ok(settled)
    }

    /// Finishes an online sale at Central with its own keys. The till completed the sale, so it
    /// is never dropped: while Central is away or busy it is tried again later; when it cannot
    /// be finished online (nobody signed in, Central refused the order or the payment, the
    /// order's reservation expired) it goes through the offline path instead, which Central
    /// accepts exactly once, the order the online path left unpaid included.
    async fn push_online(&self, entry: &Entry) -> Result<()> {
        let err = match self.try_online(entry).await {
            Ok(()) => return Ok(()),
            Err(err) if online_for_good(&err) => err,
            Err(err) => return self.failed(entry, err).await,
        };
        // A payment whose answer was lost may have landed: a paid order is the sale, done.
        if let Ok(order) = self.fetch_order(entry).await {
            if is_paid(order.status) {
                return outbox::mark_done(&self.db, entry.order_id, &order, &[]).await;
            }
        }
        tracing::info!(order = %entry.order_id, %err, "online sale cannot finish online; sending it as an offline sale");
        outbox::switch_to_offline(&self.db, entry.order_id, &err.to_string()).await
    }

    async fn try_online(&self, entry: &Entry) -> Result<()> {
        let order = if entry.status == "order_created" {
            self.fetch_order(entry).await?
        } else {
            match self.create_order(entry).await {
                Ok(order) => order,
                // Central has it already (delivered through sync, or by another path).
                Err(err) if err.api_code() == Some("order_exists") => {
                    self.fetch_order(entry).await?
                }
                Err(err) => return Err(err),
            }
        };
        self.finish_online(entry, order).await
    }

    async fn create_order(&self, entry: &Entry) -> Result<Order> {
        let body = entry.create_order();
        let order = self
            .sessions
            .authed(|t| {
                let body = &body;
                async move {
                    self.client()
                        .create_order(t.expose(), &entry.order_key, body)
                        .await
                }
            })
            .await?;
        outbox::mark_order_created(&self.db, entry.order_id).await?;
        Ok(order)
    }

    async fn fetch_order(&self, entry: &Entry) -> Result<Order> {
        self.sessions
            .authed(|t| async move { self.client().order(t.expose(), entry.order_id).await })
            .await
    }

    /// Pays what Central says is outstanding, then marks the sale done.
    async fn finish_online(&self, entry: &Entry, order: Order) -> Result<()> {
        let order = match order.status {
            status if is_paid(status) => order,
            OrderStatus::Reserved => self.pay(entry, &order).await?,
            other => {
                return Err(Error::Invalid(format!(
                    "Central's order is {other}, not paid"
                )))
            }
        };
        outbox::mark_done(&self.db, entry.order_id, &order, &[]).await
    }

    async fn pay(&self, entry: &Entry, order: &Order) -> Result<Order> {
        let outstanding = order.totals.total.checked_sub(&order.paid)?;
        if order.totals.total != entry.total {
            tracing::warn!(order = %entry.order_id, central = %order.totals.total, register = %entry.total,
                "Central priced the sale differently from the register's catalog");
        }
        // What is outstanding at Central is the cash part (a split sale's card parts went
        // through Central already); every cash part's tendered money together pays it.
        let mut cash = entry.payments.iter().filter_map(|t| match &t.payment {
            ReceiptPayment::Cash { tendered, .. } => Some(*tendered),
            ReceiptPayment::Card { .. } => None,
        });
        let Some(first) = cash.next() else {
            return Err(Error::Corrupt(format!(
                "sale {} waits for a cash payment but was paid by card",
                entry.order_id
            )));
        };
        // The final cash part was rounded by the store's rule: it pays the outstanding with
        // that rounding, which Central checks against the same rule.
        let rounding = entry
            .cash_rounding
            .unwrap_or_else(|| Money::zero(outstanding.currency()));
        let amount = outstanding.checked_add(&rounding)?;
        let tendered = cash.try_fold(first, |sum, t| sum.checked_add(&t))?;
        let tendered = max_money(tendered, amount)?;
        let payment = CreatePayment {
            method: PaymentMethod::Cash,
            amount,
            tendered: Some(tendered),
            cash_rounding: entry.cash_rounding,
            payment_method: None,
        };
        self.sessions
            .authed(|t| {
                let payment = &payment;
                async move {
                    self.client()
                        .pay(t.expose(), &entry.payment_key, entry.order_id, payment)
                        .await
                }
            })
            .await?;
        self.fetch_order(entry).await
    }

    async fn push_offline(&self, run: &[&Entry]) -> Result<usize> {
        let batch = SyncOrdersRequest {
            orders: run.iter().map(|e| e.offline_order()).collect(),
        };
        // The register's own session: offline sales drain with nobody signed in.
        let answer = self
            .sessions
            .device_authed(|t| {
                let batch = &batch;
                async move { self.client().sync_orders(t.expose(), batch).await }
            })
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(err) => return self.failed_all(run, err).await,
        };
        // The whole answer settles in one local transaction: one durable commit per batch.
        let mut tx = self.db.begin_write().await?;
        let mut settled = 0;
        for result in &answer.results {
            if !run.iter().any(|e| e.order_id == result.id()) {
                continue;
            }
            settle(&mut tx, result).await?;
            settled += 1;
        }
        tx.commit().await.context("storing Central's answer")?;
        Ok(settled)
    }

    async fn failed<T>(&self, entry: &Entry, err: Error) -> Result<T> {
        outbox::note_failure(&self.db, entry.order_id, &err.to_string()).await?;
        Err(err)
    }

    async fn failed_all<T>(&self, run: &[&Entry], err: Error) -> Result<T> {
        for entry in run {
            outbox::note_failure(&self.db, entry.order_id, &err.to_string()).await?;
        }
        Err(err)
    }
}

async fn settle(tx: &mut Tx, result: &SyncOrderResult) -> Result<()> {
    match result {
        SyncOrderResult::Accepted {
            id,
            order,
            shortfalls,
        } => outbox::mark_done_in(tx, *id, order, shortfalls).await,
        SyncOrderResult::Rejected { id, error } => {
            let why = format!("{}: {}", error.code, error.message);
            tracing::warn!(order = %id, %why, "Central rejected an offline sale");
            outbox::mark_rejected_in(tx, *id, &why).await
        }
    }
}

/// Does `err` say the online path cannot finish this sale (Central's refusal, nobody signed
/// in, an order that is no longer payable)? Central away or busy, or a local failure, is not:
/// the same requests go again next round.
fn online_for_good(err: &Error) -> bool {
    matches!(
        err,
        Error::Api { .. } | Error::NotSignedIn | Error::Invalid(_)
    ) && !err.is_transient()
}

/// Central holds the sale's money (a refund later does not undo the sale).
fn is_paid(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Paid | OrderStatus::Fulfilled | OrderStatus::Refunded
    )
}

fn max_money(a: Money, b: Money) -> Result<Money> {
    Ok(if a.checked_cmp(&b)?.is_ge() { a } else { b })
}
