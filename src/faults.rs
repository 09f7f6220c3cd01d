//! Typed failure points: places where a test makes jobline fail on purpose (a write op
//! panics, an engine actor panics, the writer loses its connection) to prove that the node
//! recovers by itself. A point fires once per arming. Nothing is armed in production, where
//! passing a point costs one relaxed atomic load.

use std::sync::atomic::{AtomicU32, Ordering};

/// Where a failure can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePoint {
    /// The write op of a job submit panics inside the writer.
    SubmitWritePanics,
    /// The writer finds its connection lost before a batch: the batch answers
    /// `Unavailable` and the writer reconnects (the database restart path, on either backend).
    WriterConnectionLost,
    /// A queue actor panics when it next claims.
    QueuePanics,
    /// The webhook dispatcher panics when it next claims.
    WebhookDispatcherPanics,
    /// The janitor panics at its next pass.
    JanitorPanics,
    /// The PostgreSQL listener thread panics at its next poll.
    ListenerPanics,
}

impl FailurePoint {
    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// The armed failure points of one running jobline.
#[derive(Default)]
pub struct FailurePoints {
    armed: AtomicU32,
}

impl FailurePoints {
    /// Arms `point`: the next time it is passed, it fires (once).
    pub fn arm(&self, point: FailurePoint) {
        self.armed.fetch_or(point.bit(), Ordering::SeqCst);
    }

    /// Whether `point` is armed, without firing it: a path that cannot pass the point
    /// the usual way leaves an armed one to the path that does.
    pub fn armed(&self, point: FailurePoint) -> bool {
        self.armed.load(Ordering::SeqCst) & point.bit() != 0
    }

    /// Whether `point` fires now; an armed point disarms as it fires.
    pub fn fires(&self, point: FailurePoint) -> bool {
        let bit = point.bit();
        self.armed.load(Ordering::Relaxed) & bit != 0
            && self.armed.fetch_and(!bit, Ordering::SeqCst) & bit != 0
    }

    /// Panics if `point` fires (the crash a supervisor must survive).
    pub fn panic_if_armed(&self, point: FailurePoint) {
        if self.fires(point) {
            panic!("failure point {point:?} fired");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_point_fires_once() {
        let points = FailurePoints::default();
        assert!(!points.fires(FailurePoint::QueuePanics));
        points.arm(FailurePoint::QueuePanics);
        points.arm(FailurePoint::JanitorPanics);
        assert!(points.fires(FailurePoint::QueuePanics));
        assert!(!points.fires(FailurePoint::QueuePanics));
        assert!(points.fires(FailurePoint::JanitorPanics));
    }
}
