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

    /// Why a new run may not start here: a run is (`--resume` continues it).
    pub fn holds_a_run(&self) -> String {
        format!("--out {}: already holds a training run; pass --resume to continue it, or choose another --out", self.root.display())
    }

    /// Refuses a folder for a new run where files would be lost or mixed up: one inside a
    /// dataset folder of the run (its plots and CSVs would be read as photos next time), an
    /// existing file, a folder that holds a run already (without `--resume`), or other files
    /// and no run.
    pub fn check_new(&self, data: &[PathBuf], resume: bool) -> Result<(), String> {
        let out = crate::paths::resolved(&self.root);
        if let Some(folder) = data.iter().find(|d| out.starts_with(crate::paths::resolved(d))) {
            return Err(format!(
                "--out {} is inside the dataset folder {}: the run's files would be read as photos by the next run; put runs elsewhere, e.g. runs/NAME",
                self.root.display(),
                folder.display()
            ));
        }
        if self.root.exists() && !self.root.is_dir() {
            return Err(format!("--out {}: a file, not a folder for the run", self.root.display()));
        }
        // Hidden entries (a lock, a `.DS_Store`) do not make a folder someone else's.
        let holds_other_files =
            std::fs::read_dir(&self.root).is_ok_and(|entries| entries.flatten().any(|e| !e.file_name().to_string_lossy().starts_with('.')));
        let slim_under_way = self.slim_trunk().exists() || crate::slim::checkpoint_path(&self.slim_trunk()).exists();
        if resume {
            Ok(())
        } else if self.config().exists() {
            Err(self.holds_a_run())
        } else if slim_under_way {
            Err(format!(
                "--out {}: holds a slim trunk or its interrupted distillation from an earlier `trainer slim --run`; pass --resume to continue it",
                self.root.display()
            ))
        } else if holds_other_files {
            Err(format!(
                "--out {}: the folder holds other files and no training run; choose a new or empty folder (a run writes a dozen files there)",
                self.root.display()
            ))
        } else {
            Ok(())
        }
    }

    /// The reports a finished run leaves, for messages.
    pub fn reports() -> String {
        [METRICS, CURVES_PNG, CONFUSION_PNG, PREDICTIONS_CSV].join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_run_goes_where_it_loses_and_mixes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("daffodil")).unwrap();
        let fresh = RunFolder::new(dir.path().join("runs/new"));
        assert_eq!(fresh.check_new(std::slice::from_ref(&data), false), Ok(()));
        // Inside the data, however spelled (and not yet existing).
        for inside in [data.join("daffodil"), data.join("daffodil/../run"), data.join("nope/../../data/x"), data.clone()] {
            let err = RunFolder::new(&inside).check_new(std::slice::from_ref(&data), false).unwrap_err();
            assert!(err.contains("inside the dataset folder"), "{inside:?}: {err}");
        }
        // A file, and a folder of other things (the data's parent).
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "x").unwrap();
        assert!(RunFolder::new(&file).check_new(&[], false).unwrap_err().contains("a file"));
        let err = RunFolder::new(dir.path()).check_new(&[], false).unwrap_err();
        assert!(err.contains("holds other files and no training run"), "{err}");
        // An empty folder, or one holding a run, is fine (the run's own checks follow).
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        std::fs::write(empty.join(".DS_Store"), "").unwrap();
        assert_eq!(RunFolder::new(&empty).check_new(&[], false), Ok(()), "hidden files only");
        assert_eq!(RunFolder::new(data.join("nope/../../runs/x")).check_new(std::slice::from_ref(&data), false), Ok(()), "outside");
        // A slim run killed before its training began: --resume continues it.
        let slim = RunFolder::new(dir.path().join("slim"));
        std::fs::create_dir(slim.root()).unwrap();
        std::fs::write(slim.slim_trunk(), "").unwrap();
        assert!(slim.check_new(&[], false).unwrap_err().contains("pass --resume"));
        assert_eq!(slim.check_new(&[], true), Ok(()));
        let run = RunFolder::new(dir.path().join("run"));
        std::fs::create_dir(run.root()).unwrap();
        std::fs::write(run.config(), "{}").unwrap();
        assert!(run.check_new(&[], false).unwrap_err().contains("already holds a training run; pass --resume"));
        assert_eq!(run.check_new(&[], true), Ok(()), "--resume continues it");
    }
}
