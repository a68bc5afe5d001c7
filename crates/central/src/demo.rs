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
    for (code, name) in DEMO_LOCATIONS {
        store::locations::insert(db, code, name).await?;
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
