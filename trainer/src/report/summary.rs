//! The run's machine-readable summary: `metrics.json`, and what `--json` prints.

use serde::Serialize;

use crate::training::checkpoint::EpochRecord;

#[derive(Debug, Clone, Serialize)]
pub struct SplitCounts {
    pub class: String,
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalSummary {
    pub images: usize,
    pub loss: f32,
    pub accuracy: f32,
    /// `confusion[true][predicted]`, classes in `classes` order.
    pub confusion: Vec<Vec<u32>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub onnx: String,
    pub bundle: String,
    pub bundle_bytes: u64,
    /// The signing key's name and fingerprint, when `--sign` signed the bundle.
    pub signed_by: Option<String>,
    /// "f32" or "int8".
    pub precision: String,
    pub parity_images: u32,
    pub parity_tolerance: f32,
    pub parity_max_abs_diff: f32,
    pub parity_mean_abs_diff: f32,
    pub parity_argmax_agreement: f32,
    pub tract_val_accuracy: f32,
    /// The open-set threshold stored in the bundle (`None`: no `unknown_score` output).
    pub unknown_threshold: Option<f32>,
    pub unknown_score_max_abs_diff: Option<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub classes: Vec<String>,
    pub counts: Vec<SplitCounts>,
    pub skipped_files: Vec<crate::data::Skipped>,
    pub near_duplicates_grouped: usize,
    pub head: String,
    pub backbone: String,
    pub backbone_convention: String,
    pub input_size: u32,
    pub epochs_run: usize,
    pub best_epoch: u32,
    pub best_stage: String,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub val: EvalSummary,
    pub test: Option<EvalSummary>,
    pub history: Vec<EpochRecord>,
    /// Whether the exported head was refitted on training + validation photos (then `val` is not
    /// held out; `cross_validation` is).
    pub refit: bool,
    /// The linear head's cross-validation and temperature (`--cv`).
    pub cross_validation: Option<shared::CrossValidation>,
    /// Wall-clock seconds per phase.
    pub seconds: Vec<(String, f32)>,
    pub total_seconds: f32,
    pub backend: String,
    pub device: String,
    pub export: Option<ExportSummary>,
    /// The field-conditions suite on validation photos (`--conditions`; empty when skipped).
    pub conditions: Vec<crate::evaluate::conditions::ConditionResult>,
}
