//! The dispatcher's delivery slots and the claimed notifications waiting for one, shared
//! between webhooks: a freed slot goes to the oldest waiting notification whose webhook has
//! fewer than half the slots under way ([`per_webhook`]), and only when none has, to the
//! oldest whose webhook would still leave a slot to the others ([`most_to_one`]). One busy
//! e-shop alone uses every slot but one; an e-shop whose endpoint hangs cannot hold them
//! all, and as its attempts end, the other e-shops' webhooks get their half.
//!
//! Waiting notifications are counted per webhook, so that a queue whose webhooks are all at
//! their limit answers at once instead of being scanned: with one busy e-shop at a cap of
//! half the slots, a scan of the 272 waiting (a hash look-up each) at every freed slot, and
//! the cap itself, put its webhooks 11–43 ms behind their jobs instead of 4
//! (docs/benchmarks.md, "Nineteenth session").

use crate::db::deliveries::ClaimedDelivery;
use std::collections::{HashMap, VecDeque};

/// A webhook's share of `slots`: half of them, at least one. Under its share it goes
/// before any webhook over it.
fn per_webhook(slots: usize) -> usize {
    (slots / 2).max(1)
}

/// The most deliveries to one webhook under way at once, of `slots`: all but one, so a
/// webhook whose endpoint hangs leaves a slot to the others (at least one).
fn most_to_one(slots: usize) -> usize {
    slots.saturating_sub(1).max(1)
}

/// The webhook a delivery goes to; `None` when it makes no request (no active webhook).
fn webhook(d: &ClaimedDelivery) -> Option<&str> {
    d.target.as_ref().map(|t| t.webhook_id.as_str())
}

/// Counts per webhook, dropping those that reach zero.
#[derive(Debug, Default)]
struct PerWebhook(HashMap<String, usize>);

impl PerWebhook {
    fn get(&self, webhook: &str) -> usize {
        self.0.get(webhook).copied().unwrap_or(0)
    }

    fn add(&mut self, webhook: &str) {
        *self.0.entry(webhook.to_string()).or_default() += 1;
    }

    fn remove(&mut self, webhook: &str) {
        if let Some(n) = self.0.get_mut(webhook) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(webhook);
            }
        }
    }
}

/// The slots, the deliveries under way and the notifications waiting for a slot.
#[derive(Debug)]
pub(super) struct Slots {
    /// `webhook_workers`.
    slots: usize,
    /// Deliveries under way: each holds a slot.
    delivering: usize,
    /// Of those, how many go to each webhook.
    under_way: PerWebhook,
    /// Claimed notifications waiting for a slot, oldest claim first.
    waiting: VecDeque<ClaimedDelivery>,
    /// Of those, how many go to each webhook ...
    waiting_to: PerWebhook,
    /// ... and how many to none.
    waiting_untargeted: usize,
}

impl Slots {
    /// `slots` free slots, nothing waiting.
    pub(super) fn new(slots: usize) -> Slots {
        Slots {
            slots: slots.max(1),
            delivering: 0,
            under_way: PerWebhook::default(),
            waiting: VecDeque::new(),
            waiting_to: PerWebhook::default(),
            waiting_untargeted: 0,
        }
    }

    /// Deliveries under way.
    pub(super) fn delivering(&self) -> usize {
        self.delivering
    }

    /// Notifications waiting for a slot.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Claimed notifications join the end of the queue.
    pub(super) fn wait(&mut self, deliveries: impl IntoIterator<Item = ClaimedDelivery>) {
        for d in deliveries {
            match webhook(&d) {
                Some(w) => self.waiting_to.add(w),
                None => self.waiting_untargeted += 1,
            }
            self.waiting.push_back(d);
        }
    }

    /// The notification to start next, taken from the queue, while a slot is free and one
    /// may start; the caller starts it ([`Slots::started`]) or lets it go.
    pub(super) fn take_next(&mut self) -> Option<ClaimedDelivery> {
        if self.delivering >= self.slots {
            return None;
        }
        let next = [per_webhook(self.slots), most_to_one(self.slots)]
            .into_iter()
            .find_map(|limit| self.oldest_under(limit))?;
        let d = self.waiting.remove(next).expect("a waiting notification");
        match webhook(&d) {
            Some(w) => self.waiting_to.remove(w),
            None => self.waiting_untargeted -= 1,
        }
        Some(d)
    }

    /// The oldest waiting notification whose webhook has fewer than `limit` under way;
    /// the queue is read only when one of its webhooks (or a notification without one)
    /// qualifies.
    fn oldest_under(&self, limit: usize) -> Option<usize> {
        let qualifies = |w: &str| self.under_way.get(w) < limit;
        if self.waiting_untargeted == 0 && !self.waiting_to.0.keys().any(|w| qualifies(w)) {
            return None;
        }
        self.waiting
            .iter()
            .position(|d| webhook(d).is_none_or(qualifies))
    }

    /// A taken notification's delivery started: it holds a slot.
    pub(super) fn started(&mut self, d: &ClaimedDelivery) {
        self.delivering += 1;
        if let Some(w) = webhook(d) {
            self.under_way.add(w);
        }
    }

    /// A delivery to `webhook` (`None`: no request) ended: its slot is free.
    pub(super) fn ended(&mut self, webhook: Option<&str>) {
        self.delivering -= 1;
        if let Some(w) = webhook {
            self.under_way.remove(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::deliveries::Target;

    fn to(webhook: Option<&str>) -> ClaimedDelivery {
        ClaimedDelivery {
            id: format!("msg_{}", webhook.unwrap_or("none")),
            event: "job:finished".into(),
            payload: "{}".into(),
            attempt: 1,
            redelivery: false,
            claim_until: 0,
            target: webhook.map(|w| Target {
                webhook_id: w.into(),
                url: format!("http://{w}.test/"),
                secrets: Vec::new(),
            }),
        }
    }

    /// Takes the next and starts it; answers its webhook.
    fn start_next(s: &mut Slots) -> Option<Option<String>> {
        let d = s.take_next()?;
        s.started(&d);
        Some(webhook(&d).map(str::to_string))
    }

    #[test]
    fn a_webhook_under_its_share_goes_first_and_one_alone_leaves_a_slot() {
        let mut s = Slots::new(4);
        s.wait(["a", "a", "a", "a", "b", "c"].map(|w| to(Some(w))));
        let some = |w: &str| Some(Some(w.to_string()));
        // `a` is oldest until it holds its share (2 of 4); then `b` and `c`, though younger.
        assert_eq!(start_next(&mut s), some("a"));
        assert_eq!(start_next(&mut s), some("a"));
        assert_eq!(start_next(&mut s), some("b"));
        assert_eq!(start_next(&mut s), some("c"));
        assert_eq!(start_next(&mut s), None, "every slot taken");
        // `b` and `c` end, with nothing of theirs waiting: `a` goes over its share, up to
        // all slots but one.
        s.ended(Some("b"));
        s.ended(Some("c"));
        assert_eq!(start_next(&mut s), some("a"));
        assert_eq!(start_next(&mut s), None, "one slot is left to the others");
        assert_eq!((s.delivering(), s.waiting()), (3, 1));
        // Another webhook's notification takes it; one without a target is never held back.
        s.wait([to(Some("d")), to(None)]);
        assert_eq!(start_next(&mut s), some("d"));
        assert_eq!(start_next(&mut s), None, "no slot free");
        s.ended(Some("a"));
        assert_eq!(start_next(&mut s), Some(None));
        assert_eq!(s.waiting(), 1);
        assert_eq!((per_webhook(16), most_to_one(16)), (8, 15));
        assert_eq!((per_webhook(1), most_to_one(1)), (1, 1));
    }

    #[test]
    fn a_freed_slot_goes_to_a_webhook_under_its_share_before_an_older_one_over_it() {
        let mut s = Slots::new(4);
        s.wait(["a", "a", "a", "a", "a"].map(|w| to(Some(w))));
        for _ in 0..3 {
            start_next(&mut s);
        }
        s.wait(["b", "b"].map(|w| to(Some(w))));
        assert_eq!(start_next(&mut s), Some(Some("b".into())));
        s.ended(Some("a"));
        assert_eq!(
            start_next(&mut s),
            Some(Some("b".into())),
            "b is under its share"
        );
        s.ended(Some("a"));
        assert_eq!(
            start_next(&mut s),
            Some(Some("a".into())),
            "a back to its share"
        );
    }
}
