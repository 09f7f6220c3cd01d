//! The database: one diesel `MultiConnection` over SQLite and PostgreSQL, its r2d2 pool,
//! the embedded migrations of each backend, and the queries, table by table, always scoped
//! by e-shop.

pub mod backlog;
pub mod backoff;
pub mod checkpoint;
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

pub use connection::{connect, is_lost, migrate, Backend, DbConnection, DbPool};
