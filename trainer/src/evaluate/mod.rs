//! `trainer evaluate`: a bundle scored through tract (the edge's engine, by the same code) on any
//! class folder. Folders named like one of the bundle's labels are scored for accuracy; any other
//! folder (`other/`, `unknown/`) holds images the model must refuse.

pub mod metrics;
pub mod report;

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::RgbImage;
use rayon::prelude::*;
use shared::Bundle;
use shared::answer::{Answer, Thresholds};
use shared::runtime::{Graph, Outputs};

use crate::data::scan::Skipped;
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
}

pub struct Report {
    pub model: PathBuf,
    pub data: PathBuf,
    pub labels: Vec<String>,
    pub thresholds: Thresholds,
    pub metrics: Metrics,
    pub images: Vec<ImageResult>,
    pub skipped: Vec<Skipped>,
}

/// The folders of `data` with their files; a folder that is missing, empty, or the lack of any
/// folder is an error naming it.
fn folders(data: &Path) -> anyhow::Result<Vec<(String, Vec<PathBuf>)>> {
    anyhow::ensure!(data.is_dir(), "{}: no such folder", data.display());
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

pub fn evaluate(model: &Path, data: &Path, thresholds_override: (Option<f32>, f32)) -> anyhow::Result<Report> {
    let bundle = Bundle::read(model)?;
    let thresholds = Thresholds::for_model(&bundle.manifest, thresholds_override.0, thresholds_override.1);
    let manifest = &bundle.manifest;
    let graph =
        Graph::load(&bundle.onnx, manifest.preprocessing.input_size).with_context(|| format!("{}: cannot load", model.display()))?;
    let folders = folders(data)?;
    let labels = manifest.labels.clone();
    let targets = folders.iter().filter(|(name, _)| labels.contains(name)).count();
    if targets == 0 {
        tracing::warn!("{}: no folder is named like a label ({}); every image counts as one to refuse", data.display(), labels.join(", "));
    }
    let jobs: Vec<(usize, &PathBuf)> = folders.iter().enumerate().flat_map(|(f, (_, files))| files.iter().map(move |p| (f, p))).collect();
    let bar = crate::progress::bar(jobs.len() as u64, "evaluating");
    let results: Vec<Result<ImageResult, Skipped>> = jobs
        .par_iter()
        .map(|&(f, path)| {
            bar.inc(1);
            let skip = |reason: String| Skipped { path: path.clone(), reason };
            let decoded = shared::preprocess::decode_file(path).map_err(|e| skip(e.to_string()))?;
            let square = manifest.preprocessing.prepare(&decoded);
            let outputs = graph.classify(&square).map_err(|e| skip(format!("the model failed on it: {e:#}")))?;
            let answer = Answer::of(&outputs.probabilities, outputs.unknown_score, &thresholds);
            let folder = folders[f].0.clone();
            Ok(ImageResult {
                path: path.clone(),
                target: labels.iter().position(|l| *l == folder),
                folder,
                outputs,
                answer,
                thumbnail: image::imageops::thumbnail(&square, THUMBNAIL, THUMBNAIL),
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
    Ok(Report { model: model.into(), data: data.into(), labels, thresholds, metrics, images, skipped })
}
