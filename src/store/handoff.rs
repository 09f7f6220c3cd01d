//! Notifications handed to this node's webhook dispatcher at birth. A job that ends here
//! writes its `job:finished` notification already claimed by this node, when the
//! dispatcher has room for it, and the writer gives it to the dispatcher once the batch
//! commits ([`super::events::Handed`]): no claim of the row afterwards (an update and a
//! round trip per round on PostgreSQL, a statement of the one writer on SQLite).
//!
//! The dispatcher offers its room (how many more notifications it will take) whenever it
//! changes, and offers none while a claim of its own is under way; each run of job ends
//! takes what it needs of the offer. A run taken from an offer just before the dispatcher
//! started a claim may arrive beside that claim's notifications: the dispatcher then holds
//! at most one run of ends more than its room, whose claims last as long as any of its
//! others. A run whose batch fails takes room it does not use, until the next offer.
//!
//! A handed notification that never reaches a delivery (the dispatcher panicked, or the
//! node stopped or died first) keeps its claim until it runs out, then any node's poll
//! delivers it, as one the dispatcher had claimed itself.

use crate::db::notifications::BornClaim;
use crate::model::{time, Micros};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The dispatcher's standing offer, shared by it and the job ends of this node's workers.
#[derive(Clone)]
pub struct Handoff(Arc<Offer>);

struct Offer {
    /// How many more notifications the dispatcher takes now.
    room: AtomicUsize,
    /// This node: the owner of the claims.
    node: String,
    /// How long a claim lasts (the dispatcher's own claims last as long).
    claim: Micros,
}

impl Handoff {
    /// An offer of no room yet, for claims of `node` lasting `claim`.
    pub fn new(node: String, claim: Duration) -> Handoff {
        Handoff(Arc::new(Offer {
            room: AtomicUsize::new(0),
            node,
            claim: time::micros(claim),
        }))
    }

    /// The dispatcher: it takes `room` more notifications from now on.
    pub fn offer(&self, room: usize) {
        self.0.room.store(room, Ordering::Release);
    }

    /// Takes up to `wanted` of the room; answers how many were taken.
    pub(crate) fn take(&self, wanted: usize) -> usize {
        let mut taken = 0;
        let _ = self
            .0
            .room
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |room| {
                taken = room.min(wanted);
                Some(room - taken)
            });
        taken
    }

    /// The claim a notification written at `now` is born with.
    pub(crate) fn claim(&self, now: Micros) -> BornClaim<'_> {
        BornClaim {
            node: &self.0.node,
            until: now + self.0.claim,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::database::test_server;
    use crate::db::deliveries::{self, ClaimedDelivery};
    use crate::db::jobs::{self, pending_for_tests, Outcome};
    use crate::db::notifications::JOB_FINISHED;
    use crate::db::signals::Signal;
    use crate::db::webhooks::{self, Webhook};
    use crate::db::{eshops, migrated_for_tests, signature_keys};
    use crate::model::Zone;
    use crate::store::{Effects, FinishJob, Finished, QueueStep, StepDone, WriteOp};

    /// A run of three job ends with room for two, on a real database: two notifications are
    /// born claimed by this node, each with the e-shop's webhook and keys; the third is
    /// written unclaimed, and only it is left for a claim; the effects hand the two over
    /// and ask the dispatcher to claim.
    fn ends_hand_notifications_as_far_as_the_room_goes(server: Option<&str>) {
        let (_db, conn) = &mut migrated_for_tests(server);
        eshops::create(conn, 1, "shop").unwrap();
        let now = time::now();
        let hook = Webhook {
            id: "wh_1".into(),
            eshop_id: 1,
            event: JOB_FINISHED.into(),
            url: "http://example.test/hook".into(),
            active: true,
            created_at: now,
            updated_at: now,
        };
        webhooks::insert(conn, &hook).unwrap();
        let secrets = signature_keys::valid(conn, 1, now).unwrap();
        let jobs: Vec<_> = (0..3).map(|_| pending_for_tests("snapshots")).collect();
        for job in &jobs {
            jobs::insert(conn, job, None, time::SECOND).unwrap();
        }
        let lease = now + 30 * time::SECOND;
        let claimed = jobs::claim(conn, "snapshots", "n", 3, 9, lease, now).unwrap();
        assert_eq!(claimed.len(), 3);
        let handoff = Handoff::new("n".into(), Duration::from_secs(90));
        handoff.offer(2);
        let ops: Vec<QueueStep> = jobs
            .iter()
            .map(|job| {
                QueueStep::End(FinishJob {
                    id: job.id.clone(),
                    eshop_id: 1,
                    attempt: 1,
                    outcome: Outcome::Failed,
                    log: String::new(),
                    zone: Zone::utc(),
                    result_ttl: time::SECOND,
                    claim_next: None,
                    handoff: Some(handoff.clone()),
                })
            })
            .collect();
        let run: Vec<&QueueStep> = ops.iter().collect();
        let done = QueueStep::apply_all(&run, conn).unwrap();
        let finished: Vec<&Finished> = done
            .iter()
            .map(|d| match d {
                StepDone::Ended(f) => &**f,
                StepDone::Claimed(_) => unreachable!("ends only"),
            })
            .collect();
        assert!(finished.iter().all(|f| f.recorded));
        let handed: Vec<&ClaimedDelivery> =
            finished.iter().filter_map(|f| f.handed.as_ref()).collect();
        assert_eq!(handed.len(), 2, "{finished:?}");
        for (d, job) in handed.iter().zip(&jobs) {
            assert_eq!((d.attempt, d.redelivery), (1, false));
            assert_eq!(d.event, JOB_FINISHED);
            assert!(d.payload.contains(&job.id), "{}", d.payload);
            let target = d.target.as_ref().expect("the e-shop's webhook");
            assert_eq!(target.webhook_id, "wh_1");
            assert_eq!(target.url, hook.url);
            assert_eq!(target.secrets, secrets);
        }
        assert_eq!(handoff.take(1), 0, "the room is used");
        let claimed =
            deliveries::claim(conn, "other", 10, now + time::SECOND, time::now()).unwrap();
        assert_eq!(claimed.len(), 1, "the handed ones stay claimed");
        assert!(handed.iter().all(|d| d.id != claimed[0].id));

        let mut effects = Effects::default();
        for (op, d) in ops.iter().zip(&done) {
            op.effects(d, &mut effects);
        }
        assert_eq!(effects.handed.len(), 2);
        assert!(effects.notifications_due, "the third waits for a claim");
        assert!(
            matches!(effects.signals().as_slice(), [Signal::Ended(ids)] if ids.len() == 3),
            "each end is announced, in one payload"
        );
    }

    #[test]
    fn sqlite_ends_hand_notifications_as_far_as_the_room_goes() {
        ends_hand_notifications_as_far_as_the_room_goes(None);
    }

    #[test]
    fn postgres_ends_hand_notifications_as_far_as_the_room_goes() {
        ends_hand_notifications_as_far_as_the_room_goes(Some(&test_server()));
    }

    #[test]
    fn takes_what_is_offered_and_no_more() {
        let h = Handoff::new("n".into(), Duration::from_secs(90));
        assert_eq!(h.take(3), 0, "nothing offered yet");
        h.offer(5);
        assert_eq!(h.take(3), 3);
        assert_eq!(h.take(3), 2);
        assert_eq!(h.take(3), 0);
        h.offer(1);
        assert_eq!(h.clone().take(1), 1, "clones share the offer");
        let claim = h.claim(10);
        assert_eq!((claim.node, claim.until), ("n", 10 + 90 * time::SECOND));
    }
}
