//! The demo store: two locations, ~200 products with valid EAN-13 barcodes, and demo users.
//! Loading it twice changes nothing.

use std::collections::BTreeMap;

use anyhow::Context;
use kassa_domain::api::ProductInput;
use kassa_domain::{Barcode, Currency, Money, Role, Sku, TaxClass, Username};
use rust_decimal::Decimal;

use crate::store::{self, Db};

/// The demo users and their passwords, as documented in the README.
pub const DEMO_USERS: [(&str, &str, Role); 4] = [
    ("admin", "admin-pass-1", Role::Admin),
    ("manager", "manager-pass-1", Role::Manager),
    ("cashier", "cashier-pass-1", Role::Cashier),
    ("customer", "customer-pass-1", Role::Customer),
];

/// PINs for signing in at a register (and for a manager's approvals there).
pub const DEMO_PINS: [(&str, &str); 2] = [("manager", "2468"), ("cashier", "1357")];

/// The demo stores' days are Amsterdam's (reports and Z reports group by them).
const DEMO_TIME_ZONE: &str = "Europe/Amsterdam";

pub const DEMO_LOCATIONS: [(&str, &str); 2] = [
    ("STORE-1", "Kassa Demo Store"),
    ("WAREHOUSE", "Central Warehouse"),
];

const CATEGORIES: [(&str, &[&str], TaxClass); 8] = [
    (
        "Beverages",
        &[
            "Coffee",
            "Green Tea",
            "Orange Juice",
            "Sparkling Water",
            "Cola",
            "Lemonade",
        ],
        TaxClass::Reduced,
    ),
    (
        "Bakery",
        &[
            "Sourdough Bread",
            "Croissant",
            "Rye Bread",
            "Bagel",
            "Muffin",
        ],
        TaxClass::Reduced,
    ),
    (
        "Dairy",
        &["Whole Milk", "Greek Yoghurt", "Butter", "Cheddar", "Cream"],
        TaxClass::Reduced,
    ),
    (
        "Snacks",
        &[
            "Salted Crisps",
            "Dark Chocolate",
            "Trail Mix",
            "Pretzels",
            "Oat Bar",
        ],
        TaxClass::Reduced,
    ),
    (
        "Produce",
        &["Bananas", "Apples", "Tomatoes", "Carrots", "Avocado"],
        TaxClass::Reduced,
    ),
    (
        "Household",
        &[
            "Dish Soap",
            "Paper Towels",
            "Sponges",
            "Laundry Liquid",
            "Bin Bags",
        ],
        TaxClass::Standard,
    ),
    (
        "Personal Care",
        &[
            "Toothpaste",
            "Shampoo",
            "Hand Soap",
            "Deodorant",
            "Sunscreen",
        ],
        TaxClass::Standard,
    ),
    (
        "Stationery",
        &[
            "Notebook",
            "Ballpoint Pen",
            "Pencil Set",
            "Sticky Notes",
            "Stapler",
        ],
        TaxClass::Standard,
    ),
];
const BRANDS: [&str; 5] = ["Nordlicht", "Acme", "Bluebird", "Kassa Basics", "Verde"];
const VARIANTS: [&str; 5] = ["", "Large", "Organic", "Family Pack", "Mini"];

/// The demo catalog, deterministic: SKU `DEMO-0001`…, barcodes from the in-store range `20…`.
pub fn demo_products() -> anyhow::Result<Vec<ProductInput>> {
    let mut products = Vec::new();
    let mut n: u32 = 0;
    for (category, names, tax_class) in CATEGORIES {
        for name in names {
            for variant in VARIANTS {
                n += 1;
                let body = format!("20{n:010}");
                let barcode = Barcode::ean13_from_body(&body).context("demo barcode")?;
                let cents = 99 + i64::from((n * 37) % 1900);
                let brand = BRANDS[(n as usize) % BRANDS.len()];
                let full_name = if variant.is_empty() {
                    (*name).to_owned()
                } else {
                    format!("{name} {variant}")
                };
                let mut attributes = BTreeMap::new();
                if !variant.is_empty() {
                    attributes.insert("variant".to_owned(), serde_json::json!(variant));
                }
                products.push(ProductInput {
                    sku: Sku::parse(&format!("DEMO-{n:04}")).context("demo sku")?,
                    barcodes: vec![barcode],
                    name: full_name.clone(),
                    description: format!("{brand} {full_name}, from the {category} aisle."),
                    category: category.to_owned(),
                    brand: brand.to_owned(),
                    price: Money::new(Decimal::new(cents, 2), Currency::EUR)
                        .context("demo price")?,
                    tax_class,
                    attributes,
                    archived: false,
                });
            }
        }
    }
    Ok(products)
}

/// Loads the demo store; what already exists is left alone.
pub async fn load(db: &Db) -> anyhow::Result<()> {
    for (username, password, role) in DEMO_USERS {
        let username = Username::parse(username).context("demo username")?;
        let hash = crate::auth::hash_password(password.to_owned()).await?;
        match store::users::insert(db, &username, &hash, role).await {
            Ok(_) | Err(store::users::CreateUserError::UsernameTaken) => {}
            Err(store::users::CreateUserError::Other(e)) => return Err(e),
        }
    }
    for (username, pin) in DEMO_PINS {
        let user = store::users::find_by_username(db, username)
            .await?
            .context("a demo user")?;
        if user.pin_hash.is_none() {
            let hash = crate::auth::hash_password(pin.to_owned()).await?;
            store::users::set_pin(db, user.user.id, &hash).await?;
        }
    }
    for (code, name) in DEMO_LOCATIONS {
        store::locations::insert_in_zone(
            db,
            code,
            name,
            DEMO_TIME_ZONE,
            kassa_domain::CashRounding::NONE,
        )
        .await?;
    }
    let mut created = 0;
    for product in demo_products()? {
        match store::catalog::insert(db, &product).await {
            Ok(_) => created += 1,
            Err(
                store::catalog::WriteError::SkuTaken(_)
                | store::catalog::WriteError::BarcodeTaken(_),
            ) => {}
            Err(e) => return Err(anyhow::anyhow!("loading demo product {}: {e}", product.sku)),
        }
    }
    tracing::info!(created, "demo store loaded");
    Ok(())
}

/// The baskets of the demo's order history, by product name, used in turn.
const DEMO_BASKETS: [&[&str]; 11] = [
    &["Coffee", "Croissant"],
    &["Coffee", "Whole Milk"],
    &["Sourdough Bread", "Butter"],
    &["Coffee", "Croissant", "Butter"],
    &["Salted Crisps", "Cola"],
    &["Notebook", "Ballpoint Pen"],
    &["Bagel", "Cream", "Coffee"],
    &["Dish Soap", "Sponges"],
    &["Bananas", "Greek Yoghurt"],
    &["Toothpaste", "Shampoo"],
    &["Coffee", "Muffin"],
];
const DEMO_ORDERS: u128 = 64;
/// Units received at each location for a demo product that has no stock row yet.
const DEMO_STOCK: [(&str, i64); 2] = [("STORE-1", 40), ("WAREHOUSE", 200)];

/// Stock for every demo product and a deterministic history of paid orders (the cashier's
/// sales and a few of the demo customer's), so recommendations have something to show. Orders
/// have fixed ids and idempotency keys; stock is only received where none was: loading it twice
/// changes nothing. Runs after [`load`].
pub async fn load_order_history(state: &crate::AppState) -> anyhow::Result<()> {
    let products = demo_products()?;
    receive_demo_stock(&state.db, &products).await?;
    let sku_of = |name: &str| {
        products
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.sku.to_string())
            .with_context(|| format!("demo product {name}"))
    };
    let cashier = demo_token(state, "cashier").await?;
    let customer = demo_token(state, "customer").await?;
    let app = crate::router(state.clone());
    for i in 0..DEMO_ORDERS {
        let basket = DEMO_BASKETS[(i as usize) % DEMO_BASKETS.len()];
        let mut skus = basket
            .iter()
            .map(|name| sku_of(name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if i % 5 == 0 {
            // A product bought alone now and then: the noise real baskets have.
            let extra = products[(i as usize * 37) % products.len()].sku.to_string();
            if !skus.contains(&extra) {
                skus.push(extra);
            }
        }
        // The demo customer bought coffee and milk, bananas and yoghurt, online.
        let token = if i < 33 && matches!(i % 11, 1 | 8) {
            &customer
        } else {
            &cashier
        };
        let id = uuid::Uuid::from_u128(0xde30_0000_0000_4000_8000_0000_0000_0000 + i);
        place_demo_order(&app, token, id, &skus).await?;
        pay_demo_order(state, id).await?;
    }
    Ok(())
}

async fn receive_demo_stock(db: &Db, products: &[ProductInput]) -> anyhow::Result<()> {
    for (code, units) in DEMO_STOCK {
        let location = store::locations::find_by_code(db, code)
            .await?
            .with_context(|| format!("demo location {code}"))?
            .id
            .to_string();
        let mut tx = db.begin_write().await?;
        for product in products {
            let sku = product.sku.as_ref();
            if store::stock::level(&mut *tx, sku, &location)
                .await?
                .is_some()
            {
                continue;
            }
            let movement = store::stock::Movement {
                sku,
                location_id: &location,
                delta: units,
                reason: kassa_domain::api::StockReason::Receiving,
                reference: Some("demo"),
                note: None,
                created_by: None,
            };
            store::stock::move_on_hand(&mut tx, &movement).await?;
        }
        tx.commit().await.context("committing demo stock")?;
    }
    Ok(())
}

async fn demo_token(state: &crate::AppState, username: &str) -> anyhow::Result<String> {
    let user = store::users::find_by_username(&state.db, username)
        .await?
        .with_context(|| format!("demo user {username}"))?;
    Ok(state
        .auth
        .start_session(&state.db, user.user.id, user.user.role, None)
        .await?
        .access_token)
}

/// Places an order through the API in-process; a replay or an existing order is fine.
async fn place_demo_order(
    app: &axum::Router,
    token: &str,
    id: uuid::Uuid,
    skus: &[String],
) -> anyhow::Result<()> {
    use tower::ServiceExt;
    let lines: Vec<serde_json::Value> = skus
        .iter()
        .map(|sku| serde_json::json!({ "sku": sku, "qty": 1 }))
        .collect();
    let body = serde_json::json!({ "id": id, "location": "STORE-1", "lines": lines });
    let request = axum::http::Request::post("/v1/orders")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", format!("demo-order-{id}"))
        .body(axum::body::Body::from(body.to_string()))
        .context("building a demo order request")?;
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    anyhow::ensure!(
        status == axum::http::StatusCode::CREATED || status == axum::http::StatusCode::CONFLICT,
        "demo order {id}: {status}"
    );
    Ok(())
}

/// Pays a demo order in full unless it is paid already.
async fn pay_demo_order(state: &crate::AppState, id: uuid::Uuid) -> anyhow::Result<()> {
    let mut tx = state.db.begin_write().await?;
    let order = store::orders::get(&mut tx, id, "")
        .await?
        .with_context(|| format!("demo order {id}"))?;
    if order.status == kassa_domain::OrderStatus::Reserved {
        let outstanding = order.totals.total.checked_sub(&order.paid)?;
        crate::orders::record_payment(state, &mut tx, id, outstanding)
            .await
            .map_err(|e| anyhow::anyhow!("paying demo order {id}: {e}"))?;
    }
    tx.commit().await.context("committing a demo payment")?;
    Ok(())
}
