//! Named points inside job kinds where a test can hold a running job (to kill it, let its
//! lease run out, or shut down while it runs), and in the engine where it can hold a step
//! (`queue:claimed`: a queue's claim answered, its jobs not yet handed out), and release
//! them later: crash and race cases become deterministic, without sleeps. Nothing is armed
//! in production, where passing a point costs one uncontended lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One armed point: whether a job has reached it, and whether it may go on.
pub struct Breakpoint {
    reached: watch::Sender<bool>,
    released: watch::Sender<bool>,
}

impl Breakpoint {
    /// Waits until a job reaches the point.
    pub async fn reached(&self) {
        let mut rx = self.reached.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Lets every job held at the point (and every later one) go on.
    pub fn release(&self) {
        self.released.send_replace(true);
    }
}

/// The armed points of one running jobline.
#[derive(Default)]
pub struct Breakpoints {
    armed: Mutex<HashMap<String, Arc<Breakpoint>>>,
}

impl Breakpoints {
    /// Arms `name`: jobs that pass it from now on wait until released.
    pub fn arm(&self, name: &str) -> Arc<Breakpoint> {
        let point = Arc::new(Breakpoint {
            reached: watch::channel(false).0,
            released: watch::channel(false).0,
        });
        self.armed
            .lock()
            .expect("breakpoints lock")
            .insert(name.to_string(), point.clone());
        point
    }

    /// Called at a named point: holds the job (or the engine's step) while the point is
    /// armed.
    pub async fn pass(&self, name: &str) {
        let point = self
            .armed
            .lock()
            .expect("breakpoints lock")
            .get(name)
            .cloned();
        if let Some(point) = point {
            point.reached.send_replace(true);
            let mut rx = point.released.subscribe();
            let _ = rx.wait_for(|r| *r).await;
        }
    }
}
