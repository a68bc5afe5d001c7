//! Receipt maths: from cart lines to the printed line totals, the tax summary and the total.
//!
//! # The rule
//!
//! 1. Each line's printed total is `unit_price × qty − discount`. It is exact: no rounding.
//! 2. Lines are grouped by tax class. A group's base is the sum of its printed line totals.
//! 3. Tax is computed **once per group** from that base and rounded once, with
//!    [`round_money`] (half-up):
//!    - tax-inclusive prices (the default): `tax = round(gross × r / (100 + r))`,
//!      `net = gross − tax`;
//!    - tax-exclusive prices: `tax = round(net × r / 100)`, `gross = net + tax`.
//! 4. The receipt total is the sum of the groups' gross amounts.
//!
//! # Why per group and not per line
//!
//! It is how German and other EU receipts print their VAT summary ("A 20 % net 2.47 tax 0.50
//! gross 2.97"), and it is the only rule under which every printed number adds up: the lines
//! sum to the total, each group's net plus tax equals its gross, and the groups sum to the total.
//! Rounding per line instead would make the tax depend on how the cashier scanned (three lines
//! of 0.99 would carry 0.51 tax, one line of 3 × 0.99 would carry 0.50) and the tax summary would
//! no longer match the lines. With one rounding per group the error is at most half a cent per
//! tax rate on the whole receipt.
//!
//! [`Totals::verify`] checks every one of these sums; [`compute_totals`] runs it before
//! returning, and Central should run it again on totals it loads.

use serde::{Deserialize, Serialize};

use crate::ids::Sku;
use crate::money::{round_money, Currency, Money, MoneyError};
use crate::tax::{PriceMode, TaxClass, TaxTable};
use rust_decimal::Decimal;

/// The largest quantity one cart line may have. Bigger numbers are almost always a scanner or
/// keyboard mistake (a barcode typed into the quantity field), so they are refused.
pub const LINE_QTY_MAX: u32 = 9999;

/// The most lines one cart or order may have; keeps every receipt and request bounded.
pub const CART_LINES_MAX: usize = 1000;

/// A quantity outside `1..=LINE_QTY_MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("quantity {qty} is outside 1..={max}", max = LINE_QTY_MAX)]
pub struct QtyOutOfRange {
    pub qty: u32,
}

/// Checks a line quantity against `1..=LINE_QTY_MAX`, for the register's quantity field and
/// Central's request validation alike.
pub fn check_line_qty(qty: u32) -> Result<u32, QtyOutOfRange> {
    if (1..=LINE_QTY_MAX).contains(&qty) {
        Ok(qty)
    } else {
        Err(QtyOutOfRange { qty })
    }
}

/// Why a cart's totals could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("a cart may have at most {max} lines, this one has {count}")]
    TooManyLines { count: usize, max: usize },
    #[error("line {sku}: {source}")]
    Qty {
        sku: Sku,
        #[source]
        source: QtyOutOfRange,
    },
    #[error("line {sku} is in {found}, the cart is in {expected}")]
    CurrencyMismatch {
        sku: Sku,
        expected: Currency,
        found: Currency,
    },
    #[error("line {sku} has a negative unit price {price}")]
    NegativePrice { sku: Sku, price: Money },
    #[error("line {sku} has a negative discount {discount}")]
    NegativeDiscount { sku: Sku, discount: Money },
    #[error("line {sku}: discount {discount} is more than the line's {gross}")]
    DiscountExceedsLine {
        sku: Sku,
        discount: Money,
        gross: Money,
    },
    /// The amounts overflow (far beyond any real cart).
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// A receipt sum does not add up: a bug in Kassa or corrupted stored totals.
    #[error("totals do not add up: {0}")]
    Invariant(String),
}

/// One line of a cart, as the register or the order request gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CartLine {
    pub sku: Sku,
    pub name: String,
    /// Gross or net depending on the [`PriceMode`] the totals are computed in.
    pub unit_price: Money,
    pub qty: u32,
    pub tax_class: TaxClass,
    /// An absolute discount on the whole line, 0 ≤ discount ≤ `unit_price × qty`.
    pub discount: Money,
}

/// One printed line of the receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineTotal {
    pub sku: Sku,
    pub qty: u32,
    /// `unit_price × qty`.
    pub gross_before_discount: Money,
    pub discount: Money,
    /// What is printed on the line: `gross_before_discount − discount` (net in tax-exclusive mode).
    pub total: Money,
    pub tax_class: TaxClass,
}

/// One row of the receipt's tax summary: all lines of one tax class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaxLine {
    pub tax_class: TaxClass,
    /// The rate in percent (20 means 20 %), as printed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "20"))]
    pub rate: Decimal,
    pub net: Money,
    pub tax: Money,
    /// Always exactly `net + tax`.
    pub gross: Money,
}

/// Everything a receipt prints below the lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Totals {
    pub currency: Currency,
    pub lines: Vec<LineTotal>,
    /// One row per tax class present in the cart, in [`TaxClass::ALL`] order.
    pub taxes: Vec<TaxLine>,
    /// Sum of the lines before discounts.
    pub subtotal: Money,
    pub discount_total: Money,
    pub tax_total: Money,
    /// What the customer pays: `subtotal − discount_total`, plus `tax_total` in tax-exclusive mode.
    pub total: Money,
}

/// Computes a receipt from cart lines. See the module docs for the rule.
///
/// An empty cart gives zero totals with no lines and no tax rows.
pub fn compute_totals(
    lines: &[CartLine],
    mode: PriceMode,
    table: &TaxTable,
    currency: Currency,
) -> Result<Totals, CartError> {
    if lines.len() > CART_LINES_MAX {
        return Err(CartError::TooManyLines {
            count: lines.len(),
            max: CART_LINES_MAX,
        });
    }
    let line_totals = lines
        .iter()
        .map(|line| line_total(line, currency))
        .collect::<Result<Vec<_>, _>>()?;

    let mut taxes = Vec::new();
    for class in TaxClass::ALL {
        let in_class: Vec<&Money> = line_totals
            .iter()
            .filter(|l| l.tax_class == class)
            .map(|l| &l.total)
            .collect();
        if in_class.is_empty() {
            continue;
        }
        let base = Money::checked_sum(in_class, currency)?;
        taxes.push(tax_line(class, base, mode, table)?);
    }

    let subtotal = Money::checked_sum(
        line_totals.iter().map(|l| &l.gross_before_discount),
        currency,
    )?;
    let discount_total = Money::checked_sum(line_totals.iter().map(|l| &l.discount), currency)?;
    let tax_total = Money::checked_sum(taxes.iter().map(|t| &t.tax), currency)?;
    let total = Money::checked_sum(taxes.iter().map(|t| &t.gross), currency)?;

    let totals = Totals {
        currency,
        lines: line_totals,
        taxes,
        subtotal,
        discount_total,
        tax_total,
        total,
    };
    totals.verify(mode)?;
    Ok(totals)
}

fn line_total(line: &CartLine, currency: Currency) -> Result<LineTotal, CartError> {
    let sku = || line.sku.clone();
    check_line_qty(line.qty).map_err(|source| CartError::Qty { sku: sku(), source })?;
    for found in [line.unit_price.currency(), line.discount.currency()] {
        if found != currency {
            return Err(CartError::CurrencyMismatch {
                sku: sku(),
                expected: currency,
                found,
            });
        }
    }
    if line.unit_price.is_negative() {
        return Err(CartError::NegativePrice {
            sku: sku(),
            price: line.unit_price,
        });
    }
    if line.discount.is_negative() {
        return Err(CartError::NegativeDiscount {
            sku: sku(),
            discount: line.discount,
        });
    }
    let gross = line.unit_price.times(line.qty)?;
    if line.discount > gross {
        return Err(CartError::DiscountExceedsLine {
            sku: sku(),
            discount: line.discount,
            gross,
        });
    }
    Ok(LineTotal {
        sku: sku(),
        qty: line.qty,
        gross_before_discount: gross,
        discount: line.discount,
        total: gross.checked_sub(&line.discount)?,
        tax_class: line.tax_class,
    })
}

/// The tax row for one class, from the sum of its printed line totals (`base`).
fn tax_line(
    class: TaxClass,
    base: Money,
    mode: PriceMode,
    table: &TaxTable,
) -> Result<TaxLine, CartError> {
    let currency = base.currency();
    let rate = table.rate(class).percent();
    let hundred = Decimal::ONE_HUNDRED;
    // The divisor is 100 + r for inclusive prices (the tax is r/(100+r) of the gross) and
    // 100 for exclusive ones (the tax is r/100 of the net).
    let divisor = match mode {
        PriceMode::TaxInclusive => hundred + rate,
        PriceMode::TaxExclusive => hundred,
    };
    let exact = base
        .amount()
        .checked_mul(rate)
        .and_then(|x| x.checked_div(divisor))
        .ok_or(MoneyError::Overflow)?;
    let tax = round_money(exact, currency);
    let (net, gross) = match mode {
        PriceMode::TaxInclusive => (base.checked_sub(&tax)?, base),
        PriceMode::TaxExclusive => (base, base.checked_add(&tax)?),
    };
    Ok(TaxLine {
        tax_class: class,
        rate,
        net,
        tax,
        gross,
    })
}

impl Totals {
    /// Checks that every printed number adds up (see the module docs), for totals just computed
    /// and for totals loaded from storage alike.
    pub fn verify(&self, mode: PriceMode) -> Result<(), CartError> {
        let c = self.currency;
        let fail = |what: String| Err(CartError::Invariant(what));
        let sum = |items: Vec<&Money>| Money::checked_sum(items, c);

        for l in &self.lines {
            if l.gross_before_discount.checked_sub(&l.discount)? != l.total {
                return fail(format!("line {}: gross − discount ≠ total", l.sku));
            }
            if l.total.is_negative() || l.discount.is_negative() {
                return fail(format!("line {} is negative", l.sku));
            }
        }
        let line_sum = sum(self.lines.iter().map(|l| &l.total).collect())?;
        if sum(self
            .lines
            .iter()
            .map(|l| &l.gross_before_discount)
            .collect())?
            != self.subtotal
        {
            return fail("subtotal ≠ sum of lines before discount".into());
        }
        if sum(self.lines.iter().map(|l| &l.discount).collect())? != self.discount_total {
            return fail("discount_total ≠ sum of line discounts".into());
        }
        if self.subtotal.checked_sub(&self.discount_total)? != line_sum {
            return fail("subtotal − discount_total ≠ sum of line totals".into());
        }

        let mut previous: Option<TaxClass> = None;
        for t in &self.taxes {
            if previous.is_some_and(|p| p >= t.tax_class) {
                return fail("tax rows out of order or repeated".into());
            }
            previous = Some(t.tax_class);
            if t.net.checked_add(&t.tax)? != t.gross {
                return fail(format!("{} tax row: net + tax ≠ gross", t.tax_class));
            }
            if t.net.is_negative() || t.tax.is_negative() {
                return fail(format!("{} tax row is negative", t.tax_class));
            }
            let class_lines = self.lines.iter().filter(|l| l.tax_class == t.tax_class);
            let class_sum = sum(class_lines.map(|l| &l.total).collect())?;
            let base = match mode {
                PriceMode::TaxInclusive => t.gross,
                PriceMode::TaxExclusive => t.net,
            };
            if class_sum != base {
                return fail(format!("{} tax row ≠ its lines", t.tax_class));
            }
        }
        if self
            .lines
            .iter()
            .any(|l| !self.taxes.iter().any(|t| t.tax_class == l.tax_class))
        {
            return fail("a line's tax class has no tax row".into());
        }

        if sum(self.taxes.iter().map(|t| &t.tax).collect())? != self.tax_total {
            return fail("tax_total ≠ sum of tax rows".into());
        }
        if sum(self.taxes.iter().map(|t| &t.gross).collect())? != self.total {
            return fail("total ≠ sum of tax rows' gross".into());
        }
        let expected_total = match mode {
            PriceMode::TaxInclusive => line_sum,
            PriceMode::TaxExclusive => line_sum.checked_add(&self.tax_total)?,
        };
        if expected_total != self.total {
            return fail("total ≠ sum of printed lines (plus tax when exclusive)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur(s: &str) -> Money {
        Money::new(s.parse().unwrap(), Currency::EUR).unwrap()
    }

    fn line(sku: &str, price: &str, qty: u32, class: TaxClass) -> CartLine {
        CartLine {
            sku: Sku::parse(sku).unwrap(),
            name: format!("Product {sku}"),
            unit_price: eur(price),
            qty,
            tax_class: class,
            discount: eur("0"),
        }
    }

    fn totals(lines: &[CartLine], mode: PriceMode) -> Totals {
        compute_totals(lines, mode, &TaxTable::default(), Currency::EUR).unwrap()
    }

    #[test]
    fn three_at_0_99_inclusive_of_20_percent() {
        let t = totals(
            &[line("A", "0.99", 3, TaxClass::Standard)],
            PriceMode::TaxInclusive,
        );
        assert_eq!(t.lines[0].total, eur("2.97"));
        // 2.97 × 20/120 = 0.495, which half-up rounding makes 0.50.
        assert_eq!(
            t.taxes,
            vec![TaxLine {
                tax_class: TaxClass::Standard,
                rate: 20.into(),
                net: eur("2.47"),
                tax: eur("0.50"),
                gross: eur("2.97"),
            }]
        );
        assert_eq!(t.total, eur("2.97"));
        assert_eq!(t.subtotal, eur("2.97"));
        assert_eq!(t.tax_total, eur("0.50"));
        assert_eq!(t.discount_total, eur("0.00"));
    }

    #[test]
    fn tax_is_rounded_per_group_not_per_line() {
        // Per line, each 0.99 would carry 0.165 → 0.17 tax, 0.51 in all; the group carries 0.50.
        let lines: Vec<_> = ["A", "B", "C"]
            .into_iter()
            .map(|sku| line(sku, "0.99", 1, TaxClass::Standard))
            .collect();
        let t = totals(&lines, PriceMode::TaxInclusive);
        assert_eq!(t.taxes.len(), 1);
        assert_eq!(t.tax_total, eur("0.50"));
        assert_eq!(t.total, eur("2.97"));
    }

    #[test]
    fn three_at_0_99_exclusive_of_20_percent() {
        let t = totals(
            &[line("A", "0.99", 3, TaxClass::Standard)],
            PriceMode::TaxExclusive,
        );
        assert_eq!(t.lines[0].total, eur("2.97"));
        // 2.97 × 0.2 = 0.594 → 0.59.
        assert_eq!(t.taxes[0].net, eur("2.97"));
        assert_eq!(t.taxes[0].tax, eur("0.59"));
        assert_eq!(t.taxes[0].gross, eur("3.56"));
        assert_eq!(t.total, eur("3.56"));
    }

    #[test]
    fn mixed_classes_with_a_discount() {
        let mut coffee = line("COFFEE", "5.00", 2, TaxClass::Standard);
        coffee.discount = eur("1.00");
        let bread = line("BREAD", "2.75", 2, TaxClass::Reduced);
        let stamp = line("STAMP", "0.95", 1, TaxClass::Zero);
        let t = totals(&[stamp, coffee, bread], PriceMode::TaxInclusive);

        assert_eq!(t.lines[1].gross_before_discount, eur("10.00"));
        assert_eq!(t.lines[1].total, eur("9.00"));
        let rows: Vec<_> = t
            .taxes
            .iter()
            .map(|r| (r.tax_class, r.net.to_string(), r.tax.to_string()))
            .collect();
        assert_eq!(
            rows,
            vec![
                // 9.00 × 20/120 = 1.50 exactly.
                (TaxClass::Standard, "7.50 EUR".into(), "1.50 EUR".into()),
                // 5.50 × 10/110 = 0.50 exactly.
                (TaxClass::Reduced, "5.00 EUR".into(), "0.50 EUR".into()),
                (TaxClass::Zero, "0.95 EUR".into(), "0.00 EUR".into()),
            ]
        );
        assert_eq!(t.subtotal, eur("16.45"));
        assert_eq!(t.discount_total, eur("1.00"));
        assert_eq!(t.tax_total, eur("2.00"));
        assert_eq!(t.total, eur("15.45"));
    }

    #[test]
    fn a_third_rounds_half_up_and_still_adds_up() {
        // 10.00 × 20/120 = 1.6666… → 1.67; net 8.33.
        let t = totals(
            &[line("A", "10.00", 1, TaxClass::Standard)],
            PriceMode::TaxInclusive,
        );
        assert_eq!((t.taxes[0].net, t.taxes[0].tax), (eur("8.33"), eur("1.67")));
    }

    #[test]
    fn yen_has_no_minor_unit() {
        let lines = [CartLine {
            sku: Sku::parse("TEA").unwrap(),
            name: "Tea".into(),
            unit_price: Money::from_minor(333, Currency::JPY),
            qty: 3,
            tax_class: TaxClass::Reduced,
            discount: Money::zero(Currency::JPY),
        }];
        let t = compute_totals(
            &lines,
            PriceMode::TaxInclusive,
            &TaxTable::default(),
            Currency::JPY,
        )
        .unwrap();
        // 999 × 10/110 = 90.8… → 91.
        assert_eq!(t.tax_total.to_minor(), 91);
        assert_eq!(t.taxes[0].net.to_minor(), 908);
        assert_eq!(t.total.to_minor(), 999);
    }

    #[test]
    fn empty_cart_has_zero_totals() {
        let t = totals(&[], PriceMode::TaxInclusive);
        assert!(t.lines.is_empty() && t.taxes.is_empty());
        for m in [t.subtotal, t.discount_total, t.tax_total, t.total] {
            assert_eq!(m, Money::zero(Currency::EUR));
        }
    }

    #[test]
    fn bad_lines_are_refused() {
        let table = TaxTable::default();
        let check = |l: CartLine| {
            compute_totals(&[l], PriceMode::TaxInclusive, &table, Currency::EUR).unwrap_err()
        };
        let err = check(line("A", "1.00", 0, TaxClass::Standard));
        assert_eq!(err.to_string(), "line A: quantity 0 is outside 1..=9999");
        assert!(matches!(
            check(line("A", "1.00", LINE_QTY_MAX + 1, TaxClass::Standard)),
            CartError::Qty { .. }
        ));
        let mut usd = line("A", "1.00", 1, TaxClass::Standard);
        usd.unit_price = Money::from_minor(100, Currency::USD);
        assert!(matches!(
            check(usd),
            CartError::CurrencyMismatch {
                found: Currency::USD,
                ..
            }
        ));
        let mut usd_discount = line("A", "1.00", 1, TaxClass::Standard);
        usd_discount.discount = Money::zero(Currency::USD);
        assert!(matches!(
            check(usd_discount),
            CartError::CurrencyMismatch { .. }
        ));
        assert!(matches!(
            check(line("A", "-1.00", 1, TaxClass::Standard)),
            CartError::NegativePrice { .. }
        ));
        let mut too_much = line("A", "1.00", 2, TaxClass::Standard);
        too_much.discount = eur("2.01");
        assert_eq!(
            check(too_much).to_string(),
            "line A: discount 2.01 EUR is more than the line's 2.00 EUR"
        );
        let mut negative = line("A", "1.00", 2, TaxClass::Standard);
        negative.discount = eur("-0.01");
        assert!(matches!(
            check(negative),
            CartError::NegativeDiscount { .. }
        ));
        let mut whole = line("A", "1.00", 2, TaxClass::Standard);
        whole.discount = eur("2.00");
        assert_eq!(totals(&[whole], PriceMode::TaxInclusive).total, eur("0.00"));
    }

    #[test]
    fn line_count_and_qty_are_bounded() {
        assert_eq!(check_line_qty(1), Ok(1));
        assert_eq!(check_line_qty(LINE_QTY_MAX), Ok(LINE_QTY_MAX));
        assert!(check_line_qty(0).is_err());
        let lines = vec![line("A", "1.00", 1, TaxClass::Standard); CART_LINES_MAX + 1];
        assert!(matches!(
            compute_totals(
                &lines,
                PriceMode::TaxInclusive,
                &TaxTable::default(),
                Currency::EUR
            ),
            Err(CartError::TooManyLines { .. })
        ));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let mut big = line("A", "0", LINE_QTY_MAX, TaxClass::Standard);
        big.unit_price = Money::from_minor(i64::MAX / 2, Currency::EUR);
        let err = compute_totals(
            &[big],
            PriceMode::TaxInclusive,
            &TaxTable::default(),
            Currency::EUR,
        )
        .unwrap_err();
        assert_eq!(err, CartError::Money(MoneyError::Overflow));
    }

    #[test]
    fn verify_catches_tampered_totals() {
        let good = totals(
            &[line("A", "0.99", 3, TaxClass::Standard)],
            PriceMode::TaxInclusive,
        );
        let mut t = good.clone();
        t.total = eur("2.98");
        assert!(t.verify(PriceMode::TaxInclusive).is_err());
        let mut t = good.clone();
        t.taxes[0].tax = eur("0.49");
        assert!(t.verify(PriceMode::TaxInclusive).is_err());
        let mut t = good.clone();
        t.lines[0].total = eur("2.96");
        assert!(t.verify(PriceMode::TaxInclusive).is_err());
        // Inclusive totals are not valid exclusive totals.
        assert!(good.verify(PriceMode::TaxExclusive).is_err());
    }

    #[test]
    fn totals_serialise_with_string_amounts() {
        let t = totals(
            &[line("A", "0.99", 3, TaxClass::Standard)],
            PriceMode::TaxInclusive,
        );
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["total"]["amount"], "2.97");
        assert_eq!(json["taxes"][0]["rate"], "20");
        assert_eq!(json["taxes"][0]["tax_class"], "standard");
        let back: Totals = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
    }

    fn arb_line() -> impl Strategy<Value = CartLine> {
        (
            0_i64..200_000,
            1_u32..=LINE_QTY_MAX,
            proptest::sample::select(TaxClass::ALL.to_vec()),
            0_u32..=100,
        )
            .prop_map(|(price, qty, class, discount_pct)| {
                let unit_price = Money::from_minor(price, Currency::EUR);
                let gross = unit_price.to_minor() * i64::from(qty);
                CartLine {
                    sku: Sku::parse("P-1").unwrap(),
                    name: "Product".into(),
                    unit_price,
                    qty,
                    tax_class: class,
                    discount: Money::from_minor(
                        gross * i64::from(discount_pct) / 100,
                        Currency::EUR,
                    ),
                }
            })
    }

    fn arb_table() -> impl Strategy<Value = TaxTable> {
        (0_i64..=10_000, 0_i64..=10_000)
            .prop_map(|(s, r)| TaxTable::new(Decimal::new(s, 2), Decimal::new(r, 2)).unwrap())
    }

    fn arb_mode() -> impl Strategy<Value = PriceMode> {
        prop_oneof![Just(PriceMode::TaxInclusive), Just(PriceMode::TaxExclusive)]
    }

    proptest! {
        #[test]
        fn printed_numbers_always_add_up(
            lines in proptest::collection::vec(arb_line(), 0..30),
            mode in arb_mode(),
            table in arb_table(),
        ) {
            let t = compute_totals(&lines, mode, &table, Currency::EUR)?;
            t.verify(mode)?;
            let zero = Money::zero(Currency::EUR);
            let line_sum = Money::checked_sum(t.lines.iter().map(|l| &l.total), Currency::EUR)?;
            let gross_sum = Money::checked_sum(t.taxes.iter().map(|r| &r.gross), Currency::EUR)?;
            let net_sum = Money::checked_sum(t.taxes.iter().map(|r| &r.net), Currency::EUR)?;
            let tax_sum = Money::checked_sum(t.taxes.iter().map(|r| &r.tax), Currency::EUR)?;
            prop_assert_eq!(gross_sum, t.total);
            prop_assert_eq!(tax_sum, t.tax_total);
            match mode {
                PriceMode::TaxInclusive => prop_assert_eq!(line_sum, t.total),
                PriceMode::TaxExclusive => {
                    prop_assert_eq!(line_sum, net_sum);
                    prop_assert_eq!(net_sum.checked_add(&t.tax_total)?, t.total);
                }
            }
            for row in &t.taxes {
                prop_assert_eq!(row.net.checked_add(&row.tax)?, row.gross);
                prop_assert!(!row.net.is_negative() && !row.tax.is_negative());
                // One rounding per group: within half a cent of the exact tax.
                let r = row.rate;
                let exact = match mode {
                    PriceMode::TaxInclusive => row.gross.amount() * r / (Decimal::ONE_HUNDRED + r),
                    PriceMode::TaxExclusive => row.net.amount() * r / Decimal::ONE_HUNDRED,
                };
                prop_assert!((row.tax.amount() - exact).abs() <= Decimal::new(5, 3));
            }
            prop_assert!(t.total >= zero && t.tax_total >= zero);
            prop_assert_eq!(t.lines.len(), lines.len());
        }

        #[test]
        fn line_order_does_not_change_the_receipt(
            lines in proptest::collection::vec(arb_line(), 0..15),
            mode in arb_mode(),
        ) {
            let table = TaxTable::default();
            let forward = compute_totals(&lines, mode, &table, Currency::EUR)?;
            let mut reversed_lines = lines.clone();
            reversed_lines.reverse();
            let reversed = compute_totals(&reversed_lines, mode, &table, Currency::EUR)?;
            prop_assert_eq!(forward.taxes, reversed.taxes);
            prop_assert_eq!(forward.total, reversed.total);
        }

        #[test]
        fn a_foreign_currency_line_is_refused(
            mut lines in proptest::collection::vec(arb_line(), 1..10),
            index in any::<proptest::sample::Index>(),
            mode in arb_mode(),
        ) {
            let i = index.index(lines.len());
            lines[i].unit_price = Money::from_minor(lines[i].unit_price.to_minor(), Currency::USD);
            let result = compute_totals(&lines, mode, &TaxTable::default(), Currency::EUR);
            let is_mismatch = matches!(result, Err(CartError::CurrencyMismatch { .. }));
            prop_assert!(is_mismatch);
        }
    }
}
