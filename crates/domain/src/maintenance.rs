//! Read-only mode's wire type: an admin stops every write at Central for a while (a stock count,
//! a database move, an incident) while browsing, signing in and offline selling go on.

use serde::{Deserialize, Serialize};

/// The longest message read-only mode carries.
pub const READ_ONLY_MESSAGE_CHARS_MAX: usize = 200;

/// `GET/PUT /v1/admin/read-only`: whether Central refuses writes, and what it tells clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReadOnlyMode {
    pub enabled: bool,
    /// Shown to staff and shoppers while writes are refused ("Stock count until 07:00"), at
    /// most 200 characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub message: String,
}
