//! The whole `trainer train` job, as phases with one input and one output each:
//! prepare ([`super::prepare`]) -> features and fit head ([`super::head`]) -> fit trunk
//! ([`super::trunk`]) -> cross-validation and refit ([`super::final_fit`]) -> evaluate.
//! Every phase checkpoints in the run folder; a resumed run skips what is done.

use anyhow::{Context, bail};

use super::checkpoint::{self, Checkpoint, Stage};
use super::config::TrainConfig;
use super::fit::Evaluation;
use super::head::{self, HeadData, HeadFit, Schedule};
use super::prepare::{Phases, Prepared, prepare};
use crate::data;
use crate::model::weights::ModelWeights;
use crate::run_folder::RunFolder;

/// What `trainer train` produced.
pub struct TrainOutcome {
    pub prepared: Prepared,
    pub best: ModelWeights,
    pub state: Checkpoint,
    pub val: Evaluation,
    pub test: Option<Evaluation>,
    pub phases: Phases,
    /// The run folder's lock, held until the caller has written its reports and the export.
    pub lock: crate::lock::RunLock,
}

/// Reads the configuration a run folder was created with (for `--resume` and `export`).
pub fn load_run_config(run: &RunFolder) -> anyhow::Result<TrainConfig> {
    let path = run.config();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read; is {} a trainer run folder?", path.display(), run.root().display()))?;
    let config: TrainConfig = serde_json::from_str(&text).with_context(|| format!("{}: not a run configuration", path.display()))?;
    // Runs made before paths were stored absolute hold them relative to the working folder,
    // where they are read now as then.
    Ok(config.with_absolute_paths())
}

pub fn train(config: TrainConfig, run: &RunFolder, resume: bool) -> anyhow::Result<TrainOutcome> {
    let config = if resume {
        let mut saved = load_run_config(run)?;
        // How long to go on is the one thing a resumed run may change.
        saved.epochs = config.epochs;
        saved.patience = config.patience;
        saved.finetune_epochs = config.finetune_epochs;
        if saved != config {
            tracing::warn!(
                "--resume: continuing with the settings saved in {} (the command line's differ; only --epochs, --patience and --finetune-epochs may change)",
                run.config().display()
            );
        }
        saved
    } else {
        config
    };
    let mut phases = Phases::default();
    // The data and backbone are checked before the run folder gets a file: a run that fails
    // here (a missing folder, --strict on a bad photo) leaves nothing that looks like a run.
    // A resumed run keeps its split, whatever the folders gained meanwhile.
    if resume && run.checkpoint().exists() && !run.split_csv().exists() {
        bail!(
            "{}: missing; a resumed run keeps the split it started with (a new one would move photos between training and validation)",
            run.split_csv().display()
        );
    }
    let split_from = (resume && run.split_csv().exists()).then_some(run);
    let p = prepare(&config, split_from, &mut phases)?;
    std::fs::create_dir_all(run.root()).with_context(|| format!("{}: cannot create the run folder", run.root().display()))?;
    let lock = crate::lock::RunLock::acquire(run)?;
    if !resume {
        // `RunFolder::check_new` said so before any work; here, under the lock, a run another
        // process began since is caught.
        if run.checkpoint().exists() {
            return Err(shared::usage::UsageError(run.holds_a_run()).into());
        }
        let json = serde_json::to_vec_pretty(&config)?;
        shared::atomic::write_atomic(&run.config(), &json).with_context(|| format!("{}: cannot write", run.root().display()))?;
    }
    shared::logging::say(&p.split_table());
    if split_from.is_none() {
        data::split_file::write(&p.dataset, &p.split, &p.groups, &run.split_csv())?;
    }

    let mut state: Option<Checkpoint> = if resume { Checkpoint::in_folder(run)? } else { None };
    if let Some(s) = &state {
        tracing::info!("resuming: {} stage, {} epochs done", s.stage.name(), s.epochs_done);
    }

    // The head on cached features (unless training through the trunk from the start).
    if config.freeze_first.is_none() && state.as_ref().is_none_or(|s| s.stage == Stage::Head && !s.stage_finished) {
        let data = phases.time("features", || HeadData::of(&p, &p.split.train, &p.split.val))?;
        let done = phases.time("train head", || {
            let job = HeadFit { train: data.train(), val: data.val(), schedule: Schedule::ChooseOnValidation, run, resume: state.take() };
            head::fit(&p, job)
        })?;
        state = Some(done);
    }

    // Through the trunk (--freeze-first N, or --finetune top-block after the head).
    if config.trains_trunk() && state.as_ref().is_none_or(|s| !(s.stage == Stage::Trunk && s.stage_finished)) {
        state = Some(phases.time("train trunk", || super::trunk::fit(&p, state.take(), run))?);
    }
    let mut state = state.context("nothing to train: the run is already complete")?;

    // Cross-validation and refit of a head on the frozen trunk (a trained trunk has no cached
    // features to repeat its fit on).
    if !config.trains_trunk() {
        state = phases.time("cross-validation and refit", || super::final_fit::run(&p, state, run))?;
    } else if config.cv_folds >= 2 || config.refit {
        tracing::info!("no cross-validation or refit: they repeat the head's fit on cached features, and this run trains the trunk");
    }

    let best: ModelWeights = checkpoint::load(&run.best())?;
    let val = phases.time("evaluate", || p.probabilities(&best, &p.split.val))?;
    let test = if p.split.test.is_empty() { None } else { Some(phases.time("evaluate", || p.probabilities(&best, &p.split.test))?) };
    Ok(TrainOutcome { prepared: p, best, state, val, test, phases, lock })
}
