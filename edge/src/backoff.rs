//! Waits between retries that double up to a bound: a camera, a stream, a broker or a web hook
//! that is away is asked again soon, then less and less often.

use std::time::Duration;

/// The waits between tries: 0.5 s, doubling, at most 10 s, so a peer that is gone for long is
/// not hammered and one that blinks is back at once.
pub struct Backoff {
    wait: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const LONGEST: Duration = Duration::from_secs(10);

    pub fn new() -> Self {
        Self { wait: Self::FIRST }
    }

    /// After a success: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.wait = Self::FIRST;
    }

    /// After a failed try: says why, sleeps, and doubles the next wait.
    pub fn pause(&mut self, why: &anyhow::Error) {
        tracing::warn!("{why:#}; retrying in {:.1}s", self.wait.as_secs_f32());
        std::thread::sleep(self.wait);
        self.wait = (self.wait * 2).min(Self::LONGEST);
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}
