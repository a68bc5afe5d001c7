//! A shift at the till: the cash a drawer should hold and the X and Z reports, as the register
//! core computes them, the UI shows them and Central keeps them. One type for all three.
//!
//! Expected cash = float + cash sales − cash refunds + paid-in − paid-out − safe drops; the
//! count at the close is blind (the cashier counts before seeing what was expected), then
//! over/short = counted − expected. A Z report is the closed shift's report with its number:
//! per register, 1, 2, 3, … with no gap and no reuse (the register's store enforces that).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Currency, Money, MoneyError, SalesReport};

/// A count of one denomination is at most this (a drawer holds a few hundred coins of a kind).
pub const DENOMINATION_COUNT_MAX: u32 = 100_000;
/// A cash movement's reason, in characters.
pub const MOVEMENT_REASON_CHARS_MAX: usize = 200;

/// The notes and coins of `currency`, largest first, in minor units.
pub fn denominations(currency: Currency) -> &'static [i64] {
    match currency {
        Currency::EUR | Currency::PLN => &[
            50_000, 20_000, 10_000, 5_000, 2_000, 1_000, 500, 200, 100, 50, 20, 10, 5, 2, 1,
        ],
        Currency::USD => &[10_000, 5_000, 2_000, 1_000, 500, 200, 100, 25, 10, 5, 1],
        Currency::GBP => &[5_000, 2_000, 1_000, 500, 200, 100, 50, 20, 10, 5, 2, 1],
        Currency::CHF => &[
            100_000, 20_000, 10_000, 5_000, 2_000, 1_000, 500, 200, 100, 50, 20, 10, 5,
        ],
        Currency::SEK => &[
            100_000, 50_000, 20_000, 10_000, 5_000, 2_000, 1_000, 500, 200, 100,
        ],
        Currency::NOK => &[
            100_000, 50_000, 20_000, 10_000, 5_000, 2_000, 1_000, 500, 100,
        ],
        Currency::DKK => &[
            100_000, 50_000, 20_000, 10_000, 5_000, 2_000, 1_000, 500, 200, 100, 50,
        ],
        Currency::CZK => &[
            500_000, 200_000, 100_000, 50_000, 20_000, 10_000, 5_000, 2_000, 1_000, 500, 200, 100,
        ],
        Currency::JPY => &[10_000, 5_000, 2_000, 1_000, 500, 100, 50, 10, 5, 1],
    }
}

/// Why a count or a shift's figures are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShiftError {
    #[error("{value} is not a note or coin of {currency}")]
    UnknownDenomination { value: String, currency: Currency },
    #[error("{value} is counted twice; give each note or coin once with its count")]
    RepeatedDenomination { value: String },
    #[error("a count of {count} is more than {DENOMINATION_COUNT_MAX} of one note or coin")]
    CountTooLarge { count: u32 },
    #[error("a cash amount cannot be negative ({0})")]
    Negative(String),
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// So many of one note or coin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DenominationCount {
    pub value: Money,
    pub count: u32,
}

/// Cash counted: a sum, or note by note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case", deny_unknown_fields)]
pub enum CashCount {
    Sum { amount: Money },
    Denominations { counts: Vec<DenominationCount> },
}

impl CashCount {
    /// The amount counted, in `currency`; every denomination must be one of its notes or
    /// coins, each given once.
    pub fn total(&self, currency: Currency) -> Result<Money, ShiftError> {
        match self {
            CashCount::Sum { amount } => {
                if amount.currency() != currency {
                    return Err(MoneyError::CurrencyMismatch {
                        left: amount.currency(),
                        right: currency,
                    }
                    .into());
                }
                if amount.is_negative() {
                    return Err(ShiftError::Negative(amount.to_string()));
                }
                Ok(*amount)
            }
            CashCount::Denominations { counts } => {
                let known = denominations(currency);
                let mut total = Money::zero(currency);
                let mut seen = Vec::with_capacity(counts.len());
                for c in counts {
                    let minor = c.value.to_minor();
                    if c.value.currency() != currency || !known.contains(&minor) {
                        return Err(ShiftError::UnknownDenomination {
                            value: c.value.to_string(),
                            currency,
                        });
                    }
                    if seen.contains(&minor) {
                        return Err(ShiftError::RepeatedDenomination {
                            value: c.value.to_string(),
                        });
                    }
                    seen.push(minor);
                    if c.count > DENOMINATION_COUNT_MAX {
                        return Err(ShiftError::CountTooLarge { count: c.count });
                    }
                    total = total.checked_add(&c.value.times(c.count)?)?;
                }
                Ok(total)
            }
        }
    }

    /// The counts note by note (empty for a sum).
    pub fn by_denomination(&self) -> Vec<DenominationCount> {
        match self {
            CashCount::Sum { .. } => Vec::new(),
            CashCount::Denominations { counts } => counts.clone(),
        }
    }
}

/// Cash into or out of the drawer that is not a sale or a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MovementKind {
    /// Money put in (more change from the safe).
    PaidIn,
    /// Money taken out to pay for something (the window cleaner).
    PaidOut,
    /// Money taken to the safe so the drawer holds less.
    SafeDrop,
}

impl MovementKind {
    pub const ALL: [MovementKind; 3] = [
        MovementKind::PaidIn,
        MovementKind::PaidOut,
        MovementKind::SafeDrop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::PaidIn => "paid_in",
            MovementKind::PaidOut => "paid_out",
            MovementKind::SafeDrop => "safe_drop",
        }
    }

    pub fn parse(s: &str) -> Option<MovementKind> {
        MovementKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What the shop calls it.
    pub fn label(self) -> &'static str {
        match self {
            MovementKind::PaidIn => "Paid in",
            MovementKind::PaidOut => "Paid out",
            MovementKind::SafeDrop => "Safe drop",
        }
    }
}

/// One cash movement of a shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CashMovement {
    pub id: Uuid,
    pub kind: MovementKind,
    /// Always positive; the kind says which way it went.
    pub amount: Money,
    pub reason: String,
    pub made_by: String,
    /// The manager who approved it (above the till's limit, or a manager's own).
    pub approved_by: Option<String>,
    pub made_at: DateTime<Utc>,
}

/// The cash a shift's drawer took and gave, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CashSummary {
    pub float: Money,
    /// What cash sales took (their totals; change already given back).
    pub cash_sales: Money,
    /// What went back in cash on refunds.
    pub cash_refunds: Money,
    pub paid_in: Money,
    pub paid_out: Money,
    pub safe_drops: Money,
}

impl CashSummary {
    /// Nothing yet: the float alone.
    pub fn opened_with(float: Money) -> CashSummary {
        let zero = Money::zero(float.currency());
        CashSummary {
            float,
            cash_sales: zero,
            cash_refunds: zero,
            paid_in: zero,
            paid_out: zero,
            safe_drops: zero,
        }
    }

    /// float + cash sales − cash refunds + paid-in − paid-out − safe drops.
    pub fn expected(&self) -> Result<Money, MoneyError> {
        self.float
            .checked_add(&self.cash_sales)?
            .checked_sub(&self.cash_refunds)?
            .checked_add(&self.paid_in)?
            .checked_sub(&self.paid_out)?
            .checked_sub(&self.safe_drops)
    }

    /// Adds one movement to its kind's total.
    pub fn add_movement(&mut self, kind: MovementKind, amount: &Money) -> Result<(), MoneyError> {
        let sum = match kind {
            MovementKind::PaidIn => &mut self.paid_in,
            MovementKind::PaidOut => &mut self.paid_out,
            MovementKind::SafeDrop => &mut self.safe_drops,
        };
        *sum = sum.checked_add(amount)?;
        Ok(())
    }
}

/// Counted − expected: positive is over, negative is short.
pub fn over_short(counted: &Money, expected: &Money) -> Result<Money, MoneyError> {
    counted.checked_sub(expected)
}

/// Is `over_short` within `tolerance` either way (no manager needed)?
pub fn within_tolerance(over_short: &Money, tolerance: &Money) -> Result<bool, MoneyError> {
    let magnitude = if over_short.is_negative() {
        Money::zero(over_short.currency()).checked_sub(over_short)?
    } else {
        *over_short
    };
    Ok(magnitude.checked_cmp(tolerance)?.is_le())
}

/// The blind count's outcome, shown once the cashier has counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftCount {
    pub expected: Money,
    pub counted: Money,
    /// counted − expected: positive over, negative short.
    pub over_short: Money,
    /// Beyond this either way a manager approves the close.
    pub tolerance: Money,
    pub needs_approval: bool,
}

/// A shift's report: an X report while it is open (no number, no count), a Z report once it
/// is closed (numbered, counted, immutable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShiftReport {
    pub shift_id: Uuid,
    /// The Z number (per register: 1, 2, 3, … no gap, no reuse); `None` on an X report.
    pub z_no: Option<i64>,
    pub register_code: String,
    pub location: String,
    /// The store's local day the shift opened on (its business day).
    pub business_day: NaiveDate,
    pub opened_at: DateTime<Utc>,
    pub opened_by: String,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub currency: Currency,
    pub cash: CashSummary,
    /// What the drawer should hold; `None` on a cashier's X report (the close is blind).
    pub expected: Option<Money>,
    pub counted: Option<Money>,
    pub counted_by_denomination: Vec<DenominationCount>,
    /// counted − expected.
    pub over_short: Option<Money>,
    /// The manager who accepted an over/short beyond the tolerance.
    pub over_short_approved_by: Option<String>,
    pub movements: Vec<CashMovement>,
    /// Times the drawer was opened with no sale.
    pub no_sales: i64,
    /// The shift's sales and refunds: counts, totals by payment method, tax per rate,
    /// discounts.
    pub sales: SalesReport,
}

impl ShiftReport {
    /// Checks the figures agree with each other (Central checks a Z report on arrival; the
    /// register before writing one): expected from the cash summary, over/short from the
    /// count, one currency.
    pub fn check(&self) -> Result<(), String> {
        let c = &self.cash;
        let all = [
            c.float,
            c.cash_sales,
            c.cash_refunds,
            c.paid_in,
            c.paid_out,
            c.safe_drops,
        ];
        if all.iter().any(|m| m.currency() != self.currency) || self.sales.currency != self.currency
        {
            return Err(format!("every amount must be in {}", self.currency));
        }
        if all.iter().any(Money::is_negative) {
            return Err("the cash summary's amounts cannot be negative".into());
        }
        let expected = c.expected().map_err(|e| e.to_string())?;
        if let Some(stated) = self.expected {
            if stated != expected {
                return Err(format!(
                    "expected cash is {stated} but the cash summary makes {expected}"
                ));
            }
        }
        match (self.counted, self.over_short, self.expected) {
            (Some(counted), Some(stated), Some(expected)) => {
                let over_short = over_short(&counted, &expected).map_err(|e| e.to_string())?;
                if over_short != stated {
                    return Err(format!(
                        "over/short is {stated} but counted − expected is {over_short}"
                    ));
                }
            }
            (None, None, _) => {}
            _ => return Err("a count needs its expected cash and its over/short".into()),
        }
        if let (Some(closed), opened) = (self.closed_at, self.opened_at) {
            if closed < opened {
                return Err("the shift closed before it opened".into());
            }
        }
        Ok(())
    }

    /// The report as text, one line each, for the screen (a printer lays out the same data).
    pub fn render_text(&self) -> String {
        let mut out = Vec::new();
        let title = match self.z_no {
            Some(z) => format!("Z REPORT No. {z}"),
            None => "X REPORT (shift open)".to_owned(),
        };
        out.push(title);
        out.push(format!("{} {}", self.location, self.register_code));
        out.push(format!("Business day {}", self.business_day));
        out.push(format!(
            "Opened {} by {}",
            self.opened_at.format("%Y-%m-%d %H:%M UTC"),
            self.opened_by
        ));
        if let (Some(at), Some(by)) = (self.closed_at, &self.closed_by) {
            out.push(format!(
                "Closed {} by {by}",
                at.format("%Y-%m-%d %H:%M UTC")
            ));
        }
        out.push(String::new());
        out.push(format!("Sales {:>28}", self.sales.sales));
        out.push(format!("Gross {:>28}", self.sales.gross.to_string()));
        out.push(format!(
            "Refunds ({}) {:>22}",
            self.sales.refund_count,
            self.sales.refunds.to_string()
        ));
        out.push(format!("Net {:>30}", self.sales.net.to_string()));
        out.push(format!(
            "Discounts {:>24}",
            self.sales.discounts.to_string()
        ));
        if let Some(rounding) = self.sales.cash_rounding {
            out.push(format!("Cash rounding {:>20}", rounding.to_string()));
        }
        for m in &self.sales.by_method {
            out.push(format!(
                "  {:<10} {:>4} sales {:>15}",
                m.method,
                m.sales,
                m.net.to_string()
            ));
        }
        for t in &self.sales.taxes {
            out.push(format!(
                "  Tax {:?} {}% {:>16}",
                t.tax_class,
                t.rate,
                t.tax.to_string()
            ));
        }
        out.push(format!("No sales {:>25}", self.no_sales));
        out.push(String::new());
        let c = &self.cash;
        for (label, amount) in [
            ("Float", c.float),
            ("Cash sales", c.cash_sales),
            ("Cash refunds", c.cash_refunds),
            ("Paid in", c.paid_in),
            ("Paid out", c.paid_out),
            ("Safe drops", c.safe_drops),
        ] {
            out.push(format!("{label:<14}{:>20}", amount.to_string()));
        }
        if let Some(expected) = self.expected {
            out.push(format!(
                "{:<14}{:>20}",
                "Expected cash",
                expected.to_string()
            ));
        }
        if let Some(counted) = self.counted {
            out.push(format!("{:<14}{:>20}", "Counted", counted.to_string()));
        }
        if let Some(over_short) = self.over_short {
            let word = if over_short.is_negative() {
                "Short"
            } else {
                "Over"
            };
            out.push(format!("{word:<14}{:>20}", over_short.to_string()));
        }
        if let Some(by) = &self.over_short_approved_by {
            out.push(format!("Over/short approved by {by}"));
        }
        out.join("\n")
    }
}

/// Central's answer to a Z report a register delivers (`POST /v1/sync/shifts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZReceived {
    pub register_id: Uuid,
    pub z_no: i64,
    /// The same report was delivered before: nothing new was written.
    pub replayed: bool,
    /// Z numbers of this register missing just below this one, if any.
    pub gap: Option<ZGap>,
}

/// Z numbers Central has not received from a register: `from..=to`, below `before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZGap {
    pub register_id: Uuid,
    pub register_code: String,
    pub from: i64,
    pub to: i64,
    /// The first Z number received after the gap.
    pub before: i64,
}

/// One closed shift as Central lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShiftSummary {
    pub register_id: Uuid,
    pub register_code: String,
    pub location: String,
    pub z_no: i64,
    pub shift_id: Uuid,
    pub business_day: NaiveDate,
    pub opened_at: DateTime<Utc>,
    pub closed_at: DateTime<Utc>,
    pub opened_by: String,
    pub closed_by: String,
    pub cash: CashSummary,
    pub expected: Money,
    pub counted: Money,
    pub over_short: Money,
    pub over_short_approved_by: Option<String>,
    pub sales: i64,
    pub gross: Money,
    pub refunds: Money,
    pub net: Money,
    pub no_sales: i64,
}

/// A store's business day: its registers' shifts summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreDay {
    pub location: String,
    pub business_day: NaiveDate,
    /// Registers with a shift that day.
    pub registers: i64,
    pub shifts: i64,
    pub sales: i64,
    pub gross: Money,
    pub refunds: Money,
    pub net: Money,
    pub expected: Money,
    pub counted: Money,
    pub over_short: Money,
}

/// `GET /v1/shifts`: the shifts, the store days they make, and the Z numbers missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShiftList {
    /// By business day, location, register code and Z number.
    pub shifts: Vec<ShiftSummary>,
    /// By business day and location.
    pub days: Vec<StoreDay>,
    /// Every gap in the listed registers' Z numbers.
    pub gaps: Vec<ZGap>,
}

impl StoreDay {
    /// Sums `shifts` (all of one currency) by location and business day.
    pub fn sum(shifts: &[ShiftSummary]) -> Result<Vec<StoreDay>, MoneyError> {
        let mut days: Vec<StoreDay> = Vec::new();
        let mut registers: Vec<(String, NaiveDate, Uuid)> = Vec::new();
        for s in shifts {
            let at = days
                .iter()
                .position(|d| d.location == s.location && d.business_day == s.business_day);
            let day = match at {
                Some(i) => &mut days[i],
                None => {
                    let zero = Money::zero(s.gross.currency());
                    days.push(StoreDay {
                        location: s.location.clone(),
                        business_day: s.business_day,
                        registers: 0,
                        shifts: 0,
                        sales: 0,
                        gross: zero,
                        refunds: zero,
                        net: zero,
                        expected: zero,
                        counted: zero,
                        over_short: zero,
                    });
                    let last = days.len() - 1;
                    &mut days[last]
                }
            };
            let key = (s.location.clone(), s.business_day, s.register_id);
            if !registers.contains(&key) {
                registers.push(key);
                day.registers += 1;
            }
            day.shifts += 1;
            day.sales += s.sales;
            day.gross = day.gross.checked_add(&s.gross)?;
            day.refunds = day.refunds.checked_add(&s.refunds)?;
            day.net = day.net.checked_add(&s.net)?;
            day.expected = day.expected.checked_add(&s.expected)?;
            day.counted = day.counted.checked_add(&s.counted)?;
            day.over_short = day.over_short.checked_add(&s.over_short)?;
        }
        days.sort_by(|a, b| (a.business_day, &a.location).cmp(&(b.business_day, &b.location)));
        Ok(days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::EUR).unwrap()
    }

    #[test]
    fn a_count_by_denomination_adds_up_and_refuses_strange_coins() {
        let count = CashCount::Denominations {
            counts: vec![
                DenominationCount {
                    value: eur("20.00"),
                    count: 3,
                },
                DenominationCount {
                    value: eur("0.05"),
                    count: 7,
                },
            ],
        };
        assert_eq!(count.total(Currency::EUR).unwrap(), eur("60.35"));
        let odd = CashCount::Denominations {
            counts: vec![DenominationCount {
                value: eur("0.30"),
                count: 1,
            }],
        };
        assert!(matches!(
            odd.total(Currency::EUR),
            Err(ShiftError::UnknownDenomination { .. })
        ));
        let twice = CashCount::Denominations {
            counts: vec![
                DenominationCount {
                    value: eur("1.00"),
                    count: 1,
                },
                DenominationCount {
                    value: eur("1.00"),
                    count: 2,
                },
            ],
        };
        assert!(matches!(
            twice.total(Currency::EUR),
            Err(ShiftError::RepeatedDenomination { .. })
        ));
        let negative = CashCount::Sum {
            amount: eur("-1.00"),
        };
        assert!(negative.total(Currency::EUR).is_err());
    }

    #[test]
    fn tolerance_holds_either_way() {
        let tolerance = eur("5.00");
        assert!(within_tolerance(&eur("5.00"), &tolerance).unwrap());
        assert!(within_tolerance(&eur("-5.00"), &tolerance).unwrap());
        assert!(!within_tolerance(&eur("-5.01"), &tolerance).unwrap());
        assert!(!within_tolerance(&eur("5.01"), &tolerance).unwrap());
    }

    /// One thing that moves cash in a shift, in minor units.
    #[derive(Debug, Clone)]
    enum Event {
        CashSale(i64),
        CashRefund(i64),
        Movement(MovementKind, i64),
    }

    fn event() -> impl Strategy<Value = Event> {
        let amount = 1_i64..1_000_000;
        prop_oneof![
            amount.clone().prop_map(Event::CashSale),
            amount.clone().prop_map(Event::CashRefund),
            (0_usize..3, amount).prop_map(|(k, a)| Event::Movement(MovementKind::ALL[k], a)),
        ]
    }

    proptest! {
        /// However a shift goes, expected cash is the float plus every cash event with its
        /// sign, in the order they happened or any other; and counted = expected + over/short.
        #[test]
        fn expected_cash_is_the_float_plus_every_signed_cash_event(
            float in 0_i64..10_000_000,
            events in proptest::collection::vec(event(), 0..60),
            counted in 0_i64..100_000_000,
        ) {
            let m = |minor: i64| Money::from_minor(minor, Currency::EUR);
            let mut summary = CashSummary::opened_with(m(float));
            let mut drawer = float;
            for e in &events {
                match e {
                    Event::CashSale(a) => {
                        summary.cash_sales = summary.cash_sales.checked_add(&m(*a)).unwrap();
                        drawer += a;
                    }
                    Event::CashRefund(a) => {
                        summary.cash_refunds = summary.cash_refunds.checked_add(&m(*a)).unwrap();
                        drawer -= a;
                    }
                    Event::Movement(kind, a) => {
                        summary.add_movement(*kind, &m(*a)).unwrap();
                        drawer += if *kind == MovementKind::PaidIn { *a } else { -a };
                    }
                }
            }
            let expected = summary.expected().unwrap();
            prop_assert_eq!(expected, m(drawer));
            let over_short = over_short(&m(counted), &expected).unwrap();
            prop_assert_eq!(expected.checked_add(&over_short).unwrap(), m(counted));
            prop_assert_eq!(over_short.is_negative(), counted < drawer);
        }

        /// A count note by note is the sum of value × count, whatever the order it is given in.
        #[test]
        fn a_count_by_denomination_is_value_times_count_in_any_order(
            counts in proptest::collection::vec(0_u32..500, 15),
            rotate in 0_usize..15,
        ) {
            let values = denominations(Currency::EUR);
            let mut given: Vec<DenominationCount> = values
                .iter()
                .zip(&counts)
                .map(|(v, c)| DenominationCount { value: Money::from_minor(*v, Currency::EUR), count: *c })
                .collect();
            given.rotate_left(rotate);
            let total = CashCount::Denominations { counts: given }.total(Currency::EUR).unwrap();
            let sum: i64 = values.iter().zip(&counts).map(|(v, c)| v * i64::from(*c)).sum();
            prop_assert_eq!(total.to_minor(), sum);
        }
    }

    #[test]
    fn every_currency_has_its_notes_and_coins_largest_first() {
        for currency in Currency::ALL {
            let values = denominations(currency);
            assert!(!values.is_empty());
            assert!(values.windows(2).all(|w| w[0] > w[1]), "{currency}");
        }
    }
}
