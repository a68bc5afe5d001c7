//! The HTTP API's request and response bodies, shared by Kassa Central and the register.
//!
//! Inputs deny unknown fields so a typo in a field name is a 4xx, not a silently ignored value.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Barcode, Money, Role, Sku, TaxClass, Totals, Username};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// The one error shape every 4xx and 5xx carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    /// Machine-readable, stable: `insufficient_stock`, `version_conflict`, …
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub details: serde_json::Value,
}

/// A register proving which device a staff member signs in at.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterCredential {
    pub id: Uuid,
    pub credential: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    /// The password, or else `pin` (exactly one of the two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A short PIN (4 to 8 digits) a manager set; accepted only with `register`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]{4,8}$"))]
    pub pin: Option<String>,
    #[serde(default)]
    pub register: Option<RegisterCredential>,
}

/// `POST /v1/auth/device`: a paired register signs itself in (role `register`) to sync with
/// nobody signed in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceLoginRequest {
    pub register: RegisterCredential,
}

/// `PUT /v1/users/{username}/pin`: a manager sets a cashier's PIN, an admin anyone's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetPin {
    /// 4 to 8 digits.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]{4,8}$"))]
    pub pin: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: Username,
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub password: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct User {
    pub id: Uuid,
    pub username: Username,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateLocation {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub code: String,
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 100, pattern = r"\S")
    )]
    pub name: String,
    /// The store's time zone, an IANA name (`Europe/Amsterdam`); `UTC` when absent. Reports
    /// and Z reports group by the store's local day.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_+/-]+$")
    )]
    pub time_zone: Option<String>,
    /// Cash rounding: the increment cash amounts are rounded to, in the currency's minor units
    /// (5 = 0.05); 0 or absent is none. It must divide 10000 (422 `invalid_cash_rounding`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10000, example = 5))]
    pub cash_rounding: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Location {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    /// The store's time zone, an IANA name.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Cash rounding: the increment the final cash due of a sale is rounded to, in the
    /// currency's minor units (5 = 0.05); 0 is none. Card payments are never rounded.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = i64, minimum = 0, maximum = 10000, example = 5)
    )]
    pub cash_rounding: crate::CashRounding,
}

/// `PUT /v1/settings/cash-rounding` (manager): a location's cash rounding increment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CashRoundingSetting {
    /// Location code.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub location: String,
    /// The increment in minor units (5 = 0.05, 100 = 1.00); 0 turns rounding off. It must
    /// divide 10000 (422 `invalid_cash_rounding`).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10000, example = 5))]
    pub cash_rounding: i64,
}

fn utc() -> String {
    "UTC".into()
}

/// Pairs a register (a till) with Central: `location` is a location code.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRegister {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub location: String,
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 100, pattern = r"\S")
    )]
    pub name: String,
}

/// Shown once: Central keeps only a hash of the credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RegisterCreated {
    pub register_id: Uuid,
    pub credential: String,
    pub location: String,
    pub name: String,
}

/// What a manager sends to create a product or replace its editable fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub sku: Sku,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 16))]
    pub barcodes: Vec<Barcode>,
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 200, pattern = r"\S")
    )]
    pub name: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 4000))]
    pub description: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub category: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub brand: String,
    pub price: Money,
    pub tax_class: TaxClass,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub archived: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Product {
    pub id: Uuid,
    pub sku: Sku,
    pub barcodes: Vec<Barcode>,
    pub name: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub price: Money,
    pub tax_class: TaxClass,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: BTreeMap<String, serde_json::Value>,
    pub archived: bool,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// Position in the catalog change feed; pass the last one seen as `since`.
    pub change_seq: i64,
}

/// One page of the catalog delta feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProductPage {
    pub items: Vec<Product>,
    /// Pass back as `since` to get what changed after this page.
    pub next_cursor: String,
}

// ---- Stock, reservations, orders ----

/// Why on-hand stock moved. The ledger keeps one row per movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StockReason {
    Receiving,
    Sale,
    Return,
    Adjustment,
    CountCorrection,
    ReservationConversion,
}

impl StockReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receiving => "receiving",
            Self::Sale => "sale",
            Self::Return => "return",
            Self::Adjustment => "adjustment",
            Self::CountCorrection => "count_correction",
            Self::ReservationConversion => "reservation_conversion",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StockLevel {
    pub sku: Sku,
    /// Location code.
    pub location: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// on_hand − reserved; never negative.
    pub available: i64,
    pub low_threshold: Option<i64>,
}

/// The most stock levels one `GET /v1/stock` page may hold.
pub const STOCK_PAGE_LIMIT_MAX: u32 = 1000;

/// One page of `GET /v1/stock?location=&after=&limit=`: the levels of the catalog's SKUs after
/// `after`, in SKU order (a SKU never stocked there counts 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StockPage {
    pub items: Vec<StockLevel>,
    /// Pass back as `after` for the next page; `null` after the last SKU.
    pub next_cursor: Option<String>,
}

/// A manager's correction of on-hand stock (`delta` may be negative).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StockAdjustment {
    pub sku: Sku,
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub location: String,
    /// Not zero; receiving and returns add stock.
    #[cfg_attr(feature = "openapi", schema(minimum = -1_000_000, maximum = 1_000_000))]
    pub delta: i64,
    /// `receiving`, `adjustment`, `count_correction` or `return` (sales and conversions are
    /// recorded by orders).
    #[cfg_attr(
        feature = "openapi",
        schema(
            value_type = String,
            pattern = "^(receiving|adjustment|count_correction|return)$"
        )
    )]
    pub reason: StockReason,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 500))]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetLowStockThreshold {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub location: String,
    /// `null` removes the threshold.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1_000_000))]
    pub threshold: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    pub sku: Sku,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 9999))]
    pub qty: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReservationRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub location: String,
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub lines: Vec<LineRequest>,
    /// Seconds the units stay reserved, 1 to 86 400 (a day).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86_400))]
    pub ttl_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Reservation {
    pub id: Uuid,
    pub location: String,
    /// `active`, `released`, `expired` or `converted`.
    pub status: String,
    pub lines: Vec<LineRequest>,
    pub expires_at: DateTime<Utc>,
    pub order_id: Option<Uuid>,
}

/// One line of a new order; prices come from the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderLineRequest {
    pub sku: Sku,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 9999))]
    pub qty: u32,
    /// Absolute discount on the line.
    #[serde(default)]
    pub discount: Option<Money>,
    /// The manager (username) who approved the discount at the till, when it needed approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_approved_by: Option<String>,
    /// The approval Central verifies for a discount above the cashier's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_approval: Option<crate::approval::ApprovalRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// Made by the client (registers make UUIDv7 ids offline); Central makes one when absent.
    #[serde(default)]
    pub id: Option<Uuid>,
    /// Location code.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub location: String,
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub lines: Vec<OrderLineRequest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderLine {
    pub line_no: u32,
    pub sku: Sku,
    pub name: String,
    pub qty: u32,
    pub unit_price: Money,
    pub discount: Money,
    pub total: Money,
    pub tax_class: TaxClass,
    pub returned_qty: u32,
    /// The manager (username) who approved the line's discount at the till, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_approved_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Order {
    pub id: Uuid,
    pub status: crate::OrderStatus,
    /// `online`, `register` or `offline`.
    pub source: String,
    pub location: String,
    pub register_id: Option<Uuid>,
    pub lines: Vec<OrderLine>,
    pub totals: Totals,
    /// What the customer paid: `total + cash_rounding`.
    pub paid: Money,
    /// The rounding of the sale's final cash part (rounded − exact; negative when rounded
    /// down), by its location's rule; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cash_rounding: Option<Money>,
    pub refunded: Money,
    pub reservation_id: Option<Uuid>,
    pub reservation_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OrderPage {
    pub items: Vec<Order>,
    /// Pass back as `after` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// A line that could not be reserved, in a 409 `insufficient_stock`'s details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ShortLine {
    pub sku: Sku,
    pub requested: u32,
    pub available: i64,
}

/// `POST /v1/carts`: `location` is a location code; omitted, the first location by code.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateCart {
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub location: Option<String>,
}

/// One line a client asks for: the price is the catalog's when the SKU is first added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CartLineInput {
    pub sku: Sku,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 9999))]
    pub qty: u32,
}

/// `PUT /v1/carts/{id}`: the cart's whole new list of lines, in display order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CartLinesInput {
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub lines: Vec<CartLineInput>,
}

/// A cart line with the name, price and tax class the product had when the line was added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CartItem {
    pub sku: Sku,
    pub name: String,
    pub qty: u32,
    pub unit_price: Money,
    pub tax_class: TaxClass,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Cart {
    pub id: Uuid,
    /// The location code whose stock the cart draws on.
    pub location: String,
    pub lines: Vec<CartItem>,
    /// Computed from the lines (tax-inclusive prices) each time the cart is read.
    pub totals: Totals,
    /// Every write moves this forward by the cart's time to live.
    pub expires_at: DateTime<Utc>,
    /// Goes up by one with every write; send it as `If-Match` to refuse lost updates.
    pub version: i64,
}

/// The answer to `POST /v1/carts`. `cart_token` is only for guest carts and shown only once:
/// Central keeps a hash of it. Send it back as the `X-Cart-Token` header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CartCreated {
    #[serde(flatten)]
    pub cart: Cart,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cart_token: Option<String>,
}

/// A guest line that could not be merged in full, because of the stock available at the user
/// cart's location or the limits on a cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MergeShortfall {
    pub sku: Sku,
    /// The user's quantity plus the guest's.
    pub wanted: u32,
    /// What the merged cart holds (0: the line was not taken over).
    pub qty: u32,
}

/// The answer to `POST /v1/carts/{id}/merge`: the user's cart after the merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CartMerged {
    #[serde(flatten)]
    pub cart: Cart,
    /// Lines that got less than the sum of both carts' quantities.
    pub shortfalls: Vec<MergeShortfall>,
}

// ---- Recommendations ----

/// One product recommended with another ("frequently bought together").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RecommendedItem {
    pub product_id: Uuid,
    pub sku: Sku,
    pub name: String,
    /// The co-purchase score (cosine, 0 to 1), times 1.5 when the user bought from its category.
    pub score: f64,
}

/// The answer to `GET /v1/recommendations/{product_id}`: best first, already bought, archived
/// and out-of-stock products left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Recommendations {
    pub product_id: Uuid,
    pub items: Vec<RecommendedItem>,
    /// When the scores were last updated (batch or incremental); absent before the first batch.
    pub computed_at: Option<DateTime<Utc>>,
}

/// One partner in a stored top-k list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CopurchaseScore {
    pub product_id: Uuid,
    /// Cosine co(a,b) / sqrt(n(a)·n(b)) over paid orders.
    pub score: f64,
    /// How many paid orders held both products.
    pub support: i64,
}

/// A product's stored top-k list, as the register syncs it (empty: no partner any more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CopurchaseList {
    pub product_id: Uuid,
    pub items: Vec<CopurchaseScore>,
    pub computed_at: DateTime<Utc>,
    pub change_seq: i64,
}

/// One page of the top-k lists changed after a cursor (`GET /v1/recommendations?since=`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CopurchasePage {
    pub items: Vec<CopurchaseList>,
    /// Pass back as `since` to get what changed after this page.
    pub next_cursor: String,
}

// ---- Payments and refunds ----

/// How a payment is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// Counted at the till; the register records tendered and change.
    Cash,
    /// Through the card processor; only its references are kept.
    Card,
}

/// Where a payment or refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Sent to the processor; its answer (or webhook) has not settled it yet.
    Pending,
    Succeeded,
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// `POST /v1/orders/{id}/payments` (with an `Idempotency-Key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    pub method: PaymentMethod,
    /// At most what is still outstanding on the order.
    pub amount: Money,
    /// Cash: what the customer handed over (at least `amount`); change is the difference.
    #[serde(default)]
    pub tendered: Option<Money>,
    /// Cash only, on the final payment: the rounding of the cash due by the location's rule
    /// (rounded − exact), so `amount` = outstanding + `cash_rounding`. A rounding the rule does
    /// not make is 422 `invalid_cash_rounding`; on a card payment 422 `rounding_not_cash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cash_rounding: Option<Money>,
    /// Card: the processor's payment-method token (`pm_…`), never a card number.
    #[serde(default)]
    pub payment_method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    pub amount: Money,
    pub tendered: Option<Money>,
    pub change: Option<Money>,
    /// The processor's PaymentIntent id (card).
    pub processor_ref: Option<String>,
    /// Why a card payment failed (`card_declined`, `insufficient_funds`, …).
    pub failure_code: Option<String>,
    /// The order's state after this payment.
    pub order_status: crate::OrderStatus,
    pub created_at: DateTime<Utc>,
}

/// `POST /v1/orders/{id}/refunds` (with an `Idempotency-Key`). Returned lines are restocked and
/// their share of the order is refunded; without lines, `amount` is given back (goodwill).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// The refund's id, made by the client (a register writes it down before it asks, so it
    /// can find the refund again with `GET /v1/orders/{id}/refunds`); Central makes one if
    /// absent. An id already used by another refund is `409 refund_exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub lines: Vec<LineRequest>,
    #[serde(default)]
    pub amount: Option<Money>,
    /// Why the money goes back, 1 to 200 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 200, pattern = r"\S")
    )]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Refund {
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: PaymentStatus,
    pub amount: Money,
    /// The part given back to the card(s) through the processor.
    pub card: Money,
    /// The part given back in cash at the till.
    pub cash: Money,
    pub lines: Vec<LineRequest>,
    pub reason: String,
    /// The order's state after this refund.
    pub order_status: crate::OrderStatus,
    pub created_at: DateTime<Utc>,
}

// ---- Search ----

/// One product found by `GET /v1/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SearchHit {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub brand: String,
    pub category: String,
    pub price: Money,
    pub in_stock: bool,
    pub score: f32,
}

/// A facet value and how many products have it (with every other filter applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// A price range `[min, max)` (`max` null: and above) and how many products fall in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PriceBucket {
    pub min: Money,
    pub max: Option<Money>,
    pub count: u64,
}

/// The facets asked for with `facets=category,brand,price`; each count respects every filter
/// but its own (so picking a brand still shows the other brands' counts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SearchFacets {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<Vec<FacetCount>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<Vec<FacetCount>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Vec<PriceBucket>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SearchResponse {
    pub hits: Vec<SearchHit>,
    pub facets: SearchFacets,
    /// Products matching the query and every filter.
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    /// How stale the index may be: time since it last caught up with the database.
    pub index_lag_ms: u64,
    /// The catalog change sequence the index has applied (compare with `change_seq`).
    pub applied_seq: i64,
}

// ---- Offline sync: `POST /v1/sync/orders` and the shortfalls it records ----
//
// A register that sold while the link was down sends its completed orders in bounded batches.
// Central applies each order exactly once per (register, order id) and answers one result per
// order, in request order. An accepted result is kept and replayed byte for byte on a retry; a
// rejected one is not kept, so the register may correct the order and send it again.

/// The most orders one `POST /v1/sync/orders` batch may carry (more: 422 `batch_too_large`).
pub const SYNC_BATCH_ORDERS_MAX: usize = 100;

/// Sent by a register with each call: the orders still in its outbox (Central exposes it per
/// register, `kassa_register_queue_orders`).
pub const REGISTER_QUEUE_HEADER: &str = "kassa-register-queue";
/// Sent by a register with each call: how long its oldest unsynced sale has waited, in seconds.
pub const REGISTER_OLDEST_UNSYNCED_HEADER: &str = "kassa-register-oldest-unsynced-s";
/// Sent by a register with each call: seconds since it last pulled the whole catalog feed.
pub const REGISTER_CATALOG_AGE_HEADER: &str = "kassa-register-catalog-age-s";
/// The most payments one offline order may carry.
pub const SYNC_ORDER_PAYMENTS_MAX: usize = 20;
/// Receipt numbers and card references, in characters.
pub const SYNC_TEXT_CHARS_MAX: usize = 100;

/// `POST /v1/sync/orders`: orders a register completed offline, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncOrdersRequest {
    pub orders: Vec<OfflineOrder>,
}

/// One sale completed at a register while it was offline: the goods have left the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OfflineOrder {
    /// Made by the register (UUIDv7); with the register's id, the key that applies it once.
    pub id: Uuid,
    /// Location code; must be the register's own location.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub location: String,
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub lines: Vec<OfflineLine>,
    /// What the customer paid with; the amounts add up to the order's total plus
    /// `cash_rounding`.
    pub payments: Vec<OfflinePayment>,
    /// The rounding of the final cash due by the location's rule (rounded − exact); needs a
    /// cash payment. Absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cash_rounding: Option<Money>,
    pub completed_at: DateTime<Utc>,
    /// The number printed on the receipt, e.g. `STORE-1-R1-000042`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub receipt_no: String,
}

/// A line as sold at the till: `unit_price` is the price the customer paid (tax-inclusive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OfflineLine {
    pub sku: Sku,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 9999))]
    pub qty: u32,
    pub unit_price: Money,
    /// Absolute discount on the line.
    #[serde(default)]
    pub discount: Option<Money>,
    /// The manager (username) who approved the discount at the till, when it needed approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_approved_by: Option<String>,
    /// The approval Central verifies for a discount above the cashier's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_approval: Option<crate::approval::ApprovalRef>,
}

/// A payment taken offline. `amount` is the part of the order's total it pays; for cash,
/// `tendered` is what the customer handed over (change = tendered − amount).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum OfflinePayment {
    Cash {
        amount: Money,
        tendered: Money,
    },
    /// A card payment authorised offline by the terminal; `reference` is the terminal's.
    CardOffline {
        amount: Money,
        reference: String,
    },
}

impl OfflinePayment {
    pub fn amount(&self) -> Money {
        match self {
            Self::Cash { amount, .. } | Self::CardOffline { amount, .. } => *amount,
        }
    }

    /// The wire and database spelling: `cash` or `card_offline`.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Cash { .. } => "cash",
            Self::CardOffline { .. } => "card_offline",
        }
    }
}

/// Units an offline sale sold beyond what was available at Central: recorded as a stock
/// discrepancy for a manager to resolve; the sale itself stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Shortfall {
    pub sku: Sku,
    /// Location code.
    pub location: String,
    pub shortfall: i64,
}

/// What became of one offline order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SyncOrderResult {
    /// Applied (now or by an earlier try of the same batch): the order is PAID.
    Accepted {
        id: Uuid,
        order: Box<Order>,
        shortfalls: Vec<Shortfall>,
    },
    /// Not applied and not remembered: correct the order and send it again.
    Rejected { id: Uuid, error: ErrorDetail },
}

impl SyncOrderResult {
    pub fn id(&self) -> Uuid {
        match self {
            Self::Accepted { id, .. } | Self::Rejected { id, .. } => *id,
        }
    }
}

/// The answer to `POST /v1/sync/orders`: one result per order, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SyncOrdersResponse {
    pub results: Vec<SyncOrderResult>,
}

/// A recorded shortfall (`GET /v1/stock/discrepancies`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StockDiscrepancy {
    pub id: Uuid,
    pub sku: Sku,
    /// Location code.
    pub location: String,
    /// The offline order that sold the missing units.
    pub order_id: Uuid,
    pub shortfall: i64,
    pub created_at: DateTime<Utc>,
    /// `null` while open.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The manager who resolved it (username); `null` while open.
    #[serde(default)]
    pub resolved_by: Option<String>,
    /// How it was resolved, in the manager's words; `null` while open.
    #[serde(default)]
    pub resolution: Option<String>,
}

/// Longest resolution note, in characters.
pub const RESOLUTION_CHARS_MAX: usize = 500;

/// `POST /v1/stock/discrepancies/{id}/resolve`: how the shortfall was dealt with ("recounted:
/// 2 more were on the shelf", "written off as shrinkage"). Fix the count itself with a stock
/// adjustment (`reason: count_correction`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResolveDiscrepancy {
    /// 1 to 500 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 500))]
    pub note: String,
}

/// One page of stock discrepancies, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DiscrepancyPage {
    pub items: Vec<StockDiscrepancy>,
    /// Pass back as `after` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}
