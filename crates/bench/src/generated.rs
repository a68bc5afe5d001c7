//! A generated catalog for the benchmarks: names from a small vocabulary (so searches have many
//! matches), SKU `B-000042`, an EAN-13 barcode per product, random prices and categories.

use std::collections::BTreeMap;

use kassa_domain::api::ProductInput;
use kassa_domain::{Barcode, Currency, Money, Sku, TaxClass};
use rand::rngs::StdRng;
use rand::Rng;

pub const ADJECTIVES: [&str; 24] = [
    "organic",
    "crunchy",
    "smoked",
    "golden",
    "spicy",
    "creamy",
    "roasted",
    "wild",
    "fresh",
    "classic",
    "rustic",
    "tangy",
    "sparkling",
    "velvet",
    "hearty",
    "tropical",
    "zesty",
    "smooth",
    "frozen",
    "salted",
    "mellow",
    "bold",
    "tender",
    "sunny",
];
pub const NOUNS: [&str; 30] = [
    "coffee",
    "granola",
    "lemonade",
    "biscuit",
    "cheddar",
    "yoghurt",
    "espresso",
    "noodles",
    "chutney",
    "pretzel",
    "almonds",
    "muesli",
    "chocolate",
    "salsa",
    "hummus",
    "baguette",
    "teapot",
    "notebook",
    "candle",
    "blanket",
    "sponge",
    "ladle",
    "kettle",
    "pencil",
    "stapler",
    "shampoo",
    "soap",
    "towel",
    "mug",
    "basket",
];
pub const CATEGORIES: [&str; 12] = [
    "Bakery",
    "Dairy",
    "Drinks",
    "Snacks",
    "Pantry",
    "Frozen",
    "Household",
    "Stationery",
    "Kitchen",
    "Beauty",
    "Garden",
    "Toys",
];

pub fn product(rng: &mut StdRng, n: usize) -> anyhow::Result<ProductInput> {
    let adjective = ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())];
    let noun = NOUNS[rng.gen_range(0..NOUNS.len())];
    let brand = format!("Brand{:02}", rng.gen_range(0..50));
    Ok(ProductInput {
        sku: Sku::parse(&format!("B-{n:06}"))?,
        barcodes: vec![Barcode::ean13_from_body(&format!("21{n:010}"))?],
        name: format!("{adjective} {noun} {}", n % 97),
        description: format!("A {adjective} {noun} by {brand}, item {n}."),
        category: CATEGORIES[rng.gen_range(0..CATEGORIES.len())].to_owned(),
        brand,
        price: Money::from_minor(rng.gen_range(49..9_999), Currency::EUR),
        tax_class: TaxClass::Reduced,
        attributes: BTreeMap::new(),
        archived: false,
    })
}
