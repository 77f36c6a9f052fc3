//! A warning said at most once a period: a broken camera, a stream of noise or a folder of bad
//! files gives thousands of corrupt frames a second, and one line each would flood the journal
//! (and the disk under it). The first is said at once; later ones within the period are counted
//! and the count is said with the next line.

use std::time::{Duration, Instant};

pub struct Throttled {
    period: Duration,
    last_said: Option<Instant>,
    unsaid: u64,
}

impl Throttled {
    pub fn new(period: Duration) -> Self {
        Self { period, last_said: None, unsaid: 0 }
    }

    /// Logs `message` as a warning, unless one was said less than a period ago.
    pub fn warn(&mut self, message: impl FnOnce() -> String) {
        if let Some(line) = self.line_at(Instant::now(), message) {
            tracing::warn!("{line}");
        }
    }

    /// The line to say at `now`, if any: `message`, with how many were held back before it.
    fn line_at(&mut self, now: Instant, message: impl FnOnce() -> String) -> Option<String> {
        if self.last_said.is_some_and(|last| now.duration_since(last) < self.period) {
            self.unsaid += 1;
            return None;
        }
        self.last_said = Some(now);
        let held_back = std::mem::take(&mut self.unsaid);
        Some(if held_back == 0 { message() } else { format!("{} ({held_back} more like it not shown)", message()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_period_with_the_count_of_those_held_back() {
        let mut t = Throttled::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.line_at(start, || "bad frame 1".into()).as_deref(), Some("bad frame 1"));
        for k in 1..1000 {
            assert_eq!(t.line_at(start + Duration::from_millis(k), || unreachable!("not built when held back")), None);
        }
        let later = start + Duration::from_secs(11);
        assert_eq!(t.line_at(later, || "bad frame 1001".into()).as_deref(), Some("bad frame 1001 (999 more like it not shown)"));
        assert_eq!(t.line_at(later + Duration::from_secs(10), || "again".into()).as_deref(), Some("again"));
    }
}
