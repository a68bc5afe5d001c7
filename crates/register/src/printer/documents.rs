//! The documents a till prints, each built from the layout model ([`Document`]): the receipt
//! (an original or a numbered COPY), the sales report and the test page. Part of a document
//! that is the shop's own (its header and footer lines) comes from [`ReceiptStyle`].

use kassa_domain::{Money, Receipt, ReceiptPayment, SalesReport};

use super::layout::Document;

/// The shop's lines on every receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptStyle {
    /// Under the title: address, VAT number, opening hours.
    pub header: Vec<String>,
    /// At the bottom: returns policy, thanks.
    pub footer: Vec<String>,
}

impl Default for ReceiptStyle {
    fn default() -> Self {
        Self {
            header: Vec::new(),
            footer: vec!["Thank you for shopping with us".into()],
        }
    }
}

/// The amount without its currency (the currency is printed once, on the total).
fn amount(money: &Money) -> String {
    money.amount().to_string()
}

/// A receipt: store header, lines, tax per rate, total, payment and change, the receipt number
/// as text and in a QR code with the order id (scanned back for a return at any till), footer. `copy` numbers a reprint:
/// `COPY 2` on top and at the bottom, so a copy is never taken for a second sale.
pub fn receipt(receipt: &Receipt, style: &ReceiptStyle, copy: Option<u32>) -> Document {
    let mut doc = Document::new();
    if let Some(n) = copy {
        doc.title(format!("COPY {n}"));
    }
    doc.title("Kassa").center(&receipt.location);
    for line in &style.header {
        doc.center(line);
    }
    doc.rule();
    doc.text(format!("Receipt {}", receipt.receipt_no));
    doc.text(
        receipt
            .completed_at
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
    );
    doc.rule();
    for (line, total) in receipt.lines.iter().zip(&receipt.totals.lines) {
        doc.columns(
            format!("{} x {}", line.qty, line.name),
            amount(&total.total),
        );
        if line.qty > 1 {
            doc.text(format!("  {} each", amount(&line.unit_price)));
        }
        if !line.discount.is_zero() {
            doc.columns("  discount", format!("-{}", amount(&line.discount)));
        }
    }
    doc.rule();
    if !receipt.totals.discount_total.is_zero() {
        doc.columns(
            "Discounts",
            format!("-{}", amount(&receipt.totals.discount_total)),
        );
    }
    doc.bold(format!(
        "TOTAL {} {}",
        receipt.totals.currency,
        amount(&receipt.totals.total)
    ));
    // Where the store rounds cash: what the rounding made of the total, and what was paid.
    if let Some(rounding) = &receipt.cash_rounding {
        doc.columns("Cash rounding", amount(rounding));
        doc.bold(format!(
            "PAID {} {}",
            receipt.totals.currency,
            amount(&receipt.amount_paid())
        ));
    }
    doc.columns("VAT rate      net      tax", "gross");
    for tax in &receipt.totals.taxes {
        doc.columns(
            format!(
                "{:>5} % {:>8} {:>8}",
                tax.rate,
                amount(&tax.net),
                amount(&tax.tax)
            ),
            amount(&tax.gross),
        );
    }
    doc.rule();
    // Every payment, in the order taken (several for a split sale); change only from cash.
    for tender in &receipt.payments {
        match &tender.payment {
            ReceiptPayment::Cash { tendered, change } => {
                doc.columns("Cash", amount(tendered));
                doc.columns("Change", amount(change));
            }
            ReceiptPayment::Card { reference, offline } => {
                doc.columns("Card", amount(&tender.amount));
                let how = if *offline { "offline ref" } else { "ref" };
                doc.text(format!("{how} {reference}"));
            }
        }
    }
    // The code holds the order id too: any till of the store finds the sale for a return.
    doc.feed()
        .qr(crate::returns::receipt_code(
            &receipt.receipt_no,
            receipt.order_id,
        ))
        .center(&receipt.receipt_no);
    for line in &style.footer {
        doc.center(line);
    }
    if let Some(n) = copy {
        doc.title(format!("COPY {n}"));
    }
    doc
}

/// The manager's sales report (`crate::report`): totals, per payment method, tax per rate and
/// per day.
pub fn sales_report(report: &SalesReport, register: &str) -> Document {
    let mut doc = Document::new();
    doc.title("Sales report")
        .center(register)
        .center(format!("{} to {} (UTC)", report.from, report.to))
        .rule();
    let currency = report.currency;
    doc.columns("Sales", report.sales.to_string())
        .columns(format!("Gross {currency}"), amount(&report.gross))
        .columns(
            format!("Refunds ({})", report.refund_count),
            amount(&report.refunds),
        )
        .columns(format!("Net {currency}"), amount(&report.net))
        .columns("Discounts", amount(&report.discounts));
    if let Some(rounding) = &report.cash_rounding {
        doc.columns("Cash rounding", amount(rounding));
    }
    doc.columns("Tax", amount(&report.tax))
        .columns("Not yet at Central", report.pending_sync.to_string())
        .rule()
        .bold("By payment method");
    for method in &report.by_method {
        doc.columns(
            format!("{} ({})", method.method, method.sales),
            amount(&method.net),
        );
    }
    doc.rule().bold("Tax per rate");
    for tax in &report.taxes {
        doc.columns(
            format!("{} {} %", tax.tax_class, tax.rate),
            amount(&tax.tax),
        );
    }
    doc.rule().bold("By day");
    for day in &report.by_day {
        doc.columns(format!("{} ({})", day.day, day.sales), amount(&day.net));
    }
    doc
}

/// The page `kassa-register --print-test` prints to set a printer up: the name, where it
/// printed, the paper's width as a ruler, and the characters a receipt needs.
/// An X or Z report as printed: the report's own text, line for line (a blank line is a
/// rule), under its title.
pub fn shift_report(report: &kassa_domain::shift::ShiftReport) -> Document {
    let text = report.render_text();
    let mut lines = text.lines();
    let mut doc = Document::new();
    doc.title(lines.next().unwrap_or("Shift report"));
    for line in lines {
        if line.trim().is_empty() {
            doc.rule();
        } else {
            doc.text(line);
        }
    }
    doc.feed();
    doc
}

pub fn test_page(destination: &str, chars_per_line: usize) -> Document {
    let mut doc = Document::new();
    doc.title("Kassa")
        .center("printer test page")
        .rule()
        .text(format!("printer: {destination}"))
        .text(format!("{chars_per_line} characters a line:"))
        .text(
            "1234567890"
                .chars()
                .cycle()
                .take(chars_per_line)
                .collect::<String>(),
        )
        .text("Prices: 12.50 € 3,99 £ ¥")
        .text("Accents: àéîõü ÄÖÜß çñ")
        .columns("left", "right")
        .qr("KASSA-TEST")
        .center("If this is readable and cut, the printer works.");
    doc
}
