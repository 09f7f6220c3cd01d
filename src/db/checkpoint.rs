//! SQLite's WAL checkpoints, off the writer thread. By default SQLite checkpoints inside
//! the commit that grows the WAL past 1000 pages: the one writer thread then copies the
//! pages into the database file and waits for two `fsync`s (5 to 50 ms on a busy disk)
//! while every submit waits for it. Here a thread of its own checkpoints the WAL every
//! [`PAUSE`] (`PASSIVE`: it never blocks the writer, the writer never waits for it), on
//! the other core, while the writer goes on appending.
//!
//! A passive checkpoint cannot restart the WAL while the writer keeps appending, so the
//! writer's own automatic checkpoint stays as a backstop at [`WAL_PAGES`]: it then copies
//! only what the last passive one left, and the WAL starts over from its beginning.

use super::DbConnection;
use diesel::connection::SimpleConnection;
use std::sync::mpsc;
use std::time::Duration;

/// How long the checkpointer waits between checkpoints.
const PAUSE: Duration = Duration::from_millis(25);

/// The WAL size (pages) at which a commit checkpoints by itself (SQLite's default is 1000).
pub(crate) const WAL_PAGES: u32 = 8000;

/// The running checkpointer; dropping it stops the thread.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

/// Starts checkpointing the WAL of the SQLite database `conn` is open on.
pub fn start(mut conn: DbConnection) -> Result<Checkpointer, String> {
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(PAUSE) {
                if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                    log::warn!("WAL checkpoint failed: {e}");
                }
            }
        })
        .map_err(|e| format!("cannot start the checkpoint thread: {e}"))?;
    Ok(Checkpointer { _stop: stop })
}
