//! A training run's folder (`trainer train --out RUN`), and the one place its files are named.

use std::path::{Path, PathBuf};

const CONFIG: &str = "run.json";
const SPLIT_CSV: &str = "split.csv";
const CHECKPOINT: &str = "checkpoint.bin";
const BEST: &str = "best.bin";
const METRICS: &str = "metrics.json";
const PREDICTIONS_CSV: &str = "predictions.csv";
const CURVES_PNG: &str = "curves.png";
const CONFUSION_PNG: &str = "confusion.png";
const LOCK: &str = ".lock";
const CV_FOLDS: &str = "cv";
const REFIT: &str = "refit";
const SLIM_TRUNK: &str = "trunk.onnx";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    root: PathBuf,
}

impl RunFolder {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `run.json`: the settings the run was created with (read by `--resume` and `export`).
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG)
    }

    /// `split.csv`: every photo, its class, split and near-duplicate group.
    pub fn split_csv(&self) -> PathBuf {
        self.root.join(SPLIT_CSV)
    }

    /// `checkpoint.bin`: the state after the last finished epoch (for `--resume`).
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join(CHECKPOINT)
    }

    /// `best.bin`: the best weights so far (what `export` writes).
    pub fn best(&self) -> PathBuf {
        self.root.join(BEST)
    }

    /// `metrics.json`: the run's summary (`--json` prints the same).
    pub fn metrics(&self) -> PathBuf {
        self.root.join(METRICS)
    }

    /// `predictions.csv`: per validation photo, the true and predicted class and probabilities.
    pub fn predictions_csv(&self) -> PathBuf {
        self.root.join(PREDICTIONS_CSV)
    }

    /// `curves.png`: loss and accuracy per epoch.
    pub fn curves_png(&self) -> PathBuf {
        self.root.join(CURVES_PNG)
    }

    /// `confusion.png`: the validation confusion matrix.
    pub fn confusion_png(&self) -> PathBuf {
        self.root.join(CONFUSION_PNG)
    }

    /// `.lock`: held by the one process writing the run ([`crate::lock::RunLock`]).
    pub fn lock(&self) -> PathBuf {
        self.root.join(LOCK)
    }

    /// `cv/fold-K/`: the run folder of cross-validation fold `k` (from 1): its own checkpoints,
    /// so that a killed cross-validation resumes fold by fold.
    pub fn fold(&self, k: usize) -> RunFolder {
        RunFolder::new(self.root.join(CV_FOLDS).join(format!("fold-{k}")))
    }

    /// `refit/`: the run folder of the head's refit on training + validation photos.
    pub fn refit(&self) -> RunFolder {
        RunFolder::new(self.root.join(REFIT))
    }

    /// `trunk.onnx`: the slim trunk `trainer slim --run` distilled for this run (its backbone).
    pub fn slim_trunk(&self) -> PathBuf {
        self.root.join(SLIM_TRUNK)
    }

    /// The reports a finished run leaves, for messages.
    pub fn reports() -> String {
        [METRICS, CURVES_PNG, CONFUSION_PNG, PREDICTIONS_CSV].join(", ")
    }
}
