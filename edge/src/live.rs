//! The live loop. A capture thread keeps only the newest frame in a one-slot mailbox; the
//! inference loop always takes the newest one, so a slow model drops frames instead of
//! falling behind: latency stays bounded whatever the camera's rate.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use image::{DynamicImage, RgbImage};
use shared::answer::{Answer, Thresholds};
use shared::compare::argmax;
use shared::runtime::Outputs;

use crate::model::EdgeModel;
use crate::resultlog::ResultLog;
use crate::smoothing::Smoother;
use crate::source::{Event, Frame, FrameSource};

pub struct LiveOptions {
    pub max_frames: Option<u64>,
    pub smoothing: usize,
    /// When to answer `unknown` or `unsure` instead of a class.
    pub thresholds: Thresholds,
    pub status_every: Duration,
    pub log: Option<PathBuf>,
}

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

#[derive(Debug, Default, Clone, Serialize)]
pub struct LiveStats {
    pub classified: u64,
    pub captured: u64,
    /// Frames replaced in the mailbox by a newer one before inference took them (live sources).
    pub dropped: u64,
    pub corrupt: u64,
    pub seconds: f32,
    pub fps: f32,
}

#[derive(Default)]
struct Mailbox {
    frame: Option<Frame>,
    captured: u64,
    dropped: u64,
    corrupt: u64,
    ended: bool,
    error: Option<String>,
}

/// What the loop needs of a model; [`EdgeModel`] is the real one.
pub trait Classify {
    fn labels(&self) -> &[String];
    fn prepare(&self, image: &DynamicImage) -> RgbImage;
    fn outputs(&self, rgb: &RgbImage) -> anyhow::Result<Outputs>;
}

impl Classify for EdgeModel {
    fn labels(&self) -> &[String] {
        &self.manifest.labels
    }
    fn prepare(&self, image: &DynamicImage) -> RgbImage {
        EdgeModel::prepare(self, image)
    }
    fn outputs(&self, rgb: &RgbImage) -> anyhow::Result<Outputs> {
        EdgeModel::outputs(self, rgb)
    }
}

/// The answer's label and the top class's probability.
fn answer<'a>(labels: &'a [String], outputs: &Outputs, thresholds: &Thresholds) -> (&'a str, f32) {
    let answer = Answer::of(&outputs.probabilities, outputs.unknown_score, thresholds);
    let top = outputs.probabilities.get(argmax(&outputs.probabilities)).copied().unwrap_or(f32::NAN);
    (answer.label(labels), top)
}

/// Runs until the source ends, `max_frames` are classified, or `stop` is set (Ctrl-C).
pub fn run(
    model: &dyn Classify,
    mut source: Box<dyn FrameSource>,
    options: &LiveOptions,
    stop: Arc<AtomicBool>,
    out: &mut dyn Write,
) -> anyhow::Result<LiveStats> {
    let mut log = options.log.as_deref().map(ResultLog::open).transpose()?;
    let shared = Arc::new((Mutex::new(Mailbox::default()), Condvar::new()));
    tracing::info!("source: {}", source.describe());
    let capture = {
        let shared = Arc::clone(&shared);
        let stop = Arc::clone(&stop);
        std::thread::Builder::new().name("capture".into()).spawn(move || {
            let (lock, ready) = &*shared;
            let live = source.is_live();
            while !stop.load(Ordering::Relaxed) {
                if !live {
                    // A non-live source reads its next frame only once the previous one is taken:
                    // nothing dropped, and no frame ages in the mailbox.
                    let mut mailbox = lock.lock().expect("mailbox");
                    while mailbox.frame.is_some() && !stop.load(Ordering::Relaxed) {
                        mailbox = ready.wait_timeout(mailbox, Duration::from_millis(200)).expect("mailbox").0;
                    }
                }
                let event = source.next();
                let mut mailbox = lock.lock().expect("mailbox");
                match event {
                    Ok(Event::Frame(frame)) => {
                        mailbox.captured += 1;
                        if mailbox.frame.replace(frame).is_some() {
                            mailbox.dropped += 1;
                        }
                    }
                    Ok(Event::Corrupt(why)) => {
                        mailbox.corrupt += 1;
                        tracing::warn!("skipped a frame: {why}");
                    }
                    Ok(Event::End) => mailbox.ended = true,
                    Err(e) => {
                        mailbox.error = Some(format!("{e:#}"));
                        mailbox.ended = true;
                    }
                }
                let ended = mailbox.ended;
                drop(mailbox);
                ready.notify_all();
                if ended {
                    break;
                }
            }
        })?
    };

    let started = Instant::now();
    let mut smoother = Smoother::new(options.smoothing);
    let mut stats = LiveStats::default();
    let mut last_status = Instant::now();
    let (lock, ready) = &*shared;
    let result = (|| -> anyhow::Result<()> {
        loop {
            if options.max_frames.is_some_and(|m| stats.classified >= m) || stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let frame = {
                let mut mailbox = lock.lock().expect("mailbox");
                loop {
                    if let Some(frame) = mailbox.frame.take() {
                        ready.notify_all();
                        break Some(frame);
                    }
                    if mailbox.ended || stop.load(Ordering::Relaxed) {
                        if let Some(e) = mailbox.error.take() {
                            anyhow::bail!("frame source failed: {e}");
                        }
                        break None;
                    }
                    mailbox = ready.wait_timeout(mailbox, Duration::from_millis(200)).expect("mailbox").0;
                }
            };
            let Some(frame) = frame else { return Ok(()) };
            let t0 = Instant::now();
            let prepared = model.prepare(&frame.image);
            let t1 = Instant::now();
            let outputs = match model.outputs(&prepared) {
                Ok(outputs) => outputs,
                Err(e) => {
                    // A frame the model cannot answer (a NaN output) is counted, not labelled.
                    tracing::warn!("frame {}: {e:#}", frame.number);
                    lock.lock().expect("mailbox").corrupt += 1;
                    continue;
                }
            };
            let t2 = Instant::now();
            let smoothed = smoother.push(&outputs);
            let labels = model.labels();
            let (label, probability) = answer(labels, &outputs, &options.thresholds);
            let (smoothed_label, smoothed_probability) = answer(labels, &smoothed, &options.thresholds);
            let result = FrameResult {
                timestamp_ms: frame.timestamp_ms,
                frame: frame.number,
                label: label.into(),
                probability,
                unknown_score: outputs.unknown_score,
                smoothed_label: smoothed_label.into(),
                smoothed_probability,
                smoothed_unknown_score: smoothed.unknown_score,
                capture_ms: frame.capture_ms,
                preprocess_ms: (t1 - t0).as_secs_f32() * 1000.0,
                inference_ms: (t2 - t1).as_secs_f32() * 1000.0,
                latency_ms: (t2 - frame.captured_at).as_secs_f32() * 1000.0,
            };
            serde_json::to_writer(&mut *out, &result)?;
            out.write_all(b"\n")?;
            out.flush()?;
            if let Some(log) = log.as_mut() {
                log.append(&result)?;
            }
            stats.classified += 1;
            if last_status.elapsed() >= options.status_every {
                last_status = Instant::now();
                let m = lock.lock().expect("mailbox");
                eprintln!(
                    "status: {:.1} fps, {} classified, {} captured, {} dropped, {} corrupt",
                    stats.classified as f32 / started.elapsed().as_secs_f32(),
                    stats.classified,
                    m.captured,
                    m.dropped,
                    m.corrupt
                );
            }
        }
    })();
    stop.store(true, Ordering::Relaxed);
    if let Some(log) = log.as_mut() {
        log.sync()?;
    }
    {
        let m = lock.lock().expect("mailbox");
        stats.captured = m.captured;
        stats.dropped = m.dropped;
        stats.corrupt = m.corrupt;
    }
    stats.seconds = started.elapsed().as_secs_f32();
    stats.fps = stats.classified as f32 / stats.seconds.max(1e-6);
    // A source blocked in a read (stdin, a camera) cannot be interrupted; don't wait for it.
    if capture.is_finished() {
        let _ = capture.join();
    }
    result.map(|()| stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::synthetic::Synthetic;

    /// A model slower than its source: 40 ms per frame against frames every 5 ms.
    struct Slow;

    impl Classify for Slow {
        fn labels(&self) -> &[String] {
            static LABELS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
            LABELS.get_or_init(|| vec!["a".into(), "b".into()])
        }
        fn prepare(&self, image: &DynamicImage) -> RgbImage {
            image.to_rgb8()
        }
        fn outputs(&self, _: &RgbImage) -> anyhow::Result<Outputs> {
            std::thread::sleep(Duration::from_millis(40));
            Ok(Outputs { probabilities: vec![0.3, 0.7], unknown_score: Some(0.1) })
        }
    }

    fn options(max_frames: Option<u64>, smoothing: usize, unknown: Option<f32>) -> LiveOptions {
        let thresholds = Thresholds { unknown, min_confidence: 0.0 };
        LiveOptions { max_frames, smoothing, thresholds, status_every: Duration::from_secs(60), log: None }
    }

    #[test]
    fn a_slow_model_drops_stale_frames_and_latency_stays_bounded() {
        let options = options(Some(12), 3, Some(0.5));
        let mut out = Vec::new();
        let source = Box::new(Synthetic::new(32, 24, Some(200.0)));
        let stats = run(&Slow, source, &options, Arc::new(AtomicBool::new(false)), &mut out).unwrap();
        assert_eq!(stats.classified, 12);
        assert!(stats.dropped >= 12, "a 40 ms model on a 5 ms source must drop frames: {stats:?}");
        let lines: Vec<serde_json::Value> = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 12);
        // Each result is about one frame interval + one inference old, never a growing backlog.
        let latencies: Vec<f64> = lines.iter().map(|l| l["latency_ms"].as_f64().unwrap()).collect();
        assert!(latencies.iter().all(|&l| l < 40.0 + 100.0), "latency grew: {latencies:?}");
        assert!(latencies[11] < latencies[0] + 60.0, "latency trend: {latencies:?}");
        // Frame numbers jump: the loop took the newest frame, not the next one.
        let frames: Vec<u64> = lines.iter().map(|l| l["frame"].as_u64().unwrap()).collect();
        assert!(frames.windows(2).any(|w| w[1] > w[0] + 1), "{frames:?}");
        assert_eq!(lines[0]["label"], "b");
        assert_eq!(lines[0]["unknown_score"].as_f64().map(|s| s as f32), Some(0.1));
    }

    #[test]
    fn answers_unknown_above_the_threshold() {
        let options = options(Some(2), 1, Some(0.05));
        let mut out = Vec::new();
        run(&Slow, Box::new(Synthetic::new(8, 8, None)), &options, Arc::new(AtomicBool::new(false)), &mut out).unwrap();
        let first: serde_json::Value = serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["label"], "unknown");
        assert_eq!(first["smoothed_label"], "unknown");
    }

    #[test]
    fn stop_flag_ends_the_loop() {
        let options = options(None, 1, None);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::Relaxed);
        });
        let stats = run(&Slow, Box::new(Synthetic::new(8, 8, Some(100.0))), &options, stop, &mut Vec::new()).unwrap();
        assert!(stats.classified >= 1 && stats.classified < 20, "{stats:?}");
    }
}
