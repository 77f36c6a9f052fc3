//! Crash-safe training state. After every epoch the run folder gets `checkpoint.bin` (all that
//! `--resume` needs) and, on improvement, `best.bin` (the weights to export). Both are written
//! atomically, so a `kill -9` at any moment loses at most the epoch in flight. Each file ends with
//! the SHA-256 of its content: a damaged file (a flipped byte, a copy cut short) is refused with
//! its name, never trained on.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::weights::ModelWeights;

/// Which part of training an epoch belongs to; spelled `head` / `trunk` in every report (the
/// checkpoint stores the variant's index, not its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Head only, on cached trunk features.
    Head,
    /// Through the trunk: `--freeze-first N` or the `--finetune top-block` second stage.
    Trunk,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Head => "head",
            Stage::Trunk => "trunk",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub stage: Stage,
    pub epoch: u32,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub val_loss: f32,
    pub val_accuracy: f32,
    pub seconds: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub stage: Stage,
    /// Epochs of this stage completed.
    pub epochs_done: u32,
    pub weights: ModelWeights,
    pub optimizer: Vec<u8>,
    pub history: Vec<EpochRecord>,
    /// Index into `history` of the best epoch so far.
    pub best: Option<usize>,
    pub epochs_since_best: u32,
    /// Whether this stage finished (converged or ran its epochs).
    pub stage_finished: bool,
    /// The head's cross-validation, when it ran ([`super::final_fit`]); its temperature is
    /// folded into `weights` (and `best.bin`).
    pub cross_validation: Option<shared::CrossValidation>,
}

impl Checkpoint {
    /// The start of `stage` from `weights`, carrying the history (and cross-validation) of the
    /// stage before, if any.
    pub fn fresh(stage: Stage, weights: ModelWeights, carried: Option<&Checkpoint>) -> Self {
        Self {
            stage,
            epochs_done: 0,
            weights,
            optimizer: Vec::new(),
            history: carried.map(|c| c.history.clone()).unwrap_or_default(),
            best: carried.and_then(|c| c.best),
            epochs_since_best: 0,
            stage_finished: false,
            cross_validation: carried.and_then(|c| c.cross_validation.clone()),
        }
    }

    /// The checkpoint a run folder holds, if any (a damaged one is an error naming it).
    pub fn in_folder(run: &crate::run_folder::RunFolder) -> anyhow::Result<Option<Self>> {
        let path = run.checkpoint();
        if path.exists() { load(&path).map(Some) } else { Ok(None) }
    }

    /// The epoch the best weights come from (1 when no epoch was recorded).
    pub fn best_epoch(&self) -> u32 {
        self.best.map_or(1, |b| self.history[b].epoch)
    }
}

pub fn save<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let mut bytes = postcard::to_stdvec(value).context("serializing checkpoint")?;
    let checksum = Sha256::digest(&bytes);
    bytes.extend_from_slice(&checksum);
    shared::atomic::write_atomic(path, &bytes).with_context(|| format!("{}: cannot write", path.display()))
}

pub fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    decode(&bytes, path)
}

/// A checkpoint's bytes: the content, then its SHA-256; `path` names it in errors.
fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], path: &Path) -> anyhow::Result<T> {
    let damaged = || anyhow::anyhow!("{}: damaged (its checksum does not match) or from another version; start a new run", path.display());
    let (content, checksum) = bytes.split_at_checked(bytes.len().saturating_sub(32)).ok_or_else(damaged)?;
    if checksum.len() != 32 || checksum != Sha256::digest(content).as_slice() {
        return Err(damaged());
    }
    postcard::from_bytes(content).with_context(|| format!("{}: damaged or from another version", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_byte_or_a_cut_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.bin");
        let value: (Vec<f32>, String) = ((0..100).map(|i| i as f32).collect(), "weights".into());
        save(&path, &value).unwrap();
        assert_eq!(load::<(Vec<f32>, String)>(&path).unwrap(), value);
        let whole = std::fs::read(&path).unwrap();
        for at in [0, whole.len() / 2, whole.len() - 1] {
            let mut bad = whole.clone();
            bad[at] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            let err = load::<(Vec<f32>, String)>(&path).unwrap_err().to_string();
            assert!(err.contains("checkpoint.bin") && err.contains("damaged"), "byte {at}: {err}");
        }
        std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
        assert!(load::<(Vec<f32>, String)>(&path).is_err());
        std::fs::write(&path, b"").unwrap();
        assert!(load::<(Vec<f32>, String)>(&path).is_err());
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(testkit::fuzz_config())]

            /// A checkpoint with any byte changed or cut short is refused, never half-read.
            #[test]
            fn every_altered_checkpoint_is_refused(damage in testkit::damage()) {
                let value: (Vec<f32>, String, u32) = ((0..64).map(|i| i as f32 * 0.5).collect(), "weights".into(), 7);
                let mut good = postcard::to_stdvec(&value).unwrap();
                let checksum = Sha256::digest(&good);
                good.extend_from_slice(&checksum);
                let (bytes, _) = damage.apply(&good);
                let read = decode::<(Vec<f32>, String, u32)>(&bytes, Path::new("checkpoint.bin"));
                prop_assert_eq!(read.is_ok(), bytes == good);
                if let Ok(back) = read {
                    prop_assert_eq!(back, value);
                }
            }
        }
    }
}
