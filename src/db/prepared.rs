//! Raw SQL that is prepared once per connection and reused. diesel's `sql_query` marks
//! every statement as not cacheable, so a statement written by hand (the claims, NOTIFY,
//! advisory locks) used to be parsed and planned again on every call. A [`Prepared`]
//! statement is cached by its text: its SQL is fixed and its parameters are bound values.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Integer, Text, Untyped};
use diesel::{QueryResult, RunQueryDsl};

/// One parameter value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    /// `TEXT`.
    Text(&'a str),
    /// `BIGINT`.
    BigInt(i64),
    /// `INTEGER`.
    Integer(i32),
}

/// A statement of fixed text whose parameters are written `?1` … `?9` (each may appear
/// several times); they become `$n` on PostgreSQL and `?` on SQLite.
#[derive(Debug, Clone)]
pub(crate) struct Prepared<'a> {
    sql: &'static str,
    params: Vec<Param<'a>>,
}

/// A statement of fixed text `sql` with `params` (`?1` is the first).
pub(crate) fn prepared<'a>(sql: &'static str, params: &[Param<'a>]) -> Prepared<'a> {
    Prepared {
        sql,
        params: params.to_vec(),
    }
}

impl<DB> QueryFragment<DB> for Prepared<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<Integer>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    i32: ToSql<Integer, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let mut rest = self.sql;
        while let Some(at) = rest.find('?') {
            let index = rest.as_bytes().get(at + 1).and_then(|d| match d {
                b'1'..=b'9' => Some(usize::from(d - b'1')),
                _ => None,
            });
            let Some(index) = index else {
                out.push_sql(&rest[..=at]);
                rest = &rest[at + 1..];
                continue;
            };
            out.push_sql(&rest[..at]);
            match self.params.get(index) {
                Some(Param::Text(v)) => out.push_bind_param::<Text, str>(v)?,
                Some(Param::BigInt(v)) => out.push_bind_param::<BigInt, i64>(v)?,
                Some(Param::Integer(v)) => out.push_bind_param::<Integer, i32>(v)?,
                None => {
                    return Err(diesel::result::Error::QueryBuilderError(
                        format!("statement parameter ?{} is not given", index + 1).into(),
                    ))
                }
            }
            rest = &rest[at + 2..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

impl QueryId for Prepared<'_> {
    // No static id: the cache keys it by its SQL text (and the parameter types).
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared<'_> {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for Prepared<'_> {}

#[cfg(test)]
mod tests {
    use super::{prepared, Param};
    use diesel::pg::Pg;
    use diesel::sqlite::Sqlite;

    #[test]
    fn numbered_parameters_become_each_backends_placeholders() {
        let q = prepared(
            "SELECT ?1, ?2 WHERE x = ?1 AND y <> '?'",
            &[Param::Text("a"), Param::BigInt(7)],
        );
        let pg = diesel::debug_query::<Pg, _>(&q).to_string();
        assert!(
            pg.starts_with("SELECT $1, $2 WHERE x = $3 AND y <> '?'"),
            "{pg}"
        );
        assert!(pg.contains(r#"binds: ["a", 7, "a"]"#), "{pg}");
        let sqlite = diesel::debug_query::<Sqlite, _>(&q).to_string();
        assert!(
            sqlite.starts_with("SELECT ?, ? WHERE x = ? AND y <> '?'"),
            "{sqlite}"
        );
    }
}
