//! Money: an exact decimal amount in one ISO 4217 currency, and the one rounding rule Kassa uses.
//!
//! A [`Money`] always holds exactly as many decimal places as its currency has minor units
//! ("12.50 EUR", "1250 JPY") and always fits in `i64` minor units, because that is how the
//! database stores it. Both facts are checked when a `Money` is made, so every later conversion
//! ([`Money::to_minor`], serialisation) is exact and infallible. Arithmetic is checked: mixing
//! currencies or overflowing is an error, never a silent wrap or a silent conversion.
//!
//! Input is never rounded behind the caller's back: `Money::new("12.505", EUR)` is an error.
//! Rounding happens only where Kassa computes a value that has more places than the currency
//! (tax), and only through [`round_money`].

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// An ISO 4217 currency Kassa can sell in.
///
/// Serialised as its code (`"EUR"`). The list is short on purpose: each currency added must have
/// its minor units checked against ISO 4217 in [`Currency::minor_units`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Currency {
    EUR,
    USD,
    GBP,
    CHF,
    SEK,
    NOK,
    DKK,
    PLN,
    CZK,
    JPY,
}

impl Currency {
    /// Every supported currency, for exhaustive tests and pickers.
    pub const ALL: [Currency; 10] = [
        Currency::EUR,
        Currency::USD,
        Currency::GBP,
        Currency::CHF,
        Currency::SEK,
        Currency::NOK,
        Currency::DKK,
        Currency::PLN,
        Currency::CZK,
        Currency::JPY,
    ];

    /// The ISO 4217 alphabetic code, e.g. `"EUR"`.
    pub fn code(self) -> &'static str {
        match self {
            Currency::EUR => "EUR",
            Currency::USD => "USD",
            Currency::GBP => "GBP",
            Currency::CHF => "CHF",
            Currency::SEK => "SEK",
            Currency::NOK => "NOK",
            Currency::DKK => "DKK",
            Currency::PLN => "PLN",
            Currency::CZK => "CZK",
            Currency::JPY => "JPY",
        }
    }

    /// Decimal places of the currency's minor unit (ISO 4217 "E" column): 2 for cents, 0 for yen.
    pub fn minor_units(self) -> u32 {
        match self {
            Currency::JPY => 0,
            Currency::EUR
            | Currency::USD
            | Currency::GBP
            | Currency::CHF
            | Currency::SEK
            | Currency::NOK
            | Currency::DKK
            | Currency::PLN
            | Currency::CZK => 2,
        }
    }

    /// How many minor units make one major unit (100 for EUR, 1 for JPY).
    fn minor_per_major(self) -> i64 {
        10_i64.pow(self.minor_units())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    /// Parses an ISO code exactly as written (`"EUR"`); lower case is rejected so that the
    /// same currency has one spelling everywhere (database, wire, config).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code() == s)
            .ok_or_else(|| MoneyError::UnknownCurrency {
                code: crate::clipped(s),
            })
    }
}

/// Why a money value could not be made or combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Two amounts in different currencies were added, subtracted or compared.
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    /// The amount has more decimal places than the currency's minor unit.
    #[error(
        "{amount} has more than {minor_units} decimal places, which {currency} does not allow"
    )]
    TooPrecise {
        amount: Decimal,
        currency: Currency,
        minor_units: u32,
    },
    /// The result does not fit in `i64` minor units (about ±92 trillion EUR).
    #[error("amount out of range")]
    Overflow,
    /// Not a plain decimal like `12.50` or `-3` (exponents, `+`, `_` and spaces are refused).
    #[error("amount {value:?} is not a plain decimal number like \"12.50\"")]
    InvalidAmount { value: String },
    /// Not an ISO 4217 code Kassa supports.
    #[error("unknown currency {code:?}")]
    UnknownCurrency { code: String },
}

/// An exact amount of one currency. See the module docs for the two invariants it keeps.
///
/// Serialised as `{"amount":"12.50","currency":"EUR"}`: the amount is a string so that no JSON
/// parser turns it into a float, and always carries the currency's number of decimals.
/// Deserialisation goes through [`Money::new`], so `"12.505"` EUR is rejected.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
// `deny_unknown_fields` is MoneyWire's rule; here it only tells the schema so.
#[serde(try_from = "MoneyWire", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    /// Invariant: `amount.scale() == currency.minor_units()` and the minor units fit in `i64`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "12.50", pattern = r"^-?[0-9]{1,15}(\.[0-9]{1,4})?$"))]
    amount: Decimal,
    currency: Currency,
}

/// The wire shape of [`Money`] before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyWire {
    amount: String,
    currency: Currency,
}

impl TryFrom<MoneyWire> for Money {
    type Error = MoneyError;

    fn try_from(wire: MoneyWire) -> Result<Self, Self::Error> {
        Money::parse(&wire.amount, wire.currency)
    }
}

impl Money {
    /// Makes a money value, refusing amounts the currency cannot represent exactly.
    ///
    /// Trailing zeros are fine (`12.500` EUR is 12.50 EUR); a non-zero digit past the minor
    /// unit is [`MoneyError::TooPrecise`]. Use [`round_money`] when rounding is intended.
    pub fn new(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        let minor = amount
            .checked_mul(Decimal::from(currency.minor_per_major()))
            .ok_or(MoneyError::Overflow)?;
        if !minor.fract().is_zero() {
            return Err(MoneyError::TooPrecise {
                amount,
                currency,
                minor_units: currency.minor_units(),
            });
        }
        let minor = minor.to_i64().ok_or(MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, currency))
    }

    /// Parses a plain decimal string (`"12.50"`, `"-3"`, `"0.5"`) as written on the wire or in a
    /// query string, then checks it like [`Money::new`].
    ///
    /// Stricter than `Decimal`'s own parser, which also takes `1e3`, `1_000` and silently rounds
    /// past 28 digits: money on the wire has exactly one spelling.
    pub fn parse(amount: &str, currency: Currency) -> Result<Money, MoneyError> {
        // Longer than any amount that fits i64 minor units, with room for trailing zeros.
        const CHARS_MAX: usize = 40;
        let invalid = || MoneyError::InvalidAmount {
            value: crate::clipped(amount),
        };
        let unsigned = amount.strip_prefix('-').unwrap_or(amount);
        let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if amount.len() > CHARS_MAX || !all_digits(int) || !all_digits(frac) {
            return Err(invalid());
        }
        let decimal = Decimal::from_str_exact(amount).map_err(|_| invalid())?;
        Money::new(decimal, currency)
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Money {
        Money::from_minor(0, currency)
    }

    /// From integer minor units (cents): `from_minor(1250, EUR)` is 12.50 EUR.
    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        // Every i64 fits a Decimal's 96-bit mantissa, so this is exact and keeps the scale
        // invariant by construction.
        Money {
            amount: Decimal::new(minor, currency.minor_units()),
            currency,
        }
    }

    /// Integer minor units; exact, because the invariants guarantee the scale and the range.
    pub fn to_minor(&self) -> i64 {
        let mantissa = self.amount.mantissa();
        debug_assert_eq!(self.amount.scale(), self.currency.minor_units());
        // Cannot fail: every Money is built from an i64 by `from_minor`.
        i64::try_from(mantissa).unwrap_or_else(|_| unreachable!("Money holds i64 minor units"))
    }

    /// The amount, with exactly the currency's number of decimal places.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        let currency = self.same_currency(other)?;
        let minor = self
            .to_minor()
            .checked_add(other.to_minor())
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, currency))
    }

    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        let currency = self.same_currency(other)?;
        let minor = self
            .to_minor()
            .checked_sub(other.to_minor())
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, currency))
    }

    /// This amount `qty` times (a line's unit price times its quantity).
    pub fn times(&self, qty: u32) -> Result<Money, MoneyError> {
        let minor = self
            .to_minor()
            .checked_mul(i64::from(qty))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// The sum of `items`, all in `currency`; an empty iterator sums to zero.
    pub fn checked_sum<'a>(
        items: impl IntoIterator<Item = &'a Money>,
        currency: Currency,
    ) -> Result<Money, MoneyError> {
        items
            .into_iter()
            .try_fold(Money::zero(currency), |acc, m| acc.checked_add(m))
    }

    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// Compares two amounts of the same currency; amounts in different currencies have no order.
    pub fn checked_cmp(&self, other: &Money) -> Result<Ordering, MoneyError> {
        self.same_currency(other)?;
        Ok(self.to_minor().cmp(&other.to_minor()))
    }

    fn same_currency(&self, other: &Money) -> Result<Currency, MoneyError> {
        if self.currency == other.currency {
            Ok(self.currency)
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

/// Amounts in different currencies are unordered (`partial_cmp` is `None`), so `<` between
/// them is simply false rather than a misleading answer.
impl PartialOrd for Money {
    fn partial_cmp(&self, other: &Money) -> Option<Ordering> {
        self.checked_cmp(other).ok()
    }
}

impl fmt::Display for Money {
    /// `12.50 EUR`: the amount with the currency's decimals, then the code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

/// THE rounding rule: to the currency's minor unit, half-up (a half goes away from zero:
/// 0.495 → 0.50, −0.495 → −0.50), known as commercial rounding (kaufmännisches Runden).
///
/// Why this rule and not banker's rounding (half-to-even, `rust_decimal`'s default): it is the
/// rule German and most EU tax authorities expect on invoices and receipts (DIN 1333, the
/// GoBD/KassenSichV audits recompute tax this way), and it is what customers and cashiers expect
/// when they check a receipt by hand. Every rounding in Kassa goes through this function, so the
/// rule can only ever differ in one place.
///
/// # Panics
///
/// If the rounded amount does not fit in `i64` minor units. Kassa only rounds products of
/// in-range `Money` and rates of at most 100 %, which stay in range; use [`try_round_money`] for
/// arbitrary input.
pub fn round_money(amount: Decimal, currency: Currency) -> Money {
    try_round_money(amount, currency)
        .unwrap_or_else(|e| panic!("round_money({amount}, {currency}): {e}"))
}

/// [`round_money`] for amounts that may be out of range.
pub fn try_round_money(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
    let rounded = amount.round_dp_with_strategy(
        currency.minor_units(),
        RoundingStrategy::MidpointAwayFromZero,
    );
    Money::new(rounded, currency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn eur(s: &str) -> Money {
        Money::new(dec(s), Currency::EUR).unwrap()
    }

    #[test]
    fn new_keeps_exact_amounts_and_pads_to_the_currency_scale() {
        assert_eq!(eur("12.5").amount().to_string(), "12.50");
        assert_eq!(eur("12.500").to_minor(), 1250);
        assert_eq!(eur("-3").to_string(), "-3.00 EUR");
        assert_eq!(
            Money::new(dec("1250"), Currency::JPY).unwrap().to_string(),
            "1250 JPY"
        );
    }

    #[test]
    fn new_refuses_to_round_input() {
        assert_eq!(
            Money::new(dec("12.505"), Currency::EUR),
            Err(MoneyError::TooPrecise {
                amount: dec("12.505"),
                currency: Currency::EUR,
                minor_units: 2
            })
        );
        assert!(matches!(
            Money::new(dec("1.5"), Currency::JPY),
            Err(MoneyError::TooPrecise { .. })
        ));
    }

    #[test]
    fn new_refuses_amounts_beyond_i64_minor_units() {
        assert_eq!(
            Money::new(dec("92233720368547758.08"), Currency::EUR),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::new(dec("92233720368547758.07"), Currency::EUR)
                .unwrap()
                .to_minor(),
            i64::MAX
        );
        assert_eq!(
            Money::new(Decimal::MAX, Currency::EUR),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn parse_accepts_only_plain_decimals() {
        assert_eq!(Money::parse("12.5", Currency::EUR), Ok(eur("12.50")));
        assert_eq!(Money::parse("-0.01", Currency::EUR), Ok(eur("-0.01")));
        assert_eq!(
            Money::parse("7", Currency::JPY),
            Ok(Money::from_minor(7, Currency::JPY))
        );
        assert_eq!(
            Money::parse("1e3", Currency::EUR),
            Err(MoneyError::InvalidAmount {
                value: "1e3".into()
            })
        );
        assert!(matches!(
            Money::parse("0.001", Currency::EUR),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert_eq!(
            Money::parse("92233720368547758.08", Currency::EUR),
            Err(MoneyError::Overflow)
        );
        // Too many digits for Decimal: refused, never silently rounded.
        assert!(Money::parse("1.00000000000000000000000000001", Currency::EUR).is_err());
    }

    #[test]
    fn arithmetic_checks_currency_and_overflow() {
        let usd = Money::from_minor(100, Currency::USD);
        assert_eq!(
            eur("1").checked_add(&usd),
            Err(MoneyError::CurrencyMismatch {
                left: Currency::EUR,
                right: Currency::USD
            })
        );
        assert!(eur("1").checked_sub(&usd).is_err());
        assert_eq!(
            Money::from_minor(i64::MAX, Currency::EUR).checked_add(&eur("0.01")),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::from_minor(i64::MAX, Currency::EUR).times(2),
            Err(MoneyError::Overflow)
        );
        assert_eq!(eur("0.99").times(3).unwrap(), eur("2.97"));
        assert_eq!(eur("0.99").times(0).unwrap(), Money::zero(Currency::EUR));
        assert_eq!(eur("1.00").checked_sub(&eur("1.01")).unwrap(), eur("-0.01"));
        assert!(eur("-0.01").is_negative());
        assert!(!Money::zero(Currency::EUR).is_negative());
    }

    #[test]
    fn comparison_is_only_within_a_currency() {
        assert!(eur("1.00") < eur("1.01"));
        let usd = Money::from_minor(100, Currency::USD);
        assert_eq!(eur("1.00").partial_cmp(&usd), None);
        assert!(eur("1.00").checked_cmp(&usd).is_err());
        assert_ne!(eur("1.00"), usd);
    }

    #[test]
    fn serde_uses_a_string_amount_with_the_currency_decimals() {
        let json = serde_json::to_string(&eur("12.5")).unwrap();
        assert_eq!(json, r#"{"amount":"12.50","currency":"EUR"}"#);
        let back: Money = serde_json::from_str(r#"{"amount":"12.50","currency":"EUR"}"#).unwrap();
        assert_eq!(back, eur("12.50"));
        let yen = serde_json::to_string(&Money::from_minor(500, Currency::JPY)).unwrap();
        assert_eq!(yen, r#"{"amount":"500","currency":"JPY"}"#);
    }

    #[test]
    fn serde_rejects_invalid_money() {
        for bad in [
            r#"{"amount":"12.505","currency":"EUR"}"#,
            r#"{"amount":12.5,"currency":"EUR"}"#,
            r#"{"amount":"12.50","currency":"XXX"}"#,
            r#"{"amount":"12.50","currency":"eur"}"#,
            r#"{"amount":"12.50"}"#,
            r#"{"amount":"1e3","currency":"EUR"}"#,
            r#"{"amount":"1_000","currency":"EUR"}"#,
            r#"{"amount":"+1","currency":"EUR"}"#,
            r#"{"amount":" 1","currency":"EUR"}"#,
            r#"{"amount":"1.","currency":"EUR"}"#,
            r#"{"amount":".5","currency":"EUR"}"#,
            r#"{"amount":"","currency":"EUR"}"#,
            r#"{"amount":"12.50","currency":"EUR","extra":1}"#,
        ] {
            assert!(
                serde_json::from_str::<Money>(bad).is_err(),
                "accepted {bad}"
            );
        }
        let err = serde_json::from_str::<Money>(r#"{"amount":"12.505","currency":"EUR"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 2 decimal places"), "{err}");
    }

    #[test]
    fn currency_parses_and_prints_its_code() {
        for c in Currency::ALL {
            assert_eq!(c.code().parse::<Currency>().unwrap(), c);
            assert_eq!(c.to_string(), c.code());
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.code())
            );
        }
        assert_eq!(Currency::JPY.minor_units(), 0);
        assert_eq!(Currency::EUR.minor_units(), 2);
        assert!("eur".parse::<Currency>().is_err());
    }

    #[test]
    fn round_money_rounds_half_away_from_zero() {
        let cases = [
            ("0.495", "0.50"),
            ("0.494999", "0.49"),
            ("0.005", "0.01"),
            ("2.345", "2.35"),
            // Banker's rounding would give 2.34 here; commercial rounding does not.
            ("2.3450", "2.35"),
            ("-0.495", "-0.50"),
            ("-0.005", "-0.01"),
            ("1.004", "1.00"),
        ];
        for (input, want) in cases {
            assert_eq!(round_money(dec(input), Currency::EUR), eur(want), "{input}");
        }
        assert_eq!(round_money(dec("2.5"), Currency::JPY).to_minor(), 3);
        assert_eq!(round_money(dec("-2.5"), Currency::JPY).to_minor(), -3);
    }

    #[test]
    fn try_round_money_reports_overflow() {
        assert_eq!(
            try_round_money(Decimal::MAX, Currency::EUR),
            Err(MoneyError::Overflow)
        );
    }

    #[cfg(feature = "openapi")]
    #[test]
    fn openapi_schema_shows_a_string_amount_and_a_currency_code() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Money::schema()).unwrap();
        assert_eq!(schema["properties"]["amount"]["type"], "string", "{schema}");
        let currency = serde_json::to_value(Currency::schema()).unwrap();
        assert!(currency.to_string().contains("\"EUR\""), "{currency}");
    }

    fn currency() -> impl Strategy<Value = Currency> {
        proptest::sample::select(Currency::ALL.to_vec())
    }

    /// Amounts well inside the range so that sums of three never overflow.
    fn minor() -> impl Strategy<Value = i64> {
        -1_000_000_000_000_i64..1_000_000_000_000
    }

    proptest! {
        #[test]
        fn addition_is_associative_and_subtraction_its_inverse(
            c in currency(), a in minor(), b in minor(), d in minor()
        ) {
            let (a, b, d) = (Money::from_minor(a, c), Money::from_minor(b, c), Money::from_minor(d, c));
            let left = a.checked_add(&b)?.checked_add(&d)?;
            let right = a.checked_add(&b.checked_add(&d)?)?;
            prop_assert_eq!(left, right);
            prop_assert_eq!(a.checked_add(&b)?.checked_sub(&b)?, a);
            prop_assert_eq!(a.checked_add(&b)?, b.checked_add(&a)?);
        }

        #[test]
        fn minor_units_round_trip(c in currency(), m in any::<i64>()) {
            let money = Money::from_minor(m, c);
            prop_assert_eq!(money.to_minor(), m);
            prop_assert_eq!(Money::new(money.amount(), c)?, money);
            prop_assert_eq!(money.amount().scale(), c.minor_units());
        }

        #[test]
        fn serde_round_trips(c in currency(), m in any::<i64>()) {
            let money = Money::from_minor(m, c);
            let json = serde_json::to_string(&money).unwrap();
            let back: Money = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, money);
        }

        #[test]
        fn display_amount_parses_back(c in currency(), m in any::<i64>()) {
            let money = Money::from_minor(m, c);
            prop_assert_eq!(Money::parse(&money.amount().to_string(), c)?, money);
            prop_assert_eq!(money.to_string(), format!("{} {}", money.amount(), c));
        }

        #[test]
        fn times_equals_repeated_addition(c in currency(), m in minor(), qty in 0_u32..50) {
            let unit = Money::from_minor(m, c);
            let mut sum = Money::zero(c);
            for _ in 0..qty {
                sum = sum.checked_add(&unit)?;
            }
            prop_assert_eq!(unit.times(qty)?, sum);
        }

        #[test]
        fn rounding_is_within_half_a_minor_unit(c in currency(), mantissa in -1_000_000_000_000_i64..1_000_000_000_000, scale in 0_u32..6) {
            let amount = Decimal::new(mantissa, scale);
            let rounded = round_money(amount, c);
            let half = Decimal::new(5, c.minor_units() + 1);
            prop_assert!((rounded.amount() - amount).abs() <= half);
            // Rounding an already exact amount changes nothing.
            prop_assert_eq!(round_money(rounded.amount(), c), rounded);
        }
    }
}
