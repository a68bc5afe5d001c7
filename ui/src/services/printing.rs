//! The receipt printer and the cash drawer: its state, a reprint (COPY n), "try again", and a
//! manager's no-sale.

use serde::Serialize;
use uuid::Uuid;

use super::{call, NoArgs};
use crate::error::Error;
use crate::model::{NoSale, PrinterStatus};

pub async fn printer_status() -> Result<PrinterStatus, Error> {
    call("printer_status", &NoArgs {}).await
}

#[derive(Serialize)]
struct Sale<'a> {
    sale: &'a str,
}

/// Reprints a sale's receipt marked COPY n; answers n.
pub async fn reprint(sale: &str) -> Result<u32, Error> {
    call("reprint", &Sale { sale }).await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShiftReport {
    z_no: Option<i64>,
}

/// Prints the open shift's X report (`None`) or Z report `z_no` on the thermal printer, or
/// through the web view's print dialog when the till has no printer.
pub async fn print_shift_report(z_no: Option<i64>) -> Result<(), Error> {
    if printer_status().await?.printer.is_none() {
        if let Some(w) = web_sys::window() {
            let _ = w.print();
        }
        return Ok(());
    }
    call::<_, i64>("print_shift_report", &ShiftReport { z_no })
        .await
        .map(|_| ())
}

pub async fn retry_printing() -> Result<(), Error> {
    call("retry_printing", &NoArgs {}).await
}

#[derive(Serialize)]
struct NoSaleRequest<'a> {
    reason: &'a str,
    approval: Option<Uuid>,
}

pub async fn no_sale(reason: &str, approval: Option<Uuid>) -> Result<NoSale, Error> {
    call("no_sale", &NoSaleRequest { reason, approval }).await
}
