//! The reconciler: settles what the processor left unanswered. A card payment or refund whose
//! processor call timed out, failed with a 5xx, 409 or 429, or whose request died with the
//! process stays pending; this reads it back from the processor (the intent by its id, or the
//! first call replayed with the same idempotency key, which returns the first outcome) and
//! settles it the way the request would have. It also gives back orphaned card payments whose
//! refund failed. It runs at start-up and on a schedule on every instance: every settling
//! update is conditional, so two instances reconciling the same row settle it once.

use std::time::Duration;

use kassa_domain::api::{PaymentMethod, PaymentStatus};
use kassa_payments::{CaptureMethod, CreateIntent, IntentStatus, ProcessorError};

use super::{apply_success, processor, refund_orphan, refunds, Orphan};
use crate::http::error::ApiResult;
use crate::state::AppState;
use crate::store::{self, now_ms, payments::PaymentRow};

/// Rows of each kind looked at per run.
const BATCH_MAX: i64 = 200;

/// What one run settled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub payments_settled: usize,
    pub refunds_settled: usize,
    pub orphans_refunded: usize,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One pass over every pending card payment, refund and orphan old enough to be ours.
#[tracing::instrument(skip_all)]
pub async fn run_once(state: &AppState) -> anyhow::Result<Reconciled> {
    let mut done = Reconciled::default();
    if state.processor.is_none() {
        return Ok(done);
    }
    let before = now_ms() - ms(state.config.reconcile_after);
    let mut tx = state.db.begin_read().await?;
    let payments = store::payments::stale_pending_payments(&mut tx, before, BATCH_MAX).await?;
    let pending_refunds =
        store::payments::stale_pending_refunds(&mut tx, before, BATCH_MAX).await?;
    let orphans = store::payments::pending_orphans(&mut tx, BATCH_MAX).await?;
    tx.commit().await?;
    for payment in payments.iter().filter(|p| p.method == PaymentMethod::Card) {
        match settle_payment(state, payment).await {
            Ok(true) => done.payments_settled += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, payment_id = %payment.id, "reconciling a card payment")
            }
        }
    }
    for refund_id in pending_refunds {
        match refunds::drive(state, refund_id, None).await {
            Ok((row, _)) if row.status != PaymentStatus::Pending => done.refunds_settled += 1,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, %refund_id, "reconciling a refund"),
        }
    }
    for orphan in orphans {
        let Some(intent_id) = orphan.processor_ref.clone() else {
            continue;
        };
        let given_back = refund_orphan(
            state,
            Orphan {
                payment_id: orphan.id,
                intent_id,
                amount: orphan.amount,
            },
        )
        .await;
        done.orphans_refunded += usize::from(given_back);
    }
    if done != Reconciled::default() {
        tracing::info!(?done, "reconciled with the processor");
    }
    Ok(done)
}

/// Reads one pending card payment back from the processor and settles it; `true` when it left
/// `pending`.
async fn settle_payment(state: &AppState, p: &PaymentRow) -> ApiResult<bool> {
    let processor = processor(state)?;
    let answer = match (&p.processor_ref, &p.processor_key) {
        (Some(intent_id), _) => processor.get_intent(intent_id).await,
        (None, Some(key)) => {
            let mut tx = state.db.begin_read().await?;
            let token = store::payments::payment_method(&mut tx, p.id).await?;
            tx.commit().await.map_err(anyhow::Error::from)?;
            match token {
                Some(payment_method) => {
                    processor
                        .create_intent(CreateIntent {
                            amount_minor: p.amount.to_minor(),
                            currency: p.amount.currency().code().to_lowercase(),
                            order_id: p.order_id.to_string(),
                            payment_id: p.id.to_string(),
                            payment_method,
                            idempotency_key: key.clone(),
                            capture_method: CaptureMethod::Automatic,
                            confirm: true,
                        })
                        .await
                }
                None => Err(ProcessorError::Transport(
                    "the payment's first call cannot be replayed".into(),
                )),
            }
        }
        (None, None) => return Ok(false),
    };
    let mut tx = state.db.begin_write().await?;
    let (settled, orphan) = match answer {
        Ok(intent) if intent.status == IntentStatus::Succeeded => {
            let orphan = apply_success(state, &mut tx, p.id, &intent.id).await?;
            (true, orphan)
        }
        Ok(intent)
            if matches!(
                intent.status,
                IntentStatus::RequiresPaymentMethod | IntentStatus::Canceled
            ) =>
        {
            let code = intent.last_error.as_deref().unwrap_or("payment_failed");
            let failed = store::payments::settle(
                &mut tx,
                p.id,
                PaymentStatus::Failed,
                Some(&intent.id),
                Some(code),
            )
            .await?;
            (failed, None)
        }
        Ok(intent) => {
            store::payments::set_ref(&mut tx, p.id, &intent.id).await?;
            store::payments::touch_payment(&mut tx, p.id).await?;
            (false, None)
        }
        Err(e) if e.is_retryable() => {
            let age = now_ms() - p.created_at.timestamp_millis();
            // Given up only on the processor's own answer that the call failed (its saved 5xx,
            // replayed): a timeout or a cut connection may hide a replay that just charged the
            // card, so the payment stays pending and is read back again.
            let answered_failed = matches!(e, ProcessorError::Server { .. });
            if answered_failed && age >= ms(state.config.card_pending_give_up) {
                tracing::warn!(payment_id = %p.id, error = %e, "no answer from the processor; card payment given up as failed");
                let failed = store::payments::settle(
                    &mut tx,
                    p.id,
                    PaymentStatus::Failed,
                    None,
                    Some("processor_unreachable"),
                )
                .await?;
                (failed, None)
            } else {
                store::payments::touch_payment(&mut tx, p.id).await?;
                (false, None)
            }
        }
        Err(ProcessorError::Declined { code, .. } | ProcessorError::Rejected { code, .. }) => {
            let failed =
                store::payments::settle(&mut tx, p.id, PaymentStatus::Failed, None, Some(&code))
                    .await?;
            (failed, None)
        }
        Err(e) => return Err(anyhow::anyhow!("reconciling payment {}: {e}", p.id).into()),
    };
    tx.commit().await.map_err(anyhow::Error::from)?;
    if let Some(orphan) = orphan {
        refund_orphan(state, orphan).await;
    }
    Ok(settled)
}

/// Runs [`run_once`] now and then every `interval` until the process ends.
pub fn spawn_reconciler(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = run_once(&state).await {
                tracing::warn!(error = ?e, "reconciling with the processor failed");
            }
        }
    })
}
