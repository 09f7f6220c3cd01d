//! The statuses of a job and the only transitions allowed between them.

use std::fmt;
use std::str::FromStr;

/// Where a job is in its life. Stored as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Accepted and committed, waiting for a worker.
    Pending,
    /// Claimed by a worker holding a lease.
    Running,
    /// Finished with a result downloadable until `validUntil`.
    Completed,
    /// Finished without a result; the log says why.
    Failed,
    /// Completed, but `validUntil` has passed and the result is gone.
    Expired,
    /// Cancelled, past `max_run_time`, or out of attempts.
    Killed,
}

impl JobStatus {
    /// Every status, in the order of a job's life.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Expired,
        JobStatus::Killed,
    ];

    /// The stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Expired => "expired",
            JobStatus::Killed => "killed",
        }
    }

    /// A job in this status will not run again (a `job:finished` has been recorded).
    pub fn is_finished(self) -> bool {
        !matches!(self, JobStatus::Pending | JobStatus::Running)
    }

    /// The transitions of the job life cycle. Every status change in the store is checked
    /// against this, and the SQL of each change requires the `from` status, so that a race
    /// between nodes can never skip a step. (The batched claim, pending → running, is one
    /// SQL statement that names both.)
    pub fn can_become(self, to: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, to),
            (Pending, Running)
                | (Pending, Killed)
                | (Running, Completed)
                | (Running, Failed)
                | (Running, Killed)
                | (Running, Pending)
                | (Completed, Expired)
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::JobStatus::*;
    use super::*;

    #[test]
    fn names_round_trip() {
        for st in JobStatus::ALL {
            assert_eq!(st.as_str().parse::<JobStatus>(), Ok(st));
        }
        assert!("done".parse::<JobStatus>().is_err());
    }

    #[test]
    fn finished_jobs_never_move_except_completed_to_expired() {
        for from in [Failed, Expired, Killed] {
            for to in JobStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
        assert!(Completed.can_become(Expired));
        assert!(!Completed.can_become(Killed));
        assert!(!Pending.can_become(Completed));
    }
}
