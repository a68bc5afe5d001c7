//! Tax classes, validated tax rates, the store's rate table and whether prices include tax.
//!
//! A product carries a [`TaxClass`], not a rate: the rate belongs to the store's jurisdiction and
//! changes by law (Germany went 19 % → 16 % → 19 % in 2020), so it lives in one [`TaxTable`].
//! The receipt maths that applies the rates is in [`crate::cart`].

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Which of the store's tax rates applies to a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TaxClass {
    /// The normal rate (e.g. 19 % in Germany, 20 % in France and Austria).
    Standard,
    /// The reduced rate for food, books and the like (e.g. 7 % in Germany).
    Reduced,
    /// Exempt or zero-rated goods.
    Zero,
}

impl TaxClass {
    /// Every class, in the order tax lines are printed on a receipt.
    pub const ALL: [TaxClass; 3] = [TaxClass::Standard, TaxClass::Reduced, TaxClass::Zero];

    /// The wire and database spelling: `"standard"`, `"reduced"`, `"zero"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaxClass::Standard => "standard",
            TaxClass::Reduced => "reduced",
            TaxClass::Zero => "zero",
        }
    }
}

impl fmt::Display for TaxClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaxClass {
    type Err = TaxError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaxClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| TaxError::UnknownClass {
                value: crate::clipped(s),
            })
    }
}

/// Why a tax class or rate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxError {
    #[error("unknown tax class {value:?}; expected standard, reduced or zero")]
    UnknownClass { value: String },
    #[error("tax rate {percent}% is outside 0..=100%")]
    RateOutOfRange { percent: Decimal },
    #[error("tax rate {percent}% has more than {max} decimal places")]
    RateTooPrecise { percent: Decimal, max: u32 },
}

/// A tax rate in percent, 0 ≤ rate ≤ 100, with at most [`TaxRate::PERCENT_SCALE_MAX`] decimals.
///
/// Held as a percentage (20 means 20 %) because that is how rates are written in law and printed
/// on receipts. Serialised as a string (`"20"`, `"7.7"`), like money, so it never becomes a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "20"))]
pub struct TaxRate(Decimal);

impl TaxRate {
    /// Real rates have at most two decimals (Swiss 8.1 %, Irish 13.5 %); the limit keeps the
    /// tax computation's intermediate values far from `Decimal`'s precision.
    pub const PERCENT_SCALE_MAX: u32 = 2;

    pub const ZERO: TaxRate = TaxRate(Decimal::ZERO);

    /// `percent` is the rate in percent: `TaxRate::from_percent(dec!(19))` is 19 %.
    pub fn from_percent(percent: Decimal) -> Result<TaxRate, TaxError> {
        if percent.is_sign_negative() && !percent.is_zero() || percent > Decimal::ONE_HUNDRED {
            return Err(TaxError::RateOutOfRange { percent });
        }
        let percent = percent.normalize();
        if percent.scale() > Self::PERCENT_SCALE_MAX {
            return Err(TaxError::RateTooPrecise {
                percent,
                max: Self::PERCENT_SCALE_MAX,
            });
        }
        Ok(TaxRate(percent))
    }

    /// The rate in percent (20 for 20 %).
    pub fn percent(self) -> Decimal {
        self.0
    }

    /// The rate as a fraction (0.2 for 20 %).
    pub fn fraction(self) -> Decimal {
        self.0 / Decimal::ONE_HUNDRED
    }
}

impl TryFrom<Decimal> for TaxRate {
    type Error = TaxError;

    fn try_from(percent: Decimal) -> Result<Self, Self::Error> {
        TaxRate::from_percent(percent)
    }
}

impl From<TaxRate> for Decimal {
    fn from(rate: TaxRate) -> Decimal {
        rate.0
    }
}

impl fmt::Display for TaxRate {
    /// `20%`, `7.7%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// The store's rate for each [`TaxClass`]. The zero class is always 0 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TaxTableWire")]
pub struct TaxTable {
    standard: TaxRate,
    reduced: TaxRate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaxTableWire {
    standard: TaxRate,
    reduced: TaxRate,
}

impl TryFrom<TaxTableWire> for TaxTable {
    type Error = TaxError;

    fn try_from(wire: TaxTableWire) -> Result<Self, Self::Error> {
        Ok(TaxTable {
            standard: wire.standard,
            reduced: wire.reduced,
        })
    }
}

impl TaxTable {
    /// A table from the two rates in percent, each validated to 0..=100 %.
    pub fn new(standard_percent: Decimal, reduced_percent: Decimal) -> Result<TaxTable, TaxError> {
        Ok(TaxTable {
            standard: TaxRate::from_percent(standard_percent)?,
            reduced: TaxRate::from_percent(reduced_percent)?,
        })
    }

    pub fn rate(&self, class: TaxClass) -> TaxRate {
        match class {
            TaxClass::Standard => self.standard,
            TaxClass::Reduced => self.reduced,
            TaxClass::Zero => TaxRate::ZERO,
        }
    }
}

impl Default for TaxTable {
    /// Standard 20 %, reduced 10 %, zero 0 %: round numbers for the demo store and tests; a real
    /// store configures its own.
    fn default() -> Self {
        TaxTable {
            standard: TaxRate(Decimal::from(20)),
            reduced: TaxRate(Decimal::from(10)),
        }
    }
}

/// Whether catalog prices already include tax.
///
/// Kassa's catalog prices are tax-inclusive by default because they are shelf prices: EU law
/// requires consumers to be shown the final price. Tax-exclusive is for B2B and US-style stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PriceMode {
    /// Prices are gross; the tax is the part of the price that goes to the state.
    #[default]
    TaxInclusive,
    /// Prices are net; tax is added on top.
    TaxExclusive,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn tax_class_spellings_round_trip() {
        for class in TaxClass::ALL {
            assert_eq!(class.as_str().parse::<TaxClass>().unwrap(), class);
            assert_eq!(
                serde_json::to_string(&class).unwrap(),
                format!("\"{}\"", class.as_str())
            );
            assert_eq!(class.to_string(), class.as_str());
        }
        let err = "Standard".parse::<TaxClass>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown tax class \"Standard\"; expected standard, reduced or zero"
        );
    }

    #[test]
    fn default_table_is_20_10_0() {
        let table = TaxTable::default();
        assert_eq!(table.rate(TaxClass::Standard).percent(), dec("20"));
        assert_eq!(table.rate(TaxClass::Reduced).percent(), dec("10"));
        assert_eq!(table.rate(TaxClass::Zero).percent(), dec("0"));
        assert_eq!(table.rate(TaxClass::Standard).fraction(), dec("0.2"));
    }

    #[test]
    fn rates_are_validated() {
        assert!(TaxTable::new(dec("19"), dec("7")).is_ok());
        assert!(TaxTable::new(dec("100"), dec("0")).is_ok());
        assert!(TaxTable::new(dec("8.1"), dec("2.6")).is_ok());
        assert_eq!(
            TaxTable::new(dec("100.01"), dec("7")),
            Err(TaxError::RateOutOfRange {
                percent: dec("100.01")
            })
        );
        assert!(TaxTable::new(dec("19"), dec("-1")).is_err());
        assert!(matches!(
            TaxRate::from_percent(dec("7.125")),
            Err(TaxError::RateTooPrecise { .. })
        ));
        assert_eq!(
            TaxRate::from_percent(dec("7.50")).unwrap().to_string(),
            "7.5%"
        );
    }

    #[test]
    fn table_serde_validates() {
        let table: TaxTable = serde_json::from_str(r#"{"standard":"19","reduced":"7"}"#).unwrap();
        assert_eq!(table, TaxTable::new(dec("19"), dec("7")).unwrap());
        assert_eq!(
            serde_json::to_string(&table).unwrap(),
            r#"{"standard":"19","reduced":"7"}"#
        );
        assert!(serde_json::from_str::<TaxTable>(r#"{"standard":"190","reduced":"7"}"#).is_err());
    }

    #[test]
    fn price_mode_defaults_to_tax_inclusive() {
        assert_eq!(PriceMode::default(), PriceMode::TaxInclusive);
        assert_eq!(
            serde_json::to_string(&PriceMode::TaxExclusive).unwrap(),
            "\"tax_exclusive\""
        );
    }
}
