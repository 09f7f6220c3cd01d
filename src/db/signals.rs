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
    /// These jobs ended (answers `?wait` on every node): all of a batch's ends in one
    /// payload ([`Signal::ended`]) rather than one each, which cost every listening node a
    /// message per job (5 % of the rate with two nodes).
    Ended(Vec<String>),
}

/// Most bytes of a payload: PostgreSQL refuses one of 8 000 or more.
const MAX_PAYLOAD: usize = 7_900;

impl Signal {
    /// The NOTIFY payload.
    pub fn encode(&self) -> String {
        match self {
            Signal::Wake(q) => format!("wake:{q}"),
            Signal::Kill(id) => format!("kill:{id}"),
            Signal::Ended(ids) => format!("ended:{}", ids.join(",")),
        }
    }

    /// The ends of `ids`, as few [`Signal::Ended`] as fit in payloads.
    pub fn ended(ids: &[String]) -> Vec<Signal> {
        let mut signals = Vec::new();
        let mut chunk: Vec<String> = Vec::new();
        let mut len = "ended:".len();
        for id in ids {
            if !chunk.is_empty() && len + 1 + id.len() > MAX_PAYLOAD {
                signals.push(Signal::Ended(std::mem::take(&mut chunk)));
                len = "ended:".len();
            }
            len += id.len() + 1;
            chunk.push(id.clone());
        }
        if !chunk.is_empty() {
            signals.push(Signal::Ended(chunk));
        }
        signals
    }

    /// Reads a NOTIFY payload (an `ended:` payload of one id, as earlier versions send
    /// them, is a list of one).
    pub fn decode(payload: &str) -> Option<Signal> {
        let (kind, arg) = payload.split_once(':')?;
        match kind {
            "wake" => Some(Signal::Wake(arg.to_string())),
            "kill" => Some(Signal::Kill(arg.to_string())),
            "ended" => Some(Signal::Ended(arg.split(',').map(str::to_string).collect())),
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
            Signal::Ended(vec!["abc1234".into()]),
            Signal::Ended(vec!["abc1234".into(), "xyz9876".into()]),
        ] {
            assert_eq!(Signal::decode(&s.encode()), Some(s));
        }
        assert_eq!(Signal::decode("nonsense"), None);
    }

    #[test]
    fn ends_share_payloads_that_postgresql_accepts() {
        let ids: Vec<String> = (0..2000).map(|i| format!("j{i:06}")).collect();
        let signals = Signal::ended(&ids);
        assert_eq!(
            signals.len(),
            3,
            "7 bytes and a comma an id, 986 ids a payload"
        );
        let mut back = Vec::new();
        for s in &signals {
            assert!(s.encode().len() <= super::MAX_PAYLOAD);
            match Signal::decode(&s.encode()) {
                Some(Signal::Ended(got)) => back.extend(got),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, ids);
        assert!(Signal::ended(&[]).is_empty());
    }
}
