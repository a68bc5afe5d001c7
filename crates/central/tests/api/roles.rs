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
    /// Anonymous callers (browsing the catalog) and these roles.
    Browse(&'static [Role]),
    /// Anonymous callers (guest carts) and every user role (user carts; not a register's device
    /// session); which cart opens is decided by its token or owner, not by role (see `carts.rs`).
    CartHolder,
}

const ALL: &[Role] = &[Role::Admin, Role::Manager, Role::Cashier, Role::Customer];
const STAFF: &[Role] = &[Role::Admin, Role::Manager, Role::Cashier];
/// Every user role and a register's device session (catalog reads).
const READERS: &[Role] = &[
    Role::Admin,
    Role::Manager,
    Role::Cashier,
    Role::Customer,
    Role::Register,
];
/// Staff and a register's device session (stock reads, the recommendations feed, sync).
const STAFF_AND_TILLS: &[Role] = &[Role::Admin, Role::Manager, Role::Cashier, Role::Register];
/// Who the matrix calls as: every user role, and a register's device session.
const CALLERS: &[Role] = READERS;
const MANAGERS: &[Role] = &[Role::Admin, Role::Manager];
/// Who may hold stock leases: managers and a register's device session (for itself).
const LEASERS: &[Role] = &[Role::Admin, Role::Manager, Role::Register];
const ADMINS: &[Role] = &[Role::Admin];

/// The decisions. A route missing here fails `every_route_has_a_role_decision`.
const MATRIX: &[(&str, &str, Access)] = &[
    ("GET", "/health", Access::Public),
    ("GET", "/ready", Access::Public),
    ("GET", "/metrics", Access::Public),
    ("POST", "/v1/auth/login", Access::Public),
    ("POST", "/v1/auth/device", Access::Public),
    ("POST", "/v1/auth/refresh", Access::Public),
    ("POST", "/v1/auth/logout", Access::Roles(READERS)),
    ("POST", "/v1/users", Access::Roles(ADMINS)),
    // On a cashier here; whose PIN a manager may set is in staff.rs.
    ("PUT", "/v1/users/{username}/pin", Access::Roles(MANAGERS)),
    ("POST", "/v1/registers", Access::Roles(MANAGERS)),
    ("GET", "/v1/products", Access::Browse(READERS)),
    ("POST", "/v1/products", Access::Roles(MANAGERS)),
    ("GET", "/v1/products/{id}", Access::Browse(READERS)),
    ("PUT", "/v1/products/{id}", Access::Roles(MANAGERS)),
    // A till's device session reads its store's time zone here.
    ("GET", "/v1/locations", Access::Roles(STAFF_AND_TILLS)),
    ("POST", "/v1/locations", Access::Roles(ADMINS)),
    ("GET", "/v1/stock/{sku}", Access::Roles(STAFF_AND_TILLS)),
    ("GET", "/v1/stock", Access::Roles(STAFF_AND_TILLS)),
    ("GET", "/v1/stock/discrepancies", Access::Roles(MANAGERS)),
    (
        "POST",
        "/v1/stock/discrepancies/{id}/resolve",
        Access::Roles(MANAGERS),
    ),
    ("POST", "/v1/stock/adjustments", Access::Roles(MANAGERS)),
    ("PUT", "/v1/stock/{sku}/threshold", Access::Roles(MANAGERS)),
    ("POST", "/v1/reservations", Access::Roles(ALL)),
    ("POST", "/v1/stock/leases", Access::Roles(LEASERS)),
    ("GET", "/v1/stock/leases", Access::Roles(LEASERS)),
    ("GET", "/v1/stock/leases/{id}", Access::Roles(LEASERS)),
    ("PUT", "/v1/stock/leases/{id}", Access::Roles(LEASERS)),
    ("DELETE", "/v1/stock/leases/{id}", Access::Roles(LEASERS)),
    ("GET", "/v1/settings/leases", Access::Roles(STAFF_AND_TILLS)),
    ("PUT", "/v1/settings/leases", Access::Roles(MANAGERS)),
    ("PUT", "/v1/settings/cash-rounding", Access::Roles(MANAGERS)),
    ("DELETE", "/v1/reservations/{id}", Access::Roles(ALL)),
    ("POST", "/v1/orders", Access::Roles(ALL)),
    ("GET", "/v1/orders", Access::Roles(ALL)),
    ("GET", "/v1/orders/{id}", Access::Roles(ALL)),
    ("POST", "/v1/orders/{id}/fulfill", Access::Roles(STAFF)),
    ("POST", "/v1/orders/{id}/cancel", Access::Roles(ALL)),
    // Customers pay their own orders by card; cash is staff-only (checked in the handler).
    ("POST", "/v1/orders/{id}/payments", Access::Roles(ALL)),
    ("GET", "/v1/orders/{id}/payments", Access::Roles(ALL)),
    ("POST", "/v1/orders/{id}/refunds", Access::Roles(MANAGERS)),
    // A till's device session reads them to settle a refund it asked for.
    (
        "GET",
        "/v1/orders/{id}/refunds",
        Access::Roles(STAFF_AND_TILLS),
    ),
    // The processor's signature is the credential (see payments.rs for forged ones).
    ("POST", "/v1/webhooks/payments", Access::Public),
    ("POST", "/v1/carts", Access::CartHolder),
    ("GET", "/v1/carts/{id}", Access::CartHolder),
    ("PUT", "/v1/carts/{id}", Access::CartHolder),
    ("POST", "/v1/carts/{id}/merge", Access::Roles(ALL)),
    (
        "GET",
        "/v1/recommendations/{product_id}",
        Access::Browse(ALL),
    ),
    ("GET", "/v1/recommendations", Access::Roles(STAFF_AND_TILLS)),
    ("GET", "/v1/search", Access::Browse(ALL)),
    // Staff, and only in a session signed in at a register (else 403 `not_a_register`, see
    // sync.rs); the probe signs in at one.
    ("POST", "/v1/sync/orders", Access::Roles(STAFF_AND_TILLS)),
    // The same: a Z report comes from a register (see shifts.rs).
    ("POST", "/v1/sync/shifts", Access::Roles(STAFF_AND_TILLS)),
    ("GET", "/v1/shifts", Access::Roles(MANAGERS)),
    // A manager's own session at a till (elsewhere 403 `not_a_register`, see approvals.rs).
    ("POST", "/v1/approvals", Access::Roles(MANAGERS)),
    ("GET", "/v1/approvals/flags", Access::Roles(MANAGERS)),
    ("GET", "/v1/settings/sale", Access::Roles(STAFF_AND_TILLS)),
    ("PUT", "/v1/settings/sale", Access::Roles(ADMINS)),
    ("GET", "/v1/admin/read-only", Access::Roles(READERS)),
    ("PUT", "/v1/admin/read-only", Access::Roles(ADMINS)),
    ("GET", "/v1/admin/features", Access::Roles(READERS)),
    ("PUT", "/v1/admin/features/{name}", Access::Roles(ADMINS)),
];

/// The routes whose probes sign in at a register.
const AT_A_REGISTER: &[&str] = &["/v1/sync/orders", "/v1/sync/shifts", "/v1/approvals"];

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
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("DELETE", &item.delete),
                ("PATCH", &item.patch),
            ] {
                if op.is_some() {
                    methods.push((method.to_owned(), path.clone()));
                }
            }
            methods
        })
        .collect();
    let decided: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let undecided: Vec<_> = served.difference(&decided).collect();
    assert!(
        undecided.is_empty(),
        "routes without a role decision in tests/api/roles.rs: {undecided:?}"
    );
    let stale: Vec<_> = decided.difference(&served).collect();
    assert!(
        stale.is_empty(),
        "decisions for routes that are not served: {stale:?}"
    );
}

/// A request that succeeds when the caller is allowed, built fresh for each call.
struct Probe {
    url: String,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

/// An order placed by `token` (or by the admin when anonymous), optionally paid in full.
async fn probe_order(app: &TestApp, token: &str, admin: &str, paid: bool) -> Uuid {
    let key = Uuid::new_v4().to_string();
    let body = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-MATRIX", "qty": 1 }] });
    let response = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let response = if response.status() == 201 {
        response
    } else {
        let key = Uuid::new_v4().to_string();
        app.client
            .post(app.url("/v1/orders"))
            .bearer_auth(admin)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap()
    };
    let order: kassa_domain::api::Order = response.json().await.unwrap();
    if paid {
        let mut tx = app.state.db.begin_write().await.unwrap();
        kassa_central::orders::record_payment(&app.state, &mut tx, order.id, order.totals.total)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    order.id
}

async fn request(
    app: &TestApp,
    method: &str,
    path: &str,
    product: Uuid,
    token: Option<&str>,
    admin: &str,
) -> Probe {
    let unique = Uuid::new_v4().simple().to_string();
    let n = u64::from_str_radix(&unique[..8], 16).unwrap();
    let plain = |url: String, body: Option<Value>| Probe {
        url,
        body,
        headers: Vec::new(),
    };
    let owner = token.unwrap_or(admin);
    match (method, path) {
        ("POST", "/v1/auth/device") => {
            let paired: kassa_domain::api::RegisterCreated = app
                .post("/v1/registers", admin, &json!({ "location": "STORE-1", "name": "Device" }))
                .await
                .json()
                .await
                .unwrap();
            let register = json!({ "id": paired.register_id, "credential": paired.credential });
            plain(path.into(), Some(json!({ "register": register })))
        }
        ("POST", "/v1/auth/login") => plain(path.into(), Some(json!({ "username": "probe", "password": "probe-pass-1" }))),
        ("POST", "/v1/auth/refresh") => {
            let tokens = app.login("probe", "probe-pass-1").await;
            plain(path.into(), Some(json!({ "refresh_token": tokens.refresh_token })))
        }
        ("POST", "/v1/users") => plain(
            path.into(),
            Some(json!({ "username": format!("u{}", &unique[..10]), "password": "long enough pw", "role": "customer" })),
        ),
        ("PUT", "/v1/users/{username}/pin") => {
            let name = format!("c{}", &unique[..10]);
            let hash = kassa_central::auth::hash_password("long enough pw".into()).await.unwrap();
            kassa_central::store::users::insert(&app.state.db, &name.parse().unwrap(), &hash, Role::Cashier)
                .await
                .unwrap();
            plain(format!("/v1/users/{name}/pin"), Some(json!({ "pin": "1234" })))
        }
        ("POST", "/v1/registers") => plain(path.into(), Some(json!({ "location": "STORE-1", "name": "Till" }))),
        ("POST", "/v1/products") => plain(path.into(), Some(product_body(&format!("S-{unique}"), &ean(n), "1.00"))),
        ("POST", "/v1/locations") => plain(path.into(), Some(json!({ "code": format!("L-{}", &unique[..8]), "name": "Loc" }))),
        ("PUT", "/v1/products/{id}") => {
            let current = kassa_central::store::catalog::get(&app.state.db, product).await.unwrap().unwrap();
            let body = product_body(current.sku.as_ref(), current.barcodes[0].as_ref(), "1.00");
            Probe {
                url: format!("/v1/products/{product}"),
                body: Some(body),
                headers: vec![("if-match", format!("\"{}\"", current.version))],
            }
        }
        ("GET", "/v1/products/{id}") => plain(format!("/v1/products/{product}"), None),
        ("GET", "/v1/recommendations/{product_id}") => plain(format!("/v1/recommendations/{product}"), None),
        ("GET", "/v1/stock/{sku}") => plain("/v1/stock/SKU-MATRIX?location=STORE-1".into(), None),
        ("GET", "/v1/stock") => plain("/v1/stock?location=STORE-1&limit=10".into(), None),
        ("POST", "/v1/stock/adjustments") => plain(
            path.into(),
            Some(json!({ "sku": "SKU-MATRIX", "location": "STORE-1", "delta": 1, "reason": "receiving" })),
        ),
        ("PUT", "/v1/stock/{sku}/threshold") => {
            plain("/v1/stock/SKU-MATRIX/threshold".into(), Some(json!({ "location": "STORE-1", "threshold": 3 })))
        }
        ("POST", "/v1/reservations") | ("POST", "/v1/orders") => Probe {
            url: path.into(),
            body: Some(json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-MATRIX", "qty": 1 }], "ttl_s": 60 })
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    if path == "/v1/orders" {
                        o.remove("ttl_s");
                    }
                    Value::Object(o)
                })
                .unwrap()),
            headers: vec![("idempotency-key", unique.clone())],
        },
        ("DELETE", "/v1/reservations/{id}") => {
            let body = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-MATRIX", "qty": 1 }], "ttl_s": 60 });
            let held: Value = app
                .client
                .post(app.url("/v1/reservations"))
                .bearer_auth(owner)
                .header("idempotency-key", unique.clone())
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            plain(format!("/v1/reservations/{}", held["id"].as_str().unwrap()), None)
        }
        ("GET", "/v1/orders/{id}") => plain(format!("/v1/orders/{}", probe_order(app, owner, admin, false).await), None),
        ("POST", "/v1/orders/{id}/cancel") => {
            plain(format!("/v1/orders/{}/cancel", probe_order(app, owner, admin, false).await), None)
        }
        ("POST", "/v1/sync/orders") => {
            let money = json!({ "amount": "1.00", "currency": "EUR" });
            let order = json!({
                "id": Uuid::now_v7(), "location": "STORE-1",
                "lines": [{ "sku": "SKU-MATRIX", "qty": 1, "unit_price": money }],
                "payments": [{ "method": "cash", "amount": money, "tendered": money }],
                "completed_at": "2026-11-30T10:00:00Z", "receipt_no": format!("R-{}", &unique[..8]),
            });
            plain(path.into(), Some(json!({ "orders": [order] })))
        }
        ("POST", "/v1/sync/shifts") => {
            let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
            let report = crate::shifts::z_report(i64::try_from(n).unwrap() + 1, "R1", day, 1, "105.00");
            plain(path.into(), Some(serde_json::to_value(report).unwrap()))
        }
        ("POST", "/v1/stock/discrepancies/{id}/resolve") => {
            let order = probe_order(app, admin, admin, true).await;
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO stock_discrepancies (id, sku, location_id, order_id, shortfall, created_at) \
                 SELECT $1, 'SKU-MATRIX', id, $2, 1, 0 FROM locations WHERE code = 'STORE-1'",
            )
            .bind(id.to_string())
            .bind(order.to_string())
            .execute(app.state.db.pool())
            .await
            .unwrap();
            plain(format!("/v1/stock/discrepancies/{id}/resolve"), Some(json!({ "note": "recounted" })))
        }
        ("POST", "/v1/orders/{id}/fulfill") => {
            plain(format!("/v1/orders/{}/fulfill", probe_order(app, admin, admin, true).await), None)
        }
        ("POST", "/v1/orders/{id}/payments") => payment_probe(app, token, owner, admin).await,
        ("GET", "/v1/orders/{id}/payments") => {
            plain(format!("/v1/orders/{}/payments", probe_order(app, owner, admin, false).await), None)
        }
        ("POST", "/v1/orders/{id}/refunds") => Probe {
            url: format!("/v1/orders/{}/refunds", probe_order(app, admin, admin, true).await),
            body: Some(json!({ "lines": [{ "sku": "SKU-MATRIX", "qty": 1 }], "reason": "probe" })),
            headers: vec![("idempotency-key", unique.clone())],
        },
        ("GET", "/v1/orders/{id}/refunds") => {
            plain(format!("/v1/orders/{}/refunds", probe_order(app, admin, admin, true).await), None)
        }
        ("POST", "/v1/webhooks/payments") => webhook_probe(&unique),
        ("POST", "/v1/stock/leases") => Probe {
            url: path.into(),
            body: Some(lease_probe_body(app, token).await),
            headers: vec![("idempotency-key", unique.clone())],
        },
        ("GET", "/v1/stock/leases") => plain(format!("{path}?register={}", probe_register(app, token).await), None),
        ("GET", "/v1/stock/leases/{id}") => plain(format!("/v1/stock/leases/{}", probe_lease(app, token, admin).await), None),
        ("PUT", "/v1/stock/leases/{id}") => {
            plain(format!("/v1/stock/leases/{}", probe_lease(app, token, admin).await), Some(json!({ "ttl_s": 60 })))
        }
        ("DELETE", "/v1/stock/leases/{id}") => plain(format!("/v1/stock/leases/{}", probe_lease(app, token, admin).await), None),
        ("GET", "/v1/settings/leases") => plain(format!("{path}?location=STORE-1"), None),
        ("PUT", "/v1/settings/leases") => plain(
            path.into(),
            Some(json!({ "location": "STORE-1", "horizon_s": 3600, "cap_percent": 25, "floor_units": 1, "top_sellers": 5 })),
        ),
        ("PUT", "/v1/settings/cash-rounding") => {
            plain(path.into(), Some(json!({ "location": "STORE-1", "cash_rounding": 0 })))
        }
        ("PUT", "/v1/settings/sale") => plain(path.into(), Some(json!({ "discount_limit_percent": 10 }))),
        // Switched off, so the probes after it still write.
        ("PUT", "/v1/admin/read-only") => plain(path.into(), Some(json!({ "enabled": false }))),
        // Switched on, so the recommendation probes still answer.
        ("PUT", "/v1/admin/features/{name}") => {
            plain("/v1/admin/features/recommendations".into(), Some(json!({ "enabled": true })))
        }
        _ => plain(path.into(), if method == "POST" { Some(json!({})) } else { None }),
    }
}

/// The register a lease probe is for: the caller's own when it is signed in at one, else the
/// register the matrix signs in at (the first paired at STORE-1).
async fn probe_register(app: &TestApp, token: Option<&str>) -> Uuid {
    if let Some(register) = match token {
        Some(t) => {
            app.state
                .auth
                .authenticate(&app.state.db, t)
                .await
                .unwrap()
                .register_id
        }
        None => None,
    } {
        return register;
    }
    let id: String = sqlx::query_scalar("SELECT id FROM registers ORDER BY created_at, id LIMIT 1")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    id.parse().unwrap()
}

async fn lease_probe_body(app: &TestApp, token: Option<&str>) -> Value {
    let register = probe_register(app, token).await;
    json!({ "location": "STORE-1", "register": register, "lines": [{ "sku": "SKU-MATRIX", "qty": 1 }], "ttl_s": 60 })
}

/// A lease of the caller's register (made by the admin, so every caller gets a fresh one).
async fn probe_lease(app: &TestApp, token: Option<&str>, admin: &str) -> Uuid {
    let body = lease_probe_body(app, token).await;
    let response = app
        .client
        .post(app.url("/v1/stock/leases"))
        .bearer_auth(admin)
        .header("idempotency-key", Uuid::new_v4().to_string())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let lease: Value = response.json().await.unwrap();
    lease["id"].as_str().unwrap().parse().unwrap()
}

/// Pays the caller's own order: cash at the till for staff, a card for customers.
async fn payment_probe(app: &TestApp, token: Option<&str>, owner: &str, admin: &str) -> Probe {
    let order_id = probe_order(app, owner, admin, false).await;
    let role = match token {
        Some(t) => Some(
            app.state
                .auth
                .authenticate(&app.state.db, t)
                .await
                .unwrap()
                .role,
        ),
        None => None,
    };
    let amount = json!({ "amount": "1.00", "currency": "EUR" });
    let body = if role == Some(Role::Customer) {
        json!({ "method": "card", "amount": amount, "payment_method": "pm_card_visa" })
    } else {
        json!({ "method": "cash", "amount": amount, "tendered": amount })
    };
    Probe {
        url: format!("/v1/orders/{order_id}/payments"),
        body: Some(body),
        headers: vec![("idempotency-key", Uuid::new_v4().to_string())],
    }
}

/// A genuinely signed processor event (one Kassa has nothing to do for).
fn webhook_probe(unique: &str) -> Probe {
    let event = json!({ "id": format!("evt_{unique}"), "type": "payment_intent.created", "created": 0,
        "data": { "object": { "object": "payment_intent", "id": "pi_probe", "status": "requires_payment_method" } } });
    let now = chrono::Utc::now().timestamp();
    let signature = kassa_payments::webhook::sign_payload(
        crate::helpers::WEBHOOK_SECRET.as_bytes(),
        now,
        event.to_string().as_bytes(),
    );
    Probe {
        url: "/v1/webhooks/payments".into(),
        body: Some(event),
        headers: vec![("stripe-signature", signature)],
    }
}

/// A request on one cart: the URL of a fresh guest cart and its token, which opens it to any
/// caller (`None` for routes not on one cart).
async fn guest_cart_request(app: &TestApp, path: &str) -> Option<Probe> {
    let suffix = path.strip_prefix("/v1/carts/{id}")?;
    let created: Value = app
        .client
        .post(app.url("/v1/carts"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("/v1/carts/{}{suffix}", created["id"].as_str().unwrap());
    let body = if suffix.is_empty() {
        Some(json!({ "lines": [] }))
    } else {
        None
    };
    let headers = created["cart_token"]
        .as_str()
        .map(|t| ("x-cart-token", t.to_owned()))
        .into_iter()
        .collect();
    Some(Probe { url, body, headers })
}

async fn every_route_answers_each_role_as_decided(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let hash = kassa_central::auth::hash_password("probe-pass-1".into())
        .await
        .unwrap();
    kassa_central::store::users::insert(
        &app.state.db,
        &"probe".parse().unwrap(),
        &hash,
        Role::Customer,
    )
    .await
    .unwrap();
    assert_eq!(
        app.post(
            "/v1/locations",
            admin.token(),
            &json!({ "code": "STORE-1", "name": "One" })
        )
        .await
        .status(),
        201
    );
    let product = create(
        &app,
        admin.token(),
        &product_body("SKU-MATRIX", &ean(1), "1.00"),
    )
    .await
    .id;
    let stocked = json!({ "sku": "SKU-MATRIX", "location": "STORE-1", "delta": 10_000, "reason": "receiving" });
    assert_eq!(
        app.post("/v1/stock/adjustments", admin.token(), &stocked)
            .await
            .status(),
        201
    );
    let register: kassa_domain::api::RegisterCreated = app
        .post(
            "/v1/registers",
            admin.token(),
            &json!({ "location": "STORE-1", "name": "Matrix till" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let users: Vec<(Role, uuid::Uuid)> = {
        let mut v = Vec::new();
        for role in CALLERS {
            // A device session's user is the manager who paired the register (here the admin).
            let user = match role {
                Role::Register => admin.tokens.role_user_id(&app).await,
                _ => app.user(*role).await.tokens.role_user_id(&app).await,
            };
            v.push((*role, user));
        }
        v
    };

    for (method, path, access) in MATRIX {
        for caller in std::iter::once(None).chain(users.iter().map(Some)) {
            let at_register = (AT_A_REGISTER.contains(path)
                || caller.is_some_and(|(role, _)| *role == Role::Register))
            .then_some(register.register_id);
            // A fresh session per call: logout must not end the next call's session.
            let token = match caller {
                Some((role, user_id)) => Some(
                    app.state
                        .auth
                        .start_session(&app.state.db, *user_id, *role, at_register)
                        .await
                        .unwrap()
                        .access_token,
                ),
                None => None,
            };
            let probe = match guest_cart_request(&app, path).await {
                Some(cart_probe) => cart_probe,
                None => {
                    // What a device may not touch is set up as the admin's (its own order, …).
                    let owner = token
                        .as_deref()
                        .filter(|_| !caller.is_some_and(|(role, _)| *role == Role::Register));
                    request(&app, method, path, product, owner, admin.token()).await
                }
            };
            let mut req = app
                .client
                .request(method.parse().unwrap(), app.url(&probe.url));
            if let Some(token) = &token {
                req = req.bearer_auth(token);
            }
            if let Some(body) = &probe.body {
                req = req.json(body);
            }
            for (name, value) in probe.headers {
                req = req.header(name, value);
            }
            let status = req.send().await.unwrap().status().as_u16();
            let who = caller.map_or("anonymous", |(role, _)| role.as_str());
            let allowed = match (access, caller) {
                // A register's device session holds no carts.
                (Access::CartHolder, Some((Role::Register, _))) => false,
                (Access::Public | Access::CartHolder | Access::Browse(_), None) => true,
                (Access::Public | Access::CartHolder, _) => true,
                (Access::Browse(roles), Some((role, _))) => roles.contains(role),
                (Access::Roles(_), None) => {
                    assert_eq!(status, 401, "{method} {path} as {who}");
                    continue;
                }
                (Access::Roles(roles), Some((role, _))) => roles.contains(role),
            };
            if allowed {
                assert!(
                    (200..300).contains(&status),
                    "{method} {path} as {who} must succeed, got {status}"
                );
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
        app.state
            .auth
            .authenticate(&app.state.db, &self.access_token)
            .await
            .unwrap()
            .user_id
    }
}
