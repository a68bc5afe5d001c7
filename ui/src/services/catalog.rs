//! Search as you type and "frequently bought together", both from the local catalog.

use kassa_domain::api::{Product, ProductInput};
use serde::Serialize;
use uuid::Uuid;

use super::{call, NoArgs};
use crate::error::Error;
use crate::model::{EditState, Recommended};

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Edit<'a> {
    product_id: Uuid,
    input: &'a ProductInput,
}

#[derive(Serialize)]
struct Create<'a> {
    input: &'a ProductInput,
}

/// The manager's catalog search (more hits than the selling screen's).
pub async fn catalog_search(typed: &str) -> Result<Vec<Product>, Error> {
    call("catalog_search", &Query { typed }).await
}

/// Queues an edit of a product; the answer is the edit's id.
pub async fn edit(product_id: Uuid, input: &ProductInput) -> Result<Uuid, Error> {
    call("edit_product", &Edit { product_id, input }).await
}

pub async fn create(input: &ProductInput) -> Result<Uuid, Error> {
    call("create_product", &Create { input }).await
}

/// The latest edits made here and where each stands.
pub async fn edits() -> Result<Vec<EditState>, Error> {
    call("product_edits", &NoArgs {}).await
}
