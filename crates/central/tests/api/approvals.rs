//! Manager approvals Central verifies (issue 10, point 8): a discount above the cashier's limit
//! needs an approval Central granted to a manager at that till, used once; offline, one the
//! register signed with its approval key. Online a bad approval is a 422 with a code; an
//! offline sale that already happened stands and is flagged for the manager.

use hmac::{Hmac, Mac};
use kassa_domain::api::Order;
use kassa_domain::api::RegisterCreated;
use kassa_domain::approval::{offline_approval_message, GrantedApproval, SaleSettings};
use kassa_domain::{OrderStatus, Role};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::checkout::{count, order, seed};
use crate::helpers::{error_body, TestApp};
use crate::story;
use crate::sync::{offline_order, sign_in_at, sync};

story!(
    a_discount_above_the_limit_needs_an_approval_granted_at_that_till,
    the_discount_limit_is_a_central_setting,
    offline_sales_with_approvals_that_do_not_hold_up_stand_and_are_flagged,
    an_approval_past_its_validity_is_refused_as_expired,
    an_approved_full_discount_sold_online_completes_with_nothing_to_pay,
);

/// A paired register and its credential.
pub async fn pair(app: &TestApp, admin: &str, name: &str) -> RegisterCreated {
    let created = app
        .post(
            "/v1/registers",
            admin,
            &json!({ "location": "STORE-1", "name": name }),
        )
        .await;
    assert_eq!(created.status(), 201);
    created.json().await.unwrap()
}

async fn grant(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/v1/approvals", token, &json!({})).await
}

/// Four units of SKU-1 (10.00) with `discount` off.
fn discounted(discount: &str, approval: Option<Value>, by: Option<&str>) -> Value {
    let mut line = json!({ "sku": "SKU-1", "qty": 4,
        "discount": { "amount": discount, "currency": "EUR" } });
    if let Some(a) = approval {
        line["discount_approval"] = a;
    }
    if let Some(by) = by {
        line["discount_approved_by"] = json!(by);
    }
    json!({ "location": "STORE-1", "lines": [line] })
}

async fn a_discount_above_the_limit_needs_an_approval_granted_at_that_till(app: TestApp) {
    let admin = seed(&app, 100).await;
    let till = pair(&app, &admin, "Till 1").await;
    let other = pair(&app, &admin, "Till 2").await;
    let (_, cashier) = sign_in_at(&app, &till, Role::Cashier).await;
    let (manager_name, manager) = sign_in_at(&app, &till, Role::Manager).await;
    let key = || Uuid::new_v4().to_string();

    // Within the limit (10 % of 10.00): no approval needed.
    assert_eq!(
        order(&app, &cashier, &key(), &discounted("1.00", None, None))
            .await
            .status(),
        201
    );
    // Above it: none, a made-up approver, a made-up approval.
    error_body(
        order(&app, &cashier, &key(), &discounted("5.00", None, None)).await,
        422,
        "approval_required",
    )
    .await;
    error_body(
        order(
            &app,
            &cashier,
            &key(),
            &discounted("5.00", None, Some(&manager_name)),
        )
        .await,
        422,
        "approval_required",
    )
    .await;
    let made_up = json!({ "id": Uuid::now_v7() });
    error_body(
        order(
            &app,
            &cashier,
            &key(),
            &discounted("5.00", Some(made_up), None),
        )
        .await,
        422,
        "approval_unknown",
    )
    .await;
    // A cashier cannot approve; a manager not at a till cannot either.
    error_body(grant(&app, &cashier).await, 403, "forbidden").await;
    let back_office = app.user(Role::Manager).await;
    error_body(
        grant(&app, back_office.token()).await,
        403,
        "not_a_register",
    )
    .await;

    let granted: GrantedApproval = grant(&app, &manager).await.json().await.unwrap();
    assert_eq!(granted.register_id, till.register_id);
    let approval = json!({ "id": granted.id });
    // Named for someone else: refused, and the approval stays unused.
    error_body(
        order(
            &app,
            &cashier,
            &key(),
            &discounted("5.00", Some(approval.clone()), Some("admin")),
        )
        .await,
        422,
        "approver_mismatch",
    )
    .await;
    let retry_key = key();
    let body = discounted("5.00", Some(approval.clone()), Some(&manager_name));
    assert_eq!(order(&app, &cashier, &retry_key, &body).await.status(), 201);
    // The same request again is a replay, not a second use.
    assert_eq!(order(&app, &cashier, &retry_key, &body).await.status(), 201);
    error_body(
        order(
            &app,
            &cashier,
            &key(),
            &discounted("5.00", Some(approval), None),
        )
        .await,
        422,
        "approval_used",
    )
    .await;
    // An approval from another till does not travel.
    let (_, other_manager) = sign_in_at(&app, &other, Role::Manager).await;
    let elsewhere: GrantedApproval = grant(&app, &other_manager).await.json().await.unwrap();
    error_body(
        order(
            &app,
            &cashier,
            &key(),
            &discounted("5.00", Some(json!({ "id": elsewhere.id })), None),
        )
        .await,
        422,
        "wrong_register",
    )
    .await;
    // A manager selling gives the discount themselves.
    assert_eq!(
        order(&app, &manager, &key(), &discounted("5.00", None, None))
            .await
            .status(),
        201
    );
}

async fn the_discount_limit_is_a_central_setting(app: TestApp) {
    let admin = seed(&app, 100).await;
    let till = pair(&app, &admin, "Till 1").await;
    let (_, cashier) = sign_in_at(&app, &till, Role::Cashier).await;
    let settings: SaleSettings = app
        .get("/v1/settings/sale", &cashier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(settings.discount_limit_percent, 10);
    let raise = json!({ "discount_limit_percent": 50 });
    error_body(
        app.client
            .put(app.url("/v1/settings/sale"))
            .bearer_auth(&cashier)
            .json(&raise)
            .send()
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;
    let put = |body: Value| {
        app.client
            .put(app.url("/v1/settings/sale"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    error_body(
        put(json!({ "discount_limit_percent": 101 })).await.unwrap(),
        422,
        "invalid_discount_limit",
    )
    .await;
    assert_eq!(put(raise).await.unwrap().status(), 200);
    let settings: SaleSettings = app
        .get("/v1/settings/sale", &cashier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(settings.discount_limit_percent, 50);
    let body = discounted("4.00", None, None);
    assert_eq!(
        order(&app, &cashier, "within-50", &body).await.status(),
        201
    );
}

/// The register's signature over an offline approval, with the key from `credential`.
fn sign(
    credential: &str,
    register: Uuid,
    id: Uuid,
    manager: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> String {
    let mut key = Hmac::<Sha256>::new_from_slice(credential.as_bytes()).unwrap();
    key.update(kassa_domain::approval::APPROVAL_KEY_CONTEXT.as_bytes());
    let key = key.finalize().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(offline_approval_message(register, id, manager, at).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// An offline sale of 4 × SKU-1 (10.00) with 5.00 off, approved as `approval` says.
fn offline_discounted(approval: Option<Value>, by: Option<&str>) -> Value {
    let mut sale = offline_order(Uuid::now_v7(), &[("SKU-1", 4, "2.50")], "5.00");
    sale["lines"][0]["discount"] = json!({ "amount": "5.00", "currency": "EUR" });
    if let Some(a) = approval {
        sale["lines"][0]["discount_approval"] = a;
    }
    if let Some(by) = by {
        sale["lines"][0]["discount_approved_by"] = json!(by);
    }
    sale
}

async fn offline_sales_with_approvals_that_do_not_hold_up_stand_and_are_flagged(app: TestApp) {
    let admin = seed(&app, 100).await;
    let till = pair(&app, &admin, "Till 1").await;
    let (_, cashier) = sign_in_at(&app, &till, Role::Cashier).await;
    let manager = app.user(Role::Manager).await.username;
    let a_cashier = app.user(Role::Cashier).await.username;
    let at = chrono::Utc::now();
    let signed = |id: Uuid, who: &str, credential: &str| {
        json!({ "id": id, "offline": { "manager": who, "approved_at": at,
            "signature": sign(credential, till.register_id, id, who, at) } })
    };
    let good = Uuid::now_v7();
    let sales = vec![
        offline_discounted(
            Some(signed(good, &manager, &till.credential)),
            Some(&manager),
        ),
        offline_discounted(
            Some(signed(good, &manager, &till.credential)),
            Some(&manager),
        ),
        offline_discounted(
            Some(signed(Uuid::now_v7(), &manager, "not the credential")),
            None,
        ),
        offline_discounted(
            Some(signed(Uuid::now_v7(), &a_cashier, &till.credential)),
            None,
        ),
        offline_discounted(None, Some(&manager)),
    ];
    let (status, body) = sync(&app, &cashier, &sales).await;
    assert_eq!(status, 200);
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    for result in parsed["results"].as_array().unwrap() {
        assert_eq!(result["outcome"], "accepted", "the sales stand: {result}");
    }
    let flags: Vec<kassa_domain::approval::ApprovalFlag> = app
        .get("/v1/approvals/flags", &admin)
        .await
        .json()
        .await
        .unwrap();
    let mut reasons: Vec<&str> = flags.iter().map(|f| f.reason.as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "approval_required",
            "approval_used",
            "bad_signature",
            "not_a_manager"
        ]
    );
    let first = sales[0]["id"].as_str().unwrap();
    assert!(
        flags.iter().all(|f| f.order_id.to_string() != first),
        "the good approval holds"
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM events WHERE type = 'order.approval_flagged'"
        )
        .await,
        4
    );
    // A resend of the batch replays: nothing is flagged twice.
    let (status, again) = sync(&app, &cashier, &sales).await;
    assert_eq!((status, again), (200, body));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM approval_flags").await, 4);
    error_body(
        app.get("/v1/approvals/flags", &cashier).await,
        403,
        "forbidden",
    )
    .await;
}

async fn an_approval_past_its_validity_is_refused_as_expired(app: TestApp) {
    let admin = seed(&app, 100).await;
    let till = pair(&app, &admin, "Till 1").await;
    let (_, cashier) = sign_in_at(&app, &till, Role::Cashier).await;
    let (manager_name, manager) = sign_in_at(&app, &till, Role::Manager).await;
    let granted: GrantedApproval = grant(&app, &manager).await.json().await.unwrap();
    // The customer hesitated past the approval's validity.
    let past = chrono::Utc::now().timestamp_millis() - 1;
    sqlx::query(&format!(
        "UPDATE approvals SET expires_at = {past} WHERE id = '{}'",
        granted.id
    ))
    .execute(app.state.db.pool())
    .await
    .unwrap();
    let body = discounted(
        "5.00",
        Some(json!({ "id": granted.id })),
        Some(&manager_name),
    );
    error_body(
        order(&app, &cashier, &Uuid::new_v4().to_string(), &body).await,
        422,
        "approval_expired",
    )
    .await;
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT COUNT(*) FROM approvals WHERE id = '{}' AND used_at IS NULL",
                granted.id
            )
        )
        .await,
        1,
        "a refused approval is not used up"
    );
    // A fresh one from the same manager is taken.
    let fresh: GrantedApproval = grant(&app, &manager).await.json().await.unwrap();
    let body = discounted("5.00", Some(json!({ "id": fresh.id })), Some(&manager_name));
    assert_eq!(
        order(&app, &cashier, &Uuid::new_v4().to_string(), &body)
            .await
            .status(),
        201
    );
}

async fn an_approved_full_discount_sold_online_completes_with_nothing_to_pay(app: TestApp) {
    let admin = seed(&app, 100).await;
    let till = pair(&app, &admin, "Till 1").await;
    let (_, cashier) = sign_in_at(&app, &till, Role::Cashier).await;
    let (manager_name, manager) = sign_in_at(&app, &till, Role::Manager).await;
    for method in ["cash", "card"] {
        let granted: GrantedApproval = grant(&app, &manager).await.json().await.unwrap();
        // 100 % off the four units (10.00).
        let body = discounted(
            "10.00",
            Some(json!({ "id": granted.id })),
            Some(&manager_name),
        );
        let created = order(&app, &cashier, &Uuid::new_v4().to_string(), &body).await;
        assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
        let created: Order = created.json().await.unwrap();
        assert_eq!(created.totals.total.to_string(), "0.00 EUR");
        let zero = json!({ "amount": "0.00", "currency": "EUR" });
        let nothing = match method {
            "cash" => json!({ "method": "cash", "amount": zero, "tendered": zero }),
            _ => json!({ "method": "card", "amount": zero, "payment_method": "pm_card_visa" }),
        };
        let paid = app
            .client
            .post(app.url(&format!("/v1/orders/{}/payments", created.id)))
            .bearer_auth(&cashier)
            .header("idempotency-key", format!("free-{method}"))
            .json(&nothing)
            .send()
            .await
            .unwrap();
        assert_eq!(
            paid.status(),
            201,
            "{method}: {}",
            paid.text().await.unwrap()
        );
        let after: Order = app
            .get(&format!("/v1/orders/{}", created.id), &cashier)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(after.status, OrderStatus::Paid, "{method}");
        assert!(
            app.sim
                .as_ref()
                .unwrap()
                .intents_of_order(&created.id.to_string())
                .is_empty(),
            "nothing to charge"
        );
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM payments").await, 0);
    let level: kassa_domain::api::StockLevel = app
        .get("/v1/stock/SKU-1?location=STORE-1", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (level.on_hand, level.reserved),
        (92, 0),
        "both sales took their stock"
    );
}
