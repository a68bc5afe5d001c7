//! The role matrix: every route Central serves (as listed by its OpenAPI document) has a role
//! decision here, and every role gets exactly 401, 403 or success as decided.

use std::collections::BTreeSet;

use kassa_domain::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::catalog::{create, ean, product_body};
use crate::helpers::TestApp;
use crate::story;

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
enum Access {
    Public,
    Roles(&'static [Role]),
    /// Anonymous callers (guest carts) and every role (user carts); which cart opens is decided
    /// by its token or owner, not by role (see `carts.rs`).
    CartHolder,
}

const ALL: &[Role] = &[Role::Admin, Role::Manager, Role::Cashier, Role::Customer];
const STAFF: &[Role] = &[Role::Admin, Role::Manager, Role::Cashier];
const MANAGERS: &[Role] = &[Role::Admin, Role::Manager];
const ADMINS: &[Role] = &[Role::Admin];

/// The decisions. A route missing here fails `every_route_has_a_role_decision`.
const MATRIX: &[(&str, &str, Access)] = &[
    ("GET", "/health", Access::Public),
    ("GET", "/ready", Access::Public),
    ("GET", "/metrics", Access::Public),
    ("POST", "/v1/auth/login", Access::Public),
    ("POST", "/v1/auth/refresh", Access::Public),
    ("POST", "/v1/auth/logout", Access::Roles(ALL)),
    ("POST", "/v1/users", Access::Roles(ADMINS)),
    ("POST", "/v1/registers", Access::Roles(MANAGERS)),
    ("GET", "/v1/products", Access::Roles(ALL)),
    ("POST", "/v1/products", Access::Roles(MANAGERS)),
    ("GET", "/v1/products/{id}", Access::Roles(ALL)),
    ("PUT", "/v1/products/{id}", Access::Roles(MANAGERS)),
    ("GET", "/v1/locations", Access::Roles(STAFF)),
    ("POST", "/v1/locations", Access::Roles(ADMINS)),
    ("POST", "/v1/carts", Access::CartHolder),
    ("GET", "/v1/carts/{id}", Access::CartHolder),
    ("PUT", "/v1/carts/{id}", Access::CartHolder),
    ("POST", "/v1/carts/{id}/merge", Access::Roles(ALL)),
];

story!(every_route_answers_each_role_as_decided);

#[tokio::test]
async fn every_route_has_a_role_decision() {
    let doc = kassa_central::http::openapi();
    let served: BTreeSet<(String, String)> = doc
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            let mut methods = Vec::new();
            for (method, op) in [("GET", &item.get), ("POST", &item.post), ("PUT", &item.put), ("DELETE", &item.delete), ("PATCH", &item.patch)] {
                if op.is_some() {
                    methods.push((method.to_owned(), path.clone()));
                }
            }
            methods
        })
        .collect();
    let decided: BTreeSet<(String, String)> =
        MATRIX.iter().map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())).collect();
    let undecided: Vec<_> = served.difference(&decided).collect();
    assert!(undecided.is_empty(), "routes without a role decision in tests/api/roles.rs: {undecided:?}");
    let stale: Vec<_> = decided.difference(&served).collect();
    assert!(stale.is_empty(), "decisions for routes that are not served: {stale:?}");
}

/// A request that succeeds when the caller is allowed, built fresh for each call.
async fn request(app: &TestApp, method: &str, path: &str, product: Uuid) -> (String, Option<Value>, Option<String>) {
    let unique = Uuid::new_v4().simple().to_string();
    let n = u64::from_str_radix(&unique[..8], 16).unwrap();
    match (method, path) {
        ("POST", "/v1/auth/login") => (path.into(), Some(json!({ "username": "probe", "password": "probe-pass-1" })), None),
        ("POST", "/v1/auth/refresh") => {
            let tokens = app.login("probe", "probe-pass-1").await;
            (path.into(), Some(json!({ "refresh_token": tokens.refresh_token })), None)
        }
        ("POST", "/v1/users") => (
            path.into(),
            Some(json!({ "username": format!("u{}", &unique[..10]), "password": "long enough pw", "role": "customer" })),
            None,
        ),
        ("POST", "/v1/registers") => (path.into(), Some(json!({ "location": "STORE-1", "name": "Till" })), None),
        ("POST", "/v1/products") => (path.into(), Some(product_body(&format!("S-{unique}"), &ean(n), "1.00")), None),
        ("POST", "/v1/locations") => (path.into(), Some(json!({ "code": format!("L-{}", &unique[..8]), "name": "Loc" })), None),
        ("PUT", "/v1/products/{id}") => {
            let current = kassa_central::store::catalog::get(&app.state.db, product).await.unwrap().unwrap();
            let body = product_body(current.sku.as_ref(), current.barcodes[0].as_ref(), "1.00");
            (format!("/v1/products/{product}"), Some(body), Some(format!("\"{}\"", current.version)))
        }
        ("GET", "/v1/products/{id}") => (format!("/v1/products/{product}"), None, None),
        _ => (path.into(), if method == "POST" { Some(json!({})) } else { None }, None),
    }
}

/// A request on one cart: the URL of a fresh guest cart and its token, which opens it to any
/// caller (`None` for routes not on one cart).
async fn guest_cart_request(app: &TestApp, path: &str) -> Option<(String, Option<Value>, Option<String>, Option<String>)> {
    let suffix = path.strip_prefix("/v1/carts/{id}")?;
    let created: Value = app.client.post(app.url("/v1/carts")).json(&json!({})).send().await.unwrap().json().await.unwrap();
    let url = format!("/v1/carts/{}{suffix}", created["id"].as_str().unwrap());
    let body = if suffix.is_empty() { Some(json!({ "lines": [] })) } else { None };
    Some((url, body, None, created["cart_token"].as_str().map(str::to_owned)))
}

async fn every_route_answers_each_role_as_decided(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let hash = kassa_central::auth::hash_password("probe-pass-1".into()).await.unwrap();
    kassa_central::store::users::insert(&app.state.db, &"probe".parse().unwrap(), &hash, Role::Customer).await.unwrap();
    assert_eq!(app.post("/v1/locations", admin.token(), &json!({ "code": "STORE-1", "name": "One" })).await.status(), 201);
    let product = create(&app, admin.token(), &product_body("SKU-MATRIX", &ean(1), "1.00")).await.id;
    let users: Vec<(Role, uuid::Uuid)> = {
        let mut v = Vec::new();
        for role in ALL {
            v.push((*role, app.user(*role).await.tokens.role_user_id(&app).await));
        }
        v
    };

    for (method, path, access) in MATRIX {
        for caller in std::iter::once(None).chain(users.iter().map(Some)) {
            // A fresh session per call: logout must not end the next call's session.
            let token = match caller {
                Some((role, user_id)) => {
                    Some(app.state.auth.start_session(&app.state.db, *user_id, *role, None).await.unwrap().access_token)
                }
                None => None,
            };
            let (url, body, if_match, cart_token) = match guest_cart_request(&app, path).await {
                Some(cart_request) => cart_request,
                None => {
                    let (url, body, if_match) = request(&app, method, path, product).await;
                    (url, body, if_match, None)
                }
            };
            let mut req = app.client.request(method.parse().unwrap(), app.url(&url));
            if let Some(token) = &token {
                req = req.bearer_auth(token);
            }
            if let Some(body) = &body {
                req = req.json(body);
            }
            if let Some(tag) = if_match {
                req = req.header("if-match", tag);
            }
            if let Some(cart_token) = cart_token {
                req = req.header("x-cart-token", cart_token);
            }
            let status = req.send().await.unwrap().status().as_u16();
            let who = caller.map_or("anonymous", |(role, _)| role.as_str());
            let allowed = match (access, caller) {
                (Access::Public | Access::CartHolder, _) => true,
                (Access::Roles(_), None) => {
                    assert_eq!(status, 401, "{method} {path} as {who}");
                    continue;
                }
                (Access::Roles(roles), Some((role, _))) => roles.contains(role),
            };
            if allowed {
                assert!((200..300).contains(&status), "{method} {path} as {who} must succeed, got {status}");
            } else {
                assert_eq!(status, 403, "{method} {path} as {who}");
            }
        }
    }
}

trait UserIdOf {
    async fn role_user_id(&self, app: &TestApp) -> uuid::Uuid;
}

impl UserIdOf for kassa_domain::api::TokenResponse {
    /// The user behind a token, read back through the service that issued it.
    async fn role_user_id(&self, app: &TestApp) -> uuid::Uuid {
        app.state.auth.authenticate(&app.state.db, &self.access_token).await.unwrap().user_id
    }
}
