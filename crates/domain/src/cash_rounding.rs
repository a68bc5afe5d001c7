//! Cash rounding ("Swedish" or "Dutch" rounding): a store that has no coins below an increment
//! (0.05 in the Netherlands, Belgium, Finland, Switzerland; 1.00 in Sweden) rounds what the
//! customer pays in cash to that increment. Only the final cash due of a sale is rounded; a
//! card part always pays its exact amount.
//!
//! The rule is half away from zero on the increment: 3.02 → 3.00, 3.03 → 3.05, 3.025 cannot
//! happen, and with an increment of 0.10 a due of 3.05 → 3.10 (the Swedish öre rule, 0.50 of a
//! krona up). The difference (`rounded − exact`, negative when the customer pays less) is what
//! the sale records: cash taken = exact cash due + difference, so
//! `paid = total + difference` for the sale as a whole.
//!
//! The cash of a sale is rounded as one: a split sale's card parts are exact, its cash parts
//! together pay the rest rounded (card 10.00 + cash rest 3.02 → cash 3.00, rounding −0.02), and
//! only the final cash part absorbs the rounding ([`final_cash_part`]). Change comes from it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Money, MoneyError};

/// The largest increment, in minor units (100.00 in a two-decimal currency).
pub const CASH_ROUNDING_MINOR_MAX: u32 = 10_000;

/// A location's cash rounding rule: the increment cash amounts are rounded to, in the
/// currency's minor units. `0` means no rounding. Made by [`CashRounding::new`], which only
/// takes increments that divide [`CASH_ROUNDING_MINOR_MAX`] (1, 2, 5, 10, 20, 25, 50, 100, …),
/// so that whole units are always reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct CashRounding(u32);

/// Why an increment is not a cash rounding rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cash_rounding must be 0 (none) or an increment in minor units that divides \
     {CASH_ROUNDING_MINOR_MAX} (5 for 0.05, 10 for 0.10, 100 for 1.00); got {0}"
)]
pub struct InvalidCashRounding(pub i64);

impl TryFrom<i64> for CashRounding {
    type Error = InvalidCashRounding;
    fn try_from(minor: i64) -> Result<Self, Self::Error> {
        CashRounding::new(minor)
    }
}

impl From<CashRounding> for i64 {
    fn from(rule: CashRounding) -> i64 {
        i64::from(rule.0)
    }
}

impl fmt::Display for CashRounding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A cash amount after the rule: `due = exact + difference`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundedCash {
    /// What the customer pays in cash.
    pub due: Money,
    /// `due − exact`: negative when rounded down, zero when already on the increment.
    pub difference: Money,
}

impl CashRounding {
    /// No rounding: every amount stays exact.
    pub const NONE: CashRounding = CashRounding(0);

    /// The rule with increment `minor` (0: none).
    pub fn new(minor: i64) -> Result<CashRounding, InvalidCashRounding> {
        match u32::try_from(minor) {
            Ok(m)
                if m <= CASH_ROUNDING_MINOR_MAX
                    && (m == 0 || CASH_ROUNDING_MINOR_MAX.is_multiple_of(m)) =>
            {
                Ok(CashRounding(m))
            }
            _ => Err(InvalidCashRounding(minor)),
        }
    }

    /// The increment in minor units (0: none).
    pub fn increment_minor(self) -> u32 {
        self.0
    }

    /// Whether amounts are rounded at all (an increment of 1 minor unit changes nothing).
    pub fn is_none(self) -> bool {
        self.0 <= 1
    }

    /// Rounds the exact cash due `exact` to the increment, half away from zero.
    pub fn round(self, exact: Money) -> Result<RoundedCash, MoneyError> {
        let currency = exact.currency();
        let minor = exact.to_minor();
        let due = if self.is_none() {
            minor
        } else {
            let inc = i64::from(self.0);
            let magnitude = minor.checked_abs().ok_or(MoneyError::Overflow)?;
            let rest = magnitude % inc;
            let down = magnitude - rest;
            let rounded = if rest * 2 >= inc {
                down.checked_add(inc).ok_or(MoneyError::Overflow)?
            } else {
                down
            };
            if minor < 0 {
                -rounded
            } else {
                rounded
            }
        };
        let difference = due.checked_sub(minor).ok_or(MoneyError::Overflow)?;
        Ok(RoundedCash {
            due: Money::from_minor(due, currency),
            difference: Money::from_minor(difference, currency),
        })
    }

    /// The final cash due of a sale of `total` of which `paid_other` is already paid exactly
    /// (card parts, earlier cash parts): `total − paid_other`, rounded.
    pub fn final_cash_due(
        self,
        total: Money,
        paid_other: Money,
    ) -> Result<RoundedCash, MoneyError> {
        self.round(total.checked_sub(&paid_other)?)
    }

    /// Whether `difference` is exactly what this rule makes of the exact cash due `exact`
    /// (zero is always accepted: paying exact cash is never wrong).
    pub fn allows(self, exact: Money, difference: Money) -> bool {
        difference.is_zero() || self.round(exact).is_ok_and(|r| r.difference == difference)
    }
}

/// The final cash part of a sale of `total` of which `card_paid` went by card (exact) and
/// `cash_paid` in earlier cash parts (exact): the cash of a sale is rounded as one, so the
/// customer pays `round(total − card_paid)` in cash altogether and this part is that less
/// `cash_paid`. Where rounding would leave nothing (or less) for a due of more than zero, the
/// part is exact and unrounded: a sale is never settled by its rounding alone. `due` is the part
/// and `difference` the sale's rounding: `card_paid + cash_paid + due = total + difference`.
pub fn final_cash_part(
    rule: CashRounding,
    total: Money,
    card_paid: Money,
    cash_paid: Money,
) -> Result<RoundedCash, MoneyError> {
    let cash = total.checked_sub(&card_paid)?;
    let exact_rest = cash.checked_sub(&cash_paid)?;
    let rounded = rule.round(cash)?;
    let part = rounded.due.checked_sub(&cash_paid)?;
    if exact_rest.is_zero() || part.is_negative() || part.is_zero() {
        return Ok(RoundedCash {
            due: exact_rest,
            difference: Money::zero(total.currency()),
        });
    }
    Ok(RoundedCash {
        due: part,
        difference: rounded.difference,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Currency;

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::EUR).unwrap()
    }

    fn rule(minor: i64) -> CashRounding {
        CashRounding::new(minor).unwrap()
    }

    #[test]
    fn rounds_to_the_nearest_increment_half_away_from_zero() {
        let cases = [
            (5, "3.02", "3.00", "-0.02"),
            (5, "3.03", "3.05", "0.02"),
            (5, "3.05", "3.05", "0.00"),
            (5, "3.07", "3.05", "-0.02"),
            (5, "3.08", "3.10", "0.02"),
            (10, "3.05", "3.10", "0.05"),
            (10, "3.04", "3.00", "-0.04"),
            (100, "12.49", "12.00", "-0.49"),
            (100, "12.50", "13.00", "0.50"),
            (50, "7.25", "7.50", "0.25"),
            (5, "-3.02", "-3.00", "0.02"),
            (0, "3.02", "3.02", "0.00"),
            (1, "3.02", "3.02", "0.00"),
        ];
        for (inc, exact, due, diff) in cases {
            let r = rule(inc).round(eur(exact)).unwrap();
            assert_eq!(
                (r.due, r.difference),
                (eur(due), eur(diff)),
                "{inc} {exact}"
            );
        }
    }

    #[test]
    fn only_increments_that_tile_a_hundred_units_are_rules() {
        for ok in [0, 1, 2, 5, 10, 20, 25, 50, 100, 500, 1000, 10_000] {
            assert_eq!(rule(ok).increment_minor(), u32::try_from(ok).unwrap());
        }
        for bad in [-5, 3, 7, 30, 99, 20_000, i64::MAX] {
            assert_eq!(CashRounding::new(bad), Err(InvalidCashRounding(bad)));
        }
        assert!(serde_json::from_str::<CashRounding>("7").is_err());
        assert_eq!(serde_json::to_string(&rule(5)).unwrap(), "5");
    }

    #[test]
    fn a_split_sale_rounds_only_its_final_cash_part() {
        // Card 10.00 + cash rest 3.02 → cash 3.00, rounding −0.02.
        let zero = eur("0.00");
        let part = final_cash_part(rule(5), eur("13.02"), eur("10.00"), zero).unwrap();
        assert_eq!((part.due, part.difference), (eur("3.00"), eur("-0.02")));
        // 1.00 of the cash taken before: the last part is 2.00, the rounding the same.
        let part = final_cash_part(rule(5), eur("13.02"), eur("10.00"), eur("1.00")).unwrap();
        assert_eq!((part.due, part.difference), (eur("2.00"), eur("-0.02")));
        // Nothing left once rounded: the rest is taken exact.
        let part = final_cash_part(rule(100), eur("1.40"), zero, eur("1.00")).unwrap();
        assert_eq!((part.due, part.difference), (eur("0.40"), zero));
        let part = final_cash_part(rule(5), eur("0.02"), zero, zero).unwrap();
        assert_eq!((part.due, part.difference), (eur("0.02"), zero));
    }

    #[test]
    fn allows_only_the_rules_own_difference_or_exact_cash() {
        assert!(rule(5).allows(eur("3.02"), eur("-0.02")));
        assert!(rule(5).allows(eur("3.02"), eur("0.00")));
        assert!(!rule(5).allows(eur("3.02"), eur("0.03")));
        assert!(!rule(5).allows(eur("3.02"), eur("-0.01")));
        assert!(!CashRounding::NONE.allows(eur("3.02"), eur("-0.02")));
    }

    fn increment() -> impl Strategy<Value = i64> {
        proptest::sample::select(vec![2_i64, 5, 10, 20, 25, 50, 100, 500, 1000, 10_000])
    }

    fn currency() -> impl Strategy<Value = Currency> {
        proptest::sample::select(Currency::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn the_difference_is_at_most_half_the_increment_and_lands_on_it(
            inc in increment(), c in currency(), exact in -1_000_000_000_i64..1_000_000_000
        ) {
            let r = rule(inc).round(Money::from_minor(exact, c))?;
            prop_assert!(r.difference.to_minor().abs() * 2 <= inc);
            prop_assert_eq!(r.due.to_minor() % inc, 0);
            prop_assert_eq!(r.due.to_minor() - r.difference.to_minor(), exact);
            prop_assert_eq!(r.due.currency(), c);
            prop_assert!(rule(inc).allows(Money::from_minor(exact, c), r.difference));
        }

        #[test]
        fn card_parts_stay_exact_and_the_sale_reconciles(
            inc in increment(),
            cards in proptest::collection::vec(1_i64..100_000, 0..4),
            cash_before in 0_i64..50_000,
            cash_rest in 1_i64..100_000,
        ) {
            let m = |minor: i64| Money::from_minor(minor, Currency::EUR);
            let card_paid: i64 = cards.iter().sum();
            let total = m(card_paid + cash_before + cash_rest);
            let part = final_cash_part(rule(inc), total, m(card_paid), m(cash_before))?;
            // paid = total + rounding, the card parts as they were.
            prop_assert_eq!(
                m(card_paid + cash_before).checked_add(&part.due)?,
                total.checked_add(&part.difference)?
            );
            prop_assert!(part.due.to_minor() > 0);
            prop_assert!(part.difference.to_minor().abs() * 2 <= inc);
            if !part.difference.is_zero() {
                // The cash of the sale, taken together, lands on the increment.
                prop_assert_eq!((cash_before + part.due.to_minor()) % inc, 0);
                prop_assert!(rule(inc).allows(m(cash_before + cash_rest), part.difference));
            } else {
                prop_assert_eq!(part.due, m(cash_rest));
            }
        }
    }
}
