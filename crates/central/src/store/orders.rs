//! SQL for orders and their lines.

use anyhow::Context;
use kassa_domain::api::{Order, OrderLine};
use kassa_domain::{Currency, Money, OrderStatus, Sku, Totals};
use sqlx::Row;
use uuid::Uuid;

use super::{from_ms, now_ms, Tx};

/// A new order as written.
#[derive(Debug)]
pub struct NewOrder<'a> {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub register_id: Option<Uuid>,
    pub location_id: &'a str,
    pub source: &'a str,
    pub status: OrderStatus,
    pub totals: &'a Totals,
    pub names: &'a [String],
    /// Per line, the manager who approved its discount at the till (username), if one did.
    pub approvers: &'a [Option<String>],
    pub paid_minor: i64,
}

pub async fn exists(tx: &mut Tx, id: Uuid) -> anyhow::Result<bool> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .context("checking order id")?;
    Ok(found.is_some())
}

pub async fn insert(tx: &mut Tx, o: &NewOrder<'_>) -> anyhow::Result<()> {
    write(tx, o, "", now_ms(), None).await.map(|_| ())
}

/// Inserts an order unless one with its id exists (on PostgreSQL a concurrent insert of the
/// same id waits for the other to commit); `false` when it existed, nothing written.
pub async fn try_insert(tx: &mut Tx, o: &NewOrder<'_>) -> anyhow::Result<bool> {
    write(tx, o, " ON CONFLICT (id) DO NOTHING", now_ms(), None).await
}

/// The state an order is written in, when not `o.status` with version 1: reserved as it is
/// created, in the same transaction (RESERVED under its reservation, version 2, as CREATED then
/// the move to RESERVED would leave it).
#[derive(Debug, Clone, Copy)]
pub struct ReservedAs<'a> {
    pub reservation_id: &'a str,
}

/// Inserts an order already RESERVED under `reserved.reservation_id` (its reservation written
/// first), `created_at` and `updated_at` at `now_ms`, unless one with its id exists (`false`,
/// nothing written). The caller answers with the order it wrote, without reading it back.
pub async fn try_insert_reserved(
    tx: &mut Tx,
    o: &NewOrder<'_>,
    reserved: ReservedAs<'_>,
    now_ms: i64,
) -> anyhow::Result<bool> {
    write(
        tx,
        o,
        " ON CONFLICT (id) DO NOTHING",
        now_ms,
        Some(reserved),
    )
    .await
}

/// The version of an order written by [`try_insert_reserved`].
pub const RESERVED_VERSION: i64 = 2;

async fn write(
    tx: &mut Tx,
    o: &NewOrder<'_>,
    on_conflict: &str,
    now: i64,
    reserved: Option<ReservedAs<'_>>,
) -> anyhow::Result<bool> {
    let t = o.totals;
    let (status, version) = match reserved {
        Some(_) => (OrderStatus::Reserved, RESERVED_VERSION),
        None => (o.status, 1),
    };
    let with_lines = tx.is_postgres() && !t.lines.is_empty();
    let order = format!(
        "INSERT INTO orders (id, owner_id, register_id, location_id, source, status, currency, subtotal_minor, \
         discount_minor, tax_minor, total_minor, paid_minor, totals, created_at, updated_at, \
         reservation_id, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16){on_conflict}",
    );
    // PostgreSQL: the order and its lines in one statement (one round trip); no line is
    // written when the order was not.
    let sql = if with_lines {
        const LINE_COLUMNS: usize = 9;
        let values: Vec<String> = (0..t.lines.len())
            .map(|row| {
                let first = 17 + row * LINE_COLUMNS;
                let params: Vec<String> = (first..first + LINE_COLUMNS)
                    .map(|p| format!("${p}"))
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        format!(
            "WITH o AS ({order} RETURNING id) INSERT INTO order_lines (order_id, line_no, sku, name, \
             qty, unit_price_minor, discount_minor, total_minor, tax_class, discount_approved_by) \
             SELECT o.id, v.* FROM o, (VALUES {}) AS v",
            values.join(", ")
        )
    } else {
        order
    };
    let mut query = sqlx::query(&sql)
        .bind(o.id.to_string())
        .bind(o.owner_id.to_string())
        .bind(o.register_id.map(|r| r.to_string()))
        .bind(o.location_id)
        .bind(o.source)
        .bind(status.as_str())
        .bind(t.currency.code())
        .bind(t.subtotal.to_minor())
        .bind(t.discount_total.to_minor())
        .bind(t.tax_total.to_minor())
        .bind(t.total.to_minor())
        .bind(o.paid_minor)
        .bind(serde_json::to_string(t).context("encoding totals")?)
        .bind(now)
        .bind(reserved.map(|r| r.reservation_id.to_owned()))
        .bind(version);
    if with_lines {
        for (i, (line, name)) in t.lines.iter().zip(o.names).enumerate() {
            query = query
                .bind(i64::try_from(i + 1).unwrap_or(i64::MAX))
                .bind(line.sku.as_ref().to_owned())
                .bind(name.clone())
                .bind(i64::from(line.qty))
                .bind(unit_price_minor(line))
                .bind(line.discount.to_minor())
                .bind(line.total.to_minor())
                .bind(line.tax_class.to_string())
                .bind(o.approvers.get(i).cloned().flatten());
        }
    }
    let written = query
        .execute(&mut **tx)
        .await
        .context("inserting order")?
        .rows_affected();
    if with_lines {
        return Ok(written > 0);
    }
    if written != 1 {
        return Ok(false);
    }
    insert_lines(tx, o).await?;
    Ok(true)
}

/// Makes an order what a till sold: its totals and lines replaced by `o`'s (the till's prices),
/// its source `o.source`. For an online order of that till that it completed offline.
pub async fn reprice(tx: &mut Tx, o: &NewOrder<'_>) -> anyhow::Result<()> {
    let t = o.totals;
    sqlx::query(
        "UPDATE orders SET source = $1, currency = $2, subtotal_minor = $3, discount_minor = $4, \
         tax_minor = $5, total_minor = $6, totals = $7, updated_at = $8 WHERE id = $9",
    )
    .bind(o.source)
    .bind(t.currency.code())
    .bind(t.subtotal.to_minor())
    .bind(t.discount_total.to_minor())
    .bind(t.tax_total.to_minor())
    .bind(t.total.to_minor())
    .bind(serde_json::to_string(t).context("encoding totals")?)
    .bind(now_ms())
    .bind(o.id.to_string())
    .execute(&mut **tx)
    .await
    .context("repricing order")?;
    sqlx::query("DELETE FROM order_lines WHERE order_id = $1")
        .bind(o.id.to_string())
        .execute(&mut **tx)
        .await
        .context("replacing order lines")?;
    insert_lines(tx, o).await
}

/// Every line in one multi-row insert.
async fn insert_lines(tx: &mut Tx, o: &NewOrder<'_>) -> anyhow::Result<()> {
    const COLUMNS: usize = 10;
    let t = o.totals;
    if t.lines.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..t.lines.len())
        .map(|row| {
            let first = row * COLUMNS + 1;
            let params: Vec<String> = (first..first + COLUMNS).map(|p| format!("${p}")).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO order_lines (order_id, line_no, sku, name, qty, unit_price_minor, discount_minor, \
         total_minor, tax_class, discount_approved_by) VALUES {}",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (i, (line, name)) in t.lines.iter().zip(o.names).enumerate() {
        let approver = o.approvers.get(i).cloned().flatten();
        query = query
            .bind(o.id.to_string())
            .bind(i64::try_from(i + 1).unwrap_or(i64::MAX))
            .bind(line.sku.as_ref().to_owned())
            .bind(name.clone())
            .bind(i64::from(line.qty))
            .bind(unit_price_minor(line))
            .bind(line.discount.to_minor())
            .bind(line.total.to_minor())
            .bind(line.tax_class.to_string())
            .bind(approver);
    }
    query
        .execute(&mut **tx)
        .await
        .context("inserting order lines")?;
    Ok(())
}

/// A line's stored unit price: its gross before discount over its quantity.
pub fn unit_price_minor(line: &kassa_domain::LineTotal) -> i64 {
    line.gross_before_discount.to_minor() / i64::from(line.qty.max(1))
}

/// Moves the order from `from` to `to`, only if it is still in `from`.
pub async fn set_status(
    tx: &mut Tx,
    id: Uuid,
    from: OrderStatus,
    to: OrderStatus,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE orders SET status = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(now_ms())
    .bind(id.to_string())
    .bind(from.as_str())
    .execute(&mut **tx)
    .await
    .context("changing order status")?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_reservation(tx: &mut Tx, id: Uuid, reservation_id: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE orders SET reservation_id = $1 WHERE id = $2")
        .bind(reservation_id)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .context("linking reservation")?;
    Ok(())
}

pub async fn add_paid(tx: &mut Tx, id: Uuid, amount_minor: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE orders SET paid_minor = paid_minor + $1, updated_at = $2 WHERE id = $3")
        .bind(amount_minor)
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .context("recording payment on order")?;
    Ok(())
}

/// Records the rounding of the order's final cash part (rounded − exact, minor units).
pub async fn set_cash_rounding(tx: &mut Tx, id: Uuid, rounding_minor: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE orders SET cash_rounding_minor = $1 WHERE id = $2")
        .bind(rounding_minor)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .context("recording the cash rounding of an order")?;
    Ok(())
}

pub async fn add_refunded(tx: &mut Tx, id: Uuid, amount_minor: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE orders SET refunded_minor = refunded_minor + $1, updated_at = $2 WHERE id = $3",
    )
    .bind(amount_minor)
    .bind(now_ms())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .context("recording refund on order")?;
    Ok(())
}

pub async fn add_returned(tx: &mut Tx, id: Uuid, line_no: u32, qty: u32) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE order_lines SET returned_qty = returned_qty + $1 WHERE order_id = $2 AND line_no = $3 \
         AND returned_qty + $1 <= qty",
    )
    .bind(i64::from(qty))
    .bind(id.to_string())
    .bind(i64::from(line_no))
    .execute(&mut **tx)
    .await
    .context("recording returned quantity")?;
    Ok(done.rows_affected() == 1)
}

/// The id of the location an order was placed at.
pub async fn location_id(tx: &mut Tx, id: Uuid) -> anyhow::Result<String> {
    sqlx::query_scalar("SELECT location_id FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&mut **tx)
        .await
        .context("reading the order's location")
}

/// Takes back `qty` returned units of `sku` (a refund the processor refused).
pub async fn unreturn(tx: &mut Tx, id: Uuid, sku: &str, qty: u32) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE order_lines SET returned_qty = returned_qty - $1 WHERE order_id = $2 AND line_no = \
         (SELECT MAX(line_no) FROM order_lines WHERE order_id = $2 AND sku = $3 AND returned_qty >= $1)",
    )
    .bind(i64::from(qty))
    .bind(id.to_string())
    .bind(sku)
    .execute(&mut **tx)
    .await
    .context("taking back returned quantity")?;
    Ok(())
}

const SELECT_ORDER: &str = "SELECT o.*, l.code AS location_code, r.expires_at AS reservation_expires_at \
     FROM orders o JOIN locations l ON l.id = o.location_id LEFT JOIN reservations r ON r.id = o.reservation_id";

fn decode(row: &sqlx::any::AnyRow, lines: Vec<OrderLine>) -> anyhow::Result<Order> {
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let currency: String = row.try_get("currency")?;
    let currency: Currency = currency
        .parse()
        .map_err(|e| anyhow::anyhow!("stored currency: {e}"))?;
    let totals: String = row.try_get("totals")?;
    let register_id: Option<String> = row.try_get("register_id")?;
    let reservation_id: Option<String> = row.try_get("reservation_id")?;
    let reservation_expires_at: Option<i64> = row.try_get("reservation_expires_at")?;
    Ok(Order {
        id: id.parse()?,
        status: status
            .parse()
            .map_err(|e| anyhow::anyhow!("stored status: {e}"))?,
        source: row.try_get("source")?,
        location: row.try_get("location_code")?,
        register_id: register_id.map(|r| r.parse()).transpose()?,
        lines,
        totals: serde_json::from_str(&totals).context("stored totals")?,
        paid: Money::from_minor(row.try_get("paid_minor")?, currency),
        cash_rounding: Some(Money::from_minor(
            row.try_get("cash_rounding_minor")?,
            currency,
        ))
        .filter(|r| !r.is_zero()),
        refunded: Money::from_minor(row.try_get("refunded_minor")?, currency),
        reservation_id: reservation_id.map(|r| r.parse()).transpose()?,
        reservation_expires_at: reservation_expires_at.map(from_ms),
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
        version: row.try_get("version")?,
    })
}

async fn lines_of(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    currency: Currency,
) -> anyhow::Result<Vec<OrderLine>> {
    let rows = sqlx::query("SELECT * FROM order_lines WHERE order_id = $1 ORDER BY line_no")
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .context("loading order lines")?;
    rows.iter()
        .map(|r| {
            let sku: String = r.try_get("sku")?;
            let tax_class: String = r.try_get("tax_class")?;
            let qty: i64 = r.try_get("qty")?;
            let returned: i64 = r.try_get("returned_qty")?;
            let line_no: i64 = r.try_get("line_no")?;
            Ok(OrderLine {
                line_no: u32::try_from(line_no)?,
                sku: Sku::parse(&sku)?,
                name: r.try_get("name")?,
                qty: u32::try_from(qty)?,
                unit_price: Money::from_minor(r.try_get("unit_price_minor")?, currency),
                discount: Money::from_minor(r.try_get("discount_minor")?, currency),
                total: Money::from_minor(r.try_get("total_minor")?, currency),
                tax_class: tax_class
                    .parse()
                    .map_err(|e| anyhow::anyhow!("stored tax class: {e}"))?,
                returned_qty: u32::try_from(returned)?,
                discount_approved_by: r.try_get("discount_approved_by")?,
            })
        })
        .collect()
}

/// Loads an order; `lock` takes the row lock on PostgreSQL (pass `db.for_update()`).
pub async fn get(
    conn: &mut sqlx::AnyConnection,
    id: Uuid,
    lock: &str,
) -> anyhow::Result<Option<Order>> {
    let lock = if lock.is_empty() {
        String::new()
    } else {
        " FOR UPDATE OF o".to_owned()
    };
    let row = sqlx::query(&format!("{SELECT_ORDER} WHERE o.id = $1{lock}"))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .context("loading order")?;
    let Some(row) = row else { return Ok(None) };
    let currency: String = row.try_get("currency")?;
    let currency: Currency = currency
        .parse()
        .map_err(|e| anyhow::anyhow!("stored currency: {e}"))?;
    let lines = lines_of(conn, &id.to_string(), currency).await?;
    Ok(Some(decode(&row, lines)?))
}

/// Who owns an order, for access checks.
pub async fn owner(conn: &mut sqlx::AnyConnection, id: Uuid) -> anyhow::Result<Option<Uuid>> {
    let owner: Option<String> = sqlx::query_scalar("SELECT owner_id FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .context("loading order owner")?;
    owner.map(|o| o.parse().context("owner id")).transpose()
}

/// A page of orders by id (UUIDv7 ids sort by creation), filtered.
pub async fn list(
    conn: &mut sqlx::AnyConnection,
    status: Option<OrderStatus>,
    owner: Option<Uuid>,
    since_ms: Option<i64>,
    after: Option<Uuid>,
    limit: i64,
) -> anyhow::Result<Vec<Order>> {
    let sql = "SELECT o.id FROM orders o WHERE ($1 = '' OR o.status = $1) AND ($2 = '' OR o.owner_id = $2) \
         AND o.created_at >= $3 AND o.id > $4 ORDER BY o.id LIMIT $5";
    let ids: Vec<String> = sqlx::query_scalar(sql)
        .bind(status.map(|s| s.as_str().to_owned()).unwrap_or_default())
        .bind(owner.map(|o| o.to_string()).unwrap_or_default())
        .bind(since_ms.unwrap_or(0))
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await
        .context("listing orders")?;
    let mut orders = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(order) = get(conn, id.parse()?, "").await? {
            orders.push(order);
        }
    }
    Ok(orders)
}
