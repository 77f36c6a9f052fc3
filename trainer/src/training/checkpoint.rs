//! Crash-safe training state. After every epoch the run folder gets `checkpoint.bin` (all that
//! `--resume` needs) and, on improvement, `best.bin` (the weights to export). Both are written
//! atomically, so a `kill -9` at any moment loses at most the epoch in flight.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::model::weights::ModelWeights;

/// Which part of training an epoch belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Head only, on cached trunk features.
    Head,
    /// Through the trunk: `--freeze-first N` or the `--finetune top-block` second stage.
    Trunk,
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
    /// The `linear` head's cross-validation, when it ran.
    pub cross_validation: Option<shared::CrossValidation>,
}

pub fn checkpoint_path(run: &Path) -> PathBuf {
    run.join("checkpoint.bin")
}

pub fn best_path(run: &Path) -> PathBuf {
    run.join("best.bin")
}

pub fn save<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let bytes = postcard::to_stdvec(value).context("serializing checkpoint")?;
    shared::atomic::write_atomic(path, &bytes).with_context(|| format!("{}: cannot write", path.display()))
}

pub fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    postcard::from_bytes(&bytes).with_context(|| format!("{}: damaged or from another version", path.display()))
}
