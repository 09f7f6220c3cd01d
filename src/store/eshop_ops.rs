//! Messages about e-shops: authentication and readiness.

use super::ReadOp;
use crate::db::{eshops, DbConnection};
use crate::error::StoreResult;
use diesel::connection::SimpleConnection;

/// Which e-shop holds the API token with this hash.
pub struct Authenticate {
    /// SHA-256 of the presented token, hex.
    pub token_hash: String,
}

impl ReadOp for Authenticate {
    type Output = i64;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<i64> {
        eshops::by_token_hash(conn, &self.token_hash)
    }
}

/// Whether the database answers (readiness).
pub struct Ping;

impl ReadOp for Ping {
    type Output = ();
    fn run(&self, conn: &mut DbConnection) -> StoreResult<()> {
        conn.batch_execute("SELECT 1")
            .map_err(|e| crate::error::StoreError::Database(e.to_string()))
    }
}
