//! Returns by receipt: the cashier scans a receipt's code and the sale opens for a refund, at
//! any till of the store. A receipt's QR code holds its number and the order id
//! (`STORE-1-R1-000042/0193…`, see [`receipt_code`]); a sale made at this till is found in its
//! own store (offline too), any other, and an online order by its number (the order id), at
//! Central (`GET /v1/orders/{id}`). A sale from another store is refused with where it was
//! sold. The refund itself goes through [`crate::refunds`], which takes such a sale too.

use chrono::{DateTime, Utc};
use kassa_domain::api::Order;
use kassa_domain::{Money, OrderStatus, Sku};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::identity;
use crate::refunds;
use crate::session::Sessions;
use crate::store::LocalDb;

/// The longest code a scan may type (a receipt's code is under 60 characters).
pub const SCANNED_CODE_CHARS_MAX: usize = 128;

/// What a receipt's code holds: its number, and the order id any till can find it by.
pub fn receipt_code(receipt_no: &str, order_id: Uuid) -> String {
    format!("{receipt_no}/{order_id}")
}

/// A scanned or typed code, read: a receipt number, an order id (an online order's number),
/// or both (a receipt's QR code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    pub receipt_no: Option<String>,
    pub order_id: Option<Uuid>,
}

impl Scanned {
    pub fn parse(code: &str) -> Result<Self> {
        let code = code.trim();
        if code.is_empty() || code.chars().count() > SCANNED_CODE_CHARS_MAX {
            return Err(Error::Invalid(format!(
                "scan a receipt's code, or type its number (1 to {SCANNED_CODE_CHARS_MAX} characters)"
            )));
        }
        let mut scanned = Scanned {
            receipt_no: None,
            order_id: None,
        };
        for part in code.split('/').map(str::trim).filter(|p| !p.is_empty()) {
            match Uuid::parse_str(part) {
                Ok(id) if scanned.order_id.is_none() => scanned.order_id = Some(id),
                Err(_) if scanned.receipt_no.is_none() && is_receipt_no(part) => {
                    scanned.receipt_no = Some(part.to_ascii_uppercase());
                }
                _ => return Err(not_a_receipt(code)),
            }
        }
        if scanned.order_id.is_none() && scanned.receipt_no.is_none() {
            return Err(not_a_receipt(code));
        }
        Ok(scanned)
    }
}

/// Letters, digits and `-`, like `STORE-1-R1-000042`.
fn is_receipt_no(part: &str) -> bool {
    part.len() <= 64 && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn not_a_receipt(code: &str) -> Error {
    Error::Invalid(format!(
        "{code:?} is not a receipt's code: scan the QR code on the receipt, or type its number \
         (STORE-1-R1-000042) or an online order's number"
    ))
}

/// A line of a sale being returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLine {
    pub sku: Sku,
    pub name: String,
    pub qty: u32,
    /// Units already returned (as Central last said; 0 for a sale Central has not told of).
    pub returned: u32,
    pub unit_price: Money,
    pub total: Money,
}

/// A sale found for a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleToReturn {
    pub order_id: Uuid,
    /// The receipt's number (an online order has none).
    pub receipt_no: Option<String>,
    pub location: String,
    /// Made at this till (else found at Central: another till's, or online).
    pub at_this_till: bool,
    /// Central's `source` for a sale found there: `register`, `offline` or `online`.
    pub source: String,
    pub completed_at: DateTime<Utc>,
    pub lines: Vec<ReturnLine>,
    pub total: Money,
}

/// Finds the sale a scanned receipt code (or typed number) names.
#[tracing::instrument(skip_all, fields(code = %code))]
pub async fn find(db: &LocalDb, sessions: &Sessions, code: &str) -> Result<SaleToReturn> {
    let scanned = Scanned::parse(code)?;
    let local_key = match (&scanned.order_id, &scanned.receipt_no) {
        (Some(id), _) => id.to_string(),
        (None, Some(no)) => no.clone(),
        (None, None) => return Err(not_a_receipt(code)),
    };
    if let Some(receipt) = refunds::sale(db, &local_key).await? {
        return Ok(SaleToReturn {
            order_id: receipt.order_id,
            receipt_no: Some(receipt.receipt_no.clone()),
            location: receipt.location.clone(),
            at_this_till: true,
            source: "this till".into(),
            completed_at: receipt.completed_at,
            lines: receipt
                .lines
                .iter()
                .zip(&receipt.totals.lines)
                .map(|(line, total)| ReturnLine {
                    sku: line.sku.clone(),
                    name: line.name.clone(),
                    qty: line.qty,
                    returned: 0,
                    unit_price: line.unit_price,
                    total: total.total,
                })
                .collect(),
            total: receipt.totals.total,
        });
    }
    let Some(order_id) = scanned.order_id else {
        return Err(Error::NotFound(format!(
            "receipt {local_key} is not from this till: scan the QR code on the receipt (it \
             holds the order Central finds it by)"
        )));
    };
    let till = identity::load(db).await?.ok_or(Error::NotPaired)?;
    let order = central_order(sessions, order_id).await?;
    check_same_store(&order, &till.location)?;
    Ok(SaleToReturn {
        order_id,
        receipt_no: scanned.receipt_no,
        location: order.location.clone(),
        at_this_till: false,
        source: order.source.clone(),
        completed_at: order.created_at,
        lines: order
            .lines
            .iter()
            .map(|l| ReturnLine {
                sku: l.sku.clone(),
                name: l.name.clone(),
                qty: l.qty,
                returned: l.returned_qty,
                unit_price: l.unit_price,
                total: l.total,
            })
            .collect(),
        total: order.totals.total,
    })
}

/// A sale of another store goes back there; an online order comes back to any store.
pub(crate) fn check_same_store(order: &Order, location: &str) -> Result<()> {
    if order.source != "online" && order.location != location {
        return Err(Error::Invalid(format!(
            "this sale was made at {}: it is returned there, not at {location}",
            order.location
        )));
    }
    if !matches!(order.status, OrderStatus::Paid | OrderStatus::Fulfilled) {
        return Err(Error::Invalid(format!(
            "this order is {:?}: only a paid order can be refunded",
            order.status
        )));
    }
    Ok(())
}

/// Central's order `id` with the signed-in session (online only).
pub(crate) async fn central_order(sessions: &Sessions, id: Uuid) -> Result<Order> {
    if sessions.signed_in().await.is_some_and(|who| who.offline) {
        return Err(Error::Offline(
            "another till's sale is found at Central, and this session was opened offline: \
             sign in again once the register is online"
                .into(),
        ));
    }
    let answer = sessions
        .authed(|token| async move { sessions.client().order(token.expose(), id).await })
        .await;
    match answer {
        Err(Error::Api { status: 404, .. }) => {
            Err(Error::NotFound(format!("Central has no order {id}")))
        }
        Err(err) if err.is_transient() => Err(Error::Offline(format!(
            "another till's sale is found at Central, which is out of reach ({err}); a sale \
             made at this till is found offline too"
        ))),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_code_reads_back_as_its_number_and_order() {
        let id = Uuid::now_v7();
        let scanned = Scanned::parse(&receipt_code("STORE-1-R2-000007", id)).unwrap();
        assert_eq!(scanned.receipt_no.as_deref(), Some("STORE-1-R2-000007"));
        assert_eq!(scanned.order_id, Some(id));
        let typed = Scanned::parse(" store-1-r1-000042 ").unwrap();
        assert_eq!(typed.receipt_no.as_deref(), Some("STORE-1-R1-000042"));
        let online = Scanned::parse(&id.to_string()).unwrap();
        assert_eq!((online.receipt_no, online.order_id), (None, Some(id)));
    }

    #[test]
    fn anything_else_is_not_a_receipt() {
        for code in [
            "",
            "   ",
            "a b",
            "STORE-1/STORE-2",
            "x/y/z",
            &"9".repeat(200),
        ] {
            assert!(Scanned::parse(code).is_err(), "{code:?}");
        }
    }
}
