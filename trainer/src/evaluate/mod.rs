//! `trainer evaluate`: a bundle scored through tract (the edge's engine, by the same code) on any
//! class folder. Folders named like one of the bundle's labels are scored for accuracy; any other
//! folder (`other/`, `unknown/`) holds images the model must refuse.

pub mod conditions;
pub mod metrics;
pub mod report;

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::RgbImage;
use rayon::prelude::*;
use shared::Bundle;
use shared::answer::{Answer, Thresholds};
use shared::runtime::{Graph, Outputs};

use crate::data::conditions::Condition;
use crate::data::scan::Skipped;
use conditions::{ConditionResult, Outcome};
use metrics::{Metrics, Scored};

/// Side of the thumbnails kept for the contact sheet.
pub const THUMBNAIL: u32 = 96;

pub struct ImageResult {
    pub path: PathBuf,
    pub folder: String,
    pub target: Option<usize>,
    pub outputs: Outputs,
    pub answer: Answer,
    pub thumbnail: RgbImage,
    /// The field-conditions suite on this image (targets only, with `--conditions`): the
    /// outcome under each of [`Condition::ALL`], the original's being the plain evaluation's.
    pub conditioned: Vec<(Condition, Outcome)>,
}

pub struct Report {
    pub model: PathBuf,
    pub data: PathBuf,
    pub labels: Vec<String>,
    pub thresholds: Thresholds,
    pub metrics: Metrics,
    pub images: Vec<ImageResult>,
    pub skipped: Vec<Skipped>,
    /// One row per field condition (`--conditions`), on the target folders' images.
    pub conditions: Option<Vec<ConditionResult>>,
}

/// The folders of `data` with their files; a folder that is missing, empty, or the lack of any
/// folder is an error naming it.
fn folders(data: &Path) -> anyhow::Result<Vec<(String, Vec<PathBuf>)>> {
    anyhow::ensure!(data.exists(), "{}: no such folder", data.display());
    anyhow::ensure!(data.is_dir(), "{}: not a folder (expected DIR/<label>/<image> and e.g. DIR/other/)", data.display());
    let subfolders = shared::folders::subfolders(data).with_context(|| format!("{}: cannot read the folder", data.display()))?;
    anyhow::ensure!(
        !subfolders.is_empty(),
        "{}: no class folders inside (expected DIR/<label>/<image> and e.g. DIR/other/)",
        data.display()
    );
    subfolders
        .into_iter()
        .map(|(name, path)| {
            let files = shared::folders::files(&path).with_context(|| format!("{}: cannot read the folder", path.display()))?;
            anyhow::ensure!(!files.is_empty(), "{}: empty folder", path.display());
            Ok((name, files))
        })
        .collect()
}

/// Scores `model` on `data`; with `with_conditions`, also runs every image of the target folders
/// through the field-conditions suite (15 model runs per image instead of one).
pub fn evaluate(model: &Path, data: &Path, thresholds_override: (Option<f32>, f32), with_conditions: bool) -> anyhow::Result<Report> {
    // The folders first: a mistyped path is said before the model takes seconds to load.
    let folders = folders(data)?;
    let Bundle { manifest, onnx, .. } = Bundle::read(model)?;
    let thresholds = Thresholds::for_model(&manifest, thresholds_override.0, thresholds_override.1);
    let graph = Graph::load_classifier(onnx, &manifest).with_context(|| format!("{}: cannot load", model.display()))?;
    let labels = manifest.labels.clone();
    let targets = folders.iter().filter(|(name, _)| labels.contains(name)).count();
    if targets == 0 {
        tracing::warn!("{}: no folder is named like a label ({}); every image counts as one to refuse", data.display(), labels.join(", "));
    }
    for (name, _) in &folders {
        if let Some(label) = labels.iter().find(|l| *l != name && l.to_lowercase() == name.to_lowercase()) {
            tracing::warn!(
                "{}: folder '{name}' is not the label '{label}' (labels match exactly); its images count as ones to refuse",
                data.display()
            );
        }
    }
    let jobs: Vec<(usize, &PathBuf)> = folders.iter().enumerate().flat_map(|(f, (_, files))| files.iter().map(move |p| (f, p))).collect();
    let bar = crate::progress::bar(jobs.len() as u64, if with_conditions { "evaluating, with field conditions" } else { "evaluating" });
    let results: Vec<Result<ImageResult, Skipped>> = jobs
        .par_iter()
        .enumerate()
        .map(|(index, &(f, path))| {
            bar.inc(1);
            let skip = |reason: String| Skipped { path: path.clone(), reason };
            let failed = |e: anyhow::Error| skip(format!("the model failed on it: {e:#}"));
            let decoded = shared::preprocess::decode_file(path).map_err(|e| skip(e.reason()))?;
            let square = manifest.preprocessing.prepare(&decoded);
            let outputs = graph.classify(&square).map_err(failed)?;
            let answer = Answer::of(&outputs.probabilities, outputs.unknown_score, &thresholds);
            let folder = folders[f].0.clone();
            let target = labels.iter().position(|l| *l == folder);
            let mut conditioned = Vec::new();
            if let (true, Some(class)) = (with_conditions, target) {
                let photo = decoded.to_rgb8();
                for condition in Condition::ALL {
                    let outputs = match condition {
                        Condition::Original => outputs.clone(),
                        _ => graph.classify(&manifest.preprocessing.prepare_rgb(&condition.apply(&photo, index))).map_err(failed)?,
                    };
                    let answer = Some(Answer::of(&outputs.probabilities, outputs.unknown_score, &thresholds));
                    conditioned.push((condition, Outcome { class, probabilities: outputs.probabilities, answer }));
                }
            }
            Ok(ImageResult {
                path: path.clone(),
                target,
                folder,
                outputs,
                answer,
                thumbnail: image::imageops::thumbnail(&square, THUMBNAIL, THUMBNAIL),
                conditioned,
            })
        })
        .collect();
    bar.finish_and_clear();
    let (mut images, mut skipped) = (Vec::new(), Vec::new());
    for r in results {
        match r {
            Ok(image) => images.push(image),
            Err(skip) => {
                tracing::warn!("skipping {}: {}", skip.path.display(), skip.reason);
                skipped.push(skip);
            }
        }
    }
    anyhow::ensure!(!images.is_empty(), "{}: no readable image", data.display());
    let folder_names: Vec<String> = folders.iter().map(|(name, _)| name.clone()).collect();
    let scored: Vec<Scored> = images
        .iter()
        .map(|i| Scored {
            target: i.target,
            folder: folder_names.iter().position(|n| *n == i.folder).expect("a listed folder"),
            probabilities: i.outputs.probabilities.clone(),
            unknown_score: i.outputs.unknown_score,
            answer: i.answer,
        })
        .collect();
    let metrics = metrics::compute(&labels, &folder_names, &scored);
    // Conditions apply to photos with a class to get right: none, no table (not rows of 0%).
    let any_target = images.iter().any(|i| i.target.is_some());
    if with_conditions && !any_target {
        tracing::warn!("--conditions: no folder is named like a label, so there is no photo to transform and score");
    }
    let conditions = (with_conditions && any_target).then(|| condition_results(&images));
    Ok(Report { model: model.into(), data: data.into(), labels, thresholds, metrics, images, skipped, conditions })
}

/// One row per condition, the original first, over the target images.
fn condition_results(images: &[ImageResult]) -> Vec<ConditionResult> {
    Condition::ALL
        .into_iter()
        .map(|condition| {
            let outcomes: Vec<Outcome> =
                images.iter().flat_map(|i| &i.conditioned).filter(|(c, _)| *c == condition).map(|(_, o)| o.clone()).collect();
            conditions::tally(condition, &outcomes)
        })
        .collect()
}
