//! Cross-node signals on PostgreSQL: a write that other nodes must react to (a new job to
//! claim, a job to stop, a job that ended) sends a `NOTIFY` inside its own transaction, so
//! it is delivered exactly when the change is committed. SQLite is one node: nothing to send.

use super::prepared::{prepared, Param};
use super::DbConnection;
use crate::error::StoreResult;
use diesel::prelude::*;

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
pub fn send(conn: &mut DbConnection, signal: &Signal) -> StoreResult<()> {
    if let DbConnection::Pg(c) = conn {
        let payload = signal.encode();
        prepared(
            "SELECT pg_notify(?1, ?2)",
            &[Param::Text(CHANNEL), Param::Text(&payload)],
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
