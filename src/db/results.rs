//! Job results, stored in the database in chunks so that every node can serve them and
//! neither writing nor serving one needs it whole in memory.

use super::schema::job_result_chunks;
use super::DbConnection;
use crate::error::StoreResult;
use diesel::prelude::*;

/// Size of the chunks results are written and served in.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Appends chunk `seq` of a job's result.
pub fn append(conn: &mut DbConnection, job_id: &str, seq: i32, data: &[u8]) -> StoreResult<()> {
    diesel::insert_into(job_result_chunks::table)
        .values((
            job_result_chunks::job_id.eq(job_id),
            job_result_chunks::seq.eq(seq),
            job_result_chunks::data.eq(data),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes a job's result (before a new attempt writes its own, and when it expires).
pub fn delete(conn: &mut DbConnection, job_id: &str) -> StoreResult<()> {
    diesel::delete(job_result_chunks::table.filter(job_result_chunks::job_id.eq(job_id)))
        .execute(conn)?;
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
