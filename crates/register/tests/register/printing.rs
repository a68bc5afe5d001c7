//! Thermal printing and the cash drawer, against a printer emulator on loopback
//! (`kassa-printer-emulator`: a TCP listener decoding ESC/POS into lines, codes, cuts and
//! drawer pulses): what a sale, a reprint and a report print; a printer that is off never
//! blocks a sale and its receipt prints once when it is back; a no-sale needs a manager, opens
//! the drawer and is counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as Days, Utc};
use kassa_printer_emulator::{Emulator, Printout};
use kassa_register::printer::{Paper, PrinterConfig};
use kassa_register::sale::Receipt;
use kassa_register::secrets::MemoryStore;
use kassa_register::{Error, Register};

use crate::helpers::{open_register_with, sell, Shop, PASSWORD};

const PRINT_WAIT: Duration = Duration::from_secs(15);

fn printer(url: &str, paper: Paper) -> PrinterConfig {
    let mut config = PrinterConfig::new(url.parse().unwrap());
    config.paper = paper;
    config.style.header = vec!["Main street 1, Utrecht".into()];
    config.retry_max = Duration::from_millis(200);
    config
}

async fn register_printing_to(
    shop: &Shop,
    dir: &tempfile::TempDir,
    url: &str,
    paper: Paper,
) -> Register {
    let config = printer(url, paper);
    let register = shop
        .register_tweaked(dir, "R1", Arc::new(MemoryStore::default()), |c| {
            c.printer = Some(config);
        })
        .await;
    register.sync_now().await.unwrap();
    register
}

/// The printed receipt says what the sale was: header, lines, tax per rate, total, payment,
/// the receipt number in words and in its QR code, the footer.
fn assert_prints_receipt(doc: &Printout, receipt: &Receipt) {
    let text = doc.text();
    assert!(doc.has_line_with("Kassa"), "{text}");
    assert!(doc.has_line_with("STORE-1"), "{text}");
    assert!(doc.has_line_with("Main street 1, Utrecht"), "{text}");
    for line in &receipt.lines {
        assert!(doc.has_line_with(&format!("1 x {}", line.name)), "{text}");
    }
    let total = receipt.totals.total.amount().to_string();
    assert!(doc.has_line_with(&format!("TOTAL EUR {total}")), "{text}");
    for tax in &receipt.totals.taxes {
        let row = doc
            .lines()
            .into_iter()
            .find(|l| l.starts_with(&format!("{} %", tax.rate)))
            .unwrap_or_else(|| panic!("a row for {} %: {text}", tax.rate));
        assert!(row.contains(&tax.tax.amount().to_string()), "{row}");
        assert!(row.ends_with(&tax.gross.amount().to_string()), "{row}");
    }
    assert!(
        doc.has_line_with(&format!("Receipt {}", receipt.receipt_no)),
        "{text}"
    );
    assert_eq!(
        doc.qr_codes(),
        vec![kassa_register::returns::receipt_code(
            &receipt.receipt_no,
            receipt.order_id
        )]
    );
    assert!(doc.has_line_with("Thank you"), "{text}");
    assert_eq!(doc.cuts(), 1, "{text}");
    assert!(
        doc.unknown().is_empty(),
        "every byte decoded: {:?}",
        doc.unknown()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cash_sale_prints_its_receipt_after_the_drawer_pulse_and_a_card_sale_without_one() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let emulator = Emulator::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let register = register_printing_to(&shop, &dir, &emulator.url(), Paper::Mm58).await;
        let p = &shop.products;

        let cash = sell(&register, &[&p[0], &p[1]], "10.00").await;
        let printed = emulator.wait_for_cuts(1, PRINT_WAIT).await;
        let doc = &printed.documents()[0];
        assert_prints_receipt(doc, &cash);
        assert!(
            doc.has_line_with("Cash") && doc.has_line_with("10.00"),
            "{}",
            doc.text()
        );
        let change = doc
            .lines()
            .into_iter()
            .find(|l| l.starts_with("Change"))
            .unwrap();
        assert!(change.ends_with("6.70"), "{change}");
        assert_eq!(doc.drawer_pulses(), 1, "the drawer opens on cash");
        assert!(
            matches!(
                doc.events.first(),
                Some(kassa_printer_emulator::Event::DrawerPulse { .. })
            ),
            "the drawer opens before the receipt prints: {:?}",
            doc.events.first()
        );
        // 58 mm paper: 32 characters a line (titles print double width: 16).
        for line in doc.lines() {
            assert!(
                line.chars().count() <= 32,
                "{line:?} is wider than 58 mm paper"
            );
        }

        register.scan(p[0].barcodes[0].as_str()).await.unwrap();
        let card = register.pay_card().await.unwrap();
        let printed = emulator.wait_for_cuts(2, PRINT_WAIT).await;
        let doc = &printed.documents()[1];
        assert_prints_receipt(doc, &card);
        assert!(doc.has_line_with("Card"), "{}", doc.text());
        assert_eq!(doc.drawer_pulses(), 0, "no drawer for a card sale");
        let jobs = register.print_jobs(10).await.unwrap();
        assert!(jobs.iter().all(|j| j.status == "printed"), "{jobs:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reprint_is_marked_copy_is_counted_and_opens_no_drawer() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let emulator = Emulator::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let register = register_printing_to(&shop, &dir, &emulator.url(), Paper::Mm80).await;
        let receipt = sell(&register, &[&shop.products[0]], "5.00").await;
        emulator.wait_for_cuts(1, PRINT_WAIT).await;

        assert_eq!(register.reprint(&receipt.receipt_no).await.unwrap(), 1);
        assert_eq!(
            register
                .reprint(&receipt.order_id.to_string())
                .await
                .unwrap(),
            2
        );
        let printed = emulator.wait_for_cuts(3, PRINT_WAIT).await;
        let docs = printed.documents();
        assert_eq!(docs.len(), 3, "{}", printed.text());
        assert!(!docs[0].has_line_with("COPY"), "the original is no copy");
        for (n, doc) in docs[1..].iter().enumerate() {
            let copy = format!("COPY {}", n + 1);
            let lines = doc.lines();
            assert_eq!(lines.first(), Some(&copy), "{lines:?}");
            assert_eq!(lines.last(), Some(&copy), "{lines:?}");
            assert_prints_receipt(doc, &receipt);
            assert_eq!(doc.drawer_pulses(), 0, "a copy opens no drawer");
        }
        assert_eq!(
            register.printing().copies(receipt.order_id).await.unwrap(),
            2
        );
        let titles: Vec<String> = register
            .print_jobs(10)
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.title)
            .collect();
        assert!(
            titles.contains(&format!("Receipt {} COPY 2", receipt.receipt_no)),
            "{titles:?}"
        );

        let unknown = register.reprint("STORE-1-R1-999999").await.unwrap_err();
        assert!(matches!(unknown, Error::NotFound(_)), "{unknown}");
    })
    .await;
}

/// A free port on loopback with nothing listening (a printer switched off).
fn port_of_a_printer_that_is_off() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_printer_off_the_sale_completes_and_its_receipt_prints_once_when_it_is_back() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let port = port_of_a_printer_that_is_off();
        let url = format!("tcp://127.0.0.1:{port}");
        let dir = tempfile::tempdir().unwrap();
        let register = register_printing_to(&shop, &dir, &url, Paper::Mm80).await;

        let started = Instant::now();
        let receipt = sell(&register, &[&shop.products[0]], "2.00").await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the sale waited for the printer"
        );
        // The receipt waits, with why, for the till to show (and a reprint to be asked for).
        let mut status = register.printer_status().await.unwrap();
        for _ in 0..100 {
            if status.last_error.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            status = register.printer_status().await.unwrap();
        }
        assert_eq!(status.queued, 1, "{status:?}");
        let why = status.last_error.unwrap();
        assert!(why.contains(&format!("127.0.0.1:{port}")), "{why}");
        let jobs = register.print_jobs(10).await.unwrap();
        assert_eq!(jobs[0].status, "queued");
        assert_eq!(jobs[0].order_id, Some(receipt.order_id));

        // The till restarts while the printer is still off: the receipt is still waiting.
        register.db().close().await;
        drop(register);
        let config = printer(&url, Paper::Mm80);
        let register = open_register_with(
            &dir,
            &shop.proxy.url(),
            Arc::new(MemoryStore::default()),
            |c| {
                c.printer = Some(config);
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(register.printer_status().await.unwrap().queued, 1);

        let emulator = Emulator::start_on(port).await.unwrap();
        register.retry_printing();
        let printed = emulator.wait_for_cuts(1, PRINT_WAIT).await;
        assert_prints_receipt(&printed.documents()[0], &receipt);
        // Retries go on a while longer: still the one receipt.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(emulator.printout().cuts(), 1, "printed once");
        assert_eq!(register.printer_status().await.unwrap().queued, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_prints_the_sales_report_and_without_a_printer_the_web_view_prints() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let emulator = Emulator::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let register = register_printing_to(&shop, &dir, &emulator.url(), Paper::Mm80).await;
        let sale = sell(&register, &[&shop.products[0], &shop.products[1]], "10.00").await;
        emulator.wait_for_cuts(1, PRINT_WAIT).await;

        let refused = register.print_sales_report(1).await.unwrap_err();
        assert!(matches!(refused, Error::Forbidden(_)), "{refused}");
        register.sign_in("manager", PASSWORD).await.unwrap();
        register.print_sales_report(1).await.unwrap();
        let printed = emulator.wait_for_cuts(2, PRINT_WAIT).await;
        let doc = &printed.documents()[1];
        let text = doc.text();
        assert!(
            doc.has_line_with("Sales report") && doc.has_line_with("STORE-1 till R1"),
            "{text}"
        );
        let sales = doc
            .lines()
            .into_iter()
            .find(|l| l.starts_with("Sales ") && !l.contains("report"))
            .unwrap();
        assert!(sales.ends_with(" 1"), "{sales}");
        let total = sale.totals.total.amount().to_string();
        assert!(
            doc.has_line_with("cash (1)") && text.contains(&total),
            "{text}"
        );
        assert!(
            doc.has_line_with(&Utc::now().date_naive().to_string()),
            "{text}"
        );
        assert_eq!(doc.drawer_pulses(), 0);

        // A till with no printer: selling works, nothing queues, a reprint says where to print.
        let bare_dir = tempfile::tempdir().unwrap();
        let bare = shop.register(&bare_dir, "R2").await;
        bare.sync_now().await.unwrap();
        let receipt = sell(&bare, &[&shop.products[0]], "5.00").await;
        assert_eq!(bare.printer_status().await.unwrap().printer, None);
        assert!(bare.print_jobs(10).await.unwrap().is_empty());
        let err = bare.reprint(&receipt.receipt_no).await.unwrap_err();
        assert!(err.to_string().contains("KASSA_PRINTER"), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_sale_needs_a_manager_opens_the_drawer_and_is_counted() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let emulator = Emulator::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let register = register_printing_to(&shop, &dir, &emulator.url(), Paper::Mm80).await;

        let alone = register
            .no_sale("change for the parking meter", None)
            .await
            .unwrap_err();
        assert!(matches!(alone, Error::ApprovalRequired(_)), "{alone}");
        let by_cashier = register.approve("cashier", PASSWORD).await.unwrap_err();
        assert!(
            by_cashier.to_string().contains("only a manager"),
            "{by_cashier}"
        );
        let approval = register.approve("manager", PASSWORD).await.unwrap();
        let no_sale = register
            .no_sale("change for the parking meter", Some(approval.id))
            .await
            .unwrap();
        assert_eq!(no_sale.approved_by, "manager");
        assert_eq!(no_sale.signed_in, "cashier");
        let again = register
            .no_sale("again", Some(approval.id))
            .await
            .unwrap_err();
        assert!(
            matches!(again, Error::ApprovalRequired(_)),
            "used once: {again}"
        );

        let printed = emulator
            .wait_for(PRINT_WAIT, |p| p.drawer_pulses() >= 1)
            .await;
        assert_eq!(printed.drawer_pulses(), 1);
        assert_eq!(printed.cuts(), 0, "a drawer pulse prints nothing");
        assert!(printed.lines().is_empty(), "{}", printed.text());

        register.sign_in("manager", PASSWORD).await.unwrap();
        register.no_sale("till check", None).await.unwrap();
        emulator
            .wait_for(PRINT_WAIT, |p| p.drawer_pulses() >= 2)
            .await;
        let today = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let counted =
            kassa_register::no_sale::count_between(register.db(), today, today + Days::days(1))
                .await
                .unwrap();
        assert_eq!(counted, 2);
        let listed = kassa_register::no_sale::between(register.db(), today, today + Days::days(1))
            .await
            .unwrap();
        assert_eq!(listed[1].reason, "till check");
        assert_eq!(listed[1].approved_by, "manager");
        // The shift's X report (and so its Z report) counts them.
        assert_eq!(register.x_report().await.unwrap().no_sales, 2);
    })
    .await;
}

/// A Z report prints on the thermal printer: its number, the cash lines, the no-sales.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_z_report_prints_with_its_number_and_cash() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(1).await;
        let emulator = Emulator::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let register = register_printing_to(&shop, &dir, &emulator.url(), Paper::Mm80).await;
        let p = shop.products.clone();
        sell(&register, &[&p[0]], "10.00").await;
        register.sign_in("manager", PASSWORD).await.unwrap();
        let expected = register.x_report().await.unwrap().expected.unwrap();
        let count = kassa_domain::CashCount::Sum { amount: expected };
        register.count_cash(&count).await.unwrap();
        let z = register.close_shift(None).await.unwrap();
        let z_no = z.z_no.unwrap();
        register.print_shift_report(Some(z_no)).await.unwrap();
        let printed = emulator
            .wait_for(PRINT_WAIT, |p| {
                p.has_line_with(&format!("Z REPORT No. {z_no}"))
            })
            .await;
        let text = printed.text();
        assert!(printed.has_line_with("Expected cash"), "{text}");
        assert!(printed.has_line_with("No sales"), "{text}");
        assert!(
            printed.cuts() >= 2,
            "the receipt and the report are cut: {text}"
        );
    })
    .await;
}
