//! Job results, stored in the database in chunks so that every node can serve them and
//! neither writing nor serving one needs it whole in memory.

use super::prepared::{prepared, Param};
use super::DbConnection;
use crate::error::StoreResult;
use diesel::prelude::*;
use diesel::sql_types::{Binary, Nullable};

/// Size of the chunks results are written and served in.
pub const CHUNK_SIZE: usize = 1 << 20;

/// The largest result kept in its job's row instead of in chunks: within one SQLite page
/// with the rest of the row, and most snapshots of small catalogues.
pub const INLINE_MAX: usize = 2 << 10;

/// The bytes of a result to keep in its job's row: a result whose last chunk is its first
/// and is at most [`INLINE_MAX`] long. Written by the completing update; readers then
/// ignore any chunk an earlier attempt of the job left, so none needs removing first.
pub(crate) fn inline(tail: Option<&(i32, Vec<u8>)>) -> Option<&[u8]> {
    match tail {
        Some((0, data)) if data.len() <= INLINE_MAX => Some(data),
        _ => None,
    }
}

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

/// One job's row and its stored chunk, as [`chunk`] reads them.
#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = Nullable<Binary>)]
    inline: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    data: Option<Vec<u8>>,
}

/// Chunk `seq` of a job's result, if there is one: a result kept inline is chunk 0 alone.
pub fn chunk(conn: &mut DbConnection, job_id: &str, seq: i32) -> StoreResult<Option<Vec<u8>>> {
    const READ: &str = "SELECT j.result_inline AS inline, c.data AS data FROM jobs j \
        LEFT JOIN job_result_chunks c ON c.job_id = j.id AND c.seq = ?2 WHERE j.id = ?1";
    let params = [Param::Text(job_id), Param::Integer(seq)];
    let mut stored: Vec<Stored> = match conn {
        DbConnection::Sqlite(c) => prepared!(READ, &params).load(c)?,
        DbConnection::Pg(c) => prepared!(READ, &params).load(c)?,
    };
    let stored = stored.pop();
    Ok(match stored {
        Some(Stored {
            inline: Some(bytes),
            ..
        }) => (seq == 0).then_some(bytes),
        Some(Stored { data, .. }) => data,
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_small_result_in_one_chunk_is_kept_inline() {
        let at = |seq: i32, len: usize| (seq, vec![1u8; len]);
        assert_eq!(inline(Some(&at(0, 3))), Some(&[1u8; 3][..]));
        assert!(inline(Some(&at(0, INLINE_MAX))).is_some());
        assert_eq!(inline(Some(&at(0, INLINE_MAX + 1))), None);
        assert_eq!(inline(Some(&at(1, 3))), None, "the last of several chunks");
        assert_eq!(inline(None), None);
    }
}
