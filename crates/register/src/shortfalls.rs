//! Stock shortfalls at the till: the offline sales Central could not fully serve (it had fewer
//! units than were sold) are recorded there as stock discrepancies; a manager lists the open ones
//! (`GET /v1/stock/discrepancies?open=true`) and resolves one with a note saying how
//! (`POST /v1/stock/discrepancies/{id}/resolve`). They live at Central, so this is online only:
//! the register adds what it knows (the receipt, the units sold, the product's name) and keeps
//! nothing.

use kassa_domain::api::{DiscrepancyPage, StockDiscrepancy};
use kassa_domain::ShortfallView;
use uuid::Uuid;

use crate::catalog;
use crate::error::{Context, Error, Result};
use crate::session::Sessions;
use crate::store::LocalDb;

/// Shortfalls asked of Central per request.
const PAGE_SIZE: u32 = 200;
/// The most open shortfalls listed at once (the oldest first); older ones must be resolved
/// before newer ones show.
pub const SHORTFALLS_LISTED_MAX: usize = 1_000;

/// What the manager is told when Central cannot be asked.
const AT_CENTRAL: &str = "shortfalls live at Central";

/// The open shortfalls at `location` (every location when `None`), oldest first, with what this
/// register knows of each.
#[tracing::instrument(skip_all, fields(location = location.unwrap_or("every")))]
pub async fn open(
    db: &LocalDb,
    sessions: &Sessions,
    location: Option<&str>,
) -> Result<Vec<ShortfallView>> {
    online(sessions).await?;
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    while found.len() < SHORTFALLS_LISTED_MAX {
        let page: DiscrepancyPage = reach(
            sessions
                .authed(|token| {
                    let after = after.clone();
                    async move {
                        sessions
                            .client()
                            .open_discrepancies(
                                token.expose(),
                                location,
                                after.as_deref(),
                                PAGE_SIZE,
                            )
                            .await
                    }
                })
                .await,
        )?;
        found.extend(page.items);
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    found.truncate(SHORTFALLS_LISTED_MAX);
    let mut views = Vec::with_capacity(found.len());
    for discrepancy in found {
        views.push(view(db, discrepancy).await?);
    }
    Ok(views)
}

/// Marks shortfall `id` resolved at Central with the manager's `note`; Central records who.
#[tracing::instrument(skip_all, fields(%id))]
pub async fn resolve(sessions: &Sessions, id: Uuid, note: &str) -> Result<StockDiscrepancy> {
    online(sessions).await?;
    let answer = sessions
        .authed(|token| async move {
            sessions
                .client()
                .resolve_discrepancy(token.expose(), id, note)
                .await
        })
        .await;
    match reach(answer) {
        Err(Error::Api {
            status: 422,
            detail,
        }) => Err(Error::Invalid(detail.message)),
        Err(Error::Api { status: 404, .. }) => {
            Err(Error::NotFound(format!("no shortfall {id} at Central")))
        }
        other => other,
    }
}

/// A session opened offline has no token for Central: say so before trying.
async fn online(sessions: &Sessions) -> Result<()> {
    if sessions.signed_in().await.is_some_and(|who| who.offline) {
        return Err(Error::Offline(format!(
            "{AT_CENTRAL}, and this session was opened offline: sign in again once the \
             register is online"
        )));
    }
    Ok(())
}

/// Central out of reach becomes a sentence that says where shortfalls are.
fn reach<T>(answer: Result<T>) -> Result<T> {
    answer.map_err(|err| match err {
        Error::Unreachable { .. } => {
            tracing::info!(%err, "Central out of reach for the shortfalls");
            Error::Offline(format!(
                "{AT_CENTRAL}, which is out of reach: try again when the register is online"
            ))
        }
        other => other,
    })
}

/// Central's record with the receipt and units of the sale when it was made here, and the
/// product's name from the local catalog.
async fn view(db: &LocalDb, discrepancy: StockDiscrepancy) -> Result<ShortfallView> {
    let order_id = discrepancy.order_id.to_string();
    let sku = discrepancy.sku.as_str();
    let sale: Option<(String, Option<i64>)> = sqlx::query_as(
        "SELECT o.receipt_no,
                (SELECT SUM(l.qty) FROM outbox_lines l WHERE l.order_id = o.order_id AND l.sku = ?)
         FROM outbox_orders o WHERE o.order_id = ?",
    )
    .bind(sku)
    .bind(&order_id)
    .fetch_optional(db.reader())
    .await
    .context("reading the sale of a shortfall")?;
    let product_name = catalog::by_sku(db, sku).await?.map(|p| p.name);
    let (receipt_no, ordered) = match sale {
        Some((receipt_no, ordered)) => (Some(receipt_no), ordered),
        None => (None, None),
    };
    Ok(ShortfallView {
        discrepancy,
        receipt_no,
        product_name,
        ordered,
    })
}
