//! Completes the generated OpenAPI document with what routes share, so no handler repeats it: the
//! path parameters named in each template, the headers a route reads (Idempotency-Key, If-Match,
//! Stripe-Signature), and every error status a route can answer with the one error body.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use kassa_domain::{IdempotencyKey, Sku, Username};
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
    ("post", "/v1/webhooks/payments", "Stripe-Signature", true),
];

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
const IF_MATCH: &str = "If-Match";

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
        // A guest may use a cart without signing in.
        op.security = Some(if path.starts_with("/v1/carts") {
            vec![SecurityRequirement::default(), bearer]
        } else {
            vec![bearer]
        });
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
        let answer = ResponseBuilder::new()
            .description(
                StatusCode::from_u16(status).map_or("", |s| s.canonical_reason().unwrap_or("")),
            )
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
/// extractors and middleware answer (see `error.rs` for each status's codes).
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
        "sku" => text.min_length(Some(1)).max_length(Some(Sku::LEN_MAX)),
        "username" => text.min_length(Some(1)).max_length(Some(Username::LEN_MAX)),
        _ => text.format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
    }
    .into()
}

fn header_schema(name: &str) -> Schema {
    let text = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1));
    match name {
        IDEMPOTENCY_KEY => text.max_length(Some(IdempotencyKey::LEN_MAX)),
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
        if at == ParameterIn::Path {
            p.required = Required::True;
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
