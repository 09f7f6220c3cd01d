//! Products: the synchronous catalogue the snapshot job reads. Every query is scoped by
//! e-shop.

use super::prepared::{prepared, Param};
use super::schema::products;
use super::DbConnection;
use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::model::Micros;
use diesel::prelude::*;

/// A product as stored.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = products)]
pub struct Product {
    /// Public id (UUID).
    pub guid: String,
    /// Owner.
    pub eshop_id: i64,
    /// The e-shop's own code, unique per e-shop.
    pub code: String,
    /// Display name.
    pub name: String,
    /// `visible` or `hidden`.
    pub visibility: String,
    /// When created.
    pub creation_time: Micros,
    /// When last changed.
    pub change_time: Micros,
}

/// A change to a product; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = products)]
pub struct ProductChange {
    /// New code.
    pub code: Option<String>,
    /// New name.
    pub name: Option<String>,
    /// New visibility.
    pub visibility: Option<String>,
    /// Always set by an update.
    pub change_time: Option<Micros>,
}

/// Filters of the products snapshot (all optional, all combined with AND).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProductFilter {
    /// Only this visibility.
    pub visibility: Option<String>,
    /// Created at or after.
    pub creation_time_from: Option<Micros>,
    /// Created at or before.
    pub creation_time_to: Option<Micros>,
    /// Changed at or after.
    pub change_time_from: Option<Micros>,
    /// Changed at or before.
    pub change_time_to: Option<Micros>,
    /// Only these guids.
    pub product_guids: Option<Vec<String>>,
}

fn code_conflict(e: diesel::result::Error) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict("product-code-exists")
    } else {
        e.into()
    }
}

/// [`page_after`] with no filter, the usual snapshot: statements of fixed text, prepared
/// once per connection. The filtered query is built anew at every call, which for the
/// small catalogues of `jobline bench` was 45 % of the reading thread's time (diesel
/// writes the statement's text to find it in its cache).
fn whole_catalogue_page(
    conn: &mut DbConnection,
    eshop_id: i64,
    after: Option<(Micros, String)>,
    limit: i64,
) -> StoreResult<Vec<Product>> {
    // ?1 e-shop, ?2 limit; after a page ?3 its last creation time, ?4 its last guid.
    // `LIMIT (?2 + 0)`, not `LIMIT ?2`: SQLite plans a bare bound limit anew at each call.
    Ok(match &after {
        None => prepared!(
            "SELECT guid, eshop_id, code, name, visibility, creation_time, change_time \
             FROM products WHERE eshop_id = ?1 \
             ORDER BY creation_time, guid LIMIT (?2 + 0)",
            &[Param::BigInt(eshop_id), Param::BigInt(limit)],
        )
        .rows(conn)?,
        Some((t, guid)) => prepared!(
            "SELECT guid, eshop_id, code, name, visibility, creation_time, change_time \
             FROM products WHERE eshop_id = ?1 \
                AND (creation_time, guid) > (?3, ?4) \
             ORDER BY creation_time, guid LIMIT (?2 + 0)",
            &[
                Param::BigInt(eshop_id),
                Param::BigInt(limit),
                Param::BigInt(*t),
                Param::Text(guid),
            ],
        )
        .rows(conn)?,
    })
}

/// Inserts a product; a code already used by this e-shop is a conflict.
pub fn insert(conn: &mut DbConnection, p: &Product) -> StoreResult<()> {
    diesel::insert_into(products::table)
        .values(p)
        .execute(conn)
        .map_err(code_conflict)?;
    Ok(())
}

/// One product of one e-shop.
pub fn get(conn: &mut DbConnection, eshop_id: i64, guid: &str) -> StoreResult<Product> {
    Ok(products::table
        .filter(products::eshop_id.eq(eshop_id))
        .filter(products::guid.eq(guid))
        .select(Product::as_select())
        .first(conn)?)
}

/// Applies a change and returns the product as it now is.
pub fn update(
    conn: &mut DbConnection,
    eshop_id: i64,
    guid: &str,
    change: &ProductChange,
) -> StoreResult<Product> {
    let n = diesel::update(
        products::table
            .filter(products::eshop_id.eq(eshop_id))
            .filter(products::guid.eq(guid)),
    )
    .set(change)
    .execute(conn)
    .map_err(code_conflict)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    get(conn, eshop_id, guid)
}

/// Deletes a product.
pub fn delete(conn: &mut DbConnection, eshop_id: i64, guid: &str) -> StoreResult<()> {
    let n = diesel::delete(
        products::table
            .filter(products::eshop_id.eq(eshop_id))
            .filter(products::guid.eq(guid)),
    )
    .execute(conn)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// One page of an e-shop's products, oldest first, with the total count.
pub fn list(
    conn: &mut DbConnection,
    eshop_id: i64,
    offset: i64,
    limit: i64,
) -> StoreResult<(Vec<Product>, i64)> {
    let total: i64 = products::table
        .filter(products::eshop_id.eq(eshop_id))
        .count()
        .get_result(conn)?;
    let items = products::table
        .filter(products::eshop_id.eq(eshop_id))
        .order((products::creation_time, products::guid))
        .offset(offset)
        .limit(limit)
        .select(Product::as_select())
        .load(conn)?;
    Ok((items, total))
}

/// The next `limit` products matching `filter` after the keyset position `after`
/// (creation time, guid): the snapshot reads the catalogue page by page this way, so
/// neither memory nor query cost grows with the catalogue.
pub fn page_after(
    conn: &mut DbConnection,
    eshop_id: i64,
    filter: &ProductFilter,
    after: Option<(Micros, String)>,
    limit: i64,
) -> StoreResult<Vec<Product>> {
    if *filter == ProductFilter::default() {
        return whole_catalogue_page(conn, eshop_id, after, limit);
    }
    let mut q = products::table
        .filter(products::eshop_id.eq(eshop_id))
        .select(Product::as_select())
        .into_boxed();
    if let Some(v) = &filter.visibility {
        q = q.filter(products::visibility.eq(v.clone()));
    }
    if let Some(t) = filter.creation_time_from {
        q = q.filter(products::creation_time.ge(t));
    }
    if let Some(t) = filter.creation_time_to {
        q = q.filter(products::creation_time.le(t));
    }
    if let Some(t) = filter.change_time_from {
        q = q.filter(products::change_time.ge(t));
    }
    if let Some(t) = filter.change_time_to {
        q = q.filter(products::change_time.le(t));
    }
    if let Some(guids) = &filter.product_guids {
        q = q.filter(products::guid.eq_any(guids.clone()));
    }
    if let Some((t, guid)) = after {
        q = q.filter(
            products::creation_time
                .gt(t)
                .or(products::creation_time.eq(t).and(products::guid.gt(guid))),
        );
    }
    q = q.order((products::creation_time, products::guid));
    // SQLite re-prepares a statement with a bound `LIMIT` at every call (`db::prepared`):
    // there the rows are read one by one and reading stops after `limit` of them.
    if matches!(conn, DbConnection::Pg(_)) {
        q = q.limit(limit);
    }
    let rows = q.load_iter::<Product, diesel::connection::DefaultLoadingMode>(conn)?;
    Ok(rows
        .take(usize::try_from(limit).unwrap_or(0))
        .collect::<QueryResult<_>>()?)
}
