//! SQLite's WAL checkpoints, off the writer thread. By default SQLite checkpoints inside
//! the commit that grows the WAL past 1000 pages: the one writer thread then copies the
//! pages into the database file and waits for two `fsync`s (5 to 50 ms on a busy disk)
//! while every submit waits for it. Here a thread of its own checkpoints the WAL every
//! [`PAUSE`] (`PASSIVE`: it never blocks the writer, the writer never waits for it), on
//! the other core, while the writer goes on appending.
//!
//! A passive checkpoint cannot restart the WAL while the writer keeps appending, so the
//! writer's own automatic checkpoint stays as a backstop at [`WAL_PAGES`]: it then copies
//! only what the last passive one left, and the WAL starts over from its beginning (its
//! file cut back to [`WAL_KEPT_BYTES`] should it have grown beyond).

use super::{Backend, DbConnection};
use diesel::sql_types::Integer;
use diesel::{QueryableByName, RunQueryDsl};
use std::sync::mpsc;
use std::time::Duration;

/// How long the checkpointer waits between checkpoints while the WAL grows. A page the
/// writer changes again and again is copied once per checkpoint: at 100 ms instead of
/// 25 ms the server used 6 % less CPU under `jobline bench`, but the p99 of a submit in
/// `--submit-only` rose from 6 to 16 ms; 50 ms ran as fast as 100 ms with a p99 of 8 ms.
/// The WAL peaked at 41 MB either way (the backstop at [`WAL_PAGES`] bounds it).
const PAUSE: Duration = Duration::from_millis(50);

/// The longest wait, reached while the WAL does not grow.
const IDLE_PAUSE: Duration = Duration::from_millis(400);

/// The WAL size (pages) at which a commit checkpoints by itself (SQLite's default is 1000).
/// Under a steady load the passive checkpoints never catch up with the writer, so the WAL
/// grows until this backstop, and each time the writer then waits for two `fsync`s (7 to
/// 12 ms on a disk under load) while every submit waits for it. At 8 000 pages (32 MB) it
/// came every 0.75 s at 15 000 submits/s: at 100 000 jobs the p99 of a submit in
/// `--submit-only` was 27 to 31 ms; at 32 000 (128 MB) 11 to 16 ms, and the submit rate
/// 13 % higher (docs/benchmarks.md, fifteenth session).
pub(crate) const WAL_PAGES: u32 = 32000;

/// The size the WAL file is cut back to when it starts over (`journal_size_limit`), should
/// it have grown beyond the backstop (one very large transaction, or a reader that held
/// the checkpoints back): the backstop's frames (a 4 096-byte page and its 24-byte header
/// each, 132 MB in all) and a quarter more, room for the commit that crosses it. Not
/// less: cut back to 16 MB at every start, the file grew again block by block, and the
/// submit rate fell 12 % below the 8 000-page backstop's.
pub(crate) const WAL_KEPT_BYTES: u64 = (WAL_PAGES as u64) * 5 / 4 * (4096 + 24);

/// The running checkpointer; dropping it stops the thread.
pub(crate) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

/// What `PRAGMA wal_checkpoint` answers.
#[derive(QueryableByName)]
struct Checkpointed {
    /// Frames in the WAL.
    #[diesel(sql_type = Integer)]
    log: i32,
}

/// Starts checkpointing the WAL of a SQLite database, on a connection of its own; nothing
/// to do on PostgreSQL.
pub(crate) fn start(backend: &Backend) -> Result<Option<Checkpointer>, String> {
    if backend.is_postgres() {
        return Ok(None);
    }
    let DbConnection::Sqlite(mut conn) = backend.establish()? else {
        return Ok(None);
    };
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let (mut pause, mut frames) = (PAUSE, -1);
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(pause) {
                let checkpointed = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
                    .get_result::<Checkpointed>(&mut conn);
                pause = match checkpointed {
                    Ok(c) => next_pause(pause, std::mem::replace(&mut frames, c.log) != c.log),
                    Err(e) => {
                        log::warn!("WAL checkpoint failed: {e}");
                        IDLE_PAUSE
                    }
                };
            }
        })
        .map_err(|e| format!("cannot start the checkpoint thread: {e}"))?;
    Ok(Some(Checkpointer { _stop: stop }))
}

/// The wait before the next checkpoint: short while the WAL grows, doubling up to
/// [`IDLE_PAUSE`] while it does not.
fn next_pause(pause: Duration, wal_changed: bool) -> Duration {
    if wal_changed {
        PAUSE
    } else {
        (pause * 2).min(IDLE_PAUSE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_grows_while_the_wal_does_not_and_snaps_back_when_it_does() {
        let mut pause = PAUSE;
        for _ in 0..10 {
            pause = next_pause(pause, false);
        }
        assert_eq!(pause, IDLE_PAUSE);
        assert_eq!(next_pause(pause, true), PAUSE);
        assert_eq!(next_pause(PAUSE, false), PAUSE * 2);
    }

    /// A connection to a new SQLite database, opened as every connection is; the folder
    /// lives as long as the answer's first half.
    fn new_database() -> (tempfile::TempDir, diesel::SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::Sqlite(dir.path().join("c.db").display().to_string());
        let DbConnection::Sqlite(conn) = backend.establish().unwrap() else {
            unreachable!()
        };
        (dir, conn)
    }

    #[test]
    fn a_checkpoint_reads_the_wal_size() {
        let (_dir, mut conn) = new_database();
        diesel::connection::SimpleConnection::batch_execute(
            &mut conn,
            "CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1);",
        )
        .unwrap();
        let c: Checkpointed = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
            .get_result(&mut conn)
            .unwrap();
        assert!(c.log > 0, "the WAL holds the writes");
    }

    #[test]
    fn every_connection_keeps_the_wal_file_to_the_backstop() {
        let (_dir, mut conn) = new_database();
        #[derive(QueryableByName)]
        struct Limit {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            journal_size_limit: i64,
        }
        let limit: Limit = diesel::sql_query("PRAGMA journal_size_limit")
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(limit.journal_size_limit as u64, WAL_KEPT_BYTES);
    }
}
