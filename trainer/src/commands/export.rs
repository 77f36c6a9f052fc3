//! `trainer export --run DIR --out models/NAME [--precision int8]`: re-export a finished run's
//! best weights.

use crate::device::{self, Backend, DeviceSpec};
use crate::report::summary::ExportSummary;
use crate::run_folder::RunFolder;
use crate::training::checkpoint;
use crate::training::job;
use crate::training::prepare::{self, Phases};

pub fn run(run: &RunFolder, to: &super::train::ExportTo) -> anyhow::Result<ExportSummary> {
    let mut config = job::load_run_config(run)?;
    // Exporting trains nothing: a run trained with libtorch (CPU or CUDA) exports on the default
    // build's engine, which computes the same head on the same cached features.
    if config.backend == Backend::Libtorch && !device::libtorch_available() {
        tracing::info!("the run trained with libtorch on {}; this build has no libtorch: exporting on the CPU with flex", config.device);
        (config.backend, config.device) = (Backend::Flex, DeviceSpec::Cpu);
    }
    let best = checkpoint::load(&run.best())?;
    let metrics = run.metrics();
    let summary: serde_json::Value = std::fs::read(&metrics)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| anyhow::anyhow!("{}: missing or unreadable; did `trainer train` finish for this run?", metrics.display()))?;
    // The run's classes, in its order: a class folder added since is not one the weights know.
    if let Some(classes) = summary.get("classes").and_then(|c| serde_json::from_value::<Vec<String>>(c.clone()).ok()) {
        config.classes = Some(classes);
    }
    // Re-check the data and backbone, with the split the run trained on (its split.csv): the
    // export's parity gate runs on those validation photos.
    let p = prepare::prepare(&config, Some(run), &mut Phases::default())?;
    let val = p.probabilities(&best, &p.split.val)?;
    let get = |k: &str| summary.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
    let training = super::train::training_summary(
        &p,
        &val,
        get("epochs_run") as u32,
        get("best_epoch") as u32,
        get("train_accuracy") as f32,
        get("train_loss") as f32,
    );
    // The cross-validation ran with the head's fit; it travels in the last checkpoint.
    let state: checkpoint::Checkpoint = checkpoint::load(&run.checkpoint())?;
    super::train::export_outcome(&p, &best, &val, training, state.cross_validation, to)
}
