//! Paces the wake-up signals a writer sends to other nodes. Every committed batch of
//! submits used to send `wake:<queue>` to every node, and PostgreSQL wakes each listening
//! backend for each `NOTIFY`: with three nodes, 4 200 submit batches per 20 000 jobs cost
//! 12 600 listener wake-ups; pacing them gave three nodes 4.6 % more jobs/s
//! (docs/benchmarks.md, sixteenth session). A
//! wake-up tells another node "look at this queue"; one that says it again a millisecond
//! later tells it nothing new unless it has already looked. So a writer sends a queue's
//! wake-up at most once per `interval`: a batch within the interval owes it, and the owed
//! wake-up goes with the first batch after the interval, or by itself `interval` after the
//! first batch that owed it ([`WakePacer::due`]). An idle worker on another node so hears
//! of a new job at most `interval` late; this node's own queues are woken after every batch,
//! as before (only the signals to other nodes are paced). Kills and ends are never paced:
//! each names its own jobs.

use super::effects::Effects;
use crate::db::signals::Signal;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One writer's wake-up state, by queue.
#[derive(Debug, Default)]
pub(super) struct WakePacer {
    /// Least time between two wake-ups of one queue; zero sends one with every batch.
    interval: Duration,
    /// By queue: when its last wake-up was sent, and since when a later one is owed.
    queues: BTreeMap<String, Paced>,
}

#[derive(Debug, Clone, Copy)]
struct Paced {
    /// When the last wake-up of the queue was committed.
    sent: Instant,
    /// When the first batch since then committed that queued jobs in it and did not say so.
    owed_since: Option<Instant>,
}

impl WakePacer {
    /// Wake-ups at most once per `interval` and queue.
    pub(super) fn new(interval: Duration) -> WakePacer {
        WakePacer {
            interval,
            queues: BTreeMap::new(),
        }
    }

    /// What a batch with `effects`, committed at `now`, sends to other nodes: its kills and
    /// ends; a wake-up for each queue it queued jobs in or that is owed one, unless the
    /// queue's last wake-up is younger than the interval. Changes nothing: the batch may
    /// still fail ([`WakePacer::committed`] records what went).
    pub(super) fn signals(&self, effects: &Effects, now: Instant) -> Vec<Signal> {
        let mut signals = effects.signals();
        signals.retain(|s| match s {
            Signal::Wake(queue) => self.may_send(queue, now),
            _ => true,
        });
        for (queue, paced) in &self.queues {
            let owed = paced.owed_since.is_some();
            if owed && !effects.queued.contains(queue) && self.may_send(queue, now) {
                signals.push(Signal::Wake(queue.clone()));
            }
        }
        signals
    }

    /// The batch with `effects` committed at `now` with [`WakePacer::signals`]`(effects,
    /// now)`: its wake-ups were sent, the ones it held back are owed.
    pub(super) fn committed(&mut self, effects: &Effects, now: Instant) {
        let sent = Paced {
            sent: now,
            owed_since: None,
        };
        for queue in &effects.queued {
            if self.may_send(queue, now) {
                self.queues.insert(queue.clone(), sent);
            } else if let Some(paced) = self.queues.get_mut(queue) {
                paced.owed_since = paced.owed_since.or(Some(now));
            }
        }
        let interval = self.interval;
        for paced in self.queues.values_mut() {
            if paced.owed_since.is_some() && now.duration_since(paced.sent) >= interval {
                *paced = sent;
            }
        }
    }

    /// When the earliest owed wake-up must go, if one is owed: `interval` after the first
    /// batch that owed it, so that any batch before then may carry it (under a steady
    /// trickle of submits one does, and no statement of its own is needed); the writer
    /// sends it by itself then.
    pub(super) fn due(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter_map(|p| p.owed_since)
            .map(|since| since + self.interval)
            .min()
    }

    /// Forgets the owed wake-ups (their signal could not be sent: other nodes find the
    /// jobs by their poll, as after any lost signal).
    pub(super) fn forget_owed(&mut self) {
        for paced in self.queues.values_mut() {
            paced.owed_since = None;
        }
    }

    fn may_send(&self, queue: &str, now: Instant) -> bool {
        self.queues
            .get(queue)
            .is_none_or(|p| now.duration_since(p.sent) >= self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(queues: &[&str]) -> Effects {
        let mut effects = Effects::default();
        for q in queues {
            effects.job_queued(q);
        }
        effects
    }

    fn wakes(signals: &[Signal]) -> Vec<String> {
        signals.iter().map(Signal::encode).collect()
    }

    /// Runs a batch through the pacer as the writer does; answers what it sent.
    fn batch(pacer: &mut WakePacer, effects: &Effects, now: Instant) -> Vec<String> {
        let sent = pacer.signals(effects, now);
        pacer.committed(effects, now);
        wakes(&sent)
    }

    #[test]
    fn a_queue_is_woken_at_most_once_per_interval_and_the_held_back_wake_up_is_owed() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut pacer = WakePacer::new(ms(5));
        let snapshots = queued(&["snapshots"]);
        assert_eq!(batch(&mut pacer, &snapshots, t0), ["wake:snapshots"]);
        assert_eq!(pacer.due(), None);
        assert!(batch(&mut pacer, &snapshots, t0 + ms(1)).is_empty());
        assert!(batch(&mut pacer, &snapshots, t0 + ms(4)).is_empty());
        assert_eq!(
            pacer.due(),
            Some(t0 + ms(6)),
            "due an interval after the first batch that owed it"
        );
        // Another queue is paced on its own.
        assert_eq!(
            batch(&mut pacer, &queued(&["images"]), t0 + ms(4)),
            ["wake:images"]
        );
        // A batch after the interval, before the wake-up is due, carries it, though it
        // queued nothing itself.
        assert_eq!(
            batch(&mut pacer, &Effects::default(), t0 + ms(5)),
            ["wake:snapshots"]
        );
        assert_eq!(pacer.due(), None);
        // The interval starts again from that wake-up.
        assert!(batch(&mut pacer, &snapshots, t0 + ms(7)).is_empty());
        assert_eq!(pacer.due(), Some(t0 + ms(12)));
        assert_eq!(
            batch(&mut pacer, &snapshots, t0 + ms(10)),
            ["wake:snapshots"]
        );
        assert_eq!(pacer.due(), None);
    }

    #[test]
    fn a_failed_batch_owes_nothing_and_kills_and_ends_are_never_held_back() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut pacer = WakePacer::new(ms(5));
        batch(&mut pacer, &queued(&["snapshots"]), t0);
        // Signals asked for, then the batch failed: no `committed`, nothing owed.
        let mut effects = queued(&["snapshots"]);
        effects.job_killed("a");
        effects.job_ended("a");
        assert_eq!(
            wakes(&pacer.signals(&effects, t0 + ms(1))),
            ["kill:a", "ended:a"]
        );
        assert_eq!(pacer.due(), None);
        // Committed, it owes the wake-up; forgetting it drops it.
        pacer.committed(&effects, t0 + ms(1));
        assert!(pacer.due().is_some());
        pacer.forget_owed();
        assert_eq!(pacer.due(), None);
        assert!(batch(&mut pacer, &Effects::default(), t0 + ms(9)).is_empty());
    }

    #[test]
    fn with_no_interval_every_batch_wakes() {
        let t0 = Instant::now();
        let mut pacer = WakePacer::new(Duration::ZERO);
        let snapshots = queued(&["snapshots"]);
        for _ in 0..3 {
            assert_eq!(batch(&mut pacer, &snapshots, t0), ["wake:snapshots"]);
            assert_eq!(pacer.due(), None);
        }
    }
}
