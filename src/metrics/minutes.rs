//! The jobs this node ended per minute over the last hour, completed and not, kept in memory
//! and written with the node's heartbeat: the dashboard's chart sums them over the cluster
//! instead of scanning the jobs table.

use std::collections::VecDeque;
use std::sync::Mutex;

/// How many minutes are kept.
pub const WINDOW: i64 = 60;

/// Per-minute counts: (Unix minute, completed, failed or killed), oldest first.
#[derive(Default)]
pub struct Minutes(Mutex<VecDeque<(i64, u64, u64)>>);

impl Minutes {
    /// Counts one ended job in `minute`.
    pub fn record(&self, minute: i64, completed: bool) {
        let mut q = self.0.lock().expect("minutes lock");
        match q.back_mut() {
            Some((m, ..)) if *m == minute => {}
            _ => q.push_back((minute, 0, 0)),
        }
        let last = q.back_mut().expect("just pushed");
        if completed {
            last.1 += 1;
        } else {
            last.2 += 1;
        }
        while q.front().is_some_and(|(m, ..)| *m <= minute - WINDOW) {
            q.pop_front();
        }
    }

    /// `minute:completed:failed` items of the last [`WINDOW`] minutes before `now_minute`.
    pub fn encode(&self, now_minute: i64) -> String {
        let q = self.0.lock().expect("minutes lock");
        q.iter()
            .filter(|(m, ..)| *m > now_minute - WINDOW)
            .map(|(m, c, f)| format!("{m}:{c}:{f}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Reads what [`Minutes::encode`] wrote; malformed items are skipped.
pub fn decode(s: &str) -> impl Iterator<Item = (i64, u64, u64)> + '_ {
    s.split(',').filter_map(|item| {
        let mut parts = item.split(':');
        Some((
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_and_old_minutes_drop_out() {
        let m = Minutes::default();
        m.record(100, true);
        m.record(100, false);
        m.record(101, true);
        assert_eq!(m.encode(101), "100:1:1,101:1:0");
        assert_eq!(m.encode(160), "101:1:0");
        m.record(170, true);
        assert_eq!(m.encode(170), "170:1:0");
        let decoded: Vec<_> = decode("5:1:2,bad,6:0:1").collect();
        assert_eq!(decoded, vec![(5, 1, 2), (6, 0, 1)]);
    }
}
