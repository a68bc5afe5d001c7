//! Completes the generated OpenAPI document with what routes share, so no handler repeats it: the
//! path parameters named in each template, the headers a route reads (Idempotency-Key, If-Match,
//! Stripe-Signature, Kassa-Read-After), and every error status a route can answer with the one error body.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use kassa_domain::{IdempotencyKey, Sku, Username};

use crate::http::codes;
use crate::http::extract::CART_TOKEN_CHARS_MAX;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, Schema};

/// Routes anyone may call: no bearer token is read, so no 401/403.
const PUBLIC: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/v1/auth/login",
    "/v1/auth/device",
    "/v1/auth/refresh",
    "/v1/webhooks/payments",
];

/// Reads anyone may make, with a token or without (anonymous browsing, `Browse`).
const BROWSE: &[(&str, &str)] = &[
    ("get", "/v1/products"),
    ("get", "/v1/products/{id}"),
    ("get", "/v1/search"),
    ("get", "/v1/recommendations/{product_id}"),
];

/// The headers each route reads besides the bearer token: (method, path, header, required).
const HEADERS: &[(&str, &str, &str, bool)] = &[
    ("post", "/v1/orders", IDEMPOTENCY_KEY, true),
    ("post", "/v1/orders/{id}/payments", IDEMPOTENCY_KEY, true),
    ("post", "/v1/orders/{id}/refunds", IDEMPOTENCY_KEY, true),
    ("post", "/v1/reservations", IDEMPOTENCY_KEY, true),
    ("post", "/v1/stock/leases", IDEMPOTENCY_KEY, true),
    ("post", "/v1/stock/adjustments", IDEMPOTENCY_KEY, false),
    ("put", "/v1/products/{id}", IF_MATCH, true),
    ("put", "/v1/carts/{id}", IF_MATCH, false),
    ("post", "/v1/webhooks/payments", STRIPE_SIGNATURE, true),
    ("get", "/v1/carts/{id}", CART_TOKEN, false),
    ("put", "/v1/carts/{id}", CART_TOKEN, false),
    ("post", "/v1/carts/{id}/merge", CART_TOKEN, true),
    ("get", "/v1/products", READ_AFTER, false),
    ("get", "/v1/products/{id}", READ_AFTER, false),
    ("get", "/v1/locations", READ_AFTER, false),
    ("get", "/v1/stock", READ_AFTER, false),
    ("get", "/v1/orders", READ_AFTER, false),
    ("get", "/v1/products", IF_NONE_MATCH, false),
    ("get", "/v1/products/{id}", IF_NONE_MATCH, false),
    ("get", "/v1/search", IF_NONE_MATCH, false),
    (
        "get",
        "/v1/recommendations/{product_id}",
        IF_NONE_MATCH,
        false,
    ),
];

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// A write position (`Kassa-Write-Position` of a write's answer) a read waits for on the replica.
const READ_AFTER: &str = "Kassa-Read-After";
const IF_MATCH: &str = "If-Match";
const IF_NONE_MATCH: &str = "If-None-Match";
/// Longer lists of tags than a cache keeps are not worth declaring.
const IF_NONE_MATCH_CHARS_MAX: usize = 1024;
const STRIPE_SIGNATURE: &str = "Stripe-Signature";
const CART_TOKEN: &str = "X-Cart-Token";

/// The bearer scheme's name in the document.
const BEARER: &str = "bearer";

/// Adds the bearer scheme, and the shared parameters and error answers to every operation of `doc`.
pub fn complete(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    for (path, item) in &mut doc.paths.paths {
        for (method, op) in [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ] {
            if let Some(op) = op {
                complete_operation(method, path, op);
            }
        }
    }
}

fn complete_operation(method: &str, path: &str, op: &mut Operation) {
    if !PUBLIC.contains(&path) {
        let bearer = SecurityRequirement::new::<_, _, &str>(BEARER, []);
        // A guest may use a cart, and anyone browse, without signing in.
        op.security = Some(
            if path.starts_with("/v1/carts") || BROWSE.contains(&(method, path)) {
                vec![SecurityRequirement::default(), bearer]
            } else {
                vec![bearer]
            },
        );
    }
    for name in path_parameters(path) {
        add_parameter(op, name, ParameterIn::Path, true, path_schema(name));
    }
    for &(_, _, header, required) in HEADERS
        .iter()
        .filter(|(m, p, _, _)| *m == method && *p == path)
    {
        add_parameter(
            op,
            header,
            ParameterIn::Header,
            required,
            header_schema(header),
        );
    }
    for status in error_statuses(path, op) {
        let reason =
            StatusCode::from_u16(status).map_or("", |s| s.canonical_reason().unwrap_or(""));
        // What the handler says of this answer, else what the status means; then its codes.
        let declared = op
            .responses
            .responses
            .get(&status.to_string())
            .and_then(|r| match r {
                RefOr::T(r) => Some(r.description.clone()),
                RefOr::Ref(_) => None,
            })
            .filter(|d| !d.is_empty() && d != reason);
        let description = match codes::of(status) {
            Some(c) => format!(
                "{}. Codes: {}.",
                declared.unwrap_or_else(|| format!("{reason}: {}", c.when)),
                codes::listed(c.codes)
            ),
            None => declared.unwrap_or_else(|| reason.to_owned()),
        };
        let answer = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        op.responses
            .responses
            .insert(status.to_string(), RefOr::T(answer));
    }
}

/// Every error status `op` at `path` can answer: what it declares itself, plus what the shared
/// extractors and middleware answer (`codes.rs` says what each means and its codes).
fn error_statuses(path: &str, op: &Operation) -> BTreeSet<u16> {
    let mut statuses: BTreeSet<u16> = op
        .responses
        .responses
        .keys()
        .filter_map(|s| s.parse().ok())
        .filter(|s| *s >= 400)
        .collect();
    // The request timeout, and a database that does not answer.
    statuses.insert(503);
    if !PUBLIC.contains(&path) {
        // Per-user rate limit (KASSA_USER_REQUESTS_PER_SECOND).
        statuses.extend([401, 403, 429]);
    }
    let params = op.parameters.as_deref().unwrap_or_default();
    if params.iter().any(|p| p.parameter_in == ParameterIn::Path) {
        statuses.extend([400, 404]);
    }
    if params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query | ParameterIn::Header))
    {
        statuses.insert(400);
    }
    if !params.is_empty() {
        // Text PostgreSQL cannot store (`invalid_text`).
        statuses.insert(422);
    }
    if params.iter().any(|p| p.name == IDEMPOTENCY_KEY) {
        statuses.extend([409, 422]);
    }
    if params.iter().any(|p| p.name == IF_MATCH) {
        statuses.extend([412, 428]);
    }
    if op.request_body.is_some() {
        statuses.extend([400, 413, 415, 422]);
    }
    statuses
}

fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn path_schema(name: &str) -> Schema {
    let text = ObjectBuilder::new().schema_type(Type::String);
    match name {
        "sku" => text
            .min_length(Some(1))
            .max_length(Some(Sku::LEN_MAX))
            .pattern(Some(Sku::PATTERN)),
        "username" => text
            .min_length(Some(Username::LEN_MIN))
            .max_length(Some(Username::LEN_MAX))
            .pattern(Some(Username::PATTERN)),
        "name" => text.enum_values(Some(
            kassa_domain::maintenance::Feature::ALL.map(kassa_domain::maintenance::Feature::name),
        )),
        _ => text.format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
    }
    .into()
}

fn header_schema(name: &str) -> Schema {
    let text = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1));
    match name {
        // Printable ASCII, what `idempotency.rs` accepts.
        IDEMPOTENCY_KEY => text
            .max_length(Some(IdempotencyKey::LEN_MAX))
            .pattern(Some("^[ -~]*[!-~][ -~]*$")),
        // An ETag, quoted, as the catalog and carts send it (`"3"`; a weak `W/"3"` too).
        IF_MATCH => text.pattern(Some(r#"^(W/)?"[0-9]{1,18}"$"#)),
        // `*` or a list of entity tags, `"a", W/"b"`, as `http/cache.rs` compares them.
        IF_NONE_MATCH => text
            .max_length(Some(IF_NONE_MATCH_CHARS_MAX))
            .pattern(Some(r#"^(\*|(W/)?"[!#-~]*"( *, *(W/)?"[!#-~]*")*)$"#)),
        // `t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=…]`: the processor's signature.
        STRIPE_SIGNATURE => text.pattern(Some("^t=[0-9]{1,12}(,v1=[0-9a-f]{64})+$")),
        // PostgreSQL's LSN notation, `16/B374D848` (anything else reads the primary).
        READ_AFTER => text
            .max_length(Some(17))
            .pattern(Some("^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")),
        CART_TOKEN => text
            .max_length(Some(CART_TOKEN_CHARS_MAX))
            .pattern(Some("^[!-~]+$")),
        _ => text,
    }
    .into()
}

/// Adds a parameter unless the handler already declared it (its own declaration wins, but a path
/// parameter is always required).
fn add_parameter(op: &mut Operation, name: &str, at: ParameterIn, required: bool, schema: Schema) {
    let params = op.parameters.get_or_insert_with(Vec::new);
    if let Some(p) = params
        .iter_mut()
        .find(|p| p.name.eq_ignore_ascii_case(name) && p.parameter_in == at)
    {
        match at {
            ParameterIn::Path => p.required = Required::True,
            // The handler says what the header is for; the limits are the extractor's.
            ParameterIn::Header => p.schema = Some(schema.into()),
            _ => {}
        }
        return;
    }
    let param: Parameter = ParameterBuilder::new()
        .name(name)
        .parameter_in(at)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .schema(Some(schema))
        .build();
    params.push(param);
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    /// docs/api.md's "What each route answers" is the served document's: every operation, its
    /// success and error statuses and the headers it reads.
    #[test]
    fn the_docs_list_what_each_route_answers() {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let mut table = String::from(
            "| route | success | errors | headers read |\n| --- | --- | --- | --- |\n",
        );
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "put", "post", "delete", "patch"] {
                let Some(op) = item.get(method) else {
                    continue;
                };
                let statuses: Vec<u16> = op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter_map(|s| s.parse().ok())
                    .collect();
                let join = |errors: bool| {
                    let mut picked: Vec<u16> = statuses
                        .iter()
                        .copied()
                        .filter(|s| (*s >= 400) == errors)
                        .collect();
                    picked.sort_unstable();
                    picked
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let headers: Vec<String> = op["parameters"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter(|p| p["in"] == "header")
                    .map(|p| {
                        let optional = if p["required"] == true {
                            ""
                        } else {
                            " (optional)"
                        };
                        format!("`{}`{optional}", p["name"].as_str().unwrap())
                    })
                    .collect();
                table.push_str(&format!(
                    "| `{} {path}` | {} | {} | {} |\n",
                    method.to_uppercase(),
                    join(false),
                    join(true),
                    headers.join(", ")
                ));
            }
        }
        crate::http::codes::tests::docs_block("routes", &table);
    }

    /// The limits written into the schemas (utoipa takes only literals) are the ones the
    /// handlers check: a changed constant fails here until the spec says the same.
    #[test]
    fn schema_limits_are_the_handlers_limits() {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let schema = |name: &str| doc["components"]["schemas"][name].clone();
        let param = |path: &str, method: &str, name: &str| -> Value {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))["schema"]
                .clone()
        };
        let qty_max = json!(kassa_domain::LINE_QTY_MAX);
        let lines_max = json!(crate::stock::LINES_MAX);
        let checks: Vec<(&str, Value, Value)> = vec![
            (
                "Sku pattern",
                schema("Sku")["pattern"].clone(),
                json!(kassa_domain::Sku::PATTERN),
            ),
            (
                "Username pattern",
                schema("Username")["pattern"].clone(),
                json!(kassa_domain::Username::PATTERN),
            ),
            (
                "sku path pattern",
                param("/v1/stock/{sku}", "get", "sku")["pattern"].clone(),
                json!(kassa_domain::Sku::PATTERN),
            ),
            (
                "LineRequest.qty",
                schema("LineRequest")["properties"]["qty"]["maximum"].clone(),
                qty_max.clone(),
            ),
            (
                "OrderLineRequest.qty",
                schema("OrderLineRequest")["properties"]["qty"]["maximum"].clone(),
                qty_max.clone(),
            ),
            (
                "CartLineInput.qty",
                schema("CartLineInput")["properties"]["qty"]["maximum"].clone(),
                qty_max.clone(),
            ),
            (
                "OfflineLine.qty",
                schema("OfflineLine")["properties"]["qty"]["maximum"].clone(),
                qty_max,
            ),
            (
                "CreateOrder.lines",
                schema("CreateOrder")["properties"]["lines"]["maxItems"].clone(),
                lines_max.clone(),
            ),
            (
                "ReservationRequest.lines",
                schema("ReservationRequest")["properties"]["lines"]["maxItems"].clone(),
                lines_max.clone(),
            ),
            (
                "OfflineOrder.lines",
                schema("OfflineOrder")["properties"]["lines"]["maxItems"].clone(),
                lines_max,
            ),
            (
                "ReservationRequest.ttl_s",
                schema("ReservationRequest")["properties"]["ttl_s"]["maximum"].clone(),
                json!(crate::stock::RESERVATION_TTL_S_MAX),
            ),
            (
                "CartLinesInput.lines",
                schema("CartLinesInput")["properties"]["lines"]["maxItems"].clone(),
                json!(crate::carts::CART_LINES_MAX),
            ),
            (
                "CreateRefund.reason",
                schema("CreateRefund")["properties"]["reason"]["maxLength"].clone(),
                json!(crate::payments::refunds::REASON_CHARS_MAX),
            ),
            (
                "OfflineOrder.receipt_no",
                schema("OfflineOrder")["properties"]["receipt_no"]["maxLength"].clone(),
                json!(kassa_domain::api::SYNC_TEXT_CHARS_MAX),
            ),
            (
                "search page",
                param("/v1/search", "get", "page")["maximum"].clone(),
                json!(crate::search::PAGE_MAX),
            ),
            (
                "search page_size",
                param("/v1/search", "get", "page_size")["maximum"].clone(),
                json!(crate::search::PAGE_SIZE_MAX),
            ),
            (
                "search q",
                param("/v1/search", "get", "q")["maxLength"].clone(),
                json!(crate::search::Q_CHARS_MAX),
            ),
            (
                "stock limit",
                param("/v1/stock", "get", "limit")["maximum"].clone(),
                json!(kassa_domain::api::STOCK_PAGE_LIMIT_MAX),
            ),
            (
                "stock after",
                param("/v1/stock", "get", "after")["maxLength"].clone(),
                json!(crate::stock::AFTER_CHARS_MAX),
            ),
            (
                "X-Cart-Token",
                param("/v1/carts/{id}", "get", "X-Cart-Token")["maxLength"].clone(),
                json!(super::CART_TOKEN_CHARS_MAX),
            ),
        ];
        for (what, found, wanted) in checks {
            assert_eq!(
                found, wanted,
                "{what}: the spec says {found}, the handler {wanted}"
            );
        }
    }
}
