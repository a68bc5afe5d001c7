//! Search as you type, "frequently bought together", and a manager's offline product edit.

use kassa_domain::api::{Product, ProductInput};
use kassa_register::edits::EditState;
use kassa_register::recommend::Recommended;
use kassa_register::{catalog, Register};
use tauri::State;
use uuid::Uuid;

use crate::error::{CommandError, CommandResult};

/// Search results shown under the scan field.
const SEARCH_RESULTS_MAX: u32 = 8;
/// Products the manager's catalog screen lists per search.
const CATALOG_RESULTS_MAX: u32 = 50;
/// Queued edits the catalog screen shows.
const EDITS_SHOWN_MAX: u32 = 20;
/// Suggestions shown for the last item.
const TOGETHER_MAX: u32 = 4;

#[tauri::command]
pub async fn search(register: State<'_, Register>, typed: String) -> CommandResult<Vec<Product>> {
    Ok(register.search(&typed, SEARCH_RESULTS_MAX).await?)
}

#[tauri::command]
pub async fn bought_together(
    register: State<'_, Register>,
    sku: String,
) -> CommandResult<Vec<Recommended>> {
    let product = catalog::by_sku(register.db(), &sku)
        .await?
        .ok_or_else(|| CommandError::new("not_found", format!("no product with SKU {sku}")))?;
    Ok(register
        .frequently_bought_with(product.id, TOGETHER_MAX)
        .await?)
}

/// Queues an edit of a product (pushed with `If-Match` when a manager is signed in).
#[tauri::command]
pub async fn edit_product(
    register: State<'_, Register>,
    product_id: Uuid,
    input: ProductInput,
) -> CommandResult<Uuid> {
    Ok(register.edit_product(product_id, input).await?)
}

/// The manager's catalog search (more results than the selling screen's).
#[tauri::command]
pub async fn catalog_search(
    register: State<'_, Register>,
    typed: String,
) -> CommandResult<Vec<Product>> {
    Ok(register.search(&typed, CATALOG_RESULTS_MAX).await?)
}

/// Queues a new product (pushed when a manager is signed in and Central answers).
#[tauri::command]
pub async fn create_product(
    register: State<'_, Register>,
    input: ProductInput,
) -> CommandResult<Uuid> {
    Ok(register.create_product(input).await?)
}

/// The latest edits made here and where each stands.
#[tauri::command]
pub async fn product_edits(register: State<'_, Register>) -> CommandResult<Vec<EditState>> {
    Ok(register.product_edits(EDITS_SHOWN_MAX).await?)
}
