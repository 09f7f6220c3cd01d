//! Streams a job's result into the store in fixed-size chunks, so no result is ever held
//! whole in memory.

use crate::db::jobs::ResultMeta;
use crate::db::results::CHUNK_SIZE;
use crate::error::StoreResult;
use crate::store::AttemptStore;

/// Buffers at most one chunk and writes full chunks as they fill.
pub struct ResultWriter {
    store: AttemptStore,
    ext: String,
    content_type: String,
    buffer: Vec<u8>,
    next_seq: i32,
    size: i64,
}

impl ResultWriter {
    /// A writer for the attempt that `store` belongs to.
    pub fn new(store: AttemptStore, ext: &str, content_type: &str) -> Self {
        ResultWriter {
            store,
            ext: ext.into(),
            content_type: content_type.into(),
            // Grows with the result up to a chunk: most results are far smaller.
            buffer: Vec::new(),
            next_seq: 0,
            size: 0,
        }
    }

    /// Adds bytes; full chunks go to the store (fenced by the attempt).
    pub async fn write(&mut self, mut bytes: &[u8]) -> StoreResult<()> {
        while !bytes.is_empty() {
            let room = CHUNK_SIZE - self.buffer.len();
            let take = room.min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == CHUNK_SIZE {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> StoreResult<()> {
        let data = std::mem::take(&mut self.buffer);
        self.size += data.len() as i64;
        self.store.append_result_chunk(self.next_seq, data).await?;
        self.next_seq += 1;
        Ok(())
    }

    /// Answers the result's description; what is left in the buffer travels with it as
    /// the tail that the job's completion writes in its own transaction.
    pub fn finish(mut self) -> ResultMeta {
        let tail = std::mem::take(&mut self.buffer);
        ResultMeta {
            ext: self.ext,
            content_type: self.content_type,
            size: self.size + tail.len() as i64,
            // An empty tail is only needed to reset an earlier attempt's chunks.
            tail: (!tail.is_empty() || self.next_seq == 0).then_some((self.next_seq, tail)),
        }
    }
}
