//! The stock shortfalls offline sales left at Central, and resolving one with a note.

use serde::Serialize;
use uuid::Uuid;

use super::call;
use crate::error::Error;
use crate::model::{ShortfallView, StockDiscrepancy};

#[derive(Serialize)]
struct Where {
    everywhere: bool,
}

#[derive(Serialize)]
struct Resolve<'a> {
    id: Uuid,
    note: &'a str,
}

/// The open shortfalls at this register's location, or at every location.
pub async fn open(everywhere: bool) -> Result<Vec<ShortfallView>, Error> {
    call("shortfalls", &Where { everywhere }).await
}

pub async fn resolve(id: Uuid, note: &str) -> Result<StockDiscrepancy, Error> {
    call("resolve_shortfall", &Resolve { id, note }).await
}
