//! Where classified frames go. The live loop hands each frame, and while it waits a periodic
//! status, to every consumer in turn; each consumer is a small module with one job (JSON lines,
//! the result log, the status line, systemd's watchdog, the HTTP server's view, events for MQTT
//! and web hooks), so adding one
//! touches no other.

pub mod events;
pub mod frame_saver;
pub mod json_lines;
pub mod result_log;
pub mod status_line;
pub mod systemd;

use std::time::Instant;

use image::DynamicImage;
use serde::Serialize;
use shared::runtime::Outputs;

use crate::frame_result::FrameResult;
use crate::model::ModelInfo;

/// The state of the frame source, as the loop last heard of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "&'static str")]
pub enum SourceState {
    /// Opened; no frame yet.
    Starting,
    /// Delivering frames.
    Streaming,
    /// Lost (a camera unplugged, a stream cut) and being reopened.
    Reconnecting,
    /// No more frames (end of files or stream), or failed.
    Ended,
}

shared::named_enum!(SourceState, "source state", {
    SourceState::Starting => "starting",
    SourceState::Streaming => "streaming",
    SourceState::Reconnecting => "reconnecting",
    SourceState::Ended => "ended",
});

impl From<SourceState> for &'static str {
    fn from(state: SourceState) -> Self {
        state.name()
    }
}

/// The loop's counters since it started.
#[derive(Debug, Clone, Serialize)]
pub struct LoopStatus {
    #[serde(skip)]
    pub started: Instant,
    pub classified: u64,
    pub captured: u64,
    /// Frames replaced in the mailbox by a newer one before inference took them (live sources).
    pub dropped: u64,
    /// Frames that could not be decoded or answered.
    pub corrupt: u64,
    /// Times the source was lost and reopened.
    pub reconnects: u64,
    pub source_state: SourceState,
}

impl LoopStatus {
    pub fn new(started: Instant) -> Self {
        Self { started, classified: 0, captured: 0, dropped: 0, corrupt: 0, reconnects: 0, source_state: SourceState::Starting }
    }

    /// Classified frames per second since the start.
    pub fn mean_fps(&self) -> f32 {
        self.classified as f32 / self.started.elapsed().as_secs_f32().max(1e-6)
    }
}

/// One classified frame, as every consumer sees it.
pub struct Classified<'a> {
    pub result: &'a FrameResult,
    /// The model's outputs for this frame (all class probabilities, the open-set score).
    pub outputs: &'a Outputs,
    /// The frame as captured, before preprocessing.
    pub image: &'a DynamicImage,
    pub status: &'a LoopStatus,
}

/// The model changed, a new one was refused, or the running one was offered to the last good
/// copy (see [`crate::swap`]).
pub enum ModelNote<'a> {
    Swapped(&'a ModelInfo),
    Rejected {
        from: &'a str,
        why: &'a str,
    },
    /// `--last-good`: why the running model could not be kept, `None` when it was.
    Kept {
        problem: Option<&'a str>,
    },
}

impl ModelNote<'_> {
    /// What the status and the events say of it: the new model's name and hash, where the
    /// refused one came from and why (once, when the reason already names the file), or why the
    /// running model could not be kept.
    pub fn detail(&self) -> String {
        match self {
            Self::Swapped(info) => format!("{} {}", info.name, info.hash),
            Self::Rejected { from, why } => crate::swap::named(std::path::Path::new(from), why),
            Self::Kept { problem } => problem.unwrap_or("kept as the last good model").to_string(),
        }
    }
}

pub trait Consumer: Send {
    /// A classified frame. An error ends the loop (standard output closed, the log's disk gone):
    /// a consumer that must never stop the loop returns `Ok` and says what went wrong itself.
    fn frame(&mut self, frame: &Classified<'_>) -> anyhow::Result<()>;

    /// The loop's status, a few times a second while it waits for a frame.
    fn idle(&mut self, _status: &LoopStatus) -> anyhow::Result<()> {
        Ok(())
    }

    /// A new model took over between two frames, one was refused, or the running one was offered
    /// to the last good copy.
    fn model(&mut self, _note: &ModelNote<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    /// The loop ended: flush what is buffered.
    fn finish(&mut self, _status: &LoopStatus) -> anyhow::Result<()> {
        Ok(())
    }
}
