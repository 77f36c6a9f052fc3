//! `--save-frames DIR`: keeps the frames worth a second look (refused, unsure, where the answer
//! changed, or every Nth) as JPEGs with a JSON sidecar, in `DIR/<answer>/`: a class-folder tree
//! the trainer reads once a person has moved the wrong ones into the right class. Writes are
//! atomic; the oldest files go beyond `--save-cap`; a full disk stops the saving (said once), never
//! the classifying.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

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

/// A size such as `500MB`, `2GB`, `800k` or plain bytes (clap value parser).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let digits = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: f64 = number.parse().map_err(|_| format!("'{s}': expected a size like 500MB or 2GB"))?;
    let scale = match unit.trim().trim_end_matches("ib").trim_end_matches('b') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("'{s}': unknown unit (use k, MB or GB)")),
    };
    let bytes = number * scale;
    (bytes.is_finite() && bytes >= 1024.0 * 1024.0).then_some(bytes as u64).ok_or_else(|| format!("'{s}': at least 1MB"))
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

pub struct FrameSaver {
    dir: PathBuf,
    when: Vec<SaveWhen>,
    cap: u64,
    labels: Vec<String>,
    model_sha256: String,
    /// Saved files, oldest first, with their sizes: what the cap deletes.
    saved: VecDeque<(PathBuf, u64)>,
    total: u64,
    last_smoothed: Option<String>,
    stopped: bool,
}

impl FrameSaver {
    /// Takes stock of what `dir` already holds (from earlier runs), oldest first.
    pub fn open(dir: &Path, SaveRules(when): SaveRules, cap: u64, labels: Vec<String>, model_sha256: String) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("--save-frames {}: cannot create: {e}", dir.display()))?;
        let mut existing = Vec::new();
        for class in std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("--save-frames {}: {e}", dir.display()))?.flatten() {
            if class.path().is_dir() {
                for file in std::fs::read_dir(class.path())?.flatten() {
                    let meta = file.metadata()?;
                    if meta.is_file() {
                        existing.push((meta.modified()?, file.path(), meta.len()));
                    }
                }
            }
        }
        existing.sort();
        let saved: VecDeque<(PathBuf, u64)> = existing.into_iter().map(|(_, p, n)| (p, n)).collect();
        let total = saved.iter().map(|(_, n)| n).sum();
        let mut saver = Self { dir: dir.into(), when, cap, labels, model_sha256, saved, total, last_smoothed: None, stopped: false };
        saver.enforce_cap();
        Ok(saver)
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

    fn save(&mut self, frame: &Classified<'_>, reasons: Vec<&'static str>) -> anyhow::Result<()> {
        let r = frame.result;
        let folder = self.dir.join(&r.label);
        std::fs::create_dir_all(&folder)?;
        let stem = format!("{}_{:08}", r.timestamp_ms, r.frame);
        let jpeg = crate::jpeg::encode(frame.image)?;
        let sidecar = Sidecar {
            result: r,
            probabilities: &frame.outputs.probabilities,
            labels: &self.labels,
            saved_because: reasons,
            model_sha256: &self.model_sha256,
        };
        let json = serde_json::to_vec_pretty(&sidecar)?;
        // The JPEG (what the trainer reads) is renamed into place last.
        let (jpeg_path, json_path) = (folder.join(format!("{stem}.jpg")), folder.join(format!("{stem}.json")));
        shared::atomic::write_all_atomic(&[(&json_path, &json), (&jpeg_path, &jpeg)])?;
        for (path, len) in [(json_path, json.len() as u64), (jpeg_path, jpeg.len() as u64)] {
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
        if self.stopped || reasons.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.save(frame, reasons) {
            // A full disk or a removed folder: keep classifying, stop saving, say so once.
            self.stopped = true;
            tracing::error!("--save-frames {}: cannot save a frame ({e:#}); saving stopped, classifying goes on", self.dir.display());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_sizes_parse_and_bad_ones_are_named() {
        assert_eq!(parse_save_when("unknown, change,every:10").unwrap().0, vec![SaveWhen::Unknown, SaveWhen::Change, SaveWhen::Every(10)]);
        assert!(parse_save_when("every:0").unwrap_err().contains("every:N"));
        assert!(parse_save_when("sometimes").unwrap_err().contains("'sometimes'"));
        assert_eq!(parse_size("500MB"), Ok(500 << 20));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_size("1.5M"), Ok(3 << 19));
        assert!(parse_size("10k").is_err(), "under 1MB");
        assert!(parse_size("5 parsecs").is_err());
    }
}
