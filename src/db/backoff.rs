//! The delay between attempts to reach a database that went away: short at first (a
//! terminated backend is replaced at once), doubling up to a bound (a restarting server is
//! not hammered, and the node serves again within that bound once the server is back).

use std::time::Duration;

/// The first delay after a failed attempt.
const FIRST: Duration = Duration::from_millis(50);

/// The longest delay: how long a node may take to notice that the database is back.
pub const MAX: Duration = Duration::from_secs(2);

/// Exponential backoff from [`FIRST`] to [`MAX`].
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// The delay before the next attempt; the one after it doubles.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(MAX);
        delay
    }

    /// Back to the shortest delay (the database answered).
    pub fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_bound_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        b.reset();
        assert_eq!(b.next_delay(), FIRST);
    }
}
