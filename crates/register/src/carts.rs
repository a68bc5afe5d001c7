//! Carts in the local store: one open cart at the till, any number parked; they survive a
//! restart. Totals always come from `kassa_domain::compute_totals`, the code Central runs.

use std::str::FromStr;

use kassa_domain::api::Product;
use kassa_domain::approval::{discount_limit_minor, ApprovalRef};
use kassa_domain::{
    check_line_qty, compute_totals, CartLine, Currency, Money, PriceMode, Sku, TaxClass, TaxTable,
    Totals, CART_LINES_MAX,
};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use crate::error::{corrupt, Context, Error, Result};
use crate::store::{money, now_ms, LocalDb, Tx};

/// The most carts that may be parked at once.
pub const PARKED_CARTS_MAX: i64 = 50;

/// A cart with its lines and receipt totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CartView {
    pub id: Uuid,
    pub status: String,
    pub label: String,
    pub lines: Vec<CartLine>,
    pub totals: Totals,
    /// The lines whose discount a manager approved (above the cashier's limit), and who.
    pub discount_approvals: Vec<DiscountApproval>,
}

/// A manager's approval of one line's discount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscountApproval {
    pub sku: Sku,
    /// The approving manager's username.
    pub manager: String,
    /// What Central verifies (sent with the order, never shown to the UI); `None` only on a
    /// line approved before the register kept it.
    #[serde(skip)]
    pub(crate) approval: Option<ApprovalRef>,
}

impl DiscountApproval {
    /// What Central verifies for this line's discount.
    pub fn approval(&self) -> Option<&ApprovalRef> {
        self.approval.as_ref()
    }
}

/// The most discount a cashier may give on `line` without approval: `percent` of the line's
/// amount before discount, rounded down to the minor unit (Central's own sum).
pub fn discount_limit(line: &CartLine, percent: u32) -> Money {
    Money::from_minor(
        discount_limit_minor(line.unit_price.to_minor(), line.qty, percent),
        line.unit_price.currency(),
    )
}

/// The receipt of `lines`, exactly as Central computes it.
pub fn totals(lines: &[CartLine], currency: Currency) -> Result<Totals> {
    let totals = compute_totals(
        lines,
        PriceMode::TaxInclusive,
        &TaxTable::default(),
        currency,
    )?;
    Ok(totals)
}

/// The open cart, made empty if there is none.
pub async fn open(db: &LocalDb, currency: Currency) -> Result<CartView> {
    let mut tx = db.begin_write().await?;
    let id = open_in(&mut tx, currency).await?;
    tx.commit().await.context("opening a cart")?;
    load(db, id).await
}

async fn open_in(tx: &mut Tx, currency: Currency) -> Result<Uuid> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM carts WHERE status = 'open' ORDER BY updated_at DESC")
            .fetch_optional(&mut **tx)
            .await
            .context("finding the open cart")?;
    if let Some(id) = found {
        return parse_id(&id);
    }
    let id = Uuid::now_v7();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO carts (id, status, currency, created_at, updated_at) VALUES (?, 'open', ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(currency.code())
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await
    .context("creating a cart")?;
    Ok(id)
}

fn parse_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|e| Error::Corrupt(format!("cart id {id}: {e}")))
}

/// Loads a cart and computes its totals (which checks every receipt sum again).
pub async fn load(db: &LocalDb, id: Uuid) -> Result<CartView> {
    let mut conn = db.pool().acquire().await.context("reading a cart")?;
    load_on(&mut conn, id).await
}

pub(crate) async fn load_on(conn: &mut sqlx::SqliteConnection, id: Uuid) -> Result<CartView> {
    let head = sqlx::query("SELECT status, label, currency FROM carts WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .context("reading a cart")?
        .ok_or_else(|| Error::NotFound(format!("cart {id}")))?;
    let currency: String = head.get("currency");
    let currency = Currency::from_str(&currency).map_err(|e| Error::Corrupt(e.to_string()))?;
    let lines = lines_on(conn, id).await?;
    let discount_approvals = approvals_on(conn, id).await?;
    Ok(CartView {
        id,
        status: head.get("status"),
        label: head.get("label"),
        totals: totals(&lines, currency)?,
        lines,
        discount_approvals,
    })
}

async fn approvals_on(
    conn: &mut sqlx::SqliteConnection,
    id: Uuid,
) -> Result<Vec<DiscountApproval>> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT sku, discount_approved_by, discount_approval FROM cart_lines
         WHERE cart_id = ? AND discount_approved_by IS NOT NULL ORDER BY line_no",
    )
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await
    .context("reading discount approvals")?;
    rows.into_iter()
        .map(|(sku, manager, approval)| {
            Ok(DiscountApproval {
                sku: Sku::parse(&sku).map_err(|e| Error::Corrupt(e.to_string()))?,
                manager,
                approval: approval
                    .map(|a| serde_json::from_str(&a).map_err(|e| corrupt("a line's approval", e)))
                    .transpose()?,
            })
        })
        .collect()
}

async fn lines_on(conn: &mut sqlx::SqliteConnection, id: Uuid) -> Result<Vec<CartLine>> {
    let rows = sqlx::query(
        "SELECT l.sku, l.name, l.unit_price_minor, l.tax_class, l.qty, l.discount_minor, c.currency
         FROM cart_lines l JOIN carts c ON c.id = l.cart_id WHERE l.cart_id = ? ORDER BY l.line_no",
    )
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await
    .context("reading cart lines")?;
    rows.iter().map(line_from_row).collect()
}

fn line_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<CartLine> {
    let currency: String = row.get("currency");
    let sku: String = row.get("sku");
    let tax_class: String = row.get("tax_class");
    let qty: i64 = row.get("qty");
    Ok(CartLine {
        sku: Sku::parse(&sku).map_err(|e| Error::Corrupt(e.to_string()))?,
        name: row.get("name"),
        unit_price: money(row.get("unit_price_minor"), &currency)?,
        qty: u32::try_from(qty).map_err(|e| Error::Corrupt(e.to_string()))?,
        tax_class: TaxClass::from_str(&tax_class).map_err(|e| Error::Corrupt(e.to_string()))?,
        discount: money(row.get("discount_minor"), &currency)?,
    })
}

async fn require_open(tx: &mut Tx, id: Uuid) -> Result<()> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM carts WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .context("checking a cart")?;
    match status.as_deref() {
        Some("open") => crate::card::check_not_held(tx, id).await,
        Some(other) => Err(Error::Invalid(format!("cart {id} is {other}, not open"))),
        None => Err(Error::NotFound(format!("cart {id}"))),
    }
}

async fn touch(tx: &mut Tx, id: Uuid) -> Result<()> {
    sqlx::query("UPDATE carts SET updated_at = ? WHERE id = ?")
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .context("touching a cart")?;
    Ok(())
}

/// Adds `qty` of a product: a new line, or more on the line that has the SKU. The price is the
/// catalog's at the moment the line is first added.
pub async fn add(db: &LocalDb, id: Uuid, product: &Product, qty: u32) -> Result<CartView> {
    check_line_qty(qty).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut tx = db.begin_write().await?;
    require_open(&mut tx, id).await?;
    let current: Option<i64> =
        sqlx::query_scalar("SELECT qty FROM cart_lines WHERE cart_id = ? AND sku = ?")
            .bind(id.to_string())
            .bind(product.sku.as_str())
            .fetch_optional(&mut *tx)
            .await
            .context("reading a cart line")?;
    match current {
        Some(have) => set_qty_in(&mut tx, id, &product.sku, have + i64::from(qty), None).await?,
        None => insert_line(&mut tx, id, product, qty).await?,
    }
    touch(&mut tx, id).await?;
    tx.commit().await.context("adding to a cart")?;
    load(db, id).await
}

async fn insert_line(tx: &mut Tx, id: Uuid, product: &Product, qty: u32) -> Result<()> {
    let (count, next): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(MAX(line_no), 0) + 1 FROM cart_lines WHERE cart_id = ?",
    )
    .bind(id.to_string())
    .fetch_one(&mut **tx)
    .await
    .context("counting cart lines")?;
    if usize::try_from(count).unwrap_or(usize::MAX) >= CART_LINES_MAX {
        return Err(Error::Invalid(format!(
            "a cart holds at most {CART_LINES_MAX} lines"
        )));
    }
    sqlx::query(
        "INSERT INTO cart_lines (cart_id, line_no, sku, name, unit_price_minor, tax_class, qty)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(next)
    .bind(product.sku.as_str())
    .bind(&product.name)
    .bind(product.price.to_minor())
    .bind(product.tax_class.as_str())
    .bind(qty)
    .execute(&mut **tx)
    .await
    .context("adding a cart line")?;
    Ok(())
}

/// `limit_percent`: an unapproved discount is cut to the cashier's limit of the new amount (a
/// 10 % discount on ten items must not become 100 % on one).
async fn set_qty_in(
    tx: &mut Tx,
    id: Uuid,
    sku: &Sku,
    qty: i64,
    limit_percent: Option<u32>,
) -> Result<()> {
    if qty == 0 {
        sqlx::query("DELETE FROM cart_lines WHERE cart_id = ? AND sku = ?")
            .bind(id.to_string())
            .bind(sku.as_str())
            .execute(&mut **tx)
            .await
            .context("removing a cart line")?;
        return Ok(());
    }
    let qty = u32::try_from(qty).map_err(|_| Error::Invalid(format!("quantity {qty}")))?;
    check_line_qty(qty).map_err(|e| Error::Invalid(e.to_string()))?;
    sqlx::query(
        "UPDATE cart_lines SET qty = ?, discount_minor = MIN(discount_minor, unit_price_minor * ?,
             CASE WHEN discount_approved_by IS NULL AND ? IS NOT NULL
                  THEN unit_price_minor * ? * ? / 100 ELSE discount_minor END)
         WHERE cart_id = ? AND sku = ?",
    )
    .bind(qty)
    .bind(qty)
    .bind(limit_percent)
    .bind(qty)
    .bind(limit_percent)
    .bind(id.to_string())
    .bind(sku.as_str())
    .execute(&mut **tx)
    .await
    .context("changing a quantity")?;
    Ok(())
}

/// Sets a line's quantity; 0 removes the line. An unapproved discount is cut to
/// `discount_limit_percent` of the new amount.
pub async fn set_qty(
    db: &LocalDb,
    id: Uuid,
    sku: &Sku,
    qty: u32,
    discount_limit_percent: u32,
) -> Result<CartView> {
    let mut tx = db.begin_write().await?;
    require_open(&mut tx, id).await?;
    set_qty_in(
        &mut tx,
        id,
        sku,
        i64::from(qty),
        Some(discount_limit_percent.min(100)),
    )
    .await?;
    touch(&mut tx, id).await?;
    tx.commit().await.context("changing a quantity")?;
    load(db, id).await
}

/// Sets an absolute discount on a line (0 ≤ discount ≤ the line's amount) with the manager who
/// approved it and the approval Central verifies, if it needed approval. Whether the cashier
/// may give it is the caller's decision (`Register::set_discount`).
pub async fn set_discount(
    db: &LocalDb,
    id: Uuid,
    sku: &Sku,
    discount: Money,
    approved: Option<(&str, &ApprovalRef)>,
) -> Result<CartView> {
    let approval = approved
        .map(|(_, a)| serde_json::to_string(a))
        .transpose()
        .map_err(|e| corrupt("an approval", e))?;
    let mut tx = db.begin_write().await?;
    require_open(&mut tx, id).await?;
    let mut cart = load_on(&mut tx, id).await?;
    let line = cart
        .lines
        .iter_mut()
        .find(|l| &l.sku == sku)
        .ok_or_else(|| Error::NotFound(format!("line {sku}")))?;
    line.discount = discount;
    totals(&cart.lines, cart.totals.currency)?;
    sqlx::query(
        "UPDATE cart_lines SET discount_minor = ?, discount_approved_by = ?, discount_approval = ?
         WHERE cart_id = ? AND sku = ?",
    )
    .bind(discount.to_minor())
    .bind(approved.map(|(by, _)| by))
    .bind(approval)
    .bind(id.to_string())
    .bind(sku.as_str())
    .execute(&mut *tx)
    .await
    .context("setting a discount")?;
    touch(&mut tx, id).await?;
    tx.commit().await.context("setting a discount")?;
    load(db, id).await
}

/// Parks the open cart under a label (a customer fetching their wallet); the till gets a new,
/// empty cart.
pub async fn park(db: &LocalDb, id: Uuid, label: &str) -> Result<()> {
    let mut tx = db.begin_write().await?;
    require_open(&mut tx, id).await?;
    let parked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM carts WHERE status = 'parked'")
        .fetch_one(&mut *tx)
        .await
        .context("counting parked carts")?;
    if parked >= PARKED_CARTS_MAX {
        return Err(Error::Invalid(format!(
            "at most {PARKED_CARTS_MAX} carts may be parked"
        )));
    }
    set_status(&mut tx, id, "parked", Some(label)).await?;
    tx.commit().await.context("parking a cart")?;
    Ok(())
}

/// Brings a parked cart back; the cart open at the till is parked in its place (or dropped if
/// it was empty).
pub async fn resume(db: &LocalDb, id: Uuid) -> Result<CartView> {
    let mut tx = db.begin_write().await?;
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM carts WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .context("checking a cart")?;
    if status.as_deref() != Some("parked") {
        return Err(Error::Invalid(format!("cart {id} is not parked")));
    }
    sqlx::query(
        "DELETE FROM carts WHERE status = 'open' AND id NOT IN (SELECT cart_id FROM cart_lines)",
    )
    .execute(&mut *tx)
    .await
    .context("dropping an empty cart")?;
    sqlx::query("UPDATE carts SET status = 'parked' WHERE status = 'open'")
        .execute(&mut *tx)
        .await
        .context("parking the open cart")?;
    set_status(&mut tx, id, "open", None).await?;
    tx.commit().await.context("resuming a cart")?;
    load(db, id).await
}

/// Empties the till: the open cart is voided (kept, for the audit trail).
pub async fn void(db: &LocalDb, id: Uuid) -> Result<()> {
    let mut tx = db.begin_write().await?;
    require_open(&mut tx, id).await?;
    set_status(&mut tx, id, "voided", None).await?;
    tx.commit().await.context("voiding a cart")?;
    Ok(())
}

pub(crate) async fn set_status(
    tx: &mut Tx,
    id: Uuid,
    status: &str,
    label: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE carts SET status = ?, label = COALESCE(?, label), updated_at = ? WHERE id = ?",
    )
    .bind(status)
    .bind(label)
    .bind(now_ms())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .context("changing a cart's status")?;
    Ok(())
}

/// The parked carts, most recently parked first.
pub async fn parked(db: &LocalDb) -> Result<Vec<CartView>> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM carts WHERE status = 'parked' ORDER BY updated_at DESC")
            .fetch_all(db.pool())
            .await
            .context("listing parked carts")?;
    let mut carts = Vec::with_capacity(ids.len());
    for id in ids {
        carts.push(load(db, parse_id(&id)?).await?);
    }
    Ok(carts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(unit: &str, qty: u32) -> CartLine {
        CartLine {
            sku: Sku::parse("SKU-1").unwrap(),
            name: "Mug".into(),
            unit_price: Money::parse(unit, Currency::EUR).unwrap(),
            qty,
            tax_class: TaxClass::Standard,
            discount: Money::zero(Currency::EUR),
        }
    }

    #[test]
    fn the_discount_limit_is_a_share_of_the_line_rounded_down() {
        let eur = |s: &str| Money::parse(s, Currency::EUR).unwrap();
        assert_eq!(discount_limit(&line("2.20", 1), 10), eur("0.22"));
        assert_eq!(discount_limit(&line("0.99", 1), 10), eur("0.09"));
        assert_eq!(discount_limit(&line("1.10", 10), 10), eur("1.10"));
        assert_eq!(discount_limit(&line("5.00", 2), 0), eur("0.00"));
        // More than 100 % is the whole line.
        assert_eq!(discount_limit(&line("5.00", 2), 250), eur("10.00"));
    }
}
