//! View models: what the screens print, computed from the shell's answers by plain functions
//! (money formatting, cart rows and tax rows, quick cash amounts, change due, the sync line, a
//! conflict's field rows, the open stock shortfalls). No web APIs here: the unit tests run on the host.

use kassa_domain::{
    compute_totals, CartLine, Currency, Money, PriceMode, TaxClass, TaxTable, Totals,
};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::model::{Cart, Choices, Conflict, ShortfallView, StockDiscrepancy, SyncStatus};

/// The most quick-amount buttons the tender panel shows.
pub const QUICK_AMOUNTS_MAX: usize = 5;
/// Notes a customer hands over, in minor units of the currency (5, 10, 20, 50, 100).
const NOTE_STEPS_MINOR: [i64; 5] = [500, 1_000, 2_000, 5_000, 10_000];

/// `12.50 €`: the amount with the currency's decimals and its symbol (or ISO code).
pub fn format_money(money: &Money) -> String {
    let symbol = match money.currency() {
        Currency::EUR => "€",
        other => other.code(),
    };
    format!("{} {symbol}", money.amount())
}

/// One cart line as the table prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct LineRow {
    pub sku: String,
    pub name: String,
    pub qty: u32,
    pub unit_price: String,
    pub discount: Option<String>,
    pub total: String,
}

/// One row of the tax breakdown.
#[derive(Debug, Clone, PartialEq)]
pub struct TaxRow {
    pub label: String,
    pub net: String,
    pub tax: String,
    pub gross: String,
}

/// Everything the cart panel shows.
#[derive(Debug, Clone, PartialEq)]
pub struct CartVm {
    pub rows: Vec<LineRow>,
    pub items: u32,
    pub subtotal: String,
    pub discount: Option<String>,
    pub taxes: Vec<TaxRow>,
    pub total: String,
    /// The total to tender, as money.
    pub total_money: Money,
    /// Do the UI's own totals (kassa-domain, Central's code) equal the register's? A `false`
    /// here is a bug to report, never something to sell through silently.
    pub totals_agree: bool,
}

/// The receipt of `lines`, computed here with the same code Central runs.
pub fn totals_of(lines: &[CartLine], currency: Currency) -> Option<Totals> {
    compute_totals(
        lines,
        PriceMode::TaxInclusive,
        &TaxTable::default(),
        currency,
    )
    .ok()
}

fn tax_label(class: TaxClass, rate: Decimal) -> String {
    format!("VAT {}% ({})", rate.normalize(), class.as_str())
}

/// The cart panel's view of `lines` and the totals the register sent with them.
pub fn cart_vm(lines: &[CartLine], register_totals: &Totals) -> CartVm {
    let totals = totals_of(lines, register_totals.currency);
    let totals_agree = totals.as_ref() == Some(register_totals);
    let shown = totals.as_ref().unwrap_or(register_totals);
    let rows = lines
        .iter()
        .zip(&shown.lines)
        .map(|(line, total)| LineRow {
            sku: line.sku.to_string(),
            name: line.name.clone(),
            qty: line.qty,
            unit_price: format_money(&line.unit_price),
            discount: (!line.discount.is_zero()).then(|| format_money(&line.discount)),
            total: format_money(&total.total),
        })
        .collect();
    CartVm {
        rows,
        items: lines.iter().map(|l| l.qty).sum(),
        subtotal: format_money(&shown.subtotal),
        discount: (!shown.discount_total.is_zero()).then(|| format_money(&shown.discount_total)),
        taxes: shown
            .taxes
            .iter()
            .map(|t| TaxRow {
                label: tax_label(t.tax_class, t.rate),
                net: format_money(&t.net),
                tax: format_money(&t.tax),
                gross: format_money(&t.gross),
            })
            .collect(),
        total: format_money(&shown.total),
        total_money: shown.total,
        totals_agree,
    }
}

/// The view of the open cart.
pub fn open_cart_vm(cart: &Cart) -> CartVm {
    cart_vm(&cart.lines, &cart.totals)
}

/// Quick cash buttons for `total`: the exact amount, then the next round sums in notes.
pub fn quick_amounts(total: &Money) -> Vec<Money> {
    let currency = total.currency();
    let due = total.to_minor();
    let mut amounts = vec![*total];
    for step in NOTE_STEPS_MINOR {
        let rounded = ((due + step - 1) / step) * step;
        let money = Money::from_minor(rounded.max(step), currency);
        if !amounts.contains(&money) && rounded.max(step) > due {
            amounts.push(money);
        }
        if amounts.len() == QUICK_AMOUNTS_MAX {
            break;
        }
    }
    amounts
}

/// The cash due for an exact `due` where the store rounds cash to `increment_minor` (0: none):
/// the rounded due and, when it differs, the rounding (rounded − exact). An increment the
/// domain does not take is no rounding.
pub fn cash_due(due: &Money, increment_minor: i64) -> (Money, Option<Money>) {
    let rule = kassa_domain::CashRounding::new(increment_minor).unwrap_or_default();
    let zero = Money::zero(due.currency());
    match kassa_domain::final_cash_part(rule, *due, zero, zero) {
        Ok(part) if !part.difference.is_zero() => (part.due, Some(part.difference)),
        _ => (*due, None),
    }
}

/// The cash screen's line for a rounded due: "Due in cash 3.00 € (rounded −0.02)".
pub fn cash_due_line(due_in_cash: &Money, rounding: &Money) -> String {
    let sign = if rounding.is_negative() { "−" } else { "+" };
    format!(
        "Due in cash {} (rounded {sign}{})",
        format_money(due_in_cash),
        rounding.amount().abs()
    )
}

/// What the tender panel says about a typed amount.
#[derive(Debug, Clone, PartialEq)]
pub enum Tender {
    /// Nothing typed yet.
    Empty,
    /// Not an amount in the cart's currency.
    Invalid(String),
    /// Less than the total.
    Short { missing: Money },
    /// Enough: the change to give back.
    Change { tendered: Money, change: Money },
}

/// Parses a typed cash amount (`20`, `20.5`, `20,50`) and says the change due.
pub fn tender(typed: &str, total: &Money) -> Tender {
    let typed = typed.trim().replace(',', ".");
    if typed.is_empty() {
        return Tender::Empty;
    }
    let Ok(amount) = typed.parse::<Decimal>() else {
        return Tender::Invalid(format!("\"{typed}\" is not an amount"));
    };
    let amount = amount.round_dp(total.currency().minor_units());
    let tendered = match Money::new(amount, total.currency()) {
        Ok(m) if !m.is_negative() => m,
        _ => return Tender::Invalid(format!("\"{typed}\" is not an amount")),
    };
    match tendered.checked_sub(total) {
        Ok(change) if !change.is_negative() => Tender::Change { tendered, change },
        Ok(short) => Tender::Short {
            missing: Money::from_minor(-short.to_minor(), total.currency()),
        },
        Err(e) => Tender::Invalid(e.to_string()),
    }
}

/// Parses a typed part of a split payment against what is still `due`: more than zero; by
/// card at most the due (card money is exact, only cash gives change).
pub fn split_part(typed: &str, due: &Money, card: bool) -> Result<Money, String> {
    let part = match tender(typed, due) {
        Tender::Empty => return Err("type the part's amount".into()),
        Tender::Invalid(why) => return Err(why),
        Tender::Short { missing } => due.checked_sub(&missing).map_err(|e| e.to_string())?,
        Tender::Change { tendered, change } => {
            if card && !change.is_zero() {
                return Err(format!(
                    "a card part is at most the {} due",
                    format_money(due)
                ));
            }
            tendered
        }
    };
    if part.is_zero() {
        return Err("a part is more than zero".into());
    }
    Ok(part)
}

/// Is what the scan field holds a keyboard-wedge barcode (8 to 14 digits) rather than a search?
pub fn looks_like_barcode(typed: &str) -> bool {
    let typed = typed.trim();
    (8..=14).contains(&typed.len()) && typed.bytes().all(|b| b.is_ascii_digit())
}

/// The always-visible sync indicator: its CSS class, the state word and the words after the
/// pending count (`Offline · 2 sales waiting to sync`).
pub fn sync_line(status: &SyncStatus) -> (&'static str, &'static str, &'static str) {
    let waiting = if status.pending == 1 {
        "sale waiting to sync"
    } else {
        "sales waiting to sync"
    };
    if status.online {
        ("online", "Online", waiting)
    } else {
        ("offline", "Offline", waiting)
    }
}

/// The banner while Central is read-only: its message, and what it means at the till.
pub fn read_only_notice(status: &SyncStatus) -> Option<String> {
    status.read_only.as_ref().map(|message| {
        format!(
            "Central is read-only: {message}. Keep selling: sales are kept at this till and sent \
             when it ends."
        )
    })
}

/// What to know about card right now: offline, the register takes card only under its
/// offline card policy (it says why when it refuses).
pub fn card_note(status: &SyncStatus) -> Option<&'static str> {
    (!status.online).then_some(
        "Offline: card only under this register's offline card policy; otherwise take cash.",
    )
}

/// One field of a conflict as the side-by-side table prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRow {
    pub field: String,
    pub base: String,
    pub mine: String,
    pub theirs: String,
    pub differs: bool,
}

/// A JSON value as a manager reads it: money as `12.50 €`, text without quotes, lists joined.
pub fn display_value(value: &Value) -> String {
    if let Ok(money) = serde_json::from_value::<Money>(value.clone()) {
        return format_money(&money);
    }
    match value {
        Value::Null => "—".to_owned(),
        Value::String(s) if s.is_empty() => "—".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "—".to_owned(),
        Value::Array(items) => items
            .iter()
            .map(display_value)
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(map) if map.is_empty() => "—".to_owned(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", display_value(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// The side-by-side rows of a conflict, differing fields first kept in the register's order.
pub fn conflict_rows(conflict: &Conflict) -> Vec<FieldRow> {
    conflict
        .fields
        .iter()
        .map(|f| FieldRow {
            field: f.field.clone(),
            base: display_value(&f.base),
            mine: display_value(&f.mine),
            theirs: display_value(&f.theirs),
            differs: f.differs,
        })
        .collect()
}

/// Has the manager chosen a side for every differing field?
pub fn choices_complete(conflict: &Conflict, choices: &Choices) -> bool {
    conflict
        .fields
        .iter()
        .filter(|f| f.differs)
        .all(|f| choices.contains_key(&f.field))
}

/// `12:04 UTC`, for the receipt and the last sync.
pub fn format_time(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FieldDiff, Side};
    use kassa_domain::Sku;
    use serde_json::json;

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::EUR).expect("test money")
    }

    fn line(sku: &str, price: &str, qty: u32, class: TaxClass) -> CartLine {
        CartLine {
            sku: Sku::parse(sku).expect("test sku"),
            name: format!("Product {sku}"),
            unit_price: eur(price),
            qty,
            tax_class: class,
            discount: eur("0"),
        }
    }

    #[test]
    fn money_prints_with_its_decimals_and_symbol() {
        assert_eq!(format_money(&eur("12.5")), "12.50 €");
        assert_eq!(format_money(&eur("0")), "0.00 €");
    }

    #[test]
    fn the_cart_view_breaks_tax_down_by_class_and_agrees_with_the_domain() {
        let lines = vec![
            line("A-1", "2.40", 2, TaxClass::Standard),
            line("B-1", "1.07", 1, TaxClass::Reduced),
        ];
        let totals = totals_of(&lines, Currency::EUR).expect("totals");
        let vm = cart_vm(&lines, &totals);
        assert!(vm.totals_agree);
        assert_eq!(vm.items, 3);
        assert_eq!(vm.rows[0].total, "4.80 €");
        assert_eq!(vm.total, "5.87 €");
        assert_eq!(vm.taxes.len(), 2);
        assert!(vm.taxes[0].label.starts_with("VAT "));
    }

    #[test]
    fn totals_that_differ_from_the_domain_are_flagged() {
        let lines = vec![line("A-1", "2.40", 2, TaxClass::Standard)];
        let mut totals = totals_of(&lines, Currency::EUR).expect("totals");
        totals.total = eur("4.81");
        assert!(!cart_vm(&lines, &totals).totals_agree);
    }

    #[test]
    fn quick_amounts_start_exact_then_round_up_to_notes() {
        let amounts: Vec<String> = quick_amounts(&eur("7.35"))
            .iter()
            .map(format_money)
            .collect();
        assert_eq!(
            amounts,
            ["7.35 €", "10.00 €", "20.00 €", "50.00 €", "100.00 €"]
        );
        let round: Vec<String> = quick_amounts(&eur("10.00"))
            .iter()
            .map(format_money)
            .collect();
        assert_eq!(round, ["10.00 €", "20.00 €", "50.00 €", "100.00 €"]);
    }

    #[test]
    fn the_cash_due_is_rounded_by_the_stores_increment_and_says_by_how_much() {
        assert_eq!(cash_due(&eur("3.02"), 5), (eur("3.00"), Some(eur("-0.02"))));
        assert_eq!(cash_due(&eur("3.03"), 5), (eur("3.05"), Some(eur("0.02"))));
        assert_eq!(cash_due(&eur("3.05"), 5), (eur("3.05"), None));
        assert_eq!(cash_due(&eur("3.02"), 0), (eur("3.02"), None));
        assert_eq!(cash_due(&eur("3.02"), 7), (eur("3.02"), None), "not a rule");
        assert_eq!(
            cash_due_line(&eur("3.00"), &eur("-0.02")),
            "Due in cash 3.00 € (rounded −0.02)"
        );
        assert_eq!(
            cash_due_line(&eur("3.05"), &eur("0.02")),
            "Due in cash 3.05 € (rounded +0.02)"
        );
        // The change comes from the rounded due.
        assert_eq!(
            tender("5", &cash_due(&eur("3.02"), 5).0),
            Tender::Change {
                tendered: eur("5.00"),
                change: eur("2.00")
            }
        );
    }

    #[test]
    fn tender_gives_change_or_says_what_is_missing() {
        let total = eur("7.35");
        assert_eq!(
            tender("10", &total),
            Tender::Change {
                tendered: eur("10"),
                change: eur("2.65")
            }
        );
        assert_eq!(
            tender("7,35", &total),
            Tender::Change {
                tendered: eur("7.35"),
                change: eur("0")
            }
        );
        assert_eq!(
            tender("5", &total),
            Tender::Short {
                missing: eur("2.35")
            }
        );
        assert_eq!(tender(" ", &total), Tender::Empty);
        assert!(matches!(tender("abc", &total), Tender::Invalid(_)));
        assert!(matches!(tender("-3", &total), Tender::Invalid(_)));
    }

    #[test]
    fn barcodes_are_told_from_searches() {
        assert!(looks_like_barcode("2000000000015"));
        assert!(looks_like_barcode(" 40123455 "));
        assert!(!looks_like_barcode("coffee"));
        assert!(!looks_like_barcode("DEMO-0001"));
        assert!(!looks_like_barcode("1234"));
    }

    #[test]
    fn the_sync_line_says_online_or_offline_and_what_waits() {
        let mut status = SyncStatus {
            online: true,
            ..SyncStatus::default()
        };
        assert_eq!(
            sync_line(&status),
            ("online", "Online", "sales waiting to sync")
        );
        assert!(card_note(&status).is_none());
        status.online = false;
        status.pending = 1;
        assert_eq!(
            sync_line(&status),
            ("offline", "Offline", "sale waiting to sync")
        );
        assert!(card_note(&status).is_some());
    }

    #[test]
    fn a_conflict_shows_values_readably_and_needs_every_differing_field_chosen() {
        let conflict = Conflict {
            edit_id: uuid::Uuid::nil(),
            product_id: uuid::Uuid::nil(),
            theirs_version: 3,
            fields: vec![
                FieldDiff {
                    field: "price".into(),
                    base: json!({"amount": "1.00", "currency": "EUR"}),
                    mine: json!({"amount": "1.20", "currency": "EUR"}),
                    theirs: json!({"amount": "1.10", "currency": "EUR"}),
                    differs: true,
                },
                FieldDiff {
                    field: "barcodes".into(),
                    base: json!(["2000000000015"]),
                    mine: json!(["2000000000015"]),
                    theirs: json!(["2000000000015"]),
                    differs: false,
                },
            ],
        };
        let rows = conflict_rows(&conflict);
        assert_eq!(rows[0].mine, "1.20 €");
        assert_eq!(rows[0].theirs, "1.10 €");
        assert_eq!(rows[1].base, "2000000000015");
        let mut choices = Choices::new();
        assert!(!choices_complete(&conflict, &choices));
        choices.insert("price".into(), Side::Theirs);
        assert!(choices_complete(&conflict, &choices));
    }
}

/// The SKU a scan or an add just changed: a new line, or a line whose quantity grew. When
/// quick scans make `before` stale and several lines changed, the last one (new lines come
/// last) is the one just scanned.
pub fn changed_sku(before: &[CartLine], after: &[CartLine]) -> Option<String> {
    after
        .iter()
        .rev()
        .find(|line| {
            before
                .iter()
                .find(|old| old.sku == line.sku)
                .is_none_or(|old| line.qty > old.qty)
        })
        .map(|line| line.sku.to_string())
}

#[cfg(test)]
mod changed_tests {
    use super::*;
    use kassa_domain::Sku;

    fn line(sku: &str, qty: u32) -> CartLine {
        CartLine {
            sku: Sku::parse(sku).expect("test sku"),
            name: sku.to_owned(),
            unit_price: Money::parse("1.00", Currency::EUR).expect("test money"),
            qty,
            tax_class: TaxClass::Standard,
            discount: Money::zero(Currency::EUR),
        }
    }

    #[test]
    fn the_changed_line_is_the_new_one_or_the_one_that_grew() {
        let before = vec![line("A-1", 1), line("B-1", 1)];
        assert_eq!(
            changed_sku(&before, &[line("A-1", 1), line("B-1", 2)]),
            Some("B-1".to_owned())
        );
        assert_eq!(
            changed_sku(&before, &[line("A-1", 1), line("B-1", 1), line("C-1", 1)]),
            Some("C-1".to_owned())
        );
        assert_eq!(changed_sku(&before, &before), None);
        assert_eq!(
            changed_sku(&[], &[line("A-1", 1), line("B-1", 1)]),
            Some("B-1".to_owned()),
            "a stale `before` (two scans in flight): the last line is the one just scanned"
        );
    }
}

/// A warning per cart line that asks for more than the register believes is available, by SKU.
/// A SKU whose level was never pulled gets no warning (nothing is known). Offline with a stock
/// lease, a line past what the till may still sell is warned about instead: Central will record
/// the rest as short.
pub fn stock_warnings(
    lines: &[CartLine],
    levels: &[crate::model::Available],
) -> std::collections::BTreeMap<String, String> {
    lines
        .iter()
        .filter_map(|line| {
            let sku = line.sku.to_string();
            let level = levels.iter().find(|l| l.sku == sku)?;
            if let Some(at_till) = level.at_till {
                return (i64::from(line.qty) > at_till).then(|| {
                    let words = match at_till {
                        0 => "none left at this till: Central may record it as short".to_owned(),
                        n => format!(
                            "only {n} left at this till: Central may record the rest as short"
                        ),
                    };
                    (sku, words)
                });
            }
            let available = level.available?;
            (i64::from(line.qty) > available).then(|| {
                let words = match available {
                    n if n <= 0 => "none left in stock".to_owned(),
                    1 => "only 1 left in stock".to_owned(),
                    n => format!("only {n} left in stock"),
                };
                (sku, words)
            })
        })
        .collect()
}

/// Offline, what the till may still sell of each cart line with no shortfall (its stock
/// lease), for the lines within it: "3 left at this till".
pub fn till_notes(
    lines: &[CartLine],
    levels: &[crate::model::Available],
) -> std::collections::BTreeMap<String, String> {
    lines
        .iter()
        .filter_map(|line| {
            let sku = line.sku.to_string();
            let at_till = levels.iter().find(|l| l.sku == sku)?.at_till?;
            (i64::from(line.qty) <= at_till).then(|| (sku, format!("{at_till} left at this till")))
        })
        .collect()
}

/// A parked cart as the list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedRow {
    pub id: uuid::Uuid,
    pub label: String,
    pub items: u32,
    pub total: String,
}

/// The parked carts, labelled (or named by their first item when no label was given).
pub fn parked_rows(carts: &[Cart]) -> Vec<ParkedRow> {
    carts
        .iter()
        .map(|cart| ParkedRow {
            id: cart.id,
            label: match (cart.label.trim(), cart.lines.first()) {
                ("", Some(first)) => format!("{}…", first.name),
                ("", None) => "Empty cart".to_owned(),
                (label, _) => label.to_owned(),
            },
            items: cart.lines.iter().map(|l| l.qty).sum(),
            total: format_money(&cart.totals.total),
        })
        .collect()
}

/// The sync panel's lines: last sync, what waits, the last error (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPanel {
    pub state: &'static str,
    pub last_sync: String,
    pub pending: String,
    pub last_error: Option<String>,
}

/// What the sync panel says about `status`.
pub fn sync_panel(status: &SyncStatus) -> SyncPanel {
    let (_, state, _) = sync_line(status);
    let mut waiting = vec![format!(
        "{} {}",
        status.pending,
        if status.pending == 1 { "sale" } else { "sales" }
    )];
    if status.rejected > 0 {
        waiting.push(format!("{} refused by Central", status.rejected));
    }
    if status.conflicts > 0 {
        waiting.push(format!("{} catalog conflicts", status.conflicts));
    }
    SyncPanel {
        state,
        last_sync: status
            .last_sync
            .as_ref()
            .map_or_else(|| "never".to_owned(), format_time),
        pending: waiting.join(" · "),
        last_error: status.last_error.as_ref().map(|e| {
            if status.failures > 1 {
                format!("{e} ({} failed rounds in a row)", status.failures)
            } else {
                e.clone()
            }
        }),
    }
}

/// A queued edit's or adjustment's state: its CSS class and the words the manager reads.
pub fn queue_state(status: &str) -> (&'static str, &'static str) {
    match status {
        "pending" => ("queued", "queued: pushed at the next sync"),
        "done" => ("pushed", "at Central"),
        "conflict" => ("conflict", "conflict: settle it under Conflicts"),
        "rejected" => ("rejected", "refused by Central"),
        "uncertain" => ("uncertain", "unknown: check the stock at Central"),
        _ => ("queued", "unknown state"),
    }
}

/// `+12` / `-3`: a stock movement with its sign.
pub fn signed(delta: i64) -> String {
    if delta > 0 {
        format!("+{delta}")
    } else {
        delta.to_string()
    }
}

#[cfg(test)]
mod screen_tests {
    use super::*;
    use crate::model::Available;
    use kassa_domain::Sku;

    fn line(sku: &str, qty: u32) -> CartLine {
        CartLine {
            sku: Sku::parse(sku).expect("test sku"),
            name: format!("Product {sku}"),
            unit_price: Money::parse("1.00", Currency::EUR).expect("test money"),
            qty,
            tax_class: TaxClass::Standard,
            discount: Money::zero(Currency::EUR),
        }
    }

    fn level(sku: &str, available: Option<i64>) -> Available {
        Available {
            sku: sku.into(),
            available,
            at_till: None,
        }
    }

    #[test]
    fn offline_a_line_within_the_tills_lease_says_what_is_left_and_one_past_it_warns() {
        let lines = [line("A-1", 3), line("B-1", 2), line("C-1", 1)];
        let leased = |sku: &str, at_till: i64| Available {
            at_till: Some(at_till),
            ..level(sku, Some(0))
        };
        let levels = [leased("A-1", 3), leased("B-1", 1), level("C-1", Some(5))];
        let notes = till_notes(&lines, &levels);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes["A-1"], "3 left at this till");
        let warnings = stock_warnings(&lines, &levels);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(
            warnings["B-1"],
            "only 1 left at this till: Central may record the rest as short"
        );
    }

    #[test]
    fn a_line_beyond_the_available_stock_is_warned_about() {
        let lines = [
            line("A-1", 3),
            line("B-1", 1),
            line("C-1", 2),
            line("D-1", 9),
        ];
        let levels = [
            level("A-1", Some(2)),
            level("B-1", Some(1)),
            level("C-1", Some(0)),
            level("D-1", None),
        ];
        let warnings = stock_warnings(&lines, &levels);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(warnings["A-1"], "only 2 left in stock");
        assert_eq!(warnings["C-1"], "none left in stock");
    }

    #[test]
    fn parked_carts_show_their_label_items_and_total() {
        let lines = vec![line("A-1", 2), line("B-1", 1)];
        let totals = totals_of(&lines, Currency::EUR).expect("totals");
        let cart = |label: &str| Cart {
            id: uuid::Uuid::nil(),
            status: "parked".into(),
            label: label.into(),
            lines: lines.clone(),
            totals: totals.clone(),
        };
        let rows = parked_rows(&[cart("Table 4"), cart(" ")]);
        assert_eq!(rows[0].label, "Table 4");
        assert_eq!(rows[0].items, 3);
        assert_eq!(rows[0].total, "3.00 €");
        assert_eq!(rows[1].label, "Product A-1…");
    }

    #[test]
    fn read_only_central_is_a_banner_with_its_message() {
        let mut status = SyncStatus::default();
        assert_eq!(read_only_notice(&status), None);
        status.read_only = Some("Stock count until 07:00".into());
        let notice = read_only_notice(&status).unwrap();
        assert!(notice.starts_with("Central is read-only: Stock count until 07:00."));
        assert!(notice.contains("sales are kept at this till"));
    }

    #[test]
    fn the_sync_panel_says_when_what_waits_and_the_last_error() {
        let mut status = SyncStatus::default();
        let panel = sync_panel(&status);
        assert_eq!(
            (
                panel.state,
                panel.last_sync.as_str(),
                panel.pending.as_str()
            ),
            ("Offline", "never", "0 sales")
        );
        assert_eq!(panel.last_error, None);
        status.pending = 1;
        status.conflicts = 2;
        status.failures = 3;
        status.last_error = Some("Central unreachable".into());
        let panel = sync_panel(&status);
        assert_eq!(panel.pending, "1 sale · 2 catalog conflicts");
        assert_eq!(
            panel.last_error.as_deref(),
            Some("Central unreachable (3 failed rounds in a row)")
        );
        assert_eq!(queue_state("done").0, "pushed");
        assert_eq!(signed(12), "+12");
        assert_eq!(signed(-3), "-3");
    }
}

/// The lines of `receipt` a customer brings back, from the quantities typed per SKU (blank
/// or 0: not returned). Each is at most what was sold; at least one line comes back.
pub fn returned_lines(
    sale: &crate::model::SaleToReturn,
    typed: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(String, u32)>, String> {
    let mut lines = Vec::new();
    for line in &sale.lines {
        let sku = line.sku.to_string();
        let text = typed.get(&sku).map_or("", |t| t.trim());
        if text.is_empty() {
            continue;
        }
        let qty: u32 = text
            .parse()
            .map_err(|_| format!("{}: \"{text}\" is not a number of units", line.name))?;
        let left = line.qty.saturating_sub(line.returned);
        if qty > left {
            return Err(if line.returned > 0 {
                format!(
                    "{}: {qty} returned but {} sold and {} back already",
                    line.name, line.qty, line.returned
                )
            } else {
                format!("{}: {qty} returned but {} sold", line.name, line.qty)
            });
        }
        if qty > 0 {
            lines.push((sku, qty));
        }
    }
    if lines.is_empty() {
        return Err("Type how many units of which line come back.".to_owned());
    }
    Ok(lines)
}

/// One of this till's sales as the refund screen opens it.
pub fn sale_to_return(receipt: &crate::model::Receipt) -> crate::model::SaleToReturn {
    crate::model::SaleToReturn {
        order_id: receipt.order_id,
        receipt_no: Some(receipt.receipt_no.clone()),
        location: receipt.location.clone(),
        at_this_till: true,
        source: "this till".into(),
        completed_at: receipt.completed_at,
        lines: receipt
            .lines
            .iter()
            .zip(&receipt.totals.lines)
            .map(|(line, total)| crate::model::ReturnLine {
                sku: line.sku.clone(),
                name: line.name.clone(),
                qty: line.qty,
                returned: 0,
                unit_price: line.unit_price,
                total: total.total,
            })
            .collect(),
        total: receipt.totals.total,
    }
}

/// How the refund screen names a sale: its receipt number, or an online order's id.
pub fn sale_title(sale: &crate::model::SaleToReturn) -> String {
    match (&sale.receipt_no, sale.at_this_till, sale.source.as_str()) {
        (Some(no), true, _) => no.clone(),
        (Some(no), false, _) => format!("{no} (another till, from Central)"),
        (None, _, "online") => format!("online order {}", sale.order_id),
        (None, _, _) => format!("order {}", sale.order_id),
    }
}

/// What the till says about its printer: printed, or how many wait and why.
pub fn print_status_text(status: &crate::model::PrinterStatus) -> String {
    match (&status.printer, status.queued, &status.last_error) {
        (None, ..) => "No receipt printer: use Print".into(),
        (Some(p), 0, _) => format!("Printed on {p}"),
        (Some(_), n, Some(why)) => format!("{n} waiting for the printer: {why}"),
        (Some(p), n, None) => format!("{n} printing on {p}"),
    }
}

/// The report's refunds figure's label: `Refunds (2)`.
pub fn refunds_label(count: i64) -> String {
    if count == 0 {
        "Refunds".to_owned()
    } else {
        format!("Refunds ({count})")
    }
}

/// What the refund screen says once a refund is through: the receipt it refunded, where the
/// money went (the card, cash, or both, as Central split it) and who approved it.
pub fn refund_done(receipt_no: &str, refund: &kassa_domain::api::Refund, manager: &str) -> String {
    let amount = format_money(&refund.amount);
    let back = match (refund.card.is_zero(), refund.cash.is_zero()) {
        (false, true) => format!("{amount} back to the card"),
        (true, _) => format!("{amount} back in cash"),
        (false, false) => format!(
            "{amount} back, {} to the card and {} in cash",
            format_money(&refund.card),
            format_money(&refund.cash)
        ),
    };
    format!("Receipt {receipt_no}: {back}, approved by {manager}.")
}

#[cfg(test)]
mod split_tests {
    use super::*;

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::EUR).expect("test money")
    }

    #[test]
    fn a_split_part_is_more_than_zero_and_by_card_at_most_the_due() {
        let due = eur("12.30");
        assert_eq!(split_part("5", &due, true), Ok(eur("5.00")));
        assert_eq!(split_part("12,30", &due, true), Ok(eur("12.30")));
        assert!(split_part("12.31", &due, true)
            .unwrap_err()
            .contains("at most"));
        assert_eq!(
            split_part("20", &due, false),
            Ok(eur("20.00")),
            "cash gives change"
        );
        assert!(split_part("0", &due, false).is_err());
        assert!(split_part("", &due, true).is_err());
        assert!(split_part("abc", &due, true).is_err());
    }
}

#[cfg(test)]
mod refund_tests {
    use super::*;
    use crate::model::{Receipt, ReceiptPayment, SaleMode, Tender};
    use kassa_domain::Sku;
    use std::collections::BTreeMap;

    fn receipt() -> Receipt {
        let line = |sku: &str, qty| CartLine {
            sku: Sku::parse(sku).expect("test sku"),
            name: format!("Product {sku}"),
            unit_price: Money::parse("1.00", Currency::EUR).expect("test money"),
            qty,
            tax_class: TaxClass::Standard,
            discount: Money::zero(Currency::EUR),
        };
        let lines = vec![line("A-1", 2), line("B-1", 1)];
        let totals = totals_of(&lines, Currency::EUR).expect("totals");
        Receipt {
            order_id: uuid::Uuid::nil(),
            receipt_no: "STORE-1-R1-000001".into(),
            location: "STORE-1".into(),
            lines,
            payments: vec![Tender {
                amount: totals.total,
                payment: ReceiptPayment::Cash {
                    tendered: totals.total,
                    change: Money::zero(Currency::EUR),
                },
            }],
            totals,
            cash_rounding: None,
            completed_at: chrono::DateTime::UNIX_EPOCH,
            mode: SaleMode::Online,
        }
    }

    #[test]
    fn returned_lines_are_what_was_typed_within_what_was_sold() {
        let r = sale_to_return(&receipt());
        let typed = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            returned_lines(&r, &typed(&[("A-1", "2"), ("B-1", " ")])),
            Ok(vec![("A-1".to_owned(), 2)])
        );
        assert!(returned_lines(&r, &typed(&[("A-1", "3")]))
            .unwrap_err()
            .contains("3 returned but 2 sold"));
        assert!(returned_lines(&r, &typed(&[("A-1", "x")])).is_err());
        assert!(returned_lines(&r, &typed(&[("A-1", "0")])).is_err());
        assert!(returned_lines(&r, &BTreeMap::new()).is_err());
        // A sale found at Central with a unit already back: only what is left returns.
        let mut found = r.clone();
        found.lines[0].returned = 1;
        found.at_this_till = false;
        assert!(returned_lines(&found, &typed(&[("A-1", "2")]))
            .unwrap_err()
            .contains("1 back already"));
        assert_eq!(
            returned_lines(&found, &typed(&[("A-1", "1")])),
            Ok(vec![("A-1".to_owned(), 1)])
        );
        assert!(sale_title(&found).contains("another till"));
    }

    #[test]
    fn the_refund_message_names_the_receipt_and_where_the_money_went() {
        let eur = |s: &str| Money::parse(s, Currency::EUR).expect("test money");
        let refund = |card: &str, cash: &str| kassa_domain::api::Refund {
            id: uuid::Uuid::nil(),
            order_id: uuid::Uuid::nil(),
            status: kassa_domain::api::PaymentStatus::Succeeded,
            amount: eur(card).checked_add(&eur(cash)).expect("same currency"),
            card: eur(card),
            cash: eur(cash),
            lines: Vec::new(),
            reason: "returned".into(),
            order_status: kassa_domain::OrderStatus::Paid,
            created_at: chrono::DateTime::UNIX_EPOCH,
        };
        let no = "STORE-1-R1-000002";
        assert_eq!(
            refund_done(no, &refund("1.73", "0.00"), "manager"),
            "Receipt STORE-1-R1-000002: 1.73 € back to the card, approved by manager."
        );
        assert_eq!(
            refund_done(no, &refund("0.00", "2.20"), "manager"),
            "Receipt STORE-1-R1-000002: 2.20 € back in cash, approved by manager."
        );
        assert_eq!(
            refund_done(no, &refund("1.00", "0.50"), "anna"),
            "Receipt STORE-1-R1-000002: 1.50 € back, 1.00 € to the card and 0.50 € in cash, \
             approved by anna."
        );
    }
}

/// One open shortfall as the *Shortfalls* table prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShortfallRow {
    pub id: uuid::Uuid,
    pub when: String,
    /// The receipt number when the sale was made here, else Central's order id.
    pub sale: String,
    pub sku: String,
    /// The product's name, or what to say when this register's catalog lacks the SKU.
    pub product: String,
    /// Sold, taken from Central's stock, short: `—` where this register does not know.
    pub ordered: String,
    pub taken: String,
    pub short: String,
    pub location: String,
}

/// The *Shortfalls* table's rows, in Central's order (oldest first).
pub fn shortfall_rows(views: &[ShortfallView]) -> Vec<ShortfallRow> {
    let known = |n: Option<i64>| n.map_or_else(|| "—".to_owned(), |n| n.to_string());
    views
        .iter()
        .map(|v| {
            let d = &v.discrepancy;
            ShortfallRow {
                id: d.id,
                when: format_time(&d.created_at),
                sale: v
                    .receipt_no
                    .clone()
                    .unwrap_or_else(|| format!("order {}", d.order_id)),
                sku: d.sku.to_string(),
                product: v
                    .product_name
                    .clone()
                    .unwrap_or_else(|| "not in this register's catalog".to_owned()),
                ordered: known(v.ordered),
                taken: known(v.taken()),
                short: d.shortfall.to_string(),
                location: d.location.clone(),
            }
        })
        .collect()
}

/// What the *Shortfalls* screen says once a shortfall is resolved: which one, and that Central
/// recorded the manager's note under their name.
pub fn shortfall_resolved(row: &ShortfallRow, resolved: &StockDiscrepancy) -> String {
    let by = resolved.resolved_by.as_deref().unwrap_or("you");
    format!(
        "Resolved: {} × {} short on {}. Central recorded the note under {by}'s name.",
        row.short, row.sku, row.sale
    )
}

#[cfg(test)]
mod shortfall_tests {
    use super::*;
    use kassa_domain::Sku;

    fn view(receipt: Option<&str>, name: Option<&str>, ordered: Option<i64>) -> ShortfallView {
        ShortfallView {
            discrepancy: StockDiscrepancy {
                id: uuid::Uuid::nil(),
                sku: Sku::parse("DEMO-0001").expect("test sku"),
                location: "STORE-1".into(),
                order_id: uuid::Uuid::from_u128(7),
                shortfall: 3,
                created_at: chrono::DateTime::UNIX_EPOCH,
                resolved_at: None,
                resolved_by: None,
                resolution: None,
            },
            receipt_no: receipt.map(str::to_owned),
            product_name: name.map(str::to_owned),
            ordered,
        }
    }

    #[test]
    fn a_sale_made_here_shows_its_receipt_name_and_sold_taken_short() {
        let rows = shortfall_rows(&[view(Some("STORE-1-R1-000007"), Some("Coffee"), Some(43))]);
        assert_eq!(
            rows,
            [ShortfallRow {
                id: uuid::Uuid::nil(),
                when: "1970-01-01 00:00 UTC".into(),
                sale: "STORE-1-R1-000007".into(),
                sku: "DEMO-0001".into(),
                product: "Coffee".into(),
                ordered: "43".into(),
                taken: "40".into(),
                short: "3".into(),
                location: "STORE-1".into(),
            }]
        );
    }

    #[test]
    fn another_registers_sale_shows_centrals_order_and_dashes() {
        let row = &shortfall_rows(&[view(None, None, None)])[0];
        assert_eq!(row.sale, format!("order {}", uuid::Uuid::from_u128(7)));
        assert_eq!(row.product, "not in this register's catalog");
        assert_eq!((row.ordered.as_str(), row.taken.as_str()), ("—", "—"));
        assert_eq!(row.short, "3");
    }

    #[test]
    fn the_confirmation_names_the_shortfall_and_who_central_recorded() {
        let row = &shortfall_rows(&[view(Some("STORE-1-R1-000007"), None, Some(43))])[0];
        let mut resolved = view(None, None, None).discrepancy;
        resolved.resolved_by = Some("manager".into());
        assert_eq!(
            shortfall_resolved(row, &resolved),
            "Resolved: 3 × DEMO-0001 short on STORE-1-R1-000007. Central recorded the note \
             under manager's name."
        );
    }
}

#[cfg(test)]
mod printing_tests {
    use super::*;
    use crate::model::PrinterStatus;

    #[test]
    fn the_till_says_where_its_receipts_stand() {
        let mut status = PrinterStatus {
            printer: Some("tcp://10.0.0.9:9100".into()),
            ..PrinterStatus::default()
        };
        assert_eq!(print_status_text(&status), "Printed on tcp://10.0.0.9:9100");
        status.queued = 2;
        status.last_error = Some("connection refused".into());
        assert_eq!(
            print_status_text(&status),
            "2 waiting for the printer: connection refused"
        );
        assert!(print_status_text(&PrinterStatus::default()).contains("Print"));
    }
}
