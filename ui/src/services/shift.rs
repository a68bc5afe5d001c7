//! The shift: its state, opening with a float, cash in and out, the blind count and the close.

use kassa_domain::Money;
use serde::Serialize;
use uuid::Uuid;

use super::{call, NoArgs};
use crate::error::Error;
use crate::model::{CashCount, MovementKind, ShiftCount, ShiftReport, ShiftState, ZReportView};

pub async fn state() -> Result<ShiftState, Error> {
    call("shift_state", &NoArgs {}).await
}

#[derive(Serialize)]
struct Float<'a> {
    float: &'a CashCount,
}

pub async fn open(float: &CashCount) -> Result<ShiftReport, Error> {
    call("open_shift", &Float { float }).await
}

#[derive(Serialize)]
struct Movement<'a> {
    kind: MovementKind,
    amount: Money,
    reason: &'a str,
    approval: Option<Uuid>,
}

pub async fn movement(
    kind: MovementKind,
    amount: Money,
    reason: &str,
    approval: Option<Uuid>,
) -> Result<kassa_domain::shift::CashMovement, Error> {
    call(
        "cash_movement",
        &Movement {
            kind,
            amount,
            reason,
            approval,
        },
    )
    .await
}

#[derive(Serialize)]
struct Counted<'a> {
    counted: &'a CashCount,
}

pub async fn count(counted: &CashCount) -> Result<ShiftCount, Error> {
    call("count_cash", &Counted { counted }).await
}

#[derive(Serialize)]
struct Close {
    approval: Option<Uuid>,
}

pub async fn close(approval: Option<Uuid>) -> Result<ZReportView, Error> {
    call("close_shift", &Close { approval }).await
}

pub async fn z_reports() -> Result<Vec<ZReportView>, Error> {
    call("z_reports", &NoArgs {}).await
}
