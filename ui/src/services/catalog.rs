//! Search as you type and "frequently bought together", both from the local catalog.

use kassa_domain::api::Product;
use serde::Serialize;

use super::call;
use crate::error::Error;
use crate::model::Recommended;

#[derive(Serialize)]
struct Query<'a> {
    typed: &'a str,
}

#[derive(Serialize)]
struct ForSku<'a> {
    sku: &'a str,
}

pub async fn search(typed: &str) -> Result<Vec<Product>, Error> {
    call("search", &Query { typed }).await
}

pub async fn bought_together(sku: &str) -> Result<Vec<Recommended>, Error> {
    call("bought_together", &ForSku { sku }).await
}
