//! Waiting for a condition with a deadline.

use std::thread;
use std::time::{Duration, Instant};

const FIRST_INTERVAL: Duration = Duration::from_millis(1);
const LONGEST_INTERVAL: Duration = Duration::from_millis(20);

/// Polls often at first (a boot takes a fraction of a second), then less often, so that many
/// sandboxes waiting at once do not load a small machine.
pub(crate) struct Backoff {
    interval: Duration,
}

impl Backoff {
    pub fn new() -> Self {
        Self {
            interval: FIRST_INTERVAL,
        }
    }

    /// Sleeps for the next interval, but not past `deadline`; false once the deadline has passed.
    pub fn pause(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        thread::sleep(self.interval.min(left));
        self.interval = (self.interval * 2).min(LONGEST_INTERVAL);
        true
    }

    /// Checks `condition` until it holds (true) or `deadline` passes (false).
    pub fn wait_until(mut self, deadline: Instant, mut condition: impl FnMut() -> bool) -> bool {
        loop {
            if condition() {
                return true;
            }
            if !self.pause(deadline) {
                return condition();
            }
        }
    }
}
