//! What the screens show, computed without a window (unit-tested): money, the status line,
//! cart rows. The shapes mirror what the shell's commands return.

use kassa_domain::{CartLine, Money, Totals};
use serde::Deserialize;

/// A cart as the shell sends it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CartView {
    pub id: String,
    pub label: String,
    pub lines: Vec<CartLine>,
    pub totals: Totals,
}

/// A receipt as the shell sends it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Receipt {
    pub receipt_no: String,
    pub lines: Vec<CartLine>,
    pub totals: Totals,
    pub tendered: Money,
    pub change: Money,
    pub mode: String,
}

/// The sync engine's state.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SyncStatus {
    pub online: bool,
    pub pending: i64,
    pub rejected: i64,
    pub conflicts: i64,
    pub last_error: Option<String>,
}

/// Who is at the till.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Who {
    pub paired: bool,
    pub location: Option<String>,
    pub register_code: Option<String>,
    pub signed_in: Option<SignedIn>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SignedIn {
    pub username: String,
    pub role: String,
}

/// `12.50 EUR`.
pub fn money(m: &Money) -> String {
    m.to_string()
}

/// The indicator: "Online" or "Offline", with the sales waiting to reach Central.
pub fn status_line(s: &SyncStatus) -> String {
    let link = if s.online { "Online" } else { "Offline" };
    match s.pending {
        0 => link.to_owned(),
        1 => format!("{link} · 1 sale waiting to sync"),
        n => format!("{link} · {n} sales waiting to sync"),
    }
}

/// One printed cart row: quantity, name, line total (after its discount).
pub fn line_row(line: &CartLine, totals: &Totals) -> (String, String, String) {
    let total = totals
        .lines
        .iter()
        .find(|t| t.sku == line.sku)
        .map_or_else(String::new, |t| money(&t.total));
    (line.qty.to_string(), line.name.clone(), total)
}

/// The tax summary rows: "20% net 2.47 tax 0.50".
pub fn tax_rows(totals: &Totals) -> Vec<String> {
    totals
        .taxes
        .iter()
        .map(|t| {
            format!(
                "{}%  net {}  tax {}",
                t.rate,
                t.net.amount(),
                t.tax.amount()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kassa_domain::{compute_totals, Currency, PriceMode, Sku, TaxClass, TaxTable};

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::EUR).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_status_line_says_how_many_sales_wait() {
        let mut s = SyncStatus::default();
        assert_eq!(status_line(&s), "Offline");
        s.online = true;
        s.pending = 1;
        assert_eq!(status_line(&s), "Online · 1 sale waiting to sync");
        s.pending = 3;
        assert_eq!(status_line(&s), "Online · 3 sales waiting to sync");
    }

    #[test]
    fn cart_rows_show_the_domain_totals() {
        let line = CartLine {
            sku: Sku::parse("CUP").unwrap_or_else(|e| panic!("{e}")),
            name: "Coffee cup".into(),
            unit_price: eur("0.99"),
            qty: 3,
            tax_class: TaxClass::Standard,
            discount: eur("0.00"),
        };
        let totals = compute_totals(
            std::slice::from_ref(&line),
            PriceMode::TaxInclusive,
            &TaxTable::default(),
            Currency::EUR,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (qty, name, total) = line_row(&line, &totals);
        assert_eq!((qty.as_str(), name.as_str()), ("3", "Coffee cup"));
        assert_eq!(total, "2.97 EUR");
        assert_eq!(tax_rows(&totals), ["20%  net 2.47  tax 0.50"]);
    }
}
