//! `--save-frames DIR`: keeps the frames worth a second look (refused, unsure, where the answer
//! changed, or every Nth) as JPEGs with a JSON sidecar, in `DIR/<answer>/`: a class-folder tree
//! the trainer reads once a person has moved the wrong ones into the right class. Frames are
//! encoded and written on a thread of their own, off the loop; writes are atomic; the oldest files
//! go beyond `--save-cap`; a full disk stops the saving (said once), never the classifying.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use image::DynamicImage;
use serde::Serialize;
use shared::answer::{UNKNOWN, UNSURE};

use super::{Classified, Consumer, ModelNote};
use crate::frame_result::FrameResult;

/// When a frame is saved (`--save-when`, comma-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveWhen {
    /// The answer is `unknown`.
    Unknown,
    /// The answer is `unsure`.
    Unsure,
    /// The smoothed answer differs from the previous frame's.
    Change,
    /// Every Nth classified frame.
    Every(u64),
}

/// The rules of `--save-when`, any of which saves a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveRules(pub Vec<SaveWhen>);

/// `unknown,unsure,change,every:N` -> the rules (clap value parser).
pub fn parse_save_when(s: &str) -> Result<SaveRules, String> {
    s.split(',')
        .map(|part| match part.trim() {
            "unknown" => Ok(SaveWhen::Unknown),
            "unsure" => Ok(SaveWhen::Unsure),
            "change" => Ok(SaveWhen::Change),
            other => other
                .strip_prefix("every:")
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| *n >= 1)
                .map(SaveWhen::Every)
                .ok_or_else(|| format!("'{other}': expected unknown, unsure, change or every:N (N >= 1)")),
        })
        .collect::<Result<_, _>>()
        .map(SaveRules)
}

/// The JSON beside each saved JPEG.
#[derive(Serialize)]
struct Sidecar<'a> {
    #[serde(flatten)]
    result: &'a FrameResult,
    probabilities: &'a [f32],
    labels: &'a [String],
    /// Why it was saved.
    saved_because: Vec<&'static str>,
    model_sha256: &'a str,
}

/// Decides on the loop's thread which frames to keep; a writer thread encodes and writes them
/// (JPEG encoding costs milliseconds a frame, and the disk may stall), so the loop only waits
/// when [`QUEUE`] frames are already waiting for the disk.
pub struct FrameSaver {
    dir: PathBuf,
    when: Vec<SaveWhen>,
    labels: Vec<String>,
    model_sha256: String,
    last_smoothed: Option<String>,
    /// `None` once saving stopped (the writer met an error and said so).
    queue: Option<std::sync::mpsc::SyncSender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// One saver per folder: two would each keep the cap for themselves (twice the cap in all)
    /// and could give two frames one name.
    _lock: shared::lock::FileLock,
}

/// Frames waiting for the writer before the loop waits too.
const QUEUE: usize = 8;

/// One frame to write: the image, its sidecar, where.
struct Job {
    image: DynamicImage,
    sidecar: Vec<u8>,
    folder: PathBuf,
    stem: String,
}

/// The disk side: what is saved, oldest first, and the cap.
struct Writer {
    dir: PathBuf,
    cap: u64,
    /// Saved files, oldest first, with their sizes: what the cap deletes.
    saved: VecDeque<(PathBuf, u64)>,
    total: u64,
    /// Answer folders that are symlinks: their frames are not saved (said once per folder).
    symlinked: std::collections::HashSet<PathBuf>,
}

impl FrameSaver {
    /// Takes stock of what `dir` already holds (from earlier runs), oldest first, and starts the
    /// writer.
    pub fn open(dir: &Path, SaveRules(when): SaveRules, cap: u64, labels: Vec<String>, model_sha256: String) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("--save-frames {}: cannot create: {e}", dir.display()))?;
        let lock = shared::lock::FileLock::on_folder(dir, || {
            format!("--save-frames {}: another process is saving frames here; give each edge its own folder", dir.display())
        })?;
        // Only what a saver wrote counts and may be deleted by the cap: frames and sidecars by
        // their names, in real sub-folders (a symlink to elsewhere is not followed). DIR may be
        // a folder that holds other things too.
        let mut existing = Vec::new();
        for class in std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("--save-frames {}: {e}", dir.display()))?.flatten() {
            if class.file_type().is_ok_and(|t| t.is_dir()) {
                for file in std::fs::read_dir(class.path())?.flatten() {
                    if file.file_type().is_ok_and(|t| t.is_file()) && is_saved_frame(&file.file_name().to_string_lossy()) {
                        let meta = file.metadata()?;
                        existing.push((meta.modified()?, file.path(), meta.len()));
                    }
                }
            }
        }
        existing.sort();
        let saved: VecDeque<(PathBuf, u64)> = existing.into_iter().map(|(_, p, n)| (p, n)).collect();
        let total = saved.iter().map(|(_, n)| n).sum();
        let mut writer = Writer { dir: dir.into(), cap, saved, total, symlinked: Default::default() };
        writer.enforce_cap();
        let (queue, jobs) = std::sync::mpsc::sync_channel(QUEUE);
        let writer = std::thread::Builder::new().name("frame-saver".into()).spawn(move || writer.run(jobs))?;
        Ok(Self { dir: dir.into(), when, labels, model_sha256, last_smoothed: None, queue: Some(queue), writer: Some(writer), _lock: lock })
    }

    fn reasons(&self, r: &FrameResult, classified: u64) -> Vec<&'static str> {
        let changed = self.last_smoothed.as_deref().is_some_and(|last| last != r.smoothed_label);
        self.when
            .iter()
            .filter_map(|w| match w {
                SaveWhen::Unknown => (r.label == UNKNOWN).then_some("unknown"),
                SaveWhen::Unsure => (r.label == UNSURE).then_some("unsure"),
                SaveWhen::Change => changed.then_some("change"),
                SaveWhen::Every(n) => classified.is_multiple_of(*n).then_some("every"),
            })
            .collect()
    }

    fn job(&self, frame: &Classified<'_>, reasons: Vec<&'static str>) -> anyhow::Result<Job> {
        let r = frame.result;
        let sidecar = Sidecar {
            result: r,
            probabilities: &frame.outputs.probabilities,
            labels: &self.labels,
            saved_because: reasons,
            model_sha256: &self.model_sha256,
        };
        Ok(Job {
            image: frame.image.clone(),
            sidecar: serde_json::to_vec_pretty(&sidecar)?,
            folder: self.dir.join(&r.label),
            stem: frame_stem(r.timestamp_ms, r.frame),
        })
    }
}

/// The stem a saved frame gets ([`FrameSaver::job`]): `<unix ms>_<frame, 8 digits or more>`.
fn frame_stem(timestamp_ms: u64, frame: u64) -> String {
    format!("{timestamp_ms}_{frame:08}")
}

/// Whether a file name is one the saver writes: [`frame_stem`] then `.jpg` or `.json`.
fn is_saved_frame(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".jpg").or_else(|| name.strip_suffix(".json")) else { return false };
    let Some((ms, frame)) = stem.split_once('_') else { return false };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(ms) && digits(frame) && frame.len() >= 8
}

impl Writer {
    /// Writes jobs until the saver is dropped, or until a write fails: then saving stops (said
    /// once) and classifying goes on.
    fn run(mut self, jobs: std::sync::mpsc::Receiver<Job>) {
        for job in jobs {
            if let Err(e) = self.save(job) {
                tracing::error!("--save-frames {}: cannot save a frame ({e:#}); saving stopped, classifying goes on", self.dir.display());
                return;
            }
        }
    }

    fn save(&mut self, job: Job) -> anyhow::Result<()> {
        // Frames go only into real folders: behind a symlink they would land elsewhere and, after
        // a restart, escape the cap (taking stock does not follow symlinks). The other answers'
        // frames are still saved.
        if std::fs::symlink_metadata(&job.folder).is_ok_and(|m| m.file_type().is_symlink()) {
            if self.symlinked.insert(job.folder.clone()) {
                tracing::warn!(
                    "--save-frames: {} is a symlink; its frames are not saved (only real folders, which the cap can bound)",
                    job.folder.display()
                );
            }
            return Ok(());
        }
        std::fs::create_dir_all(&job.folder)?;
        let jpeg = crate::jpeg::encode(&job.image)?;
        // The JPEG (what the trainer reads) is renamed into place last.
        let (jpeg_path, json_path) = (job.folder.join(format!("{}.jpg", job.stem)), job.folder.join(format!("{}.json", job.stem)));
        shared::atomic::write_all_atomic(&[(&json_path, &job.sidecar), (&jpeg_path, &jpeg)])?;
        for (path, len) in [(json_path, job.sidecar.len() as u64), (jpeg_path, jpeg.len() as u64)] {
            self.total += len;
            self.saved.push_back((path, len));
        }
        self.enforce_cap();
        Ok(())
    }

    /// Deletes the oldest files until the total is within the cap.
    fn enforce_cap(&mut self) {
        while self.total > self.cap {
            let Some((path, len)) = self.saved.pop_front() else { break };
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("--save-frames: cannot delete {}: {e}", path.display());
            }
            self.total -= len;
        }
    }
}

impl Consumer for FrameSaver {
    fn frame(&mut self, frame: &Classified<'_>) -> anyhow::Result<()> {
        let reasons = self.reasons(frame.result, frame.status.classified);
        self.last_smoothed = Some(frame.result.smoothed_label.clone());
        if self.queue.is_none() || reasons.is_empty() {
            return Ok(());
        }
        let job = self.job(frame, reasons)?;
        // The writer is gone only after a failed write, which it has reported.
        if self.queue.as_ref().is_some_and(|q| q.send(job).is_err()) {
            self.queue = None;
        }
        Ok(())
    }

    /// Sidecars name the model that answered.
    fn model(&mut self, note: &ModelNote<'_>) -> anyhow::Result<()> {
        if let ModelNote::Swapped(info) = note {
            self.labels = info.labels.clone();
            self.model_sha256 = info.hash.clone();
        }
        Ok(())
    }
}

/// The frames still queued are written before the saver is gone.
impl Drop for FrameSaver {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_bad_ones_are_named() {
        assert_eq!(parse_save_when("unknown, change,every:10").unwrap().0, vec![SaveWhen::Unknown, SaveWhen::Change, SaveWhen::Every(10)]);
        assert!(parse_save_when("every:0").unwrap_err().contains("every:N"));
        assert!(parse_save_when("sometimes").unwrap_err().contains("'sometimes'"));
    }

    #[test]
    fn one_saver_per_folder() {
        let dir = tempfile::tempdir().unwrap();
        let open = || FrameSaver::open(dir.path(), parse_save_when("unknown").unwrap(), 1 << 20, vec!["a".into(), "b".into()], "00".into());
        let first = open().unwrap();
        let err = open().err().expect("a second saver refused").to_string();
        assert!(err.contains("another process is saving frames here"), "{err}");
        drop(first);
        assert!(open().is_ok());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "no lock file left among the frames: {left:?}");
    }
}
