//! What a queue's own claims and wake-ups tell about jobs waiting for a worker on this
//! node, so that its scaling rule (`super::rule`) needs no database query while they tell
//! enough. Jobs are *seen waiting* when a wake-up for committed jobs finds every worker
//! busy, and when a worker's end-of-job claim finds a next job (it was pending while every
//! worker was busy). A claim that comes back with fewer jobs than it asked for shows that
//! nothing claimable is left. The claims cannot tell in two cases, and then the queue reads
//! the backlog ([`Shortage::needs_read`], [`Shortage::read`]): a claim has filled every
//! idle worker and no job has been seen waiting since; or the last growth found fewer jobs
//! than it added workers, so what was seen may be jobs held back by their e-shop's
//! `max_running_per_eshop` (more workers would not start them, and growing again on such
//! sightings would make the pool swing between its cap-bound size and its maximum).

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
    /// The pool grew and the claim for its new workers has not answered yet.
    judging: bool,
    /// The last claim took fresh jobs (not a growth's) and filled every idle worker, with
    /// nothing seen waiting since: a wake-up now may announce one of those jobs.
    echo: bool,
    /// The last growth found fewer jobs than new workers: sightings alone no longer grow
    /// the pool, a read must confirm them (until a read finds claimable jobs).
    doubted: bool,
}

impl Shortage {
    /// A job found no idle worker at `now`.
    pub fn waited(&mut self, now: Instant) {
        self.since.get_or_insert(now);
        self.seen += 1;
        self.unsure = false;
        self.echo = false;
    }

    /// A wake-up for committed jobs found every worker busy at `now`. Right after a claim
    /// that filled every idle worker it may announce a job that claim already took (on
    /// PostgreSQL a node also hears its own `NOTIFY`): then it proves nothing, and the read
    /// that is due anyway tells.
    pub fn woken(&mut self, now: Instant) {
        if !self.echo {
            self.waited(now);
        }
    }

    /// A claim asked for `asked` jobs and got `got`.
    pub fn claimed(&mut self, got: usize, asked: usize) {
        let judged = std::mem::take(&mut self.judging);
        if got < asked {
            self.doubted |= judged;
            self.none_left();
        } else if self.seen == 0 {
            self.unsure = true;
            self.echo = !judged;
        }
    }

    /// A worker's end-of-job claim found no job: nothing claimable is left.
    pub fn none_left(&mut self) {
        self.since = None;
        self.seen = 0;
        self.unsure = false;
        self.echo = false;
    }

    /// The pool grew by `n` workers for the jobs seen waiting; whether more wait than it
    /// grew by, the next claims (or a read) tell.
    pub fn grew(&mut self, n: usize) {
        self.seen = self.seen.saturating_sub(n);
        if self.seen == 0 {
            self.none_left();
            self.unsure = true;
        }
        self.judging = true;
    }

    /// Whether only a backlog read can tell if jobs wait.
    pub fn needs_read(&self) -> bool {
        if self.doubted {
            self.seen > 0
        } else {
            self.unsure && self.seen == 0
        }
    }

    /// A backlog read at `now`: `jobs` claimable, the oldest waiting for `oldest`. What
    /// was seen while the read ran is kept, unless sightings were in doubt: then the read
    /// alone counts.
    pub fn read(&mut self, jobs: usize, oldest: Duration, now: Instant) {
        self.unsure = false;
        self.echo = false;
        if std::mem::take(&mut self.doubted) {
            self.none_left();
            if jobs == 0 {
                self.doubted = true;
                return;
            }
        }
        if jobs > 0 {
            let since = now.checked_sub(oldest).unwrap_or(now);
            self.since = Some(self.since.map_or(since, |s| s.min(since)));
            self.seen = self.seen.max(jobs);
        }
    }

    /// The jobs seen waiting and for how long, for the rule (none while in doubt).
    pub fn waiting(&self, now: Instant) -> Option<Waiting> {
        self.since.filter(|_| !self.doubted).map(|since| Waiting {
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
        assert!(!s.needs_read());
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
        assert!(!s.needs_read());
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
        s.claimed(6, 6);
        assert_eq!(s.waiting(t0 + ms(100)), None);
        assert!(s.needs_read());
        s.waited(t0 + ms(150));
        assert!(!s.needs_read());
        assert_eq!(s.waiting(t0 + ms(160)).unwrap().oldest, ms(10));
        // A claim that fills the pool while nothing was seen waiting: only a read tells.
        let mut s = Shortage::default();
        s.claimed(1, 1);
        assert!(s.needs_read());
        s.read(7, ms(40), t0 + ms(100));
        assert!(!s.needs_read());
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

    #[test]
    fn a_wake_up_right_after_a_claim_that_filled_the_pool_is_left_to_the_read() {
        let t0 = Instant::now();
        let mut s = Shortage::default();
        s.claimed(1, 1);
        s.woken(t0);
        assert_eq!(s.waiting(t0 + ms(100)), None);
        assert!(s.needs_read());
        s.read(0, Duration::ZERO, t0 + ms(100));
        s.woken(t0 + ms(200));
        assert_eq!(s.waiting(t0 + ms(250)).unwrap().jobs, 1);
        // A growth's claim takes jobs that waited long ago: wake-ups after it count.
        s.grew(1);
        s.claimed(1, 1);
        assert!(s.needs_read());
        s.woken(t0 + ms(300));
        assert_eq!(s.waiting(t0 + ms(300)).unwrap().jobs, 1);
    }

    #[test]
    fn a_growth_that_found_too_few_jobs_puts_sightings_in_doubt_until_a_read_confirms() {
        let t0 = Instant::now();
        let mut s = Shortage::default();
        for _ in 0..20 {
            s.waited(t0);
        }
        // 16 new workers, but their claim finds 4 jobs (the rest wait on their e-shop's
        // cap): later sightings may be such jobs too.
        s.grew(16);
        s.claimed(4, 16);
        assert_eq!(s.waiting(t0 + ms(100)), None);
        assert!(!s.needs_read());
        s.waited(t0 + ms(200));
        assert_eq!(s.waiting(t0 + ms(300)), None);
        assert!(s.needs_read());
        // The read finds nothing claimable: still in doubt, nothing to grow for.
        s.read(0, Duration::ZERO, t0 + ms(300));
        assert_eq!(s.waiting(t0 + ms(400)), None);
        assert!(!s.needs_read());
        s.waited(t0 + ms(400));
        assert!(s.needs_read());
        // A read that finds claimable jobs counts alone and ends the doubt.
        s.read(3, ms(80), t0 + ms(500));
        assert_eq!(
            s.waiting(t0 + ms(500)),
            Some(Waiting {
                jobs: 3,
                oldest: ms(80)
            })
        );
        s.waited(t0 + ms(510));
        assert!(!s.needs_read());
        // A growth whose claim fills every new worker keeps trusting sightings.
        s.grew(3);
        s.claimed(3, 3);
        s.waited(t0 + ms(600));
        assert!(s.waiting(t0 + ms(700)).is_some());
    }
}
