//! Cross-node signals on PostgreSQL: what other nodes must react to (a new job to claim, a
//! job to stop, a job that ended), their wire format, and the one statement that sends a
//! batch's signals inside its transaction ([`notify`]), so they are delivered exactly when
//! the change is committed. SQLite is one node: nothing to send. The store's writer decides
//! what to send; this module only knows how.

use super::prepared::{prepared, Param};
use super::DbConnection;
use diesel::prelude::*;
use std::sync::LazyLock;

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

/// Sends `signals` to every node in one statement, delivered when the current transaction
/// commits (PostgreSQL; nothing on SQLite or when there is nothing to send).
pub fn notify(conn: &mut DbConnection, signals: &[Signal]) -> QueryResult<()> {
    static NOTIFY: LazyLock<String> = LazyLock::new(|| notify_select(1));
    if let (DbConnection::Pg(c), false) = (conn, signals.is_empty()) {
        prepared!(
            NOTIFY.as_str(),
            &[Param::Text(CHANNEL), Param::Text(&payloads(signals))],
        )
        .execute(c)?;
    }
    Ok(())
}

/// The `SELECT` that sends signals on PostgreSQL, its channel the parameter `?first` and
/// the payloads ([`payloads`]) the next one: alone in [`notify`], or as the main query of
/// a statement whose data-modifying `WITH` writes what the signals announce (a batch
/// written in one statement that commits by itself).
pub(crate) fn notify_select(first: usize) -> String {
    let next = first + 1;
    format!("SELECT pg_notify(?{first}, p) FROM unnest(string_to_array(?{next}, E'\\n')) AS p")
}

/// The payloads of `signals`, one a line, as [`notify_select`] reads them. None of them
/// holds a newline: queue names and job ids.
pub(crate) fn payloads(signals: &[Signal]) -> String {
    let payloads: Vec<String> = signals.iter().map(Signal::encode).collect();
    payloads.join("\n")
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
