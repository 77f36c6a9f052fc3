//! What the live loop says about one classified frame: a JSON line on standard output, a
//! record of the result log, the HTTP API's `latest`. Its own module so that the loop and every
//! consumer depend on it, and not on each other.

use serde::{Deserialize, Serialize};

/// One JSON line per classified frame, and one record of the result log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameResult {
    pub timestamp_ms: u64,
    pub frame: u64,
    /// The answer for this frame: a class, `unknown` or `unsure`.
    pub label: String,
    /// The top class's probability.
    pub probability: f32,
    /// The open-set score (higher: less like the training photos), when the model has one.
    pub unknown_score: Option<f32>,
    /// The answer for the outputs averaged over the last `--smoothing` frames.
    pub smoothed_label: String,
    pub smoothed_probability: f32,
    pub smoothed_unknown_score: Option<f32>,
    pub capture_ms: f32,
    pub preprocess_ms: f32,
    pub inference_ms: f32,
    /// From the end of capture to the result: waiting in the mailbox + preprocess + inference.
    pub latency_ms: f32,
}
