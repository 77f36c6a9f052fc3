//! A narrower trunk for slow boards (`trainer slim`): fewer filters in every convolution
//! ([`prune`]), then, given photos, trained to give the full trunk's features ([`distill`]).
//!
//! The slim trunk is written as a backbone file: `trainer train --backbone SLIM.onnx` then fits
//! the head, calibrates the open-set score and exports through the parity gate as for the full
//! trunk, and the bundle's manifest names the slim trunk by its hash. What slimming did (teacher
//! hash, kept channels, distillation loss) is in the slim file's ONNX metadata.

pub mod distill;
pub mod prune;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::backbone::onnx::{META_DISTILLATION, META_KEEP, META_KEPT_CHANNELS, META_TEACHER_CHANNELS, META_TEACHER_SHA256};
use crate::backbone::{Teacher, Vgg16Weights, block_widths, trunk_macs};
use distill::{DistillHistory, DistillOptions, Targets};
use prune::{BlockKeep, prune};

/// What slimming did, recorded in the slim trunk's metadata and printed by the command.
#[derive(Debug, Clone, Serialize)]
pub struct SlimReport {
    /// The fraction of the teacher's filters asked for in each block, and the slim trunk's
    /// width in each block (of real VGG16's, after rounding to whole filters).
    pub keep: BlockKeep,
    pub width: [f32; 5],
    pub criterion: &'static str,
    pub teacher: String,
    pub teacher_sha256: String,
    pub slim_sha256: String,
    /// Filters kept in each of the 13 convolutions.
    pub channels: Vec<usize>,
    /// Multiply-adds per frame of the teacher's and of the slim trunk, at `input_size`.
    pub input_size: usize,
    pub teacher_macs: u64,
    pub slim_macs: u64,
    /// `None`: pruned only.
    pub distillation: Option<DistillationSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DistillationSummary {
    pub photos: usize,
    pub options: DistillOptions,
    pub history: DistillHistory,
}

/// Feature distillation after pruning: the photos with the teacher's features, and how to train.
pub struct Distillation<'a> {
    pub targets: Targets<'a>,
    pub options: DistillOptions,
    pub device: burn::prelude::Device,
    pub resume: bool,
}

/// Where the distillation of `out` keeps its checkpoint (beside it; removed once `out` is written).
pub fn checkpoint_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".distill-checkpoint");
    out.with_file_name(name)
}

/// Slims `teacher` to `keep` of its filters, distils it when asked, and writes the slim trunk to
/// `out` (atomically).
pub fn slim(
    teacher: &Vgg16Weights,
    keep: BlockKeep,
    input_size: usize,
    out: &Path,
    distillation: Option<Distillation>,
) -> anyhow::Result<SlimReport> {
    let (mut convs, kept) = prune(&teacher.convs, keep);
    let width = block_widths(&convs);
    let teacher_sha256 = teacher.sha256();
    let mut summary = None;
    if let Some(d) = &distillation {
        let fingerprint = format!("{teacher_sha256};{width:?};{};{input_size}", d.targets.images.len());
        let checkpoint = checkpoint_path(out);
        let (distilled, history) =
            distill::distill(&convs, &kept, &d.targets, &d.options, &d.device, (&checkpoint, d.resume, &fingerprint))?;
        convs = distilled;
        summary = Some(DistillationSummary { photos: d.targets.images.len(), options: d.options, history });
    }
    let slimmed_from =
        Teacher { sha256: teacher_sha256.clone(), channels: teacher.channels(), distilled_on: summary.as_ref().map_or(0, |s| s.photos) };
    let slim = Vgg16Weights { convs, convention: teacher.convention, source: String::new(), slimmed_from: Some(slimmed_from) };
    let mut metadata = vec![
        (META_TEACHER_SHA256.to_string(), teacher_sha256.clone()),
        (META_TEACHER_CHANNELS.to_string(), serde_json::to_string(&teacher.channels())?),
        (META_KEEP.to_string(), serde_json::to_string(&width)?),
        (META_KEPT_CHANNELS.to_string(), serde_json::to_string(&kept)?),
    ];
    if let Some(s) = &summary {
        metadata.push((META_DISTILLATION.to_string(), serde_json::to_string(s)?));
    }
    let how = if summary.is_some() { "L1 norm, then feature distillation" } else { "L1 norm" };
    let description = format!("VGG16 trunk slimmed to {width:?} of its filters per block ({how}) from {}", teacher.source);
    crate::backbone::onnx::write_trunk(out, &slim, metadata, &description)
        .with_context(|| format!("{}: cannot write the slim trunk", out.display()))?;
    if distillation.is_some() {
        let checkpoint = checkpoint_path(out);
        std::fs::remove_file(&checkpoint).with_context(|| format!("{}: cannot remove", checkpoint.display()))?;
    }
    Ok(SlimReport {
        keep,
        width,
        criterion: "l1-norm",
        teacher: teacher.source.clone(),
        teacher_sha256,
        slim_sha256: slim.sha256(),
        channels: slim.channels(),
        input_size,
        teacher_macs: trunk_macs(&teacher.channels(), input_size),
        slim_macs: trunk_macs(&slim.channels(), input_size),
        distillation: summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::scaled_shapes;
    use shared::Convention;

    #[test]
    fn the_slim_trunk_is_a_backbone_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("slim.onnx");
        let t = Vgg16Weights::random(11, 1.0 / 8.0, Convention::Caffe);
        let report = slim(&t, [0.5; 5], 224, &out, None).unwrap();
        let loaded = Vgg16Weights::load(&out, None).unwrap();
        assert_eq!(loaded.convention, Convention::Caffe);
        assert_eq!(loaded.sha256(), report.slim_sha256);
        assert_eq!(report.channels, scaled_shapes(1.0 / 16.0).iter().map(|s| s.0).collect::<Vec<_>>());
        assert!(report.slim_macs * 3 < report.teacher_macs, "{report:?}");
    }
}
