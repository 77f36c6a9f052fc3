//! A status line on standard error every `--status-every` seconds.

use std::time::{Duration, Instant};

use super::{Classified, Consumer, LoopStatus};

pub struct StatusLine {
    every: Duration,
    last: Instant,
}

impl StatusLine {
    pub fn new(every: Duration) -> Self {
        Self { every, last: Instant::now() }
    }

    fn maybe_print(&mut self, s: &LoopStatus) {
        if self.last.elapsed() >= self.every {
            self.last = Instant::now();
            shared::logging::say(&format!(
                "status: {:.1} fps, {} classified, {} captured, {} dropped, {} corrupt, source {}",
                s.mean_fps(),
                s.classified,
                s.captured,
                s.dropped,
                s.corrupt,
                s.source_state
            ));
        }
    }
}

impl Consumer for StatusLine {
    fn frame(&mut self, frame: &Classified<'_>) -> anyhow::Result<()> {
        self.maybe_print(frame.status);
        Ok(())
    }

    fn idle(&mut self, status: &LoopStatus) -> anyhow::Result<()> {
        self.maybe_print(status);
        Ok(())
    }
}
