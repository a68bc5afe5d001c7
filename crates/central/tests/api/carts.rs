//! Cart stories: guest carts opened by their token, user carts, prices kept from the time of
//! adding, validation, expiry and purge, and merging a guest cart into the user's.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup does"
)]

use std::borrow::Borrow;
use std::time::Duration;

use kassa_domain::api::{Cart, CartCreated, CartMerged};
use kassa_domain::{Currency, Money, Role};
use serde_json::{json, Value};

use crate::catalog::{create, ean, product_body};
use crate::helpers::{error_body, TestApp};
use crate::{story, story_with};
use kassa_central::Config;

story!(
    a_guest_creates_reads_and_updates_a_cart_with_its_token,
    a_cart_opens_only_for_its_token_or_its_owner,
    a_user_has_one_cart_and_gets_it_back,
    a_line_keeps_the_price_it_was_added_at,
    bad_cart_input_gets_a_clear_4xx_and_writes_nothing,
    an_expired_cart_is_gone_until_purged_and_a_user_gets_a_fresh_one,
    merging_adds_quantities_capped_by_stock_and_deletes_the_guest_cart,
    merging_into_a_user_without_a_cart_makes_one,
);

/// How a request proves it may open a cart.
#[derive(Clone, Copy)]
pub(crate) struct Key<'a> {
    pub(crate) bearer: Option<&'a str>,
    pub(crate) cart_token: Option<&'a str>,
}

pub(crate) const NOBODY: Key<'static> = Key {
    bearer: None,
    cart_token: None,
};

pub(crate) fn guest(token: &str) -> Key<'_> {
    Key {
        bearer: None,
        cart_token: Some(token),
    }
}

pub(crate) fn user(token: &str) -> Key<'_> {
    Key {
        bearer: Some(token),
        cart_token: None,
    }
}

pub(crate) async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    key: Key<'_>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method.parse().unwrap(), app.url(path));
    if let Some(token) = key.bearer {
        req = req.bearer_auth(token);
    }
    if let Some(token) = key.cart_token {
        req = req.header("x-cart-token", token);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send().await.unwrap()
}

/// Location STORE-1 and products A (2.50), B (1.20), C (0.99), all EUR; returns a manager's token.
pub(crate) async fn shop(app: &TestApp) -> String {
    let admin = app.user(Role::Admin).await;
    for code in ["STORE-1", "STORE-2"] {
        let created = app
            .post(
                "/v1/locations",
                admin.token(),
                &json!({ "code": code, "name": code }),
            )
            .await;
        assert_eq!(created.status(), 201);
    }
    let manager = app.user(Role::Manager).await;
    for (n, (sku, price)) in [("A", "2.50"), ("B", "1.20"), ("C", "0.99")]
        .into_iter()
        .enumerate()
    {
        create(
            app,
            manager.token(),
            &product_body(sku, &ean(n as u64 + 1), price),
        )
        .await;
    }
    manager.tokens.access_token
}

pub(crate) async fn new_cart(app: &TestApp, key: Key<'_>, body: &Value) -> (u16, CartCreated) {
    let response = send(app, "POST", "/v1/carts", key, Some(body)).await;
    let status = response.status().as_u16();
    assert!(
        status == 200 || status == 201,
        "creating a cart: {status} {}",
        response.text().await.unwrap()
    );
    (status, response.json().await.unwrap())
}

pub(crate) async fn new_guest_cart(app: &TestApp) -> (Cart, String) {
    let (status, created) = new_cart(app, NOBODY, &json!({})).await;
    assert_eq!(status, 201);
    (
        created.cart,
        created
            .cart_token
            .expect("a guest cart comes with its token"),
    )
}

pub(crate) fn lines(pairs: &[(&str, u32)]) -> Value {
    json!({ "lines": pairs.iter().map(|(sku, qty)| json!({ "sku": sku, "qty": qty })).collect::<Vec<_>>() })
}

pub(crate) async fn put_lines(
    app: &TestApp,
    id: uuid::Uuid,
    key: Key<'_>,
    pairs: &[(&str, u32)],
) -> Cart {
    let response = send(
        app,
        "PUT",
        &format!("/v1/carts/{id}"),
        key,
        Some(&lines(pairs)),
    )
    .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

pub(crate) async fn get_cart(app: &TestApp, id: uuid::Uuid, key: Key<'_>) -> Cart {
    let response = send(app, "GET", &format!("/v1/carts/{id}"), key, None).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

pub(crate) fn qtys(cart: &Cart) -> Vec<(String, u32, i64)> {
    cart.lines
        .iter()
        .map(|l| (l.sku.to_string(), l.qty, l.unit_price.to_minor()))
        .collect()
}

/// The cart's total is the sum of its lines (prices include tax) and its tax rows add up.
fn assert_totals_add_up(cart: &Cart) {
    let sum: i64 = cart
        .lines
        .iter()
        .map(|l| l.unit_price.to_minor() * i64::from(l.qty))
        .sum();
    assert_eq!(
        cart.totals.total,
        Money::from_minor(sum, Currency::EUR),
        "{cart:?}"
    );
    assert_eq!(cart.totals.lines.len(), cart.lines.len());
    let tax: i64 = cart.totals.taxes.iter().map(|t| t.tax.to_minor()).sum();
    assert_eq!(cart.totals.tax_total.to_minor(), tax);
}

pub(crate) async fn set_stock(app: &TestApp, sku: &str, on_hand: i64, reserved: i64) {
    let location = kassa_central::store::locations::find_by_code(&app.state.db, "STORE-1")
        .await
        .unwrap()
        .unwrap();
    sqlx::query("INSERT INTO stock (sku, location_id, on_hand, reserved, updated_at) VALUES ($1, $2, $3, $4, 0)")
        .bind(sku)
        .bind(location.id.to_string())
        .bind(on_hand)
        .bind(reserved)
        .execute(app.state.db.pool())
        .await
        .unwrap();
}

async fn product_id(app: &TestApp, sku: &str) -> String {
    sqlx::query_scalar("SELECT id FROM products WHERE sku = $1")
        .bind(sku)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
}

async fn expire(app: &TestApp, id: uuid::Uuid) {
    sqlx::query("UPDATE carts SET expires_at = $1 WHERE id = $2")
        .bind(kassa_central::store::now_ms() - 1)
        .bind(id.to_string())
        .execute(app.state.db.pool())
        .await
        .unwrap();
}

/// Also run with Redis, by `guest_carts.rs` (hence the borrow).
pub(crate) async fn a_guest_creates_reads_and_updates_a_cart_with_its_token(
    app: impl Borrow<TestApp>,
) {
    let app: &TestApp = app.borrow();
    shop(app).await;
    let (cart, token) = new_guest_cart(app).await;
    assert_eq!(token.len(), 43, "256 random bits, base64url");
    assert_eq!(
        (cart.location.as_str(), cart.lines.len(), cart.version),
        ("STORE-1", 0, 1)
    );
    assert_eq!(cart.totals.total, Money::zero(Currency::EUR));

    let response = send(
        app,
        "GET",
        &format!("/v1/carts/{}", cart.id),
        guest(&token),
        None,
    )
    .await;
    assert_eq!(response.headers()["etag"], "\"1\"");
    assert_eq!(response.json::<Cart>().await.unwrap(), cart);

    let updated = put_lines(app, cart.id, guest(&token), &[("A", 2), ("C", 3)]).await;
    assert_eq!(
        qtys(&updated),
        vec![("A".into(), 2, 250), ("C".into(), 3, 99)]
    );
    assert_eq!(updated.version, 2);
    assert!(
        updated.expires_at >= cart.expires_at,
        "a write extends the cart's life"
    );
    assert_eq!(updated.totals.total.to_minor(), 2 * 250 + 3 * 99);
    assert_totals_add_up(&updated);
    assert_eq!(updated.lines[0].name, "Product A");

    let emptied = put_lines(app, cart.id, guest(&token), &[]).await;
    assert!(emptied.lines.is_empty() && emptied.totals.total.is_zero());
    assert_eq!(get_cart(app, cart.id, guest(&token)).await, emptied);

    let at_two: CartCreated = new_cart(app, NOBODY, &json!({ "location": "STORE-2" }))
        .await
        .1;
    assert_eq!(at_two.cart.location, "STORE-2");
    assert_ne!(at_two.cart_token.unwrap(), token);
}

/// Also run with Redis, by `guest_carts.rs` (hence the borrow).
pub(crate) async fn a_cart_opens_only_for_its_token_or_its_owner(app: impl Borrow<TestApp>) {
    let app: &TestApp = app.borrow();
    shop(app).await;
    let (cart, token) = new_guest_cart(app).await;
    let (_, other_token) = new_guest_cart(app).await;
    let customer = app.user(Role::Customer).await;
    let path = format!("/v1/carts/{}", cart.id);
    let body = lines(&[("A", 1)]);
    for key in [
        NOBODY,
        guest(&other_token),
        guest("not-a-real-token"),
        user(customer.token()),
    ] {
        error_body(send(app, "GET", &path, key, None).await, 404, "not_found").await;
        error_body(
            send(app, "PUT", &path, key, Some(&body)).await,
            404,
            "not_found",
        )
        .await;
    }
    let nowhere = format!("/v1/carts/{}", uuid::Uuid::now_v7());
    error_body(
        send(app, "GET", &nowhere, guest(&token), None).await,
        404,
        "not_found",
    )
    .await;

    // A user's cart opens for its owner only, and never for a guest token.
    let (_, mine) = new_cart(app, user(customer.token()), &json!({})).await;
    assert!(mine.cart_token.is_none());
    let mine_path = format!("/v1/carts/{}", mine.cart.id);
    let someone = app.user(Role::Customer).await;
    error_body(
        send(app, "GET", &mine_path, user(someone.token()), None).await,
        404,
        "not_found",
    )
    .await;
    error_body(
        send(app, "GET", &mine_path, guest(&token), None).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        get_cart(app, mine.cart.id, user(customer.token())).await.id,
        mine.cart.id
    );

    // A bad bearer token is a 401 even with a good cart token; nothing hides behind it.
    let bad = Key {
        bearer: Some("not-a-jwt"),
        cart_token: Some(&token),
    };
    error_body(
        send(app, "GET", &path, bad, None).await,
        401,
        "unauthorized",
    )
    .await;
    // A signed-in user holding the guest token opens the guest cart too.
    let both = Key {
        bearer: Some(customer.token()),
        cart_token: Some(&token),
    };
    assert_eq!(get_cart(app, cart.id, both).await.id, cart.id);
}

async fn a_user_has_one_cart_and_gets_it_back(app: TestApp) {
    shop(&app).await;
    let cashier = app.user(Role::Cashier).await;
    let (status, first) = new_cart(
        &app,
        user(cashier.token()),
        &json!({ "location": "STORE-2" }),
    )
    .await;
    assert_eq!(status, 201);
    put_lines(&app, first.cart.id, user(cashier.token()), &[("B", 4)]).await;
    let (status, again) = new_cart(&app, user(cashier.token()), &json!({})).await;
    assert_eq!(status, 200, "the existing cart comes back");
    assert_eq!(again.cart.id, first.cart.id);
    assert_eq!(
        (again.cart.location.as_str(), qtys(&again.cart)),
        ("STORE-2", vec![("B".into(), 4, 120)])
    );

    // Concurrent first requests of another user still make one cart.
    let customer = app.user(Role::Customer).await;
    let empty = json!({});
    let creations = (0..8).map(|_| new_cart(&app, user(customer.token()), &empty));
    let ids: std::collections::HashSet<_> = futures::future::join_all(creations)
        .await
        .into_iter()
        .map(|(_, c)| c.cart.id)
        .collect();
    assert_eq!(ids.len(), 1, "one cart per user");
}

/// Also run with Redis, by `guest_carts.rs` (hence the borrow).
pub(crate) async fn a_line_keeps_the_price_it_was_added_at(app: impl Borrow<TestApp>) {
    let app: &TestApp = app.borrow();
    let manager = shop(app).await;
    let (cart, token) = new_guest_cart(app).await;
    put_lines(app, cart.id, guest(&token), &[("A", 1)]).await;

    let product = product_id(app, "A").await;
    let response = app
        .client
        .put(app.url(&format!("/v1/products/{}", product)))
        .bearer_auth(&manager)
        .header("if-match", "\"1\"")
        .json(&product_body("A", &ean(1), "3.00"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let kept = put_lines(app, cart.id, guest(&token), &[("A", 2), ("B", 1)]).await;
    assert_eq!(
        qtys(&kept),
        vec![("A".into(), 2, 250), ("B".into(), 1, 120)],
        "A keeps the price it was added at"
    );
    assert_totals_add_up(&kept);
    assert_eq!(
        qtys(&get_cart(app, cart.id, guest(&token)).await),
        qtys(&kept)
    );

    // Taken out and put back, A is added anew, at today's price.
    put_lines(app, cart.id, guest(&token), &[("B", 1)]).await;
    let readded = put_lines(app, cart.id, guest(&token), &[("B", 1), ("A", 1)]).await;
    assert_eq!(
        qtys(&readded),
        vec![("B".into(), 1, 120), ("A".into(), 1, 300)]
    );
}

/// Also run with Redis, by `guest_carts.rs` (hence the borrow).
pub(crate) async fn bad_cart_input_gets_a_clear_4xx_and_writes_nothing(app: impl Borrow<TestApp>) {
    let app: &TestApp = app.borrow();
    let manager = shop(app).await;
    let mut archived = product_body("OLD", &ean(9), "1.00");
    archived["archived"] = json!(true);
    create(app, &manager, &archived).await;
    let (cart, token) = new_guest_cart(app).await;
    let before = put_lines(app, cart.id, guest(&token), &[("A", 1)]).await;
    let path = format!("/v1/carts/{}", cart.id);
    let put = |body: Value| {
        let (app, path, token) = (&app, path.clone(), token.clone());
        async move { send(app, "PUT", &path, guest(&token), Some(&body)).await }
    };

    let body = error_body(
        put(lines(&[("A", 1), ("NOPE", 1)])).await,
        422,
        "unknown_sku",
    )
    .await;
    assert_eq!(body["error"]["details"]["sku"], "NOPE");
    assert!(body["error"]["message"].as_str().unwrap().contains("NOPE"));
    error_body(put(lines(&[("OLD", 1)])).await, 422, "unknown_sku").await;
    let body = error_body(put(lines(&[("A", 0)])).await, 422, "invalid_cart").await;
    assert_eq!(body["error"]["details"]["field"], "lines[0].qty");
    error_body(put(lines(&[("A", 10_000)])).await, 422, "invalid_cart").await;
    let body = error_body(
        put(lines(&[("A", 1), ("B", 1), ("A", 2)])).await,
        422,
        "invalid_cart",
    )
    .await;
    assert_eq!(body["error"]["details"]["field"], "lines[2].sku");
    let many: Vec<(String, u32)> = (0..101).map(|i| (format!("S{i}"), 1)).collect();
    let many: Vec<(&str, u32)> = many.iter().map(|(s, q)| (s.as_str(), *q)).collect();
    error_body(put(lines(&many)).await, 422, "invalid_cart").await;
    error_body(
        put(json!({ "lines": [{ "sku": "A", "qty": 1, "price": "0.01" }] })).await,
        422,
        "invalid_body",
    )
    .await;
    error_body(
        put(json!({ "lines": [], "coupon": "FREE" })).await,
        422,
        "invalid_body",
    )
    .await;
    error_body(
        put(json!({ "lines": [{ "sku": "A", "qty": -1 }] })).await,
        422,
        "invalid_body",
    )
    .await;
    let stale = app
        .client
        .put(app.url(&path))
        .header("x-cart-token", &token)
        .header("if-match", "\"1\"")
        .json(&lines(&[("B", 1)]))
        .send()
        .await
        .unwrap();
    let body = error_body(stale, 412, "version_conflict").await;
    assert_eq!(
        body["error"]["details"]["current"]["version"],
        before.version
    );

    assert_eq!(
        get_cart(app, cart.id, guest(&token)).await,
        before,
        "nothing was written"
    );
    let body = error_body(
        send(
            app,
            "POST",
            "/v1/carts",
            NOBODY,
            Some(&json!({ "location": "MOON" })),
        )
        .await,
        422,
        "unknown_location",
    )
    .await;
    assert_eq!(body["error"]["details"]["location"], "MOON");
    error_body(
        send(
            app,
            "POST",
            "/v1/carts",
            NOBODY,
            Some(&json!({ "owner": "me" })),
        )
        .await,
        422,
        "invalid_body",
    )
    .await;
}

async fn an_expired_cart_is_gone_until_purged_and_a_user_gets_a_fresh_one(app: TestApp) {
    shop(&app).await;
    let (cart, token) = new_guest_cart(&app).await;
    put_lines(&app, cart.id, guest(&token), &[("A", 1)]).await;
    let (live, live_token) = new_guest_cart(&app).await;
    expire(&app, cart.id).await;
    let path = format!("/v1/carts/{}", cart.id);
    error_body(
        send(&app, "GET", &path, guest(&token), None).await,
        410,
        "cart_expired",
    )
    .await;
    error_body(
        send(&app, "PUT", &path, guest(&token), Some(&lines(&[("A", 2)]))).await,
        410,
        "cart_expired",
    )
    .await;
    error_body(
        send(&app, "GET", &path, guest("someone-else"), None).await,
        404,
        "not_found",
    )
    .await;
    let customer = app.user(Role::Customer).await;
    let both = Key {
        bearer: Some(customer.token()),
        cart_token: Some(&token),
    };
    error_body(
        send(&app, "POST", &format!("{path}/merge"), both, None).await,
        410,
        "cart_expired",
    )
    .await;

    let (_, mine) = new_cart(&app, user(customer.token()), &json!({})).await;
    expire(&app, mine.cart.id).await;
    let (status, fresh) = new_cart(&app, user(customer.token()), &json!({})).await;
    assert_eq!(status, 201, "an expired user cart is replaced");
    assert_ne!(fresh.cart.id, mine.cart.id);

    assert_eq!(
        kassa_central::carts::purge_expired(&app.state.db)
            .await
            .unwrap(),
        1,
        "the replaced one is gone already"
    );
    error_body(
        send(&app, "GET", &path, guest(&token), None).await,
        404,
        "not_found",
    )
    .await;
    let orphans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cart_lines WHERE cart_id = $1")
        .bind(cart.id.to_string())
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(orphans, 0);
    assert_eq!(
        get_cart(&app, live.id, guest(&live_token)).await.id,
        live.id,
        "live carts stay"
    );
    assert_eq!(
        kassa_central::carts::purge_expired(&app.state.db)
            .await
            .unwrap(),
        0
    );
}

/// Also run with Redis, by `guest_carts.rs` (hence the borrow).
pub(crate) async fn merging_adds_quantities_capped_by_stock_and_deletes_the_guest_cart(
    app: impl Borrow<TestApp>,
) {
    let app: &TestApp = app.borrow();
    let manager = shop(app).await;
    set_stock(app, "A", 10, 2).await; // 8 available
    set_stock(app, "B", 3, 0).await; // C has no stock row: 0 available
    let customer = app.user(Role::Customer).await;
    let (_, mine) = new_cart(app, user(customer.token()), &json!({})).await;
    put_lines(
        app,
        mine.cart.id,
        user(customer.token()),
        &[("A", 5), ("C", 2)],
    )
    .await;

    // The guest adds A after its price went up; the user's older price wins for A.
    let product = product_id(app, "A").await;
    let response = app
        .client
        .put(app.url(&format!("/v1/products/{product}")))
        .bearer_auth(&manager)
        .header("if-match", "\"1\"")
        .json(&product_body("A", &ean(1), "2.70"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (guest_cart, token) = new_guest_cart(app).await;
    put_lines(
        app,
        guest_cart.id,
        guest(&token),
        &[("A", 4), ("B", 5), ("C", 1)],
    )
    .await;

    let merge = format!("/v1/carts/{}/merge", guest_cart.id);
    error_body(
        send(app, "POST", &merge, guest(&token), None).await,
        401,
        "unauthorized",
    )
    .await;
    error_body(
        send(app, "POST", &merge, user(customer.token()), None).await,
        404,
        "not_found",
    )
    .await;
    let wrong = Key {
        bearer: Some(customer.token()),
        cart_token: Some("wrong"),
    };
    error_body(
        send(app, "POST", &merge, wrong, None).await,
        404,
        "not_found",
    )
    .await;
    // The user's own cart cannot be merged away.
    let own = format!("/v1/carts/{}/merge", mine.cart.id);
    error_body(
        send(app, "POST", &own, user(customer.token()), None).await,
        404,
        "not_found",
    )
    .await;

    let both = Key {
        bearer: Some(customer.token()),
        cart_token: Some(&token),
    };
    let response = send(app, "POST", &merge, both, None).await;
    assert_eq!(response.status(), 200);
    let merged: CartMerged = response.json().await.unwrap();
    assert_eq!(merged.cart.id, mine.cart.id);
    // A: max(5, min(5 + 4, 8)) = 8 at the user's 2.50; C: the user's 2 stay though none is
    // available; B: min(5, 3) = 3 at the guest's price.
    assert_eq!(
        qtys(&merged.cart),
        vec![
            ("A".into(), 8, 250),
            ("C".into(), 2, 99),
            ("B".into(), 3, 120)
        ]
    );
    let shortfalls: Vec<_> = merged
        .shortfalls
        .iter()
        .map(|s| (s.sku.to_string(), s.wanted, s.qty))
        .collect();
    assert_eq!(
        shortfalls,
        vec![("A".into(), 9, 8), ("C".into(), 3, 2), ("B".into(), 5, 3)]
    );
    assert_totals_add_up(&merged.cart);
    assert_eq!(
        get_cart(app, mine.cart.id, user(customer.token())).await,
        merged.cart
    );

    error_body(
        send(
            app,
            "GET",
            &format!("/v1/carts/{}", guest_cart.id),
            guest(&token),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    error_body(
        send(app, "POST", &merge, both, None).await,
        404,
        "not_found",
    )
    .await;
}

/// Also run with Redis, by `guest_carts.rs` (hence the borrow).
pub(crate) async fn merging_into_a_user_without_a_cart_makes_one(app: impl Borrow<TestApp>) {
    let app: &TestApp = app.borrow();
    shop(app).await;
    set_stock(app, "B", 100, 0).await;
    let (guest_cart, token) = new_guest_cart(app).await;
    put_lines(app, guest_cart.id, guest(&token), &[("B", 2), ("A", 1)]).await;
    let customer = app.user(Role::Customer).await;
    let both = Key {
        bearer: Some(customer.token()),
        cart_token: Some(&token),
    };
    let response = send(
        app,
        "POST",
        &format!("/v1/carts/{}/merge", guest_cart.id),
        both,
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let merged: CartMerged = response.json().await.unwrap();
    assert_ne!(merged.cart.id, guest_cart.id);
    assert_eq!(
        qtys(&merged.cart),
        vec![("B".into(), 2, 120)],
        "A has no stock at STORE-1"
    );
    assert_eq!(merged.cart.location, "STORE-1");
    let (status, again) = new_cart(app, user(customer.token()), &json!({})).await;
    assert_eq!((status, again.cart.id), (200, merged.cart.id));
}

story_with!(cart_ttls_of_a_minute_and_an_hour: the_configured_ttl_sets_expiry);

fn cart_ttls_of_a_minute_and_an_hour(c: &mut Config) {
    c.guest_cart_ttl = Duration::from_secs(60);
    c.user_cart_ttl = Duration::from_secs(3600);
}

/// The configured time to live sets `expires_at` (plain tests: the story macro takes no config).
async fn the_configured_ttl_sets_expiry(app: TestApp) {
    shop(&app).await;
    let now = chrono::Utc::now();
    let (cart, _) = new_guest_cart(&app).await;
    let guest_ttl = (cart.expires_at - now).num_seconds();
    assert!((58..=61).contains(&guest_ttl), "guest ttl {guest_ttl}");
    let customer = app.user(Role::Customer).await;
    let (_, mine) = new_cart(&app, user(customer.token()), &json!({})).await;
    let user_ttl = (mine.cart.expires_at - now).num_seconds();
    assert!((3598..=3601).contains(&user_ttl), "user ttl {user_ttl}");
}
