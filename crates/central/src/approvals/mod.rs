//! Manager approvals Central verifies: a discount above the cashier's limit (and later a price
//! override) needs one. Online, `POST /v1/approvals` with the manager's own session at the till
//! grants an approval for that register, used once within [`APPROVAL_TTL_S`]; the order line
//! names it and Central checks it in the order's transaction (422 with a code otherwise).
//! Offline, the register checks the manager's offline verifier and signs the approval with its
//! approval key; at sync Central checks the signature, the manager and single use, and an
//! approval that does not hold up is **flagged** for the manager while the sale stands (the
//! goods left the store). The limit itself is a Central setting the registers pull
//! (`GET /v1/settings/sale`). Refunds need a manager's own session (`Auth<Manager>`) already.

use axum::extract::State;
use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use kassa_domain::approval::{
    discount_limit_minor, offline_approval_message, ApprovalFlag, ApprovalRef, GrantedApproval,
    SaleSettings, APPROVAL_KEY_CONTEXT, APPROVAL_TTL_S, DISCOUNT_LIMIT_PERCENT_DEFAULT,
};
use kassa_domain::Role;
use sha2::Sha256;
use uuid::Uuid;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Admin, Auth, Json, Manager, Staff};
use crate::state::AppState;
use crate::store::{self, approvals::ApprovalRow, now_ms, Tx};

/// Flags listed at most.
const FLAGS_LISTED_MAX: i64 = 500;
const DISCOUNT_LIMIT_SETTING: &str = "sale.discount_limit_percent";

/// The approval key Central keeps for a register, from its credential (hex).
pub fn approval_key_hex(credential: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(credential.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(APPROVAL_KEY_CONTEXT.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature` (hex) is the HMAC of `message` under the hex `key`.
fn signature_holds(key_hex: &str, message: &str, signature: &str) -> bool {
    let (Ok(key), Ok(signature)) = (hex::decode(key_hex), hex::decode(signature)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(message.as_bytes());
    mac.verify_slice(&signature).is_ok()
}

/// Grants an approval to the manager whose session this is, at the register it is signed in at.
#[utoipa::path(post, path = "/v1/approvals", tag = "approvals",
    responses((status = 201, body = GrantedApproval), (status = 403)))]
pub async fn grant(
    State(state): State<AppState>,
    auth: Auth<Manager>,
) -> ApiResult<(StatusCode, Json<GrantedApproval>)> {
    let register_id = auth.caller.register_id.ok_or_else(|| ApiError::Denied {
        code: "not_a_register",
        message: "an approval is given at a till: sign the manager in at the register".into(),
    })?;
    let manager = store::approvals::username_of(&state.db, auth.caller.user_id)
        .await?
        .ok_or(ApiError::Unauthorized("unknown user"))?;
    let row = ApprovalRow {
        id: Uuid::now_v7(),
        register_id,
        manager_id: auth.caller.user_id,
        manager: manager.clone(),
        source: "online",
        expires_at: now_ms() + APPROVAL_TTL_S * 1000,
        used_at: None,
        order_id: None,
    };
    let mut tx = state.db.begin_write().await?;
    store::approvals::insert(&mut tx, &row).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok((
        StatusCode::CREATED,
        Json(GrantedApproval {
            id: row.id,
            manager,
            register_id,
            expires_at: store::from_ms(row.expires_at),
        }),
    ))
}

/// Offline sales whose approval did not hold up at sync, newest first (manager).
#[utoipa::path(get, path = "/v1/approvals/flags", tag = "approvals",
    responses((status = 200, body = Vec<ApprovalFlag>)))]
pub async fn list_flags(
    State(state): State<AppState>,
    _auth: Auth<Manager>,
) -> ApiResult<Json<Vec<ApprovalFlag>>> {
    let rows = store::approvals::flags(&state.db, FLAGS_LISTED_MAX).await?;
    Ok(Json(
        rows.into_iter()
            .map(|f| ApprovalFlag {
                id: f.id,
                order_id: f.order_id,
                sku: f.sku,
                approver: f.approver,
                approval_id: f.approval_id,
                reason: f.reason,
                created_at: f.created_at,
            })
            .collect(),
    ))
}

/// What every till obeys (staff and registers read it; the registers pull it with their sync).
#[utoipa::path(get, path = "/v1/settings/sale", tag = "approvals",
    responses((status = 200, body = SaleSettings)))]
pub async fn get_sale_settings(
    State(state): State<AppState>,
    _auth: Auth<Staff>,
) -> ApiResult<Json<SaleSettings>> {
    Ok(Json(SaleSettings {
        discount_limit_percent: discount_limit_percent(&state).await?,
    }))
}

/// Changes the cashier's discount limit for every till (admin).
#[utoipa::path(put, path = "/v1/settings/sale", tag = "approvals", request_body = SaleSettings,
    responses((status = 200, body = SaleSettings), (status = 422)))]
pub async fn put_sale_settings(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    Json(req): Json<SaleSettings>,
) -> ApiResult<Json<SaleSettings>> {
    if req.discount_limit_percent > 100 {
        return Err(ApiError::invalid(
            "invalid_discount_limit",
            "discount_limit_percent is 0 to 100",
        ));
    }
    store::settings::set(
        &state.db,
        DISCOUNT_LIMIT_SETTING,
        &req.discount_limit_percent.to_string(),
    )
    .await?;
    Ok(Json(req))
}

/// The cashier's discount limit (percent of a line). Read before a transaction starts: work
/// holding a connection never waits for a second one.
pub async fn discount_limit_percent(state: &AppState) -> ApiResult<u32> {
    let stored = store::settings::get(&state.db, DISCOUNT_LIMIT_SETTING).await?;
    Ok(stored
        .and_then(|v| v.parse().ok())
        .unwrap_or(DISCOUNT_LIMIT_PERCENT_DEFAULT))
}

/// One discounted line to check.
#[derive(Debug)]
pub struct DiscountLine<'a> {
    pub sku: &'a str,
    /// The line before its discount, minor units.
    pub gross_minor: i64,
    pub discount_minor: i64,
    pub approved_by: Option<&'a str>,
    pub approval: Option<&'a ApprovalRef>,
}

/// Where the lines come from.
#[derive(Debug, Clone, Copy)]
pub enum Sale {
    /// An order being created: a bad approval refuses it (422).
    Online { seller: Role },
    /// An offline sale that already happened (completed at this time): a bad approval is
    /// flagged, the sale stands.
    Offline { completed_at_ms: i64 },
}

/// Checks every line whose discount is above `limit_percent` of it carries an approval that
/// holds up, and uses each approval for `order_id` (in `tx`, the order's transaction).
pub async fn check_discounts(
    tx: &mut Tx,
    register: Option<Uuid>,
    order_id: Uuid,
    limit_percent: u32,
    lines: &[DiscountLine<'_>],
    sale: Sale,
) -> ApiResult<()> {
    for line in lines {
        let limit = discount_limit_minor(line.gross_minor, 1, limit_percent);
        if line.discount_minor <= limit {
            continue;
        }
        if let Sale::Online { seller } = sale {
            if seller.at_least(Role::Manager) {
                continue;
            }
        }
        let Err(reason) = verify(tx, register, order_id, line, sale).await? else {
            continue;
        };
        match sale {
            Sale::Online { .. } => {
                return Err(ApiError::Invalid {
                    code: reason,
                    message: format!(
                        "the discount on {} needs a manager's approval that Central can verify ({reason})",
                        line.sku
                    ),
                    details: serde_json::json!({ "sku": line.sku }),
                })
            }
            Sale::Offline { .. } => flag(tx, order_id, line, reason).await?,
        }
    }
    Ok(())
}

/// `Ok(Err(reason))` when the line's approval does not hold up.
async fn verify(
    tx: &mut Tx,
    register: Option<Uuid>,
    order_id: Uuid,
    line: &DiscountLine<'_>,
    sale: Sale,
) -> ApiResult<Result<(), &'static str>> {
    let Some(approval) = line.approval else {
        return Ok(Err("approval_required"));
    };
    let Some(register_id) = register else {
        return Ok(Err("wrong_register"));
    };
    let manager = match &approval.offline {
        Some(offline) => {
            let Some(key) = store::approvals::register_key(tx, register_id).await? else {
                return Ok(Err("bad_signature"));
            };
            let message = offline_approval_message(
                register_id,
                approval.id,
                &offline.manager,
                offline.approved_at,
            );
            if !signature_holds(&key, &message, &offline.signature) {
                return Ok(Err("bad_signature"));
            }
            let Some((manager_id, role)) =
                store::approvals::user_role(tx, &offline.manager).await?
            else {
                return Ok(Err("approval_unknown"));
            };
            if !matches!(role.as_str(), "manager" | "admin") {
                return Ok(Err("not_a_manager"));
            }
            let row = ApprovalRow {
                id: approval.id,
                register_id,
                manager_id,
                manager: offline.manager.clone(),
                source: "offline",
                expires_at: offline.approved_at.timestamp_millis() + APPROVAL_TTL_S * 1000,
                used_at: Some(now_ms()),
                order_id: Some(order_id),
            };
            if !store::approvals::insert(tx, &row).await?
                && !store::approvals::use_for(tx, approval.id, order_id).await?
            {
                return Ok(Err("approval_used"));
            }
            offline.manager.clone()
        }
        None => {
            let Some(row) = store::approvals::get(tx, approval.id).await? else {
                return Ok(Err("approval_unknown"));
            };
            if row.register_id != register_id {
                return Ok(Err("wrong_register"));
            }
            let at = match sale {
                Sale::Online { .. } => now_ms(),
                Sale::Offline { completed_at_ms } => completed_at_ms,
            };
            if row.order_id != Some(order_id) && row.expires_at < at {
                return Ok(Err("approval_expired"));
            }
            if !store::approvals::use_for(tx, approval.id, order_id).await? {
                return Ok(Err("approval_used"));
            }
            row.manager
        }
    };
    if line.approved_by.is_some_and(|named| named != manager) {
        return Ok(Err("approver_mismatch"));
    }
    Ok(Ok(()))
}

async fn flag(
    tx: &mut Tx,
    order_id: Uuid,
    line: &DiscountLine<'_>,
    reason: &'static str,
) -> ApiResult<()> {
    let row = store::approvals::FlagRow {
        id: Uuid::now_v7(),
        order_id,
        sku: line.sku.to_owned(),
        approver: line.approved_by.map(str::to_owned),
        approval_id: line.approval.map(|a| a.id),
        reason: reason.to_owned(),
        created_at: chrono::Utc::now(),
    };
    store::approvals::insert_flag(tx, &row).await?;
    let payload = serde_json::json!({
        "sku": line.sku, "approver": line.approved_by, "approval_id": row.approval_id,
        "reason": reason,
    });
    store::events::record(
        tx,
        "order.approval_flagged",
        "order",
        &order_id.to_string(),
        &payload,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_only_for_its_key_and_message() {
        let key = approval_key_hex("credential-1");
        let mut mac = Hmac::<Sha256>::new_from_slice(&hex::decode(&key).unwrap()).unwrap();
        mac.update(b"message");
        let sig = hex::encode(mac.finalize().into_bytes());
        assert!(signature_holds(&key, "message", &sig));
        assert!(!signature_holds(&key, "messagf", &sig));
        assert!(!signature_holds(
            &approval_key_hex("credential-2"),
            "message",
            &sig
        ));
        assert!(!signature_holds(&key, "message", "zz"));
    }
}
