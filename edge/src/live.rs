//! The live loop. A capture thread keeps only the newest frame in a one-slot mailbox; the
//! inference loop always takes the newest one, so a slow model drops frames instead of
//! falling behind: latency stays bounded whatever the camera's rate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use image::{DynamicImage, RgbImage};
use serde::Serialize;
use shared::answer::{Answer, Thresholds};
use shared::compare::argmax;
use shared::runtime::Outputs;

use crate::consumers::{Classified, Consumer, LoopStatus, ModelNote, SourceState};
use crate::frame_result::FrameResult;
use crate::model::EdgeModel;
use crate::smoothing::Smoother;
use crate::source::{Event, Frame, FrameSource};
use crate::swap::Swap;

/// How often the loop wakes while no frame comes, to tell the consumers (status, health).
const IDLE_TICK: Duration = Duration::from_millis(200);

pub struct LiveOptions {
    pub max_frames: Option<u64>,
    pub smoothing: usize,
    /// When to answer `unknown` or `unsure` instead of a class.
    pub thresholds: Thresholds,
    /// New models, checked and ready (see [`crate::swap`]); taken between two frames.
    pub swaps: Option<std::sync::mpsc::Receiver<Swap>>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct LiveStats {
    pub classified: u64,
    pub captured: u64,
    /// Frames replaced in the mailbox by a newer one before inference took them (live sources).
    pub dropped: u64,
    pub corrupt: u64,
    pub reconnects: u64,
    pub seconds: f32,
    pub fps: f32,
}

/// What the capture thread hands over: the newest frame and the source's counters.
#[derive(Default)]
struct Mailbox {
    frame: Option<Frame>,
    captured: u64,
    dropped: u64,
    corrupt: u64,
    reconnects: u64,
    lost: bool,
    ended: bool,
    error: Option<String>,
}

impl Mailbox {
    fn copy_counters(&self, status: &mut LoopStatus) {
        status.captured = self.captured;
        status.dropped = self.dropped;
        status.corrupt = self.corrupt;
        status.reconnects = self.reconnects;
        status.source_state = if self.ended {
            SourceState::Ended
        } else if self.lost {
            SourceState::Reconnecting
        } else if self.captured > 0 {
            SourceState::Streaming
        } else {
            SourceState::Starting
        };
    }
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

type Shared = Arc<(Mutex<Mailbox>, Condvar)>;

/// The least time between two warnings of one kind from the capture thread (corrupt frames,
/// losses of the source): the counters in the status count every one.
const WARNING_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// The capture thread: reads the source and keeps only the newest frame in the mailbox.
fn spawn_capture(mut source: Box<dyn FrameSource>, shared: Shared, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("capture".into()).spawn(move || {
        let (lock, ready) = &*shared;
        let live = source.is_live();
        // Every corrupt frame and loss is counted; the log says them at most every few seconds.
        let mut corrupt_warning = crate::throttle::Throttled::new(WARNING_PERIOD);
        let mut lost_warning = crate::throttle::Throttled::new(WARNING_PERIOD);
        while !stop.load(Ordering::Relaxed) {
            if !live {
                // A non-live source reads its next frame only once the previous one is taken:
                // nothing dropped, and no frame ages in the mailbox.
                let mut mailbox = lock.lock().expect("mailbox");
                while mailbox.frame.is_some() && !stop.load(Ordering::Relaxed) {
                    mailbox = ready.wait_timeout(mailbox, IDLE_TICK).expect("mailbox").0;
                }
            }
            let event = source.next();
            let mut mailbox = lock.lock().expect("mailbox");
            match event {
                Ok(Event::Frame(frame)) => {
                    mailbox.captured += 1;
                    mailbox.lost = false;
                    if mailbox.frame.replace(frame).is_some() {
                        mailbox.dropped += 1;
                    }
                }
                Ok(Event::Corrupt(why)) => {
                    mailbox.corrupt += 1;
                    corrupt_warning.warn(|| format!("skipped a frame: {why}"));
                }
                Ok(Event::Lost(why)) => {
                    if !mailbox.lost {
                        mailbox.reconnects += 1;
                    }
                    mailbox.lost = true;
                    lost_warning.warn(|| format!("source lost: {why}; reconnecting"));
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
    })
}

/// The swapper's next message, if one waits. If the swapper is gone (it never should be: it
/// refuses what fails its checks), that is said once and `swaps` forgets it.
fn next_swap<'a>(from: &'a std::sync::mpsc::Receiver<Swap>, swaps: &mut Option<&'a std::sync::mpsc::Receiver<Swap>>) -> Option<Swap> {
    match from.try_recv() {
        Ok(swap) => Some(swap),
        Err(std::sync::mpsc::TryRecvError::Empty) => None,
        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
            tracing::error!("the model swapper stopped: new models are no longer taken until the box restarts");
            *swaps = None;
            None
        }
    }
}

/// Hands the pages of what was freed back to the system: glibc keeps them in its arenas for the
/// process's next allocations, so after a swap a box would go on holding the replaced model's
/// memory (measured: 474-549 MiB after swaps of a VGG16 model that runs in 315).
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs until the source ends, `max_frames` are classified, or `stop` is set (Ctrl-C), handing
/// every classified frame to every consumer, in order.
pub fn run(
    mut model: Box<dyn Classify>,
    source: Box<dyn FrameSource>,
    options: &LiveOptions,
    consumers: &mut [Box<dyn Consumer>],
    stop: Arc<AtomicBool>,
) -> anyhow::Result<LiveStats> {
    let shared: Shared = Arc::new((Mutex::new(Mailbox::default()), Condvar::new()));
    tracing::info!("source: {}", source.describe());
    let capture = spawn_capture(source, Arc::clone(&shared), Arc::clone(&stop))?;
    let mut status = LoopStatus::new(Instant::now());
    let mut smoother = Smoother::new(options.smoothing);
    let mut thresholds = options.thresholds;
    let mut swaps = options.swaps.as_ref();
    let (lock, ready) = &*shared;
    let result = (|| -> anyhow::Result<()> {
        loop {
            if options.max_frames.is_some_and(|m| status.classified >= m) || stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            while let Some(swap) = swaps.and_then(|s| next_swap(s, &mut swaps)) {
                match swap {
                    Swap::Ready(candidate) => {
                        let candidate = *candidate;
                        thresholds = candidate.thresholds;
                        // Another model's probabilities are not averaged with this one's.
                        smoother = Smoother::new(options.smoothing);
                        // Owned here, the model it replaces is freed now: a box holds one model
                        // between swaps, not the first one for ever beside the running one.
                        model = Box::new(candidate.model);
                        give_back_freed_memory();
                        tracing::info!("now running '{}' ({})", candidate.info.name, candidate.info.hash);
                        for consumer in consumers.iter_mut() {
                            consumer.model(&ModelNote::Swapped(&candidate.info))?;
                        }
                    }
                    Swap::Rejected { from, why } => {
                        for consumer in consumers.iter_mut() {
                            consumer.model(&ModelNote::Rejected { from: &from, why: &why })?;
                        }
                    }
                    Swap::Kept { problem } => {
                        for consumer in consumers.iter_mut() {
                            consumer.model(&ModelNote::Kept { problem: problem.as_deref() })?;
                        }
                    }
                }
            }
            let model: &dyn Classify = model.as_ref();
            let next = {
                let mut mailbox = lock.lock().expect("mailbox");
                let next = match mailbox.frame.take() {
                    Some(frame) => Some(Some(frame)),
                    None if mailbox.ended || stop.load(Ordering::Relaxed) => {
                        if let Some(e) = mailbox.error.take() {
                            anyhow::bail!("frame source failed: {e}");
                        }
                        Some(None)
                    }
                    None => {
                        mailbox = ready.wait_timeout(mailbox, IDLE_TICK).expect("mailbox").0;
                        mailbox.frame.take().map(Some)
                    }
                };
                mailbox.copy_counters(&mut status);
                drop(mailbox);
                ready.notify_all();
                next
            };
            let frame = match next {
                Some(Some(frame)) => frame,
                Some(None) => return Ok(()),
                None => {
                    for consumer in consumers.iter_mut() {
                        consumer.idle(&status)?;
                    }
                    continue;
                }
            };
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
            let (label, probability) = answer(labels, &outputs, &thresholds);
            let (smoothed_label, smoothed_probability) = answer(labels, &smoothed, &thresholds);
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
            status.classified += 1;
            let classified = Classified { result: &result, outputs: &outputs, image: &frame.image, status: &status };
            for consumer in consumers.iter_mut() {
                consumer.frame(&classified)?;
            }
        }
    })();
    stop.store(true, Ordering::Relaxed);
    lock.lock().expect("mailbox").copy_counters(&mut status);
    // Timed before the consumers finish: the events' last delivery (up to 5 s) is no frame time.
    let (seconds, fps) = (status.started.elapsed().as_secs_f32(), status.mean_fps());
    let finished: anyhow::Result<()> = consumers.iter_mut().try_for_each(|c| c.finish(&status));
    let stats = LiveStats {
        classified: status.classified,
        captured: status.captured,
        dropped: status.dropped,
        corrupt: status.corrupt,
        reconnects: status.reconnects,
        seconds,
        fps,
    };
    // A source blocked in a read (stdin, a camera) cannot be interrupted; don't wait for it.
    if capture.is_finished() {
        let _ = capture.join();
    }
    result.and(finished).map(|()| stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumers::json_lines::JsonLines;
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
        LiveOptions { max_frames, smoothing, thresholds, swaps: None }
    }

    /// Runs the loop with a JSON-lines consumer; returns the stats and the lines it printed.
    fn run_to_lines(source: Box<dyn FrameSource>, options: &LiveOptions, stop: Arc<AtomicBool>) -> (LiveStats, Vec<serde_json::Value>) {
        let buffer = SharedBuffer::default();
        let mut consumers: Vec<Box<dyn Consumer>> = vec![Box::new(JsonLines::new(buffer.clone()))];
        let stats = run(Box::new(Slow), source, options, &mut consumers, stop).unwrap();
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        (stats, text.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
    }

    /// A writer whose bytes the test can read after the loop took the consumer.
    #[derive(Clone, Default)]
    struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_slow_model_drops_stale_frames_and_latency_stays_bounded() {
        let options = options(Some(12), 3, Some(0.5));
        let source = Box::new(Synthetic::new(32, 24, Some(200.0)));
        let (stats, lines) = run_to_lines(source, &options, Arc::new(AtomicBool::new(false)));
        assert_eq!(stats.classified, 12);
        assert!(stats.dropped >= 12, "a 40 ms model on a 5 ms source must drop frames: {stats:?}");
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

    /// The done line's time and rate are the loop's: a consumer's last delivery (the events'
    /// outbox gets up to 5 s) happens after them.
    #[test]
    fn a_slow_finish_is_not_counted_in_the_run_time() {
        struct SlowToFinish;
        impl Consumer for SlowToFinish {
            fn frame(&mut self, _: &Classified<'_>) -> anyhow::Result<()> {
                Ok(())
            }
            fn finish(&mut self, _: &LoopStatus) -> anyhow::Result<()> {
                std::thread::sleep(Duration::from_millis(1500));
                Ok(())
            }
        }
        let mut consumers: Vec<Box<dyn Consumer>> = vec![Box::new(SlowToFinish)];
        let source = Box::new(Synthetic::new(32, 24, None));
        let stats = run(Box::new(Slow), source, &options(Some(3), 1, None), &mut consumers, Arc::new(AtomicBool::new(false))).unwrap();
        assert_eq!(stats.classified, 3);
        assert!(stats.seconds < 1.4, "3 frames of 40 ms, not the 1.5 s finish: {stats:?}");
        assert!(stats.fps > 3.0 / 1.4, "{stats:?}");
    }

    /// The first model is the loop's to drop: once a new one is swapped in, the box holds one
    /// model, not the first for ever beside the running one (a VGG16 model is 300 MB).
    #[test]
    fn a_swapped_out_model_is_freed() {
        struct Watched(Arc<AtomicBool>);
        impl Drop for Watched {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        impl Classify for Watched {
            fn labels(&self) -> &[String] {
                Slow.labels()
            }
            fn prepare(&self, image: &DynamicImage) -> RgbImage {
                Slow.prepare(image)
            }
            fn outputs(&self, rgb: &RgbImage) -> anyhow::Result<Outputs> {
                Slow.outputs(rgb)
            }
        }
        let tiny = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.bundle");
        let next = EdgeModel::load(&tiny, None).unwrap();
        let (send, swaps) = std::sync::mpsc::channel();
        let dropped = Arc::new(AtomicBool::new(false));
        let first = Box::new(Watched(Arc::clone(&dropped)));
        let mut options = options(Some(3), 1, None);
        let info = next.info(false, &options.thresholds);
        options.swaps = Some(swaps);
        send.send(Swap::Ready(Box::new(crate::swap::Candidate { model: next, thresholds: options.thresholds, info }))).unwrap();
        // What each frame saw: whether the first model was gone by then.
        struct Seen(Arc<AtomicBool>, Arc<Mutex<Vec<bool>>>);
        impl Consumer for Seen {
            fn frame(&mut self, _: &Classified<'_>) -> anyhow::Result<()> {
                self.1.lock().unwrap().push(self.0.load(Ordering::SeqCst));
                Ok(())
            }
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut consumers: Vec<Box<dyn Consumer>> = vec![Box::new(Seen(Arc::clone(&dropped), Arc::clone(&seen)))];
        let source = Box::new(Synthetic::new(32, 24, None));
        let stats = run(first, source, &options, &mut consumers, Arc::new(AtomicBool::new(false))).unwrap();
        assert_eq!(stats.classified, 3);
        assert_eq!(*seen.lock().unwrap(), [true; 3], "the first model was still held while the new one ran");
    }

    #[test]
    fn answers_unknown_above_the_threshold() {
        let options = options(Some(2), 1, Some(0.05));
        let (_, lines) = run_to_lines(Box::new(Synthetic::new(8, 8, None)), &options, Arc::new(AtomicBool::new(false)));
        let first = &lines[0];
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
        let (stats, _) = run_to_lines(Box::new(Synthetic::new(8, 8, Some(100.0))), &options, stop);
        assert!(stats.classified >= 1 && stats.classified < 20, "{stats:?}");
    }
}
