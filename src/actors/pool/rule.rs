//! The scaling rule of a queue's worker pool, as a pure function of what the queue sees
//! every [`SCALE_INTERVAL`], and at once when a job seen waiting makes growth due: its
//! pool (size, idle workers, those idle for too long) and,
//! when every worker is busy, the jobs waiting for a worker (as its claims and wake-ups
//! showed them, see `super::shortage`, or as a backlog read found them).
//!
//! - **Grow** when every worker is busy, jobs are waiting for a worker (committed while
//!   every worker was busy, or claimed by a worker only at the end of its last job), the
//!   first of them has waited at least `scale_up_after`, and the pool is below
//!   `max_workers`: by at most `scale_up_step` workers, and never by more than the jobs
//!   seen waiting.
//! - **Shrink** when workers have been idle for `idle_timeout`: at most `scale_down_step`
//!   of them per interval, never below `min_workers`. Only idle workers leave, so a shrink
//!   never touches a running job.
//! - Growth needs a busy pool and shrinking an idle one, and the two are `idle_timeout`
//!   apart: under a steady load the pool settles at what the load keeps busy (the queue
//!   hands jobs to the most recently idle worker, so the surplus stays idle and leaves).

use std::time::Duration;

/// How often a queue applies the rule, and the least time between two growth steps.
pub const SCALE_INTERVAL: Duration = Duration::from_millis(100);

/// One queue's bounds and how fast its pool moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleRule {
    /// Workers kept while the queue is idle.
    pub min_workers: usize,
    /// Most workers.
    pub max_workers: usize,
    /// How long the oldest claimable job must have waited before the pool grows.
    pub scale_up_after: Duration,
    /// Most workers added per interval.
    pub scale_up_step: usize,
    /// Most idle workers that leave per interval.
    pub scale_down_step: usize,
    /// How long a worker stays idle before it may leave.
    pub idle_timeout: Duration,
}

/// Jobs waiting for a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// Jobs seen waiting that no growth has answered yet (or, read from the backlog,
    /// pending jobs a worker could claim now: their e-shop is under its cap).
    pub jobs: usize,
    /// How long the first of them has waited.
    pub oldest: Duration,
}

/// The pool as the queue sees it at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Workers in the pool.
    pub size: usize,
    /// Workers without a job.
    pub idle: usize,
    /// Idle workers that have been idle for at least `idle_timeout`.
    pub idle_expired: usize,
    /// Jobs seen waiting for a worker, if any (used only when [`ScaleRule::may_grow`]).
    pub waiting: Option<Waiting>,
}

/// What to do with the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Start this many workers.
    Grow(usize),
    /// Stop this many idle workers (the longest idle first).
    Shrink(usize),
    /// Leave the pool as it is.
    Hold,
}

impl ScaleRule {
    /// A pool that never changes size (`workers` set, or equal bounds).
    pub fn is_pinned(&self) -> bool {
        self.min_workers == self.max_workers
    }

    /// Whether the pool may grow at all: only a busy pool with room, so an idle or full
    /// pool never needs to know what waits.
    pub fn may_grow(&self, size: usize, idle: usize) -> bool {
        idle == 0 && size < self.max_workers
    }

    /// The change for one step.
    pub fn decide(&self, o: &Observation) -> Change {
        if o.size < self.min_workers {
            return Change::Grow(self.min_workers - o.size);
        }
        if o.size > self.max_workers {
            return Change::Shrink(o.size - self.max_workers);
        }
        if let Some(w) = o.waiting.filter(|_| self.may_grow(o.size, o.idle)) {
            if w.jobs > 0 && w.oldest >= self.scale_up_after {
                let room = self.max_workers - o.size;
                return Change::Grow(w.jobs.min(self.scale_up_step).min(room));
            }
        }
        let leaving = o
            .idle_expired
            .min(o.idle)
            .min(o.size - self.min_workers)
            .min(self.scale_down_step);
        if leaving > 0 {
            Change::Shrink(leaving)
        } else {
            Change::Hold
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: ScaleRule = ScaleRule {
        min_workers: 1,
        max_workers: 16,
        scale_up_after: Duration::from_millis(100),
        scale_up_step: 4,
        scale_down_step: 1,
        idle_timeout: Duration::from_secs(10),
    };

    fn busy(size: usize, jobs: usize, oldest_ms: u64) -> Observation {
        Observation {
            size,
            idle: 0,
            idle_expired: 0,
            waiting: Some(Waiting {
                jobs,
                oldest: Duration::from_millis(oldest_ms),
            }),
        }
    }

    #[test]
    fn a_burst_grows_the_pool_step_by_step_up_to_max() {
        let mut size = 1;
        let mut steps = 0;
        while let Change::Grow(n) = RULE.decide(&busy(size, 1000, 500)) {
            size += n;
            steps += 1;
        }
        assert_eq!(size, 16);
        // 1 → 5 → 9 → 13 → 16: four intervals, well within a second.
        assert_eq!(steps, 4);
    }

    /// The defaults on 2 CPUs: the whole room in one step, after 50 ms.
    const DEFAULTS: ScaleRule = ScaleRule {
        min_workers: 1,
        max_workers: 32,
        scale_up_after: Duration::from_millis(50),
        scale_up_step: 32,
        scale_down_step: 1,
        idle_timeout: Duration::from_secs(10),
    };

    #[test]
    fn with_the_defaults_a_burst_gets_the_whole_pool_a_trickle_what_it_showed() {
        assert_eq!(DEFAULTS.decide(&busy(1, 250, 50)), Change::Grow(31));
        assert_eq!(DEFAULTS.decide(&busy(1, 250, 49)), Change::Hold);
        assert_eq!(DEFAULTS.decide(&busy(3, 2, 80)), Change::Grow(2));
        let sizes = simulate(&DEFAULTS, |t| if t < 600 { 6 } else { 0 }, 900);
        assert_eq!(sizes[1], 6, "{:?}", &sizes[..10]);
        assert!(sizes[1..=600].iter().all(|s| *s == 6), "{sizes:?}");
        assert_eq!(sizes[900], 1);
        let sizes = simulate(&DEFAULTS, |t| if (t / 10) % 2 == 0 { 4 } else { 7 }, 600);
        assert!(sizes[20..].iter().all(|s| *s == 7), "{sizes:?}");
    }

    #[test]
    fn growth_never_exceeds_the_waiting_jobs_nor_max() {
        assert_eq!(RULE.decide(&busy(3, 2, 500)), Change::Grow(2));
        assert_eq!(RULE.decide(&busy(15, 50, 500)), Change::Grow(1));
        assert_eq!(RULE.decide(&busy(16, 50, 500)), Change::Hold);
    }

    #[test]
    fn no_growth_while_jobs_are_fresh_absent_or_workers_idle() {
        // Picked up within the wake-up's milliseconds: no sign of a shortage.
        assert_eq!(RULE.decide(&busy(4, 10, 20)), Change::Hold);
        assert_eq!(RULE.decide(&busy(4, 0, 0)), Change::Hold);
        // An idle worker would take a claimable job: more workers would only wait.
        let idle = Observation {
            idle: 1,
            ..busy(4, 10, 5000)
        };
        assert_eq!(RULE.decide(&idle), Change::Hold);
        // Not read: nothing to act on.
        let unread = Observation {
            waiting: None,
            ..busy(4, 10, 5000)
        };
        assert_eq!(RULE.decide(&unread), Change::Hold);
        assert!(!RULE.may_grow(4, 1));
        assert!(!RULE.may_grow(16, 0));
        assert!(RULE.may_grow(4, 0));
    }

    #[test]
    fn idle_workers_leave_after_the_timeout_down_to_min() {
        let idle = |size, idle, idle_expired| Observation {
            size,
            idle,
            idle_expired,
            waiting: None,
        };
        assert_eq!(RULE.decide(&idle(8, 8, 0)), Change::Hold);
        assert_eq!(RULE.decide(&idle(8, 8, 8)), Change::Shrink(1));
        assert_eq!(RULE.decide(&idle(1, 1, 1)), Change::Hold);
        let fast = ScaleRule {
            scale_down_step: 5,
            ..RULE
        };
        assert_eq!(fast.decide(&idle(8, 3, 3)), Change::Shrink(3));
        assert_eq!(fast.decide(&idle(4, 4, 4)), Change::Shrink(3));
    }

    /// Pool sizes, interval by interval, under a load that needs `demand(t)` workers:
    /// busy workers are the most recently idle (as the queue hands jobs out), jobs
    /// beyond the pool wait and age, idle workers count their idle time.
    fn simulate(rule: &ScaleRule, demand: impl Fn(u32) -> usize, intervals: u32) -> Vec<usize> {
        let tick = SCALE_INTERVAL;
        let mut idle_for: Vec<Duration> = vec![Duration::ZERO; rule.min_workers];
        let mut waited = Duration::ZERO;
        let mut sizes = vec![idle_for.len()];
        for t in 0..intervals {
            let size = idle_for.len();
            let busy = demand(t).min(size);
            // The first `busy` workers (most recently idle) run jobs; the rest idle on.
            for (i, d) in idle_for.iter_mut().enumerate() {
                *d = if i < busy { Duration::ZERO } else { *d + tick };
            }
            let short = demand(t).saturating_sub(size);
            waited = if short > 0 {
                waited + tick
            } else {
                Duration::ZERO
            };
            let o = Observation {
                size,
                idle: size - busy,
                idle_expired: idle_for.iter().filter(|d| **d >= rule.idle_timeout).count(),
                waiting: Some(Waiting {
                    jobs: short,
                    oldest: waited,
                }),
            };
            match rule.decide(&o) {
                Change::Grow(n) => idle_for.extend(std::iter::repeat_n(Duration::ZERO, n)),
                Change::Shrink(n) => {
                    // The longest idle leave: they sit at the end here.
                    idle_for.sort();
                    idle_for.truncate(size - n);
                }
                Change::Hold => {}
            }
            sizes.push(idle_for.len());
        }
        sizes
    }

    #[test]
    fn a_steady_load_settles_without_oscillating() {
        // A burst that needs 6 workers for 60 s, then nothing: the pool grows to 6 within
        // a second, holds 6 while the load lasts, then shrinks to min after the idle time.
        let sizes = simulate(&RULE, |t| if t < 600 { 6 } else { 0 }, 900);
        assert_eq!(sizes[10], 6, "{:?}", &sizes[..10]);
        assert!(sizes[10..=600].iter().all(|s| *s == 6), "{sizes:?}");
        let changes = sizes.windows(2).filter(|w| w[0] != w[1]).count();
        // Up in two steps (1 → 5 → 6), down one worker per interval (6 → 1).
        assert_eq!(changes, 2 + 5, "{sizes:?}");
        assert_eq!(sizes[900], 1);
        // A load that alternates between 4 and 7 busy workers every second: the pool
        // grows to 7 once and stays (the dips are shorter than idle_timeout).
        let sizes = simulate(&RULE, |t| if (t / 10) % 2 == 0 { 4 } else { 7 }, 600);
        assert!(sizes[20..].iter().all(|s| *s == 7), "{sizes:?}");
    }

    #[test]
    fn a_pool_below_min_fills_up_at_once_and_a_pinned_pool_never_moves() {
        let o = Observation {
            size: 0,
            idle: 0,
            idle_expired: 0,
            waiting: None,
        };
        assert_eq!(RULE.decide(&o), Change::Grow(1));
        let pinned = ScaleRule {
            min_workers: 3,
            max_workers: 3,
            ..RULE
        };
        assert!(pinned.is_pinned());
        assert_eq!(pinned.decide(&busy(3, 100, 9000)), Change::Hold);
        let all_idle = Observation {
            size: 3,
            idle: 3,
            idle_expired: 3,
            waiting: None,
        };
        assert_eq!(pinned.decide(&all_idle), Change::Hold);
    }
}
