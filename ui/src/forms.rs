//! The manager's forms as plain data: a product being edited or created, a stock adjustment
//! and a staff member's new PIN. Each turns what was typed into the register's input or says,
//! in words a manager can act on, what is wrong. Pure: unit-tested on the host.

use std::collections::BTreeMap;
use std::str::FromStr;

use kassa_domain::api::{Product, ProductInput, StockReason};
use kassa_domain::{is_valid_pin, Barcode, Currency, Money, Sku, TaxClass, Username, PIN_RULE};
use rust_decimal::Decimal;

/// The product fields the catalog screen edits; the others are kept as they were.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductForm {
    pub sku: String,
    pub name: String,
    /// As typed: `3.30` or `3,30`.
    pub price: String,
    pub category: String,
    /// Comma- or space-separated.
    pub barcodes: String,
    pub tax_class: TaxClass,
    pub archived: bool,
    pub description: String,
    pub brand: String,
    pub attributes: BTreeMap<String, serde_json::Value>,
}

impl ProductForm {
    /// An empty form for a new product.
    pub fn new_product() -> Self {
        Self {
            sku: String::new(),
            name: String::new(),
            price: String::new(),
            category: String::new(),
            barcodes: String::new(),
            tax_class: TaxClass::Standard,
            archived: false,
            description: String::new(),
            brand: String::new(),
            attributes: BTreeMap::new(),
        }
    }

    /// The form filled from `product` as the local catalog shows it.
    pub fn of(product: &Product) -> Self {
        Self {
            sku: product.sku.to_string(),
            name: product.name.clone(),
            price: product.price.amount().to_string(),
            category: product.category.clone(),
            barcodes: product
                .barcodes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            tax_class: product.tax_class,
            archived: product.archived,
            description: product.description.clone(),
            brand: product.brand.clone(),
            attributes: product.attributes.clone(),
        }
    }

    /// The register's input, or every problem found, one sentence each.
    pub fn to_input(&self, currency: Currency) -> Result<ProductInput, Vec<String>> {
        let mut problems = Vec::new();
        let sku = Sku::parse(&self.sku)
            .map_err(|e| problems.push(format!("SKU: {e}")))
            .ok();
        let name = self.name.trim();
        if name.is_empty() {
            problems.push("Name: a product needs a name.".to_owned());
        }
        let price = parse_price(&self.price, currency)
            .map_err(|e| problems.push(format!("Price: {e}")))
            .ok();
        let mut barcodes = Vec::new();
        for typed in self
            .barcodes
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            match Barcode::parse(typed) {
                Ok(b) if !barcodes.contains(&b) => barcodes.push(b),
                Ok(_) => {}
                Err(e) => problems.push(format!("Barcode {typed}: {e}")),
            }
        }
        match (sku, price) {
            (Some(sku), Some(price)) if problems.is_empty() => Ok(ProductInput {
                sku,
                barcodes,
                name: name.to_owned(),
                description: self.description.clone(),
                category: self.category.trim().to_owned(),
                brand: self.brand.clone(),
                price,
                tax_class: self.tax_class,
                attributes: self.attributes.clone(),
                archived: self.archived,
            }),
            _ => Err(problems),
        }
    }
}

/// A typed price: a non-negative amount with at most the currency's decimals.
pub fn parse_price(typed: &str, currency: Currency) -> Result<Money, String> {
    let typed = typed.trim().replace(',', ".");
    let amount = Decimal::from_str(&typed).map_err(|_| format!("\"{typed}\" is not an amount"))?;
    if amount.is_sign_negative() {
        return Err("a price cannot be negative".to_owned());
    }
    if amount.scale() > currency.minor_units() {
        return Err(format!(
            "at most {} decimals in {}",
            currency.minor_units(),
            currency.code()
        ));
    }
    Money::new(amount, currency).map_err(|e| e.to_string())
}

/// The reasons a manager picks from, with their labels (sales move stock through orders).
pub const REASONS: [(StockReason, &str); 4] = [
    (StockReason::Receiving, "Receiving (delivery)"),
    (StockReason::Adjustment, "Adjustment (damage, loss)"),
    (StockReason::CountCorrection, "Count correction"),
    (StockReason::Return, "Customer return"),
];

/// A reason from the select's value (`receiving`, …).
pub fn reason_of(value: &str) -> Option<StockReason> {
    REASONS
        .iter()
        .map(|(r, _)| *r)
        .find(|r| r.as_str() == value)
}

/// A typed stock movement: `12`, `+12` or `-3`; receiving and returns only add.
pub fn parse_delta(typed: &str, reason: StockReason) -> Result<i64, String> {
    let typed = typed.trim();
    let delta: i64 = typed
        .trim_start_matches('+')
        .parse()
        .map_err(|_| format!("\"{typed}\" is not a whole number of units"))?;
    if delta == 0 {
        return Err("a movement of 0 units changes nothing".to_owned());
    }
    if delta < 0 && matches!(reason, StockReason::Receiving | StockReason::Return) {
        return Err("receiving and returns add stock: type a positive number".to_owned());
    }
    Ok(delta)
}

/// A staff member's new PIN as typed on the staff screen: twice, so a slip is caught here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PinForm {
    pub username: String,
    pub pin: String,
    pub repeat: String,
}

impl PinForm {
    /// The username (lowercased) and PIN to send, or every problem in words.
    pub fn to_request(&self) -> Result<(String, String), Vec<String>> {
        let mut problems = Vec::new();
        let username = match self.username.trim() {
            "" => {
                problems.push("Type the staff member's username.".to_owned());
                None
            }
            typed => match Username::parse(typed) {
                Ok(name) => Some(name),
                Err(e) => {
                    problems.push(format!("Username: {e}."));
                    None
                }
            },
        };
        if !is_valid_pin(&self.pin) {
            problems.push(format!("New PIN: {PIN_RULE}, nothing else."));
        } else if self.pin != self.repeat {
            problems.push("The two PINs differ: type the same PIN twice.".to_owned());
        }
        match username {
            Some(name) if problems.is_empty() => Ok((name.to_string(), self.pin.clone())),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> ProductForm {
        ProductForm {
            sku: "MUG-1".into(),
            name: " Mug ".into(),
            price: "3,30".into(),
            category: "kitchen".into(),
            barcodes: "2000000000015, 2000000000022".into(),
            ..ProductForm::new_product()
        }
    }

    #[test]
    fn a_filled_form_becomes_the_registers_input() {
        let input = form().to_input(Currency::EUR).unwrap();
        assert_eq!(input.name, "Mug");
        assert_eq!(input.price, Money::parse("3.30", Currency::EUR).unwrap());
        assert_eq!(input.barcodes.len(), 2);
        assert_eq!(input.tax_class, TaxClass::Standard);
    }

    #[test]
    fn every_problem_is_named() {
        let bad = ProductForm {
            sku: "no spaces allowed".into(),
            name: "  ".into(),
            price: "3.333".into(),
            barcodes: "2000000000016".into(),
            ..form()
        };
        let problems = bad.to_input(Currency::EUR).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("SKU"));
        assert!(problems[2].contains("decimals"));
        assert!(problems[3].starts_with("Barcode 2000000000016"));
        assert!(parse_price("-1", Currency::EUR).is_err());
        assert!(parse_price("abc", Currency::EUR).is_err());
    }

    #[test]
    fn a_product_round_trips_through_its_form() {
        let input = form().to_input(Currency::EUR).unwrap();
        let product = Product {
            id: uuid::Uuid::nil(),
            sku: input.sku.clone(),
            barcodes: input.barcodes.clone(),
            name: input.name.clone(),
            description: "keep me".into(),
            category: input.category.clone(),
            brand: "Kassa".into(),
            price: input.price,
            tax_class: TaxClass::Reduced,
            attributes: BTreeMap::from([("colour".to_owned(), serde_json::json!("red"))]),
            archived: false,
            version: 3,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            change_seq: 9,
        };
        let again = ProductForm::of(&product).to_input(Currency::EUR).unwrap();
        assert_eq!(again.description, "keep me");
        assert_eq!(again.brand, "Kassa");
        assert_eq!(again.attributes, product.attributes);
        assert_eq!(again.tax_class, TaxClass::Reduced);
        assert_eq!(again.barcodes, product.barcodes);
    }

    #[test]
    fn a_stock_movement_is_whole_non_zero_and_receiving_adds() {
        assert_eq!(parse_delta("+12", StockReason::Receiving), Ok(12));
        assert_eq!(parse_delta("-3", StockReason::Adjustment), Ok(-3));
        assert!(parse_delta("-3", StockReason::Receiving).is_err());
        assert!(parse_delta("0", StockReason::CountCorrection).is_err());
        assert!(parse_delta("1.5", StockReason::Adjustment).is_err());
        assert_eq!(
            reason_of("count_correction"),
            Some(StockReason::CountCorrection)
        );
        assert_eq!(reason_of("sale"), None);
    }

    #[test]
    fn a_pin_is_typed_twice_for_a_real_username_and_every_slip_is_named() {
        let typed = |username: &str, pin: &str, repeat: &str| PinForm {
            username: username.into(),
            pin: pin.into(),
            repeat: repeat.into(),
        };
        assert_eq!(
            typed(" Cashier ", "2468", "2468").to_request(),
            Ok(("cashier".to_owned(), "2468".to_owned()))
        );
        let problems = typed("", "24a8", "24a8").to_request().unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("username"), "{problems:?}");
        assert!(problems[1].contains("4 to 8 digits"), "{problems:?}");
        for short_or_long in ["123", "123456789"] {
            let problems = typed("cashier", short_or_long, short_or_long)
                .to_request()
                .unwrap_err();
            assert!(problems[0].contains("4 to 8 digits"), "{problems:?}");
        }
        let problems = typed("cashier", "2468", "2486").to_request().unwrap_err();
        assert_eq!(problems, ["The two PINs differ: type the same PIN twice."]);
        let problems = typed("no spaces!", "2468", "2468")
            .to_request()
            .unwrap_err();
        assert!(problems[0].starts_with("Username:"), "{problems:?}");
    }
}
