//! `trainer train`: the train job, its reports, and (unless `--no-export`) the export.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use shared::manifest::OpenSetMethod;
use shared::{Precision, TrainingSummary};

use crate::export::write::ExportLock;
use crate::openset;
use crate::report::summary::{EvalSummary, ExportSummary, RunSummary, SplitCounts};
use crate::report::{self, plots};
use crate::run_folder::RunFolder;
use crate::training::TrainOutcome;
use crate::training::fit::Evaluation;
use crate::training::prepare::Prepared;
use crate::training::{self, TrainConfig};

pub struct TrainRequest {
    pub config: TrainConfig,
    pub out: PathBuf,
    pub resume: bool,
    /// Where the bundle goes (`DIR/NAME`), held from the command's start; `None` skips the export.
    pub export: Option<ExportLock>,
    pub precision: Precision,
    /// Signs the exported bundle.
    pub signing_key: Option<shared::signing::SecretKey>,
    /// Validation photos for the field-conditions suite (0: none).
    pub condition_photos: usize,
}

pub fn run(request: TrainRequest) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    let run = RunFolder::new(&request.out);
    let outcome = training::train(request.config, &run, request.resume)?;
    let mut summary = summarize(&outcome);
    let t = Instant::now();
    summary.conditions = training::conditions::run(&outcome.prepared, &outcome.best, request.condition_photos)?;
    if !summary.conditions.is_empty() {
        summary.seconds.push(("field conditions".into(), t.elapsed().as_secs_f32()));
    }
    report::write_predictions_csv(&outcome.prepared, &outcome.prepared.split.val, &outcome.val.probabilities, &run.predictions_csv())?;
    plots::curves(&outcome.state.history, &run.curves_png())?;
    plots::confusion(
        &outcome.prepared.dataset.classes,
        &outcome.prepared.dataset.classes,
        &summary.val.confusion,
        &|t, p| t == p,
        &run.confusion_png(),
    )?;
    if let Some(lock) = &request.export {
        let t = Instant::now();
        let training = training_summary(
            &outcome.prepared,
            &outcome.val,
            summary.epochs_run as u32,
            summary.best_epoch,
            summary.train_accuracy,
            summary.train_loss,
        );
        let cv = outcome.state.cross_validation.clone();
        let to = ExportTo { lock, precision: request.precision, signing_key: request.signing_key.as_ref() };
        summary.export = Some(export_outcome(&outcome.prepared, &outcome.best, &outcome.val, training, cv, &to)?);
        summary.seconds.push(("export".into(), t.elapsed().as_secs_f32()));
    }
    summary.total_seconds = started.elapsed().as_secs_f32();
    write_metrics(&summary, &run)?;
    Ok(summary)
}

pub fn write_metrics(summary: &RunSummary, run: &RunFolder) -> anyhow::Result<()> {
    let path = run.metrics();
    shared::atomic::write_atomic(&path, &serde_json::to_vec_pretty(summary)?).with_context(|| format!("{}: cannot write", path.display()))
}

fn eval_summary(p: &Prepared, items: &[usize], e: &Evaluation) -> EvalSummary {
    EvalSummary {
        images: items.len(),
        loss: e.loss,
        accuracy: e.accuracy,
        confusion: report::confusion(p.dataset.classes.len(), &p.classes_of(items), &e.probabilities),
    }
}

fn summarize(o: &TrainOutcome) -> RunSummary {
    let p = &o.prepared;
    let best = o.state.best.map(|b| o.state.history[b].clone());
    let count = |items: &[usize], c: usize| p.count_of_class(items, c);
    RunSummary {
        classes: p.dataset.classes.clone(),
        counts: p
            .dataset
            .classes
            .iter()
            .enumerate()
            .map(|(c, name)| SplitCounts {
                class: name.clone(),
                train: count(&p.split.train, c),
                val: count(&p.split.val, c),
                test: count(&p.split.test, c),
            })
            .collect(),
        skipped_files: p.dataset.skipped.clone(),
        near_duplicates_grouped: p.near_duplicates_grouped(),
        head: p.config.head.name().into(),
        backbone: p.backbone.source.clone(),
        backbone_convention: p.backbone.convention.name().into(),
        input_size: p.preprocessing.input_size,
        epochs_run: o.state.history.len(),
        best_epoch: best.as_ref().map_or(0, |b| b.epoch),
        best_stage: best.as_ref().map_or("none", |b| b.stage.name()).into(),
        train_loss: best.as_ref().map_or(f32::NAN, |b| b.train_loss),
        train_accuracy: best.as_ref().map_or(f32::NAN, |b| b.train_accuracy),
        val: eval_summary(p, &p.split.val, &o.val),
        test: o.test.as_ref().map(|t| eval_summary(p, &p.split.test, t)),
        history: o.state.history.clone(),
        refit: p.config.refit,
        cross_validation: o.state.cross_validation.clone(),
        seconds: o.phases.0.clone(),
        total_seconds: 0.0,
        backend: p.config.backend.to_string(),
        device: p.config.device.to_string(),
        export: None,
        conditions: Vec::new(),
    }
}

/// The manifest's account of training: the run's epochs and best training figures, and the
/// best model's evaluation on the validation split.
pub fn training_summary(
    p: &Prepared,
    val: &Evaluation,
    epochs_run: u32,
    best_epoch: u32,
    train_accuracy: f32,
    train_loss: f32,
) -> TrainingSummary {
    TrainingSummary {
        train_images: p.split.train.len() as u32,
        val_images: p.split.val.len() as u32,
        epochs_run,
        best_epoch,
        val_accuracy: val.accuracy,
        val_loss: val.loss,
        train_accuracy,
        train_loss,
        backend: p.config.backend.to_string(),
        device: p.config.device.to_string(),
    }
}

/// The "none of these" output: as references, every training and validation photo and its
/// `--aug-views` views (those the head trains on, so a flower smaller or off centre, as a field
/// camera frames it, still has a near neighbour); as threshold, the score
/// that accepts [`openset::TARGET_ACCEPTANCE`] of the clean photos, each held out with its views
/// and near-duplicate group. With a cross-validated `linear` head the score is lowered by the
/// head's evidence ([`openset::with_evidence`]), each held-out photo's taken from heads that never
/// saw it. `None` when training changed the trunk: the cached features are the frozen trunk's,
/// and would not match the exported graph's. `val_probabilities`: the final model's, in the
/// order of the validation photos, for the parity gate's expected scores.
fn open_set(
    p: &Prepared,
    best: &crate::model::weights::ModelWeights,
    cross_validation: Option<&shared::CrossValidation>,
    val_probabilities: &[Vec<f32>],
) -> anyhow::Result<Option<crate::export::OpenSetExport>> {
    if best.trunk.is_some() {
        tracing::warn!("no open-set score: the trunk was trained, and the score is computed on the frozen trunk's features");
        return Ok(None);
    }
    let items: Vec<usize> = p.split.train.iter().chain(&p.split.val).copied().collect();
    let groups: Vec<usize> = items.iter().map(|&i| p.groups[i]).collect();
    let bank = openset::Bank::new(p.view_descriptors(&items, "open-set features")?, &groups);
    let mut held_out = bank.held_out_distances();
    let evidence = match (best.head_kind, cross_validation) {
        (shared::HeadKind::Linear, Some(cv)) => Some(held_out_evidence(p, &bank.normalized_views(), &p.classes_of(&items), &groups, cv)?),
        _ => None,
    };
    if let Some(evidence) = &evidence {
        held_out.iter_mut().zip(evidence).for_each(|(score, &e)| *score = openset::lowered(*score, e));
    }
    let threshold = openset::threshold(&held_out, openset::TARGET_ACCEPTANCE);
    let val_photos = p.split.val.iter().map(|&i| items.iter().position(|&j| j == i).expect("val is among the references"));
    let expected = val_photos
        .zip(val_probabilities)
        .map(|(k, probabilities)| match evidence {
            Some(_) => openset::with_evidence(bank.score_of_photo(k), probabilities),
            None => bank.score_of_photo(k),
        })
        .collect();
    tracing::info!(
        "open set: {} references ({} photos and their views){}, threshold {threshold:.4} (accepts {:.1}% of the photos held out)",
        bank.references.len(),
        bank.photos(),
        if evidence.is_some() { ", lowered by the head's evidence" } else { "" },
        openset::TARGET_ACCEPTANCE * 100.0
    );
    let method = if evidence.is_some() { OpenSetMethod::KnnCosineBlocks45Evidence } else { OpenSetMethod::KnnCosineBlocks45 };
    let references = bank.into_normalized();
    Ok(Some(crate::export::OpenSetExport { method, references, threshold, target_acceptance: openset::TARGET_ACCEPTANCE, expected }))
}

/// The head's evidence ([`openset::evidence`]) for each photo, from the cross-validation's heads
/// (each photo scored by heads that never saw it nor its near-duplicates), their logits averaged
/// over [`openset::EVIDENCE_DRAWS`] draws of the folds and scaled by the cross-validation's
/// temperature, as the exported head's are. `views`: each photo's normalized descriptors, clean
/// first ([`openset::Bank::normalized_views`]), which are what the `linear` head reads.
fn held_out_evidence(
    p: &Prepared,
    views: &[Vec<&[f32]>],
    classes: &[usize],
    groups: &[usize],
    cv: &shared::CrossValidation,
) -> anyhow::Result<Vec<f32>> {
    let fold_of = |draw: u64| crate::data::split::folds(classes, groups, cv.folds, p.config.seed.wrapping_add(draw));
    let logits = crate::training::calibration::averaged_out_of_fold_logits(
        views,
        classes,
        p.dataset.classes.len(),
        cv.folds,
        p.config.l2,
        openset::EVIDENCE_DRAWS,
        fold_of,
    )?;
    Ok(logits.iter().map(|l| openset::evidence(&crate::training::calibration::tempered_probabilities(l, cv.temperature))).collect())
}

/// Where and how an export is written.
pub struct ExportTo<'a> {
    /// `DIR/NAME`, without extension, held.
    pub lock: &'a ExportLock,
    pub precision: Precision,
    pub signing_key: Option<&'a shared::signing::SecretKey>,
}

/// Exports the best weights of a prepared run to the name `to.lock` holds (`DIR/NAME`). An int8 export calibrates
/// on training images (never validation ones: the gate judges on those).
pub fn export_outcome(
    p: &Prepared,
    best: &crate::model::weights::ModelWeights,
    val: &Evaluation,
    training: TrainingSummary,
    cross_validation: Option<shared::CrossValidation>,
    to: &ExportTo,
) -> anyhow::Result<ExportSummary> {
    // The linear head read 512 pooled block-5 values before it read the 2048-value descriptor.
    let reads = crate::model::Head::input_width(best.head_kind, p.feature_dims());
    let fitted_on = best.head.first().map_or(0, |layer| layer.inputs);
    anyhow::ensure!(
        fitted_on == reads,
        "the run's {} head was fitted on {fitted_on} values per photo, but this trainer's {} head reads {reads}: the run comes from \
         an older trainer; train it again",
        best.head_kind,
        best.head_kind
    );
    if let Some(diff) = p.cross_check_trunk(&p.split.val)? {
        tracing::info!("trunk cross-check: the features training used against Burn's trunk, largest difference {diff:.1e} of their scale");
    }
    let trunk = match &best.trunk {
        Some(records) => records.iter().map(Into::into).collect(),
        None => p.backbone.convs.clone(),
    };
    let input = crate::export::ExportInput {
        name: crate::export::write::model_name(to.lock.out()),
        labels: p.dataset.classes.clone(),
        preprocessing: p.preprocessing,
        normalization: p.normalization,
        backbone: p.backbone.info(p.preprocessing.input_size as usize, &p.backbone_sha256),
        head_kind: best.head_kind,
        trunk,
        head: best.head.clone(),
        precision: to.precision,
        signing_key: to.signing_key,
        calibration: crate::data::split::classes_in_turn(&p.classes_of(&p.split.train), crate::export::quantize::CALIBRATION_IMAGES)
            .into_iter()
            .map(|i| &p.dataset.samples[p.split.train[i]].image)
            .collect(),
        training,
        images: p
            .split
            .val
            .iter()
            .map(|&i| (p.dataset.samples[i].name.clone(), p.dataset.samples[i].class, &p.dataset.samples[i].image))
            .collect(),
        expected: val.probabilities.clone(),
        open_set: open_set(p, best, cross_validation.as_ref(), &val.probabilities)?,
        cross_validation,
    };
    let report = crate::export::export(input, to.lock)?;
    let parity = &report.manifest.parity;
    Ok(ExportSummary {
        onnx: report.onnx_path.display().to_string(),
        bundle: report.bundle_path.display().to_string(),
        bundle_bytes: report.bundle_bytes,
        signed_by: to.signing_key.map(|k| format!("{} (key {})", k.name, k.public().fingerprint())),
        precision: report.manifest.precision.to_string(),
        parity_images: parity.images,
        parity_tolerance: parity.tolerance,
        parity_max_abs_diff: parity.max_abs_diff,
        parity_mean_abs_diff: parity.mean_abs_diff,
        parity_argmax_agreement: parity.argmax_agreement,
        tract_val_accuracy: parity.accuracy,
        unknown_threshold: report.manifest.open_set.as_ref().map(|o| o.threshold),
        unknown_score_max_abs_diff: parity.unknown_score_max_abs_diff,
    })
}
