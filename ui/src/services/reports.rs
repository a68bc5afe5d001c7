//! The manager's sales report.

use serde::Serialize;

use super::call;
use crate::error::Error;
use crate::model::SalesReport;

#[derive(Serialize)]
struct Days {
    days: u32,
}

pub async fn sales(days: u32) -> Result<SalesReport, Error> {
    call("sales_report", &Days { days }).await
}
