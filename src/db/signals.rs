//! Cross-node signals on PostgreSQL: a write that other nodes must react to (a new job to
//! claim, a job to stop, a job that ended) sends a `NOTIFY` inside its own transaction, so
//! it is delivered exactly when the change is committed. SQLite is one node: nothing to send.
//!
//! The writer holds the signals of a batch ([`hold`]) and sends them at the end of its
//! transaction in one statement, each payload once ([`flush`]): a batch of 300 submits
//! sends one `wake:snapshots`, not 300 `pg_notify` round trips.

use super::prepared::{prepared, Param};
use super::DbConnection;
use crate::error::StoreResult;
use diesel::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// The payloads held for the current batch on this thread, if it holds them.
    static HELD: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// The channel every node listens on.
pub const CHANNEL: &str = "jobline";

/// What another node should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Jobs may be waiting in this queue.
    Wake(String),
    /// Stop this job if you run it.
    Kill(String),
    /// This job ended (answers `?wait` on every node).
    Ended(String),
}

impl Signal {
    /// The NOTIFY payload.
    pub fn encode(&self) -> String {
        match self {
            Signal::Wake(q) => format!("wake:{q}"),
            Signal::Kill(id) => format!("kill:{id}"),
            Signal::Ended(id) => format!("ended:{id}"),
        }
    }

    /// Reads a NOTIFY payload.
    pub fn decode(payload: &str) -> Option<Signal> {
        let (kind, arg) = payload.split_once(':')?;
        let arg = arg.to_string();
        match kind {
            "wake" => Some(Signal::Wake(arg)),
            "kill" => Some(Signal::Kill(arg)),
            "ended" => Some(Signal::Ended(arg)),
            _ => None,
        }
    }
}

/// Sends `signal` to every node when the current transaction commits (PostgreSQL only).
/// While this thread holds signals, it is kept for [`flush`] instead (once per payload).
pub fn send(conn: &mut DbConnection, signal: &Signal) -> StoreResult<()> {
    if let DbConnection::Pg(c) = conn {
        let payload = signal.encode();
        let sent_now = HELD.with_borrow_mut(|held| match held {
            Some(held) => {
                if !held.contains(&payload) {
                    held.push(payload.clone());
                }
                false
            }
            None => true,
        });
        if sent_now {
            prepared(
                "SELECT pg_notify(?1, ?2)",
                &[Param::Text(CHANNEL), Param::Text(&payload)],
            )
            .execute(c)?;
        }
    }
    Ok(())
}

/// From now on this thread holds the signals it sends, until [`flush`]; forgets any still
/// held (a batch rolled back).
pub fn hold() {
    HELD.set(Some(Vec::new()));
}

/// How many signals are held: a mark to [`forget_since`] when one write of the batch is
/// rolled back to its savepoint.
pub fn held_mark() -> usize {
    HELD.with_borrow(|held| held.as_ref().map_or(0, Vec::len))
}

/// Forgets the signals held since `mark` (their write was rolled back).
pub fn forget_since(mark: usize) {
    HELD.with_borrow_mut(|held| {
        if let Some(held) = held {
            held.truncate(mark);
        }
    });
}

/// Sends every held signal in one statement inside the current transaction, and stops
/// holding.
pub fn flush(conn: &mut DbConnection) -> QueryResult<()> {
    let held = HELD.take().unwrap_or_default();
    if let (DbConnection::Pg(c), false) = (conn, held.is_empty()) {
        // Payloads never hold a newline: queue names and job ids.
        let payloads = held.join("\n");
        prepared(
            "SELECT pg_notify(?1, p) FROM unnest(string_to_array(?2, E'\\n')) AS p",
            &[Param::Text(CHANNEL), Param::Text(&payloads)],
        )
        .execute(c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Signal;

    #[test]
    fn payloads_round_trip() {
        for s in [
            Signal::Wake("images".into()),
            Signal::Kill("abc1234".into()),
            Signal::Ended("abc1234".into()),
        ] {
            assert_eq!(Signal::decode(&s.encode()), Some(s));
        }
        assert_eq!(Signal::decode("nonsense"), None);
    }
}
