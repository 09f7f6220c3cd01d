//! What a queue's own claims and wake-ups tell about jobs waiting for a worker on this
//! node, so that its scaling rule (`super::rule`) needs no database query while they tell
//! enough. Jobs are *seen waiting* when a wake-up for committed jobs finds every worker
//! busy, and when a worker's end-of-job claim finds a next job (it was pending while every
//! worker was busy). A claim that comes back with fewer jobs than it asked for shows that
//! nothing claimable is left. Only when a claim has filled every idle worker and no job has
//! been seen waiting since can the claims not tell: then the queue reads the backlog once
//! ([`Shortage::unsure`], [`Shortage::read`]).

use super::rule::Waiting;
use std::time::{Duration, Instant};

/// One queue's evidence of a worker shortage on this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shortage {
    /// Since when jobs have been seen waiting with no idle worker (`None`: none since a
    /// claim last came back short).
    since: Option<Instant>,
    /// Jobs seen waiting that no growth has answered yet: bounds the next growth, so a
    /// pool grows by what it has seen waiting, not by a whole step per waiting job.
    seen: usize,
    /// A claim filled every idle worker and no job has been seen waiting since: jobs may
    /// be left that nothing here shows.
    unsure: bool,
}

impl Shortage {
    /// A job found no idle worker at `now`.
    pub fn waited(&mut self, now: Instant) {
        self.since.get_or_insert(now);
        self.seen += 1;
        self.unsure = false;
    }

    /// A claim asked for `asked` jobs and got `got`.
    pub fn claimed(&mut self, got: usize, asked: usize) {
        if got < asked {
            *self = Shortage::default();
        } else if self.seen == 0 {
            self.unsure = true;
        }
    }

    /// A worker's end-of-job claim found no job: nothing claimable is left.
    pub fn none_left(&mut self) {
        *self = Shortage::default();
    }

    /// The pool grew by `n` workers for the jobs seen waiting; whether more wait than it
    /// grew by, the next claims (or a read) tell.
    pub fn grew(&mut self, n: usize) {
        self.seen = self.seen.saturating_sub(n);
        if self.seen == 0 {
            *self = Shortage {
                unsure: true,
                ..Shortage::default()
            };
        }
    }

    /// Whether only a backlog read can tell if jobs wait.
    pub fn unsure(&self) -> bool {
        self.unsure && self.seen == 0
    }

    /// A backlog read at `now`: `jobs` claimable, the oldest waiting for `oldest` (what
    /// was seen while the read ran is kept).
    pub fn read(&mut self, jobs: usize, oldest: Duration, now: Instant) {
        self.unsure = false;
        if jobs > 0 {
            let since = now.checked_sub(oldest).unwrap_or(now);
            self.since = Some(self.since.map_or(since, |s| s.min(since)));
            self.seen = self.seen.max(jobs);
        }
    }

    /// The jobs seen waiting and for how long, for the rule.
    pub fn waiting(&self, now: Instant) -> Option<Waiting> {
        self.since.map(|since| Waiting {
            jobs: self.seen,
            oldest: now.saturating_duration_since(since),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn jobs_seen_waiting_age_from_the_first_until_a_claim_comes_back_short() {
        let t0 = Instant::now();
        let mut s = Shortage::default();
        assert_eq!(s.waiting(t0), None);
        assert!(!s.unsure());
        s.waited(t0);
        s.waited(t0 + ms(30));
        // A full claim tells nothing new; the oldest sighting keeps its age.
        s.claimed(4, 4);
        assert_eq!(
            s.waiting(t0 + ms(120)),
            Some(Waiting {
                jobs: 2,
                oldest: ms(120)
            })
        );
        assert!(!s.unsure());
        s.claimed(1, 2);
        assert_eq!(s, Shortage::default());
        s.waited(t0 + ms(200));
        s.none_left();
        assert_eq!(s.waiting(t0 + ms(300)), None);
    }

    #[test]
    fn growth_answers_the_jobs_seen_and_a_full_claim_alone_is_unsure() {
        let t0 = Instant::now();
        let mut s = Shortage::default();
        for _ in 0..10 {
            s.waited(t0);
        }
        s.grew(4);
        assert_eq!(
            s.waiting(t0 + ms(100)),
            Some(Waiting {
                jobs: 6,
                oldest: ms(100)
            })
        );
        // Every job seen is answered: a new sighting starts a new wait.
        s.grew(6);
        assert_eq!(s.waiting(t0 + ms(100)), None);
        assert!(s.unsure());
        s.waited(t0 + ms(150));
        assert!(!s.unsure());
        assert_eq!(s.waiting(t0 + ms(160)).unwrap().oldest, ms(10));
        // A claim that fills the pool while nothing was seen waiting: only a read tells.
        let mut s = Shortage::default();
        s.claimed(1, 1);
        assert!(s.unsure());
        s.read(7, ms(40), t0 + ms(100));
        assert!(!s.unsure());
        assert_eq!(
            s.waiting(t0 + ms(160)),
            Some(Waiting {
                jobs: 7,
                oldest: ms(100)
            })
        );
        let mut s = Shortage::default();
        s.claimed(2, 2);
        s.read(0, Duration::ZERO, t0 + ms(200));
        assert_eq!(s, Shortage::default());
    }
}
