//! Classified frames and idle ticks -> events. Pure bookkeeping: no clock of its own (the caller
//! passes `now`), no I/O, so every rule is tested here.

use std::time::{Duration, Instant};

use shared::answer::{UNKNOWN, UNSURE};

use super::{EventKind, FieldEvent};
use crate::consumers::{LoopStatus, SourceState};
use crate::frame_result::FrameResult;

pub struct Detector {
    stale_after: Duration,
    started: Instant,
    last: Option<Last>,
    stale: bool,
}

/// The last classified frame, as the events tell of it.
struct Last {
    at: Instant,
    frame: u64,
    label: String,
    probability: f32,
    unknown_score: Option<f32>,
}

impl Detector {
    pub fn new(stale_after: Duration, started: Instant) -> Self {
        Self { stale_after, started, last: None, stale: false }
    }

    /// The events a classified frame makes: `source_back` after a stale spell, then a change of
    /// the smoothed answer, if any.
    pub fn frame(&mut self, result: &FrameResult, now: Instant) -> Vec<FieldEvent> {
        let mut events = Vec::new();
        let label = result.smoothed_label.as_str();
        let event = |kind, previous: Option<&str>, detail: Option<String>| FieldEvent {
            event: kind,
            timestamp_ms: result.timestamp_ms,
            frame: Some(result.frame),
            label: Some(label.to_string()),
            previous: previous.map(str::to_string),
            probability: Some(result.smoothed_probability),
            unknown_score: result.smoothed_unknown_score,
            detail,
        };
        if self.stale {
            self.stale = false;
            events.push(event(EventKind::SourceBack, self.last.as_ref().map(|l| l.label.as_str()), None));
        }
        let previous = self.last.as_ref().map(|l| l.label.as_str());
        if previous != Some(label) {
            events.push(event(change_kind(previous, label), previous, None));
        }
        // The label is copied only when it changes, not on every frame.
        let label = match self.last.take() {
            Some(last) if last.label == label => last.label,
            _ => label.to_string(),
        };
        self.last = Some(Last {
            at: now,
            frame: result.frame,
            label,
            probability: result.smoothed_probability,
            unknown_score: result.smoothed_unknown_score,
        });
        events
    }

    /// `source_stale`, once, when no frame came for `stale_after` (since the last frame, or
    /// since the start when none came yet).
    pub fn idle(&mut self, status: &LoopStatus, now: Instant) -> Option<FieldEvent> {
        let since = self.last.as_ref().map_or(self.started, |l| l.at);
        if self.stale || now.duration_since(since) < self.stale_after {
            return None;
        }
        self.stale = true;
        let state = status.source_state;
        let detail = match state {
            SourceState::Streaming => format!("no frame for {:.0} s", now.duration_since(since).as_secs_f32()),
            _ => format!("source {state}, no frame for {:.0} s", now.duration_since(since).as_secs_f32()),
        };
        Some(FieldEvent {
            event: EventKind::SourceStale,
            timestamp_ms: crate::unix_ms(),
            frame: self.last.as_ref().map(|l| l.frame),
            label: self.last.as_ref().map(|l| l.label.clone()),
            previous: None,
            probability: self.last.as_ref().map(|l| l.probability),
            unknown_score: self.last.as_ref().and_then(|l| l.unknown_score),
            detail: Some(detail),
        })
    }
}

/// The kind of a change of answer: entering `unknown` or `unsure` begins it, leaving ends it
/// (unknown -> unsure begins `unsure`: the new state is what a receiver acts on).
fn change_kind(previous: Option<&str>, label: &str) -> EventKind {
    match (previous, label) {
        (_, UNKNOWN) => EventKind::UnknownBegan,
        (_, UNSURE) => EventKind::UnsureBegan,
        (Some(UNKNOWN), _) => EventKind::UnknownEnded,
        (Some(UNSURE), _) => EventKind::UnsureEnded,
        _ => EventKind::LabelChanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(frame: u64, label: &str) -> FrameResult {
        FrameResult {
            timestamp_ms: 1000 + frame,
            frame,
            label: label.into(),
            probability: 0.9,
            unknown_score: Some(0.1),
            smoothed_label: label.into(),
            smoothed_probability: 0.8,
            smoothed_unknown_score: Some(0.2),
            capture_ms: 0.0,
            preprocess_ms: 0.0,
            inference_ms: 0.0,
            latency_ms: 0.0,
        }
    }

    fn kinds(events: &[FieldEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.event.name()).collect()
    }

    #[test]
    fn every_change_of_answer_is_one_event_and_repeats_are_none() {
        let t0 = Instant::now();
        let mut d = Detector::new(Duration::from_secs(10), t0);
        let labels =
            ["daffodil", "daffodil", "coltsfoot", "unknown", "unknown", "unsure", "coltsfoot", "unsure", "daffodil", "unknown", "daffodil"];
        let mut seen = Vec::new();
        for (i, label) in labels.iter().enumerate() {
            let events = d.frame(&result(i as u64, label), t0);
            assert!(events.len() <= 1, "{events:?}");
            seen.extend(events);
        }
        assert_eq!(
            kinds(&seen),
            [
                "label_changed",
                "label_changed",
                "unknown_began",
                "unsure_began",
                "unsure_ended",
                "unsure_began",
                "unsure_ended",
                "unknown_began",
                "unknown_ended"
            ]
        );
        let first = &seen[0];
        assert_eq!((first.previous.as_deref(), first.label.as_deref(), first.frame), (None, Some("daffodil"), Some(0)));
        let ended = &seen[4];
        assert_eq!((ended.previous.as_deref(), ended.label.as_deref()), (Some("unsure"), Some("coltsfoot")));
        assert_eq!(ended.probability, Some(0.8));
        assert_eq!(ended.timestamp_ms, 1006);
    }

    #[test]
    fn a_quiet_source_is_stale_once_and_back_with_the_next_frame() {
        let t0 = Instant::now();
        let mut d = Detector::new(Duration::from_secs(2), t0);
        let mut status = LoopStatus::new(t0);
        assert!(d.idle(&status, t0 + Duration::from_secs(1)).is_none());
        // No frame at all since the start counts too.
        let stale = d.idle(&status, t0 + Duration::from_secs(3)).unwrap();
        assert_eq!((stale.event, stale.label.clone()), (EventKind::SourceStale, None));
        assert!(d.idle(&status, t0 + Duration::from_secs(4)).is_none(), "stale is said once");
        let back = d.frame(&result(1, "daffodil"), t0 + Duration::from_secs(5));
        assert_eq!(kinds(&back), ["source_back", "label_changed"]);
        status.source_state = SourceState::Reconnecting;
        assert!(d.idle(&status, t0 + Duration::from_secs(6)).is_none());
        let stale = d.idle(&status, t0 + Duration::from_secs(8)).unwrap();
        assert_eq!(stale.label.as_deref(), Some("daffodil"));
        assert!(stale.detail.unwrap().contains("reconnecting"));
        let back = d.frame(&result(2, "daffodil"), t0 + Duration::from_secs(9));
        assert_eq!(kinds(&back), ["source_back"], "the same answer after a gap is no change");
    }
}
