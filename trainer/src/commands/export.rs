//! `trainer export --run DIR --out models/NAME`: re-export a finished run's best weights.

use std::path::Path;

use crate::report::summary::{ExportSummary, RunSummary};
use crate::training::checkpoint;
use crate::training::job::{self, Phases};

pub fn run(run: &Path, out: &Path) -> anyhow::Result<ExportSummary> {
    let config = job::load_run_config(run)?;
    let best = checkpoint::load(&checkpoint::best_path(run))?;
    let metrics = run.join("metrics.json");
    let summary: serde_json::Value = std::fs::read(&metrics)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| anyhow::anyhow!("{}: missing or unreadable; did `trainer train` finish for this run?", metrics.display()))?;
    // Re-check the data and backbone: the export's parity gate runs on the validation split.
    let p = job::prepare(&config, &mut Phases::default())?;
    let val = p.probabilities(&best, &p.split.val)?;
    let get = |k: &str| summary.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
    let minimal = RunSummary {
        classes: p.dataset.classes.clone(),
        counts: vec![],
        skipped_files: vec![],
        near_duplicates_grouped: 0,
        head: best.head_kind.name().into(),
        backbone: p.backbone.source.clone(),
        backbone_convention: p.backbone.convention.name().into(),
        input_size: p.preprocessing.input_size,
        epochs_run: get("epochs_run") as usize,
        best_epoch: get("best_epoch") as u32,
        best_stage: String::new(),
        train_loss: get("train_loss") as f32,
        train_accuracy: get("train_accuracy") as f32,
        val: crate::report::summary::EvalSummary { images: 0, loss: 0.0, accuracy: 0.0, confusion: vec![] },
        test: None,
        history: vec![],
        seconds: vec![],
        total_seconds: 0.0,
        backend: config.backend.to_string(),
        device: config.device.to_string(),
        export: None,
    };
    super::train::export_outcome(&p, &best, &val, &minimal, out)
}
