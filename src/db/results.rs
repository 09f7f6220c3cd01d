//! Job results, stored in the database in chunks so that every node can serve them and
//! neither writing nor serving one needs it whole in memory.

use super::prepared::{prepared, Param};
use super::schema::job_result_chunks;
use super::DbConnection;
use crate::error::StoreResult;
use diesel::prelude::*;

/// Size of the chunks results are written and served in.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Appends chunk `seq` of a job's result.
pub fn append(conn: &mut DbConnection, job_id: &str, seq: i32, data: &[u8]) -> StoreResult<()> {
    prepared!(
        "INSERT INTO job_result_chunks (job_id, seq, data) VALUES (?1, ?2, ?3)",
        &[
            Param::Text(job_id),
            Param::Integer(seq),
            Param::Binary(data)
        ],
    )
    .run(conn)?;
    Ok(())
}

/// Removes a job's result (before a new attempt writes its own, and when it expires).
pub fn delete(conn: &mut DbConnection, job_id: &str) -> StoreResult<()> {
    prepared!(
        "DELETE FROM job_result_chunks WHERE job_id = ?1",
        &[Param::Text(job_id)],
    )
    .run(conn)?;
    Ok(())
}

/// Chunk `seq` of a job's result, if there is one.
pub fn chunk(conn: &mut DbConnection, job_id: &str, seq: i32) -> StoreResult<Option<Vec<u8>>> {
    Ok(job_result_chunks::table
        .filter(job_result_chunks::job_id.eq(job_id))
        .filter(job_result_chunks::seq.eq(seq))
        .select(job_result_chunks::data)
        .first(conn)
        .optional()?)
}
