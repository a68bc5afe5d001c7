//! The stock-alerts consumer: each `stock.low` event becomes one row in `stock_alerts`, one
//! increment of `kassa_stock_low_alerts_total` and one warning in the log, however often the
//! relay delivers it.

use anyhow::Context;

use super::{ApplyFuture, Consumer, Event};
use crate::store::relay::{insert_alert, StockAlert};
use crate::store::Tx;

/// Raises an alert for every `stock.low` event.
#[derive(Debug, Clone, Copy, Default)]
pub struct StockAlerts;

/// The consumer's name in `consumed_events`.
pub const NAME: &str = "stock-alerts";

impl Consumer for StockAlerts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn wants(&self, event: &Event) -> bool {
        event.event_type == "stock.low"
    }

    fn apply<'a>(&'a self, tx: &'a mut Tx, event: &'a Event) -> ApplyFuture<'a> {
        Box::pin(async move {
            let alert = alert_from(event)?;
            insert_alert(tx, &alert).await?;
            // Counted before commit: a rolled-back batch is re-applied and counted again, which
            // a counter of alerts raised may do (the table is the exact record).
            metrics::counter!(crate::telemetry::metrics::STOCK_LOW_ALERTS).increment(1);
            tracing::warn!(
                sku = alert.sku,
                location = alert.location_id,
                available = alert.available,
                threshold = alert.threshold,
                "stock low"
            );
            Ok(())
        })
    }
}

fn alert_from(event: &Event) -> anyhow::Result<StockAlert> {
    let field = |name: &str| {
        event
            .payload
            .get(name)
            .with_context(|| format!("stock.low event {} has no {name}", event.id))
    };
    let text = |name: &str| -> anyhow::Result<String> {
        field(name)?
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("stock.low {name} is not a string"))
    };
    let number = |name: &str| -> anyhow::Result<i64> {
        field(name)?
            .as_i64()
            .with_context(|| format!("stock.low {name} is not an integer"))
    };
    Ok(StockAlert {
        event_id: event.id,
        sku: text("sku")?,
        location_id: text("location_id")?,
        available: number("available")?,
        threshold: number("threshold")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: serde_json::Value) -> Event {
        Event {
            seq: 1,
            id: uuid::Uuid::from_u128(7),
            event_type: "stock.low".into(),
            aggregate_type: "stock".into(),
            aggregate_id: "SKU-1@loc".into(),
            payload,
            created_at: chrono::DateTime::default(),
            traceparent: None,
        }
    }

    #[test]
    fn a_stock_low_payload_becomes_an_alert() -> anyhow::Result<()> {
        let payload = serde_json::json!({
            "sku": "SKU-1", "location_id": "loc", "available": 4, "threshold": 5
        });
        let alert = alert_from(&event(payload))?;
        assert_eq!(
            alert,
            StockAlert {
                event_id: uuid::Uuid::from_u128(7),
                sku: "SKU-1".into(),
                location_id: "loc".into(),
                available: 4,
                threshold: 5,
            }
        );
        Ok(())
    }

    #[test]
    fn a_payload_missing_a_field_is_an_error_naming_it() {
        let payload = serde_json::json!({ "sku": "SKU-1", "location_id": "loc", "available": 4 });
        let err = alert_from(&event(payload)).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("threshold")));
    }

    #[test]
    fn it_wants_only_stock_low() {
        let mut other = event(serde_json::json!({}));
        assert!(StockAlerts.wants(&other));
        other.event_type = "stock.adjusted".into();
        assert!(!StockAlerts.wants(&other));
    }
}
