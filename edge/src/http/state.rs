//! What the HTTP server knows of the live loop, and the consumer that tells it. The loop only
//! copies a few numbers per frame under a short lock; a frame image is handed over (and later
//! encoded, off the loop) only while someone watches the stream.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use image::DynamicImage;
use serde::Serialize;
use tokio::sync::watch;

use super::ModelInfo;
use super::metrics::Metrics;
use crate::consumers::{Classified, Consumer, LoopStatus, ModelNote};
use crate::frame_result::FrameResult;
use crate::swap::Request;

/// Frames per second are measured over this much recent time.
const FPS_WINDOW: Duration = Duration::from_secs(3);
/// `/api/history` covers this much time (the page's chart), at most `HISTORY_POINTS` frames.
const HISTORY_MS: u64 = 60_000;
const HISTORY_POINTS: usize = 3_600;

/// The newest classified frame: the loop's result and every class's probability.
#[derive(Debug, Clone, Serialize)]
pub struct Latest {
    #[serde(flatten)]
    pub result: FrameResult,
    pub probabilities: Vec<f32>,
}

/// `/api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub version: &'static str,
    pub model: ModelInfo,
    pub source: String,
    pub uptime_s: f64,
    /// Classified frames per second over the last few seconds.
    pub fps: f32,
    #[serde(flatten)]
    pub counters: LoopStatus,
    /// Seconds since the last classified frame (None before the first).
    pub last_frame_age_s: Option<f64>,
    /// What `/healthz` answers now, and why.
    pub healthy: bool,
    pub health: String,
    pub stream_clients: usize,
    pub latest: Option<Latest>,
    /// The last new model offered (swapped in, or refused), if any.
    pub last_swap: Option<SwapRecord>,
    /// With `--last-good`: why the running model could not be kept as the last good one (`null`
    /// while the copy holds it, or without `--last-good`).
    pub last_good_problem: Option<String>,
}

/// A new model offered to the box, and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct SwapRecord {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub swapped: bool,
    /// The new model's name and hash, or why it was refused.
    pub detail: String,
}

/// One frame in `/api/history`: when (ms since the Unix epoch) and every class's probability.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub t: u64,
    pub p: Vec<f32>,
}

/// `/healthz`'s verdict.
pub enum Health {
    Ok(String),
    Stale(String),
}

#[derive(Default)]
struct View {
    latest: Option<Latest>,
    last_swap: Option<SwapRecord>,
    last_good_problem: Option<String>,
    counters: Option<LoopStatus>,
    last_frame_at: Option<Instant>,
    recent: VecDeque<Instant>,
    history: VecDeque<Point>,
}

pub struct Shared {
    /// The model running now (a swap replaces it).
    pub model: Mutex<ModelInfo>,
    pub source: String,
    pub stale_after: Duration,
    pub max_clients: usize,
    started: Instant,
    view: Mutex<View>,
    metrics: Mutex<Metrics>,
    /// Frames for the stream, sent only while `stream_clients` > 0.
    pub frames: watch::Sender<Option<Arc<DynamicImage>>>,
    /// The newest frame as JPEG, shared by every stream client; `None` until the first one.
    pub jpegs: watch::Sender<Option<Bytes>>,
    pub stream_clients: AtomicUsize,
    /// Where uploaded bundles go (`POST /api/model`); `None`: uploads refused.
    pub uploads: Option<Sender<Request>>,
    /// How long an upload waits for its check ([`super::HttpOptions::upload_wait`]).
    pub upload_wait: Duration,
    /// Held while an upload is read and checked (the swapper drops it after the check): one at
    /// a time, since each may be 256 MiB.
    pub upload_slot: Arc<tokio::sync::Mutex<()>>,
}

impl Shared {
    pub fn new(model: ModelInfo, source: String, options: &super::HttpOptions, uploads: Option<Sender<Request>>) -> Self {
        let metrics = Mutex::new(Metrics::new(&model));
        Self {
            model: Mutex::new(model),
            source,
            stale_after: options.stale_after,
            max_clients: options.max_clients,
            started: Instant::now(),
            view: Mutex::default(),
            metrics,
            frames: watch::Sender::new(None),
            jpegs: watch::Sender::new(None),
            stream_clients: AtomicUsize::new(0),
            uploads,
            upload_wait: options.upload_wait,
            upload_slot: Arc::default(),
        }
    }

    /// The last minute of probabilities, oldest first.
    pub fn history(&self) -> Vec<Point> {
        self.view.lock().expect("view").history.iter().cloned().collect()
    }

    pub fn latest(&self) -> Option<Latest> {
        self.view.lock().expect("view").latest.clone()
    }

    pub fn status(&self) -> Status {
        let view = self.view.lock().expect("view");
        let (healthy, health) = match self.health_of(&view) {
            Health::Ok(why) => (true, why),
            Health::Stale(why) => (false, why),
        };
        let now = Instant::now();
        let fps = match (view.recent.front(), view.recent.back()) {
            (Some(first), Some(last)) if view.recent.len() > 1 && now - *last < FPS_WINDOW => {
                (view.recent.len() - 1) as f32 / (*last - *first).as_secs_f32().max(1e-6)
            }
            _ => 0.0,
        };
        Status {
            version: env!("CARGO_PKG_VERSION"),
            model: self.model.lock().expect("model").clone(),
            source: self.source.clone(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            fps,
            counters: view.counters.clone().unwrap_or_else(|| LoopStatus::new(self.started)),
            last_frame_age_s: view.last_frame_at.map(|t| t.elapsed().as_secs_f64()),
            healthy,
            health,
            stream_clients: self.stream_clients.load(Ordering::Relaxed),
            latest: view.latest.clone(),
            last_swap: view.last_swap.clone(),
            last_good_problem: view.last_good_problem.clone(),
        }
    }

    /// Healthy while a frame was classified within `stale_after`.
    pub fn health(&self) -> Health {
        self.health_of(&self.view.lock().expect("view"))
    }

    fn health_of(&self, view: &View) -> Health {
        let state = view.counters.as_ref().map_or("starting".to_string(), |c| c.source_state.to_string());
        match view.last_frame_at {
            Some(t) if t.elapsed() <= self.stale_after => {
                Health::Ok(format!("ok: last frame classified {:.1} s ago", t.elapsed().as_secs_f32()))
            }
            Some(t) => Health::Stale(format!(
                "stale: no frame classified for {:.1} s (limit {:.1} s); source {state}",
                t.elapsed().as_secs_f32(),
                self.stale_after.as_secs_f32()
            )),
            None => Health::Stale(format!(
                "no frame classified yet ({:.1} s since start); source {state}",
                self.started.elapsed().as_secs_f32()
            )),
        }
    }

    pub fn metrics(&self) -> String {
        self.metrics.lock().expect("metrics").encode()
    }
}

/// The live loop's consumer that keeps [`Shared`] up to date.
pub struct Feed {
    pub shared: Arc<Shared>,
}

impl Consumer for Feed {
    fn frame(&mut self, frame: &Classified<'_>) -> anyhow::Result<()> {
        let now = Instant::now();
        {
            let mut view = self.shared.view.lock().expect("view");
            view.latest = Some(Latest { result: frame.result.clone(), probabilities: frame.outputs.probabilities.clone() });
            view.counters = Some(frame.status.clone());
            view.last_frame_at = Some(now);
            view.recent.push_back(now);
            while view.recent.front().is_some_and(|t| now - *t > FPS_WINDOW) {
                view.recent.pop_front();
            }
            let t = frame.result.timestamp_ms;
            view.history.push_back(Point { t, p: frame.outputs.probabilities.clone() });
            while view.history.len() > HISTORY_POINTS || view.history.front().is_some_and(|old| old.t + HISTORY_MS < t) {
                view.history.pop_front();
            }
        }
        self.shared.metrics.lock().expect("metrics").frame(frame);
        if self.shared.stream_clients.load(Ordering::Relaxed) > 0 {
            // One copy of the frame for the encoder; nothing at all while nobody watches.
            self.shared.frames.send_replace(Some(Arc::new(frame.image.clone())));
        }
        Ok(())
    }

    fn model(&mut self, note: &ModelNote<'_>) -> anyhow::Result<()> {
        if let ModelNote::Kept { problem } = note {
            self.shared.view.lock().expect("view").last_good_problem = problem.map(str::to_string);
            self.shared.metrics.lock().expect("metrics").kept(problem.is_some());
            return Ok(());
        }
        let swapped = matches!(note, ModelNote::Swapped(_));
        if let ModelNote::Swapped(info) = note {
            *self.shared.model.lock().expect("model") = (*info).clone();
            self.shared.metrics.lock().expect("metrics").model(info);
        }
        let detail = note.detail();
        let mut view = self.shared.view.lock().expect("view");
        view.last_swap = Some(SwapRecord { at_ms: crate::unix_ms(), swapped, detail });
        // The history's probabilities were the old model's classes.
        if swapped {
            view.history.clear();
        }
        Ok(())
    }

    fn idle(&mut self, status: &LoopStatus) -> anyhow::Result<()> {
        self.shared.view.lock().expect("view").counters = Some(status.clone());
        self.shared.metrics.lock().expect("metrics").status(status);
        Ok(())
    }
}
