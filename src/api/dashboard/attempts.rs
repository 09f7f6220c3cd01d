//! The attempts of a job, read back from its log: recording them in a table of their own
//! would add statements to the writer's hot path, and the log already says when each
//! attempt started, on which node, and how it ended.

/// One attempt as the job page shows it. Times are as the log wrote them (the API's zone).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Attempt {
    /// Its number; `None` for an attempt handed back (it is not counted).
    pub number: Option<i32>,
    /// The node that ran it, when known.
    pub node: Option<String>,
    /// When it started, when known.
    pub start: Option<String>,
    /// When it ended; `None` while it runs.
    pub end: Option<String>,
    /// How it ended (`completed`, `failed: …`, `lost its lease; …`), or `running`.
    pub outcome: String,
}

/// What the job's row says beyond the log: the log gets an attempt's own lines only when
/// the attempt ends by itself, so the attempt running now (or killed while running) is
/// known from the row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row<'a> {
    /// Attempts counted so far (the row's `attempt`).
    pub attempt: i32,
    /// Start of the last attempt, in the API's zone.
    pub started: Option<&'a str>,
    /// The node holding the lease, while the job runs.
    pub running_on: Option<&'a str>,
}

/// The attempts of a job, oldest first, from its `log` and its row.
pub(crate) fn attempts(log: &str, row: Row<'_>) -> Vec<Attempt> {
    let mut done: Vec<Attempt> = Vec::new();
    let mut open: Option<Attempt> = None;
    for (at, message) in log.lines().filter_map(|l| l.split_once(' ')) {
        if let Some((number, node)) = started(message) {
            done.extend(open.take());
            open = Some(Attempt {
                number: Some(number),
                node: Some(node.to_string()),
                start: Some(at.to_string()),
                end: None,
                outcome: "ended without a record".into(),
            });
        } else if let Some((number, node, how)) = lost_lease(message) {
            let mut a = open.take().unwrap_or_else(|| Attempt {
                number: Some(number),
                node: Some(node.to_string()),
                start: None,
                end: None,
                outcome: String::new(),
            });
            a.end = Some(at.to_string());
            a.outcome = how.to_string();
            done.push(a);
        } else if message == "completed"
            || message.starts_with("failed: ")
            || message.starts_with("killed: ")
            || message.starts_with("no job kind handles")
        {
            if let Some(mut a) = open.take() {
                a.end = Some(at.to_string());
                a.outcome = message.to_string();
                done.push(a);
            }
        } else if message == "killed on request" {
            let highest = done.iter().filter_map(|a| a.number).max().unwrap_or(0);
            if row.attempt > highest {
                done.push(Attempt {
                    number: Some(row.attempt),
                    node: None,
                    start: row.started.map(str::to_string),
                    end: Some(at.to_string()),
                    outcome: message.to_string(),
                });
            }
        } else if message.contains("handed back") {
            done.push(Attempt {
                number: None,
                node: None,
                start: None,
                end: Some(at.to_string()),
                outcome: message.to_string(),
            });
        }
    }
    done.extend(open);
    if let Some(node) = row.running_on {
        done.push(Attempt {
            number: Some(row.attempt),
            node: Some(node.to_string()),
            start: row.started.map(str::to_string),
            end: None,
            outcome: "running".into(),
        });
    }
    done
}

/// `attempt N started on NODE` (the worker's first line of an attempt).
fn started(message: &str) -> Option<(i32, &str)> {
    let (number, node) = message
        .strip_prefix("attempt ")?
        .split_once(" started on ")?;
    Some((number.parse().ok()?, node))
}

/// `attempt N on NODE lost its lease; …` (the janitor's line): number, node, and the
/// outcome from `lost its lease` on.
fn lost_lease(message: &str) -> Option<(i32, &str, &str)> {
    let rest = message.strip_prefix("attempt ")?;
    let (number, rest) = rest.split_once(" on ")?;
    let at = rest.find(" lost its lease")?;
    Some((number.parse().ok()?, &rest[..at], &rest[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::jobs::log_line;
    use crate::model::time::{Zone, SECOND};

    const T0: i64 = 1_790_000_000 * SECOND;

    /// A log of `(second, message)` lines, written as the store writes them.
    fn log(lines: &[(i64, &str)]) -> String {
        lines
            .iter()
            .map(|(s, m)| log_line(&Zone::utc(), T0 + s * SECOND, m))
            .collect()
    }

    fn at(s: i64) -> Option<String> {
        Some(Zone::utc().format(T0 + s * SECOND))
    }

    const ENDED: Row<'static> = Row {
        attempt: 0,
        started: None,
        running_on: None,
    };

    #[test]
    fn an_attempt_that_ends_by_itself_has_its_node_start_end_and_outcome() {
        for outcome in [
            "completed",
            "failed: reading products failed: boom",
            "failed: the job panicked",
            "killed: ran past max_run_time (60 s)",
            "no job kind handles this endpoint",
        ] {
            let l = log(&[
                (0, "attempt 1 started on node-a"),
                (1, "stored 3 of 3 images"),
                (2, outcome),
            ]);
            assert_eq!(
                attempts(
                    &l,
                    Row {
                        attempt: 1,
                        ..ENDED
                    }
                ),
                vec![Attempt {
                    number: Some(1),
                    node: Some("node-a".into()),
                    start: at(0),
                    end: at(2),
                    outcome: outcome.into(),
                }]
            );
        }
    }

    #[test]
    fn lost_leases_handbacks_and_the_running_attempt() {
        let l = log(&[
            (0, "attempt 1 on node-a lost its lease; will run again"),
            (
                1,
                "handed back at shutdown; the attempt is not counted",
            ),
            (
                2,
                "the database was unreachable during the attempt; handed back, the attempt is not counted",
            ),
            (3, "attempt 2 on node-b lost its lease; out of attempts (2)"),
        ]);
        let got = attempts(
            &l,
            Row {
                attempt: 3,
                started: at(4).as_deref(),
                running_on: Some("node-c"),
            },
        );
        let outcomes: Vec<_> = got.iter().map(|a| (a.number, a.outcome.as_str())).collect();
        assert_eq!(
            outcomes,
            [
                (Some(1), "lost its lease; will run again"),
                (None, "handed back at shutdown; the attempt is not counted"),
                (None, "the database was unreachable during the attempt; handed back, the attempt is not counted"),
                (Some(2), "lost its lease; out of attempts (2)"),
                (Some(3), "running"),
            ]
        );
        assert_eq!(got[0].node.as_deref(), Some("node-a"));
        assert_eq!((got[0].start.clone(), got[0].end.clone()), (None, at(0)));
        assert_eq!(got[3].node.as_deref(), Some("node-b"));
        assert_eq!(
            (
                got[4].node.as_deref(),
                got[4].start.clone(),
                got[4].end.clone()
            ),
            (Some("node-c"), at(4), None)
        );
    }

    #[test]
    fn a_kill_on_request_ends_the_running_attempt_but_not_a_pending_job() {
        let running = log(&[
            (0, "attempt 1 on node-a lost its lease; will run again"),
            (5, "killed on request"),
        ]);
        let got = attempts(
            &running,
            Row {
                attempt: 2,
                started: at(3).as_deref(),
                running_on: None,
            },
        );
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1],
            Attempt {
                number: Some(2),
                node: None,
                start: at(3),
                end: at(5),
                outcome: "killed on request".into(),
            }
        );
        let pending = attempts(
            &running,
            Row {
                attempt: 1,
                ..ENDED
            },
        );
        assert_eq!(pending.len(), 1, "the kill ended no attempt: {pending:?}");
        assert!(attempts(&log(&[(0, "killed on request")]), ENDED).is_empty());
    }

    #[test]
    fn a_job_that_never_ran_has_no_attempts() {
        assert!(attempts("", ENDED).is_empty());
    }
}
