//! After the head is chosen on the validation photos: its K-fold cross-validation on training +
//! validation photos (`--cv K`), its refit on all of them (the default; `--no-refit` keeps the
//! chosen head), and the temperature fitted on the folds' held-out predictions, folded into the
//! final weights. A fold and the refit are the head phases ([`super::head`]) on other photos,
//! each in its own run folder (`cv/fold-K/`, `refit/`), so a killed run resumes fold by fold.
//!
//! Gradient heads (`gap`, `flatten`) train for the epoch count chosen on validation in every fold
//! and in the refit: no fold ever sees its held-out photos, not even to stop early.

use shared::{CrossValidation, HeadKind};

use super::calibration;
use super::checkpoint::{self, Checkpoint};
use super::head::{self, HeadData, HeadFit, Photos};
use super::prepare::Prepared;
use crate::run_folder::RunFolder;

/// Runs what is left of cross-validation and refit for the finished head stage `state`, and
/// returns the run's final checkpoint (its `best.bin` rewritten to match).
pub fn run(p: &Prepared, mut state: Checkpoint, run: &RunFolder) -> anyhow::Result<Checkpoint> {
    let config = &p.config;
    if state.cross_validation.is_some() {
        // Finished before: the checkpoint is written first, so best.bin may lag behind it.
        checkpoint::save(&run.best(), &state.weights)?;
        return Ok(state);
    }
    if config.cv_folds < 2 && !config.refit {
        return Ok(state);
    }
    let epochs = state.best_epoch();
    let items: Vec<usize> = p.split.train.iter().chain(&p.split.val).copied().collect();
    let data = HeadData::of(p, &items, &[])?;
    let all = data.train();
    let cross_validation = if config.cv_folds >= 2 {
        let groups: Vec<usize> = items.iter().map(|&i| p.groups[i]).collect();
        let cv = cross_validate(p, &all, &groups, epochs, run)?;
        tracing::info!(
            "{}-fold cross-validation: accuracy {:.4} +- {:.4}; temperature {:.3} (ECE {:.4} -> {:.4})",
            cv.folds,
            cv.mean_accuracy,
            cv.spread,
            cv.temperature,
            cv.ece_before,
            cv.ece_after
        );
        Some(cv)
    } else {
        None
    };
    let weights = if config.refit {
        let folder = run.refit();
        let refit = head::fit(p, HeadFit::fixed(all.clone(), epochs, &folder)?)?;
        tracing::info!("head refitted on {} training + validation photos ({epochs} epoch(s))", items.len());
        refit.weights
    } else {
        checkpoint::load(&run.best())?
    };
    state.weights = match &cross_validation {
        Some(cv) => weights.with_temperature(cv.temperature),
        None => weights,
    };
    state.cross_validation = cross_validation;
    checkpoint::save(&run.checkpoint(), &state)?;
    checkpoint::save(&run.best(), &state.weights)?;
    Ok(state)
}

/// K-fold cross-validation of the head on `all` (near-duplicate `groups` kept in one fold).
fn cross_validate(p: &Prepared, all: &Photos, groups: &[usize], epochs: u32, run: &RunFolder) -> anyhow::Result<CrossValidation> {
    let k = p.config.cv_folds;
    let fold_of = crate::data::split::folds(&all.classes, groups, k, p.config.seed);
    let logits = match p.config.head {
        // Solved outright and independent: the folds run side by side.
        HeadKind::Linear => {
            let samples = calibration::samples(&all.views, &all.classes, &fold_of);
            calibration::out_of_fold_logits(&samples, p.dataset.classes.len(), k, p.config.l2)?
        }
        HeadKind::Gap | HeadKind::Flatten => {
            let mut logits = vec![Vec::new(); all.views.len()];
            for fold in 0..k {
                let (held_out, kept): (Vec<usize>, Vec<usize>) = (0..all.views.len()).partition(|&i| fold_of[i] == fold);
                let folder = run.fold(fold + 1);
                let fitted = head::fit(p, HeadFit::fixed(all.subset(&kept), epochs, &folder)?)?;
                let held = all.subset(&held_out);
                for (i, l) in held_out.iter().zip(p.head_logits(&fitted.weights, &held.clean())) {
                    logits[*i] = l;
                }
            }
            logits
        }
    };
    let accuracy = calibration::fold_accuracy(&logits, &all.classes, &fold_of, k);
    Ok(calibration::summarize(&logits, &all.classes, accuracy))
}
