//! Manager approvals as Central verifies them: what a register sends with a discount above the
//! cashier's limit, what Central grants online, what a register signs offline, and the limit
//! itself (a Central setting the registers pull).
//!
//! Online, a manager's credentials at the till get an approval from Central
//! (`POST /v1/approvals` with the manager's session at that register): its id is used once, by
//! that register, within its lifetime. Offline, the register checks the manager's offline
//! verifier and signs `{register, approval id, manager, time}` with its approval key
//! (HMAC-SHA256 keyed by [`approval_key`] of its credential, which Central keeps from pairing);
//! Central checks the signature, the manager and single use at sync. Pure functions only: the
//! HMAC itself is computed by each side with the same message.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;
use uuid::Uuid;

/// The cashier's limit when Central has no setting: a discount above this share of a line
/// needs a manager's approval.
pub const DISCOUNT_LIMIT_PERCENT_DEFAULT: u32 = 10;

/// How long an approval Central grants may wait for its action.
pub const APPROVAL_TTL_S: i64 = 5 * 60;

/// The context string a register's approval key is derived with from its credential.
pub const APPROVAL_KEY_CONTEXT: &str = "kassa-approval-key-v1";

/// The most a cashier may take off a line of `qty` × `unit_price_minor` without approval, in
/// minor units (rounded down).
pub fn discount_limit_minor(unit_price_minor: i64, qty: u32, percent: u32) -> i64 {
    unit_price_minor * i64::from(qty) * i64::from(percent.min(100)) / 100
}

/// The exact text a register signs for an offline approval (and Central verifies).
pub fn offline_approval_message(
    register_id: Uuid,
    approval_id: Uuid,
    manager: &str,
    approved_at: DateTime<Utc>,
) -> String {
    format!(
        "kassa-offline-approval\n{register_id}\n{approval_id}\n{manager}\n{}",
        approved_at.timestamp_millis()
    )
}

/// What a line needing approval carries: the approval's id and, for one given offline, the
/// register's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApprovalRef {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<OfflineApproval>,
}

/// An approval the register gave offline after checking the manager's offline verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OfflineApproval {
    /// The approving manager's username.
    pub manager: String,
    pub approved_at: DateTime<Utc>,
    /// Lowercase hex HMAC-SHA256 of [`offline_approval_message`] with the register's approval key.
    pub signature: String,
}

/// `POST /v1/approvals`: an approval Central granted to a manager signed in at a register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GrantedApproval {
    pub id: Uuid,
    pub manager: String,
    pub register_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// `GET/PUT /v1/settings/sale`: what every register of the chain obeys at the till.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SaleSettings {
    /// A cashier's discount above this share of a line (0 to 100) needs a manager's approval.
    #[cfg_attr(feature = "openapi", schema(maximum = 100))]
    pub discount_limit_percent: u32,
}

impl Default for SaleSettings {
    fn default() -> Self {
        Self {
            discount_limit_percent: DISCOUNT_LIMIT_PERCENT_DEFAULT,
        }
    }
}

/// An offline sale whose approval did not hold up at sync: the sale stands, a manager looks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApprovalFlag {
    pub id: Uuid,
    pub order_id: Uuid,
    pub sku: String,
    /// Who the register said approved (if anyone).
    pub approver: Option<String>,
    pub approval_id: Option<Uuid>,
    /// `approval_missing`, `approval_unknown`, `approval_used`, `approval_expired`,
    /// `bad_signature`, `not_a_manager`, `approver_mismatch`, `wrong_register`.
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_a_share_of_the_line_rounded_down() {
        assert_eq!(discount_limit_minor(999, 1, 10), 99);
        assert_eq!(discount_limit_minor(250, 4, 10), 100);
        assert_eq!(discount_limit_minor(250, 4, 150), 1000);
        assert_eq!(discount_limit_minor(250, 4, 0), 0);
    }

    #[test]
    fn the_signed_message_names_everything_it_vouches_for() {
        let (r, a) = (Uuid::nil(), Uuid::max());
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let m = offline_approval_message(r, a, "manager", at);
        assert!(m.contains(&r.to_string()) && m.contains(&a.to_string()));
        assert!(m.ends_with("manager\n1700000000123"));
    }
}
