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

/// Where one snapshot's next page of its whole catalogue starts: an e-shop and the last
/// `(creation time, guid)` it read, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct PageStart {
    /// Owner.
    pub eshop_id: i64,
    /// The last (creation time, guid) already read; `None` for the first page.
    pub after: Option<(Micros, String)>,
}

/// A product and the position of its page in a [`whole_catalogue_pages`] call.
#[derive(QueryableByName)]
struct Numbered {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    i: i32,
    #[diesel(embed)]
    product: Product,
}

/// The next page (up to `limit` products) of each of many snapshots of whole catalogues,
/// in the order of `starts`. PostgreSQL reads them all in one statement: the snapshots of
/// small catalogues each paid a round trip for their one page, one read a job (20 000 of
/// the 43 584 statements of `jobline bench`'s 20 000 jobs; read together, the bench ran
/// 18 % faster: docs/benchmarks.md, twelfth session). SQLite reads in-process, page by
/// page.
pub fn whole_catalogue_pages(
    conn: &mut DbConnection,
    starts: &[PageStart],
    limit: i64,
) -> StoreResult<Vec<Vec<Product>>> {
    if !matches!(conn, DbConnection::Pg(_)) || starts.len() < 2 {
        return starts
            .iter()
            .map(|s| whole_catalogue_page(conn, s.eshop_id, s.after.clone(), limit))
            .collect();
    }
    let rows: Vec<serde_json::Value> = starts
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (t, guid) = s.after.clone().unzip();
            serde_json::json!({"i": i, "eshop_id": s.eshop_id, "t": t, "guid": guid})
        })
        .collect();
    let json = serde_json::Value::Array(rows).to_string();
    // ?1 the starts, ?2 the limit. A first page starts before every key (the smallest
    // BIGINT and the empty guid), so each lateral is one range of `products_eshop_creation`.
    let found: Vec<Numbered> = prepared!(
        "SELECT s.i, p.guid, p.eshop_id, p.code, p.name, p.visibility, p.creation_time, \
            p.change_time \
         FROM json_to_recordset(?1::json) AS s(i integer, eshop_id bigint, t bigint, guid text) \
         CROSS JOIN LATERAL ( \
            SELECT * FROM products q WHERE q.eshop_id = s.eshop_id \
                AND (q.creation_time, q.guid) > \
                    (COALESCE(s.t, -9223372036854775808), COALESCE(s.guid, '')) \
            ORDER BY q.creation_time, q.guid LIMIT ?2) AS p \
         ORDER BY s.i, p.creation_time, p.guid",
        &[Param::Text(&json), Param::BigInt(limit)],
    )
    .rows(conn)?;
    let mut pages: Vec<Vec<Product>> = vec![Vec::new(); starts.len()];
    for row in found {
        if let Some(page) = usize::try_from(row.i).ok().and_then(|i| pages.get_mut(i)) {
            page.push(row.product);
        }
    }
    Ok(pages)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::database::test_server;
    use crate::db::migrated_for_tests;

    fn product(eshop_id: i64, guid: &str, creation_time: Micros) -> Product {
        Product {
            guid: guid.into(),
            eshop_id,
            code: format!("code-{guid}"),
            name: guid.into(),
            visibility: "visible".into(),
            creation_time,
            change_time: creation_time,
        }
    }

    fn guids(page: &[Product]) -> Vec<&str> {
        page.iter().map(|p| p.guid.as_str()).collect()
    }

    /// Many snapshots' pages at once: each its own e-shop's, in key order, after its own
    /// position, none longer than the limit, an empty catalogue empty; the same pages as
    /// read one by one.
    fn many_pages_at_once(server: Option<&str>) {
        let (_db, conn) = &mut migrated_for_tests(server);
        for e in [1, 2, 3] {
            crate::db::eshops::create(conn, e, &format!("shop {e}")).unwrap();
        }
        // E-shop 1: a tie on the creation time is ordered by guid.
        for p in [
            product(1, "a2", 10),
            product(1, "a1", 10),
            product(1, "a3", 20),
            product(3, "c1", 5),
            product(3, "c2", 6),
        ] {
            insert(conn, &p).unwrap();
        }
        let starts = [
            PageStart {
                eshop_id: 1,
                after: None,
            },
            PageStart {
                eshop_id: 2,
                after: None,
            },
            PageStart {
                eshop_id: 3,
                after: None,
            },
            PageStart {
                eshop_id: 1,
                after: Some((10, "a2".into())),
            },
            PageStart {
                eshop_id: 1,
                after: Some((20, "a3".into())),
            },
        ];
        let pages = whole_catalogue_pages(conn, &starts, 2).unwrap();
        let got: Vec<Vec<&str>> = pages.iter().map(|p| guids(p)).collect();
        assert_eq!(
            got,
            [
                vec!["a1", "a2"],
                vec![],
                vec!["c1", "c2"],
                vec!["a3"],
                vec![]
            ]
        );
        for (start, page) in starts.iter().zip(&pages) {
            let one = whole_catalogue_page(conn, start.eshop_id, start.after.clone(), 2).unwrap();
            assert_eq!(guids(&one), guids(page));
        }
    }

    #[test]
    fn sqlite_many_pages_at_once() {
        many_pages_at_once(None);
    }

    #[test]
    fn postgres_many_pages_at_once() {
        many_pages_at_once(Some(&test_server()));
    }
}
