//! Events for other systems: what changed, not every frame. A box tells a broker or a web hook
//! when its answer changed, when `unknown` or `unsure` began or ended, when its source went quiet
//! or came back, and when its model was swapped.
//!
//! - [`detect`]: classified frames and idle ticks -> events;
//! - [`outbox`]: the bounded queue that holds events while a receiver is away;
//! - [`mqtt`]: events, state, availability and Home Assistant discovery on an MQTT broker;
//! - [`webhook`]: the same JSON, POSTed with an HMAC-SHA256 signature.
//!
//! Delivery runs on threads of its own: a broker or a web hook that is down or hangs never
//! holds the live loop up.

pub mod detect;
pub mod mqtt;
pub mod outbox;
pub mod webhook;

use serde::{Deserialize, Serialize};

/// What happened. The names are the `event` field of the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum EventKind {
    /// The smoothed answer moved from one class to another (or the first answer after start).
    LabelChanged,
    /// The smoothed answer became `unknown`: none of the classes.
    UnknownBegan,
    /// The smoothed answer left `unknown`.
    UnknownEnded,
    /// The smoothed answer became `unsure`: no class probable enough.
    UnsureBegan,
    /// The smoothed answer left `unsure`.
    UnsureEnded,
    /// No frame classified for `--stale-after` seconds.
    SourceStale,
    /// Frames again after `source_stale`.
    SourceBack,
    /// A new model took over.
    ModelSwapped,
    /// A new model was refused; the old one keeps running.
    ModelRejected,
    /// `--last-good`: the running model could not be kept as the last good one (a full or
    /// read-only disk); a restart on a bad model file would come back on an older model.
    ModelNotKept,
    /// The running model was kept after `model_not_kept`.
    ModelKept,
}

shared::named_enum!(EventKind, "event", {
    EventKind::LabelChanged => "label_changed",
    EventKind::UnknownBegan => "unknown_began",
    EventKind::UnknownEnded => "unknown_ended",
    EventKind::UnsureBegan => "unsure_began",
    EventKind::UnsureEnded => "unsure_ended",
    EventKind::SourceStale => "source_stale",
    EventKind::SourceBack => "source_back",
    EventKind::ModelSwapped => "model_swapped",
    EventKind::ModelRejected => "model_rejected",
    EventKind::ModelNotKept => "model_not_kept",
    EventKind::ModelKept => "model_kept",
});

impl EventKind {
    /// Whether the event says what the box answers now (a class, `unknown`, `unsure`, no frames):
    /// what MQTT's retained `state` (and Home Assistant's sensor) shows. Model events are news,
    /// not the answer; retained, they hid it until it next changed.
    pub fn tells_the_answer(self) -> bool {
        !matches!(self, Self::ModelSwapped | Self::ModelRejected | Self::ModelNotKept | Self::ModelKept)
    }
}

impl From<EventKind> for &'static str {
    fn from(kind: EventKind) -> Self {
        kind.name()
    }
}

impl TryFrom<String> for EventKind {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        name.parse()
    }
}

/// One event, as published (MQTT) and posted (web hook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldEvent {
    pub event: EventKind,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The last classified frame's number, if any.
    pub frame: Option<u64>,
    /// The smoothed answer now: a class, `unknown` or `unsure`.
    pub label: Option<String>,
    /// The answer before this change.
    pub previous: Option<String>,
    /// The top class's smoothed probability.
    pub probability: Option<f32>,
    pub unknown_score: Option<f32>,
    /// What else there is to say: the source's state, the model's name and hash, why a model was refused.
    pub detail: Option<String>,
}

impl FieldEvent {
    /// An event that concerns no frame (a model swap), stamped now.
    pub fn now(event: EventKind, detail: impl Into<String>) -> Self {
        FieldEvent {
            event,
            timestamp_ms: crate::unix_ms(),
            frame: None,
            label: None,
            previous: None,
            probability: None,
            unknown_score: None,
            detail: Some(detail.into()),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event serializes")
    }
}

/// Where events go; each receiver delivers on its own thread from its own outbox.
pub trait EventSink: Send {
    /// Queue an event; never blocks.
    fn send(&mut self, event: &FieldEvent);
    /// Deliver what is queued, waiting at most `limit`, then let go of the receiver.
    fn close(&mut self, limit: std::time::Duration);
    /// Events dropped so far because the outbox was full.
    fn dropped(&self) -> u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json_with_their_names() {
        let event = FieldEvent::now(EventKind::ModelSwapped, "tiny abc123");
        let text = String::from_utf8(event.to_json()).unwrap();
        assert!(text.contains(r#""event":"model_swapped""#), "{text}");
        let back: FieldEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back, event);
        assert!("label_change".parse::<EventKind>().is_err());
    }
}
