//! SQL that is prepared once per connection and reused. diesel's statement cache skips
//! every `sql_query` and every `UPDATE` (a changeset may leave out `None` fields), and an
//! `INSERT` of a struct with `Option` fields; on the hot path (submit, claim, finish,
//! webhook claims and attempts) those were parsed and planned again on every call. A
//! [`Prepared`] statement is cached by a type of its call site ([`prepared!`]): its SQL is
//! fixed and its parameters are bound values.
//!
//! Cached is not enough on SQLite: a statement whose plan looked at a bound value is
//! re-prepared (parsed and planned again) at every new binding of that parameter. SQLite
//! does so for a bare `LIMIT ?` and for `column = ?` where a partial index's `WHERE` names
//! that column. Hot statements therefore write `LIMIT (?n + 0)` and literal statuses.

use super::DbConnection;
use diesel::backend::Backend;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Binary, HasSqlType, Integer, Nullable, Text, Untyped};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, QueryableByName, RunQueryDsl};
use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::LazyLock;

/// One parameter value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    /// `TEXT`.
    Text(&'a str),
    /// `BIGINT`.
    BigInt(i64),
    /// `INTEGER`.
    Integer(i32),
    /// `TEXT` or `NULL`.
    NullableText(Option<&'a str>),
    /// `BIGINT` or `NULL`.
    NullableBigInt(Option<i64>),
    /// `INTEGER` or `NULL`.
    NullableInteger(Option<i32>),
    /// `BLOB` (`bytea`).
    Binary(&'a [u8]),
    /// `BLOB` (`bytea`) or `NULL`.
    NullableBinary(Option<&'a [u8]>),
}

/// A statement of fixed text whose parameters are written `?1`, `?2`, … (each may appear
/// several times); they become `$n` on PostgreSQL and `?` on SQLite. `S` is a type of its
/// call site's own ([`prepared!`]): diesel's statement cache finds the prepared statement
/// by that type, without building the statement's text and hashing it at every call
/// (13 % of the SQLite writer thread's time under `jobline bench` went to that).
#[derive(Debug, Clone)]
pub(crate) struct Prepared<'a, S> {
    sql: &'static str,
    params: Vec<Param<'a>>,
    site: PhantomData<S>,
}

impl<'a, S> Prepared<'a, S> {
    /// A statement of fixed text `sql` with `params` (`?1` is the first); use [`prepared!`],
    /// which gives each call site its own `S`.
    pub(crate) fn new(sql: &'static str, params: &[Param<'a>]) -> Prepared<'a, S> {
        Prepared {
            sql,
            params: params.to_vec(),
            site: PhantomData,
        }
    }
}

impl<S: 'static> Prepared<'_, S> {
    /// Runs the statement on the backend's own connection, not through the
    /// `MultiConnection` (whose bind collector boxes every parameter: 10 % of the SQLite
    /// writer's samples under `jobline bench`); answers how many rows it changed.
    pub(crate) fn run(self, conn: &mut DbConnection) -> QueryResult<usize> {
        match conn {
            DbConnection::Sqlite(c) => self.execute(c),
            DbConnection::Pg(c) => self.execute(c),
        }
    }

    /// Like [`Prepared::run`], for a statement that answers rows.
    pub(crate) fn rows<T>(self, conn: &mut DbConnection) -> QueryResult<Vec<T>>
    where
        T: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static,
    {
        match conn {
            DbConnection::Sqlite(c) => self.load(c),
            DbConnection::Pg(c) => self.load(c),
        }
    }
}

/// A statement of fixed text with its parameters ([`Prepared`]), known to diesel's
/// statement cache by a type declared here, at its call site: one call site, one text.
macro_rules! prepared {
    ($sql:expr, $params:expr $(,)?) => {{
        /// This call site's statement.
        struct Site;
        $crate::db::prepared::Prepared::<Site>::new($sql, $params)
    }};
}
pub(crate) use prepared;

impl<'a, S, DB> QueryFragment<DB> for Prepared<'a, S>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<Integer> + HasSqlType<Binary>,
    str: ToSql<Text, DB>,
    [u8]: ToSql<Binary, DB>,
    i64: ToSql<BigInt, DB>,
    i32: ToSql<Integer, DB>,
    Option<&'a str>: ToSql<Nullable<Text>, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
    Option<i32>: ToSql<Nullable<Integer>, DB>,
    Option<&'a [u8]>: ToSql<Nullable<Binary>, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        for piece in template(self.sql).iter() {
            out.push_sql(piece.text);
            let Some(index) = piece.param else {
                continue;
            };
            match self.params.get(index) {
                Some(Param::Text(v)) => out.push_bind_param::<Text, str>(v)?,
                Some(Param::BigInt(v)) => out.push_bind_param::<BigInt, i64>(v)?,
                Some(Param::Integer(v)) => out.push_bind_param::<Integer, i32>(v)?,
                Some(Param::NullableText(v)) => {
                    out.push_bind_param::<Nullable<Text>, Option<&'a str>>(v)?
                }
                Some(Param::NullableBigInt(v)) => {
                    out.push_bind_param::<Nullable<BigInt>, Option<i64>>(v)?
                }
                Some(Param::NullableInteger(v)) => {
                    out.push_bind_param::<Nullable<Integer>, Option<i32>>(v)?
                }
                Some(Param::Binary(v)) => out.push_bind_param::<Binary, [u8]>(v)?,
                Some(Param::NullableBinary(v)) => {
                    out.push_bind_param::<Nullable<Binary>, Option<&'a [u8]>>(v)?
                }
                None => {
                    return Err(diesel::result::Error::QueryBuilderError(
                        format!("statement parameter ?{} is not given", index + 1).into(),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// A piece of a statement's text: SQL, then the parameter that follows it (if any).
#[derive(Debug)]
struct Piece {
    text: &'static str,
    /// Index into the parameters (`?1` is 0).
    param: Option<usize>,
}

/// A static statement text's address and length.
type TextKey = (usize, usize);

thread_local! {
    /// The pieces of each statement, by the address and length of its text (a static
    /// text's address is its identity; the length tells a prefix apart): diesel walks a statement
    /// three times per execution (cache key, cacheability, binds), and scanning its text
    /// for `?n` each time cost more than the insert's own binding.
    static TEMPLATES: RefCell<HashMap<TextKey, Rc<[Piece]>>> = RefCell::default();
}

/// The pieces of `sql`, split once per thread.
fn template(sql: &'static str) -> Rc<[Piece]> {
    TEMPLATES.with(|t| {
        t.borrow_mut()
            .entry((sql.as_ptr() as usize, sql.len()))
            .or_insert_with(|| split(sql))
            .clone()
    })
}

/// Splits `sql` at its `?n` parameters; a `?` without a number (or `?0`) stays text.
fn split(sql: &'static str) -> Rc<[Piece]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while let Some(found) = sql[at..].find('?') {
        let q = at + found;
        let digits = sql[q + 1..].bytes().take_while(u8::is_ascii_digit).count();
        let index = sql[q + 1..q + 1 + digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1));
        match index {
            Some(index) => {
                pieces.push(Piece {
                    text: &sql[start..q],
                    param: Some(index),
                });
                start = q + 1 + digits;
                at = start;
            }
            None => at = q + 1,
        }
    }
    pieces.push(Piece {
        text: &sql[start..],
        param: None,
    });
    pieces.into()
}

impl<S: 'static> QueryId for Prepared<'_, S> {
    // The call site's type: one text per call site, and the same parameter types at every
    // call (a parameter's type never depends on its value's presence: `NullableText` is
    // `TEXT` on both backends).
    type QueryId = S;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<S> Query for Prepared<'_, S> {
    type SqlType = Untyped;
}

impl<S, Conn> RunQueryDsl<Conn> for Prepared<'_, S> {}

/// The planner settings that, turned off, leave PostgreSQL index, TID and nested-loop
/// plans only: what [`by_index`], [`plan_by_index_for_the_session`] and the job claim
/// ([`OFF_FOR_THE_TRANSACTION`]) turn off, named once.
const SCANS_AND_JOINS: [&str; 4] = [
    "enable_seqscan",
    "enable_bitmapscan",
    "enable_hashjoin",
    "enable_mergejoin",
];

/// One statement per setting, `template` with `{}` for its name.
fn each_setting(template: &str) -> String {
    SCANS_AND_JOINS
        .map(|name| template.replace("{}", name))
        .join("; ")
}

/// `set_config(…, 'off', true)` of every setting, comma-separated: for the select list of
/// a statement that runs anyway (the job claim's advisory lock), so that turning them off
/// for the rest of the transaction costs no round trip of its own.
pub(crate) static OFF_FOR_THE_TRANSACTION: LazyLock<String> = LazyLock::new(|| {
    SCANS_AND_JOINS
        .map(|name| format!("set_config('{name}', 'off', true)"))
        .join(", ")
});

/// Turns the settings back on, after [`by_index`] or [`OFF_FOR_THE_TRANSACTION`], for the
/// statements of the transaction that follow.
pub(crate) fn usual_plans(c: &mut diesel::PgConnection) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    static RESET: LazyLock<String> = LazyLock::new(|| each_setting("RESET {}"));
    c.batch_execute(&RESET)
}

/// Runs `f` with PostgreSQL planning its statements to find their rows by key, by address
/// or in an index's order (nested loops over index and TID scans), never by reading a
/// table or an index whole. For statements that touch a few rows of a large table. The
/// planner cannot be trusted to see that here:
/// - a cached statement gets a generic plan at its sixth run and keeps it, and on a new
///   database that is while the tables are nearly empty: reading a 10-page table whole is
///   the cheapest plan then, and it is still the plan once the table holds thousands;
/// - without statistics (a table never analyzed, as under `autovacuum = off`) the planner
///   expects a dozen rows where thousands match, and fetches them all through a bitmap to
///   sort them, where a scan in the index's order stops at the `LIMIT`.
///
/// Planning each call for the tables of the moment (`plan_cache_mode`) costs more than
/// these statements take to run.
pub(crate) fn by_index<T, E: From<diesel::result::Error>>(
    c: &mut diesel::PgConnection,
    f: impl FnOnce(&mut diesel::PgConnection) -> Result<T, E>,
) -> Result<T, E> {
    use diesel::connection::SimpleConnection;
    // `SET`, not `SET LOCAL`, which does nothing outside a transaction: a plan cached
    // there would be kept inside one. Reset whatever `f` answers; a transaction that `f`
    // aborted undoes the settings when it rolls back.
    static SET: LazyLock<String> = LazyLock::new(|| each_setting("SET {} = off"));
    c.batch_execute(&SET)?;
    let out = f(c);
    let reset = usual_plans(c);
    let out = out?;
    reset?;
    Ok(out)
}

/// [`by_index`]'s planning for the rest of the session: for a connection all of whose
/// statements touch a few rows by key, such as the webhook deliveries' writer lane
/// (claims, records, redeliveries). One round trip when the connection opens, where
/// `SET LOCAL` cost one in every transaction, and its statements are planned so inside
/// a transaction or outside one (a statement that commits by itself). Nothing on SQLite.
pub(crate) fn plan_by_index_for_the_session(conn: &mut DbConnection) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    static SET: LazyLock<String> = LazyLock::new(|| each_setting("SET {} = off"));
    match conn {
        DbConnection::Pg(c) => c.batch_execute(&SET),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// Runs `f` and checks that, on PostgreSQL, it read no row of `table` by a scan and at
/// most `at_most` through indexes: what the transaction's table counters
/// (`pg_stat_xact_user_tables`) gained meanwhile. They also count reads of earlier
/// transactions that the backend has not reported yet, hence a reading before and one
/// after. For tests that show a statement reads only its own rows whatever the table
/// holds; on SQLite it only runs `f`.
#[cfg(test)]
pub(crate) fn assert_reads_by_index<T, E: From<diesel::result::Error>>(
    c: &mut DbConnection,
    table: &str,
    at_most: i64,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E> {
    #[derive(QueryableByName)]
    struct Read {
        #[diesel(sql_type = BigInt)]
        by_scan: i64,
        #[diesel(sql_type = BigInt)]
        by_index: i64,
    }
    let rows_read = |c: &mut DbConnection| -> QueryResult<Read> {
        diesel::sql_query(
            "SELECT COALESCE(seq_tup_read, 0) AS by_scan, \
                COALESCE(idx_tup_fetch, 0) AS by_index \
             FROM pg_stat_xact_user_tables WHERE relname = $1",
        )
        .bind::<Text, _>(table)
        .get_result(c)
    };
    if matches!(c, DbConnection::Sqlite(_)) {
        return f(c);
    }
    let before = rows_read(c)?;
    let out = f(c)?;
    let after = rows_read(c)?;
    assert_eq!(
        after.by_scan - before.by_scan,
        0,
        "rows of {table} read by a scan"
    );
    let fetched = after.by_index - before.by_index;
    assert!(
        fetched <= at_most,
        "{fetched} rows of {table} read through indexes, at most {at_most} expected"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Param;
    use diesel::pg::Pg;
    use diesel::sqlite::Sqlite;

    #[test]
    fn numbered_parameters_become_each_backends_placeholders() {
        let q = prepared!(
            "SELECT ?1, ?2 WHERE x = ?1 AND y <> '?' AND z = ?10",
            &[
                Param::Text("a"),
                Param::BigInt(7),
                Param::Integer(0),
                Param::Integer(0),
                Param::Integer(0),
                Param::Integer(0),
                Param::Integer(0),
                Param::Integer(0),
                Param::Integer(0),
                Param::NullableText(None),
            ],
        );
        let pg = diesel::debug_query::<Pg, _>(&q).to_string();
        assert!(
            pg.starts_with("SELECT $1, $2 WHERE x = $3 AND y <> '?' AND z = $4"),
            "{pg}"
        );
        assert!(pg.contains(r#"binds: ["a", 7, "a", None]"#), "{pg}");
        let sqlite = diesel::debug_query::<Sqlite, _>(&q).to_string();
        assert!(
            sqlite.starts_with("SELECT ?, ? WHERE x = ? AND y <> '?' AND z = ?"),
            "{sqlite}"
        );
    }
}
