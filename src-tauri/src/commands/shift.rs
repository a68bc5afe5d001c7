//! The shift at the till: open with a float, cash in and out, the X report, the blind count,
//! the close with its Z report, and the Z reports written here.

use kassa_domain::shift::{
    denominations, CashCount, CashMovement, MovementKind, ShiftCount, ShiftReport,
};
use kassa_domain::Money;
use kassa_register::Register;
use serde::Serialize;
use tauri::State;
use uuid::Uuid;

use crate::error::CommandResult;

/// Z reports the shift screen lists.
const Z_REPORTS_SHOWN: u32 = 10;

/// Where the shift stands, for the shift screen.
#[derive(Debug, Serialize)]
pub struct ShiftState {
    /// The open shift's X report (`None`: no shift open).
    pub x_report: Option<ShiftReport>,
    /// The blind count, once made.
    pub count: Option<ShiftCount>,
    /// The notes and coins of the till's currency, largest first (the denomination grid).
    pub denominations: Vec<Money>,
    /// The X report as text, for the screen.
    pub text: Option<String>,
}

#[tauri::command]
pub async fn shift_state(register: State<'_, Register>) -> CommandResult<ShiftState> {
    let currency = register.cart().await?.totals.currency;
    let denominations = denominations(currency)
        .iter()
        .map(|minor| Money::from_minor(*minor, currency))
        .collect();
    if !register.shift_open().await? {
        return Ok(ShiftState {
            x_report: None,
            count: None,
            denominations,
            text: None,
        });
    }
    let x = register.x_report().await?;
    Ok(ShiftState {
        text: Some(x.render_text()),
        x_report: Some(x),
        count: register.shift_count().await?,
        denominations,
    })
}

#[tauri::command]
pub async fn open_shift(
    register: State<'_, Register>,
    float: CashCount,
) -> CommandResult<ShiftReport> {
    Ok(register.open_shift(&float).await?)
}

#[tauri::command]
pub async fn cash_movement(
    register: State<'_, Register>,
    kind: MovementKind,
    amount: Money,
    reason: String,
    approval: Option<Uuid>,
) -> CommandResult<CashMovement> {
    Ok(register
        .cash_movement(kind, amount, &reason, approval)
        .await?)
}

#[tauri::command]
pub async fn count_cash(
    register: State<'_, Register>,
    counted: CashCount,
) -> CommandResult<ShiftCount> {
    Ok(register.count_cash(&counted).await?)
}

/// A Z report and its text for the screen (a printer lays out the same data).
#[derive(Debug, Serialize)]
pub struct ZReportView {
    pub report: ShiftReport,
    pub text: String,
}

impl From<ShiftReport> for ZReportView {
    fn from(report: ShiftReport) -> Self {
        Self {
            text: report.render_text(),
            report,
        }
    }
}

#[tauri::command]
pub async fn close_shift(
    register: State<'_, Register>,
    approval: Option<Uuid>,
) -> CommandResult<ZReportView> {
    Ok(register.close_shift(approval).await?.into())
}

#[tauri::command]
pub async fn z_reports(register: State<'_, Register>) -> CommandResult<Vec<ZReportView>> {
    let reports = register.z_reports(Z_REPORTS_SHOWN).await?;
    Ok(reports.into_iter().map(ZReportView::from).collect())
}
