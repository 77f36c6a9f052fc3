//! Turns classified frames into events (see [`crate::events`]) and hands them to the receivers
//! (`--mqtt`, `--webhook`). Each event is also logged at info level.

use std::time::{Duration, Instant};

use super::{Classified, Consumer, LoopStatus, ModelNote};
use crate::events::detect::Detector;
use crate::events::{EventKind, EventSink, FieldEvent};

/// How long the end of a run waits for receivers to take what is queued.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

pub struct Events {
    detector: Detector,
    sinks: Vec<Box<dyn EventSink>>,
}

impl Events {
    pub fn new(stale_after: Duration, sinks: Vec<Box<dyn EventSink>>) -> Self {
        Self { detector: Detector::new(stale_after, Instant::now()), sinks }
    }

    /// Logs the event and queues it for every receiver; never blocks.
    pub fn publish(&mut self, event: &FieldEvent) {
        tracing::info!("event: {}", String::from_utf8_lossy(&event.to_json()));
        for sink in &mut self.sinks {
            sink.send(event);
        }
    }
}

impl Consumer for Events {
    fn frame(&mut self, frame: &Classified<'_>) -> anyhow::Result<()> {
        for event in self.detector.frame(frame.result, Instant::now()) {
            self.publish(&event);
        }
        Ok(())
    }

    fn idle(&mut self, status: &LoopStatus) -> anyhow::Result<()> {
        if let Some(event) = self.detector.idle(status, Instant::now()) {
            self.publish(&event);
        }
        Ok(())
    }

    fn model(&mut self, note: &ModelNote<'_>) -> anyhow::Result<()> {
        let kind = if matches!(note, ModelNote::Swapped(_)) { EventKind::ModelSwapped } else { EventKind::ModelRejected };
        let event = FieldEvent::now(kind, note.detail());
        self.publish(&event);
        Ok(())
    }

    fn finish(&mut self, _status: &LoopStatus) -> anyhow::Result<()> {
        for sink in &mut self.sinks {
            sink.close(CLOSE_WAIT);
            let dropped = sink.dropped();
            if dropped > 0 {
                tracing::warn!("{dropped} event(s) were dropped: the outbox (--outbox) was full");
            }
        }
        Ok(())
    }
}
