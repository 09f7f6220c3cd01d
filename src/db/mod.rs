//! The database: one diesel `MultiConnection` over SQLite and PostgreSQL, its r2d2 pool,
//! the embedded migrations of each backend, and the queries, table by table, always scoped
//! by e-shop.

pub mod backlog;
pub mod backoff;
pub(crate) mod checkpoint;
pub mod connection;
pub mod dashboard;
pub mod deliveries;
pub mod ends;
pub mod eshops;
pub mod images;
pub mod jobs;
pub mod nodes;
pub mod notifications;
pub mod operators;
mod prepared;
pub mod products;
pub mod results;
pub mod schema;
pub mod signals;
pub mod signature_keys;
pub mod webhooks;

pub use connection::{connect, is_lost, migrate, with_pooled, Backend, DbConnection, DbPool};

/// A fresh, migrated database for a test of the queries: a SQLite file (`server` None) or
/// a new database on the PostgreSQL `server`, dropped with the returned guard (keep it
/// alive as long as the connection).
#[cfg(test)]
pub(crate) fn migrated_for_tests(
    server: Option<&str>,
) -> (crate::bench::database::BenchDatabase, DbConnection) {
    let db = crate::bench::database::BenchDatabase::create(server).unwrap();
    let mut conn = Backend::from_url(&db.url).unwrap().establish().unwrap();
    migrate(&mut conn).unwrap();
    (db, conn)
}

/// A status condition written into the SQL text rather than bound as a parameter, so that
/// a plan can use the partial index made for it (`jobs_claim`, `jobs_running`,
/// `jobs_valid_until`, `notifications_due`): PostgreSQL's generic plan of a prepared
/// statement and SQLite's plan before it sees the value cannot, and scan the table instead
/// (the maintenance passes did, once a second). diesel does not cache a statement with a
/// literal, so it is also planned with the table's size at each call.
pub(crate) fn literal(
    condition: &'static str,
) -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>(condition)
}
