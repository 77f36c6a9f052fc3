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
    /// Whether the running model could not be kept as the last good one: a `model_kept` event
    /// tells the receivers when that ends.
    unkept: bool,
}

impl Events {
    pub fn new(stale_after: Duration, sinks: Vec<Box<dyn EventSink>>) -> Self {
        Self { detector: Detector::new(stale_after, Instant::now()), sinks, unkept: false }
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
        let kind = match note {
            ModelNote::Swapped(_) => EventKind::ModelSwapped,
            ModelNote::Rejected { .. } => EventKind::ModelRejected,
            ModelNote::Kept { problem } => {
                let was_unkept = std::mem::replace(&mut self.unkept, problem.is_some());
                match problem {
                    Some(_) => EventKind::ModelNotKept,
                    None if was_unkept => EventKind::ModelKept,
                    // Kept, as always: nothing to tell.
                    None => return Ok(()),
                }
            }
        };
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Keeps what it is sent.
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl EventSink for Recorder {
        fn send(&mut self, event: &FieldEvent) {
            self.0.lock().unwrap().push(String::from_utf8_lossy(&event.to_json()).into_owned());
        }
        fn close(&mut self, _limit: Duration) {}
        fn dropped(&self) -> u64 {
            0
        }
    }

    /// A model that could not be kept is an event naming why; the first one kept after that is
    /// `model_kept`; one kept as usual is none.
    #[test]
    fn a_model_not_kept_is_an_event_and_so_is_its_end() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut events = Events::new(Duration::from_secs(5), vec![Box::new(Recorder(Arc::clone(&sent)))]);
        events.model(&ModelNote::Kept { problem: None }).unwrap();
        assert!(sent.lock().unwrap().is_empty());
        events.model(&ModelNote::Kept { problem: Some("cannot keep it: disk full") }).unwrap();
        events.model(&ModelNote::Kept { problem: None }).unwrap();
        events.model(&ModelNote::Kept { problem: None }).unwrap();
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent[0].contains(r#""event":"model_not_kept""#) && sent[0].contains("disk full"), "{}", sent[0]);
        assert!(sent[1].contains(r#""event":"model_kept""#), "{}", sent[1]);
    }
}
