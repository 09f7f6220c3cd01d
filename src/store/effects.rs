//! What committed writes changed that others must react to: jobs queued, jobs killed, jobs
//! ended, notifications due or handed to this node's dispatcher at birth. Each write op reports its own ([`super::WriteOp::effects`]);
//! the writer collects those of the ops that committed and publishes them once per batch,
//! to other nodes in one `NOTIFY` inside the batch's transaction (PostgreSQL) and to this
//! node through the [`super::events::Events`] hub after the commit. Nobody else signals.

use crate::db::deliveries::ClaimedDelivery;
use crate::db::signals::Signal;

/// The effects of one batch (or of one poll of the PostgreSQL listener), each at most once.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Effects {
    /// Queues that got pending jobs (submitted, handed back, recovered): wake their workers.
    pub(super) queued: Vec<String>,
    /// Jobs killed: stop them wherever they run.
    pub(super) killed: Vec<String>,
    /// Jobs that ended with their `job:finished` notification committed: answer `?wait`,
    /// deliver the notification.
    pub(super) ended: Vec<String>,
    /// A notification that no one claimed may be due (a job ended with no room in the
    /// dispatcher, a kill, a redelivery, a webhook made active): this node's webhook
    /// dispatcher looks at once.
    pub(super) notifications_due: bool,
    /// Notifications claimed at birth for this node's dispatcher ([`super::Handoff`]).
    pub(super) handed: Vec<ClaimedDelivery>,
}

impl Effects {
    /// Jobs were queued (made `pending`) in `queue`.
    pub fn job_queued(&mut self, queue: &str) {
        // A handful of queues: a look beats a set.
        if !self.queued.iter().any(|q| q == queue) {
            self.queued.push(queue.to_string());
        }
    }

    /// Job `id` was killed (it ended too: report that with [`Effects::job_ended`]).
    pub fn job_killed(&mut self, id: &str) {
        self.killed.push(id.to_string());
    }

    /// Job `id` ended; its `job:finished` notification is due.
    pub fn job_ended(&mut self, id: &str) {
        self.ended.push(id.to_string());
    }

    /// A notification may be due (redelivered, or its webhook made active).
    pub fn notification_due(&mut self) {
        self.notifications_due = true;
    }

    /// A notification was written claimed for this node's dispatcher, which delivers it.
    pub fn handed(&mut self, delivery: ClaimedDelivery) {
        self.handed.push(delivery);
    }

    /// Adds what another node signalled (the listener's side of [`Effects::signals`]).
    pub fn add_signal(&mut self, signal: Signal) {
        match signal {
            Signal::Wake(queue) => self.job_queued(&queue),
            Signal::Kill(id) => self.killed.push(id),
            Signal::Ended(ids) => self.ended.extend(ids),
        }
    }

    /// Nothing to tell anyone.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
            && self.killed.is_empty()
            && self.ended.is_empty()
            && !self.notifications_due
            && self.handed.is_empty()
    }

    /// Drops repeated job ids (queues are kept once as they come).
    pub fn dedup(&mut self) {
        for ids in [&mut self.killed, &mut self.ended] {
            ids.sort_unstable();
            ids.dedup();
        }
    }

    /// What other nodes must hear, in the wire format: `wake:<queue>`, `kill:<id>`,
    /// `ended:<id>,<id>,…` (as few as fit). A due or handed notification is this node's own affair
    /// (should the node die, any node's dispatcher finds it by its poll).
    pub fn signals(&self) -> Vec<Signal> {
        let queued = self.queued.iter().cloned().map(Signal::Wake);
        let killed = self.killed.iter().cloned().map(Signal::Kill);
        let ended = Signal::ended(&self.ended);
        queued.chain(killed).chain(ended).collect()
    }
}

/// Where the writer publishes what a committed batch changed: this node's events hub, or a
/// test's recorder.
pub trait Publish: Send + Sync + 'static {
    /// Tells this node what a batch changed, once it is committed.
    fn publish(&self, effects: &Effects);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_effect_is_kept_once_and_signalled_in_the_wire_format() {
        let mut e = Effects::default();
        assert!(e.is_empty());
        e.job_queued("snapshots");
        e.job_queued("images");
        e.job_queued("snapshots");
        e.job_killed("b");
        e.job_ended("b");
        e.job_ended("a");
        e.add_signal(Signal::Ended(vec!["a".into()]));
        e.dedup();
        assert!(!e.is_empty());
        let wire: Vec<String> = e.signals().iter().map(Signal::encode).collect();
        assert_eq!(
            wire,
            ["wake:snapshots", "wake:images", "kill:b", "ended:a,b"]
        );
        let mut due = Effects::default();
        due.notification_due();
        assert!(!due.is_empty());
        assert!(due.signals().is_empty());
    }
}
