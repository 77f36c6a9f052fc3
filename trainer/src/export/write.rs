//! Assembles and writes `NAME.onnx` and `NAME.bundle`, after the parity gate passed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::RgbImage;
use prost::Message;
use shared::{
    BackboneInfo, Bundle, HeadKind, Manifest, Normalization, ONNX_UNKNOWN_OUTPUT, OpenSet, OpenSetMethod, Precision, Preprocessing,
    SelfCheck, TrainingSummary,
};

use super::graph::Trunk;
use super::{graph, parity, quantize};
use crate::backbone::ConvWeights;
use crate::model::weights::DenseWeights;

/// At most this many validation images travel in the bundle as self-checks.
pub const SELF_CHECKS: usize = 8;

pub struct ExportInput<'a> {
    pub name: String,
    pub labels: Vec<String>,
    pub preprocessing: Preprocessing,
    pub normalization: Normalization,
    pub backbone: BackboneInfo,
    pub head_kind: HeadKind,
    pub trunk: Vec<ConvWeights>,
    pub head: Vec<DenseWeights>,
    pub precision: Precision,
    /// Training images an int8 export measures its activation ranges on (unused for f32).
    pub calibration: Vec<&'a RgbImage>,
    pub training: TrainingSummary,
    /// Validation images: (name, true class, prepared RGB square).
    pub images: Vec<(String, usize, &'a RgbImage)>,
    /// The trainer's probabilities for `images`.
    pub expected: Vec<Vec<f32>>,
    /// The "none of these" output, if the graph is to have one.
    pub open_set: Option<OpenSetExport>,
    /// The head's cross-validation (its temperature is already in `head`), for the manifest.
    pub cross_validation: Option<shared::CrossValidation>,
    /// Signs the bundle (`--sign KEY`).
    pub signing_key: Option<&'a shared::signing::SecretKey>,
}

/// What the export needs for the `unknown_score` output.
pub struct OpenSetExport {
    /// [`OpenSetMethod::KnnCosineBlocks45`], or with the head's evidence.
    pub method: OpenSetMethod,
    /// Open-set descriptors of the training images, [`crate::openset::normalized`] as the graph
    /// stores them.
    pub references: Vec<Vec<f32>>,
    pub threshold: f32,
    pub target_acceptance: f32,
    /// The trainer's scores for the validation `images`, in their order.
    pub expected: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct ExportReport {
    pub onnx_path: PathBuf,
    pub bundle_path: PathBuf,
    pub bundle_bytes: u64,
    pub manifest: Manifest,
}

/// The one writer of a model name (`DIR/NAME`): a lock on `DIR/.NAME.lock`, taken when the
/// command starts (a training that will export, `trainer export`), so that a second writer of
/// the name is refused at once, not after its work; a second would mix the pair, and take the
/// first's temporaries for a killed export's. The folder is made then too: a path that cannot
/// be written fails before the training, not after it.
pub struct ExportLock {
    out: PathBuf,
    _lock: shared::lock::FileLock,
}

impl ExportLock {
    pub fn acquire(out: &Path) -> anyhow::Result<Self> {
        create_folder(out)?;
        let lock = shared::lock::FileLock::beside(out, |pid| {
            format!("{}: another trainer (pid {pid}) is writing this model; wait for it or choose another name", out.display())
        })?;
        Ok(Self { out: out.to_path_buf(), _lock: lock })
    }

    /// `DIR/NAME`, without extension.
    pub fn out(&self) -> &Path {
        &self.out
    }
}

/// Writes `DIR/NAME.onnx` and `DIR/NAME.bundle` for the name `lock` holds.
pub fn export(input: ExportInput, lock: &ExportLock) -> anyhow::Result<ExportReport> {
    let out = lock.out();
    anyhow::ensure!(!input.images.is_empty(), "export needs validation images for its parity gate");
    let mut manifest = Manifest {
        name: input.name.clone(),
        labels: input.labels.clone(),
        preprocessing: input.preprocessing,
        backbone: input.backbone.clone(),
        head: input.head_kind,
        precision: input.precision,
        training: input.training.clone(),
        parity: shared::ParityReport {
            images: 0,
            max_abs_diff: 0.0,
            mean_abs_diff: 0.0,
            argmax_agreement: 0.0,
            accuracy: 0.0,
            tolerance: 0.0,
            unknown_score_max_abs_diff: None,
        },
        open_set: input.open_set.as_ref().map(|o| OpenSet {
            method: o.method,
            references: o.references.len() as u32,
            threshold: o.threshold,
            target_acceptance: o.target_acceptance,
        }),
        cross_validation: input.cross_validation.clone(),
        created_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        trainer_version: env!("CARGO_PKG_VERSION").into(),
    };
    let size = input.preprocessing.input_size as usize;
    let int8 = match input.precision {
        Precision::F32 => None,
        Precision::Int8 => {
            let equalized = quantize::equalize(&input.trunk);
            let ranges = quantize::calibrate(&equalized, &input.normalization, size, &input.calibration)?;
            Some(quantize::quantize(&equalized, &ranges))
        }
    };
    let build = |manifest: &Manifest| {
        let trunk = int8.as_ref().map_or(Trunk::F32(&input.trunk), Trunk::Int8);
        let outputs = graph::Outputs {
            head_kind: input.head_kind,
            head: &input.head,
            open_set_references: input.open_set.as_ref().map(|o| o.references.as_slice()),
            open_set_evidence: input.open_set.as_ref().is_some_and(|o| o.method == OpenSetMethod::KnnCosineBlocks45Evidence),
        };
        graph::classifier(trunk, outputs, &input.normalization, size, metadata(manifest)).encode_to_vec()
    };
    // Gate on the graph as it will be written; only the parity figures in its metadata change.
    let model = shared::runtime::Graph::load_classifier(build(&manifest), &manifest).context("the exported graph")?;
    let expected_scores = input.open_set.as_ref().map(|o| o.expected.as_slice());
    let gate = parity::check(&model, &input.images, &input.expected, expected_scores, input.precision.gate())?;
    manifest.parity = gate.report.clone();
    let onnx = build(&manifest);

    let checks = self_checks(&input, &gate.tract);

    let onnx_path = with_suffix(out, "onnx");
    let bundle_path = with_suffix(out, "bundle");
    let mut bundle = Bundle::new(manifest.clone(), onnx, checks);
    if let Some(key) = input.signing_key {
        bundle.sign(key);
    }
    for path in [&onnx_path, &bundle_path] {
        let removed = shared::atomic::remove_stale_temporaries(path);
        if removed > 0 {
            tracing::info!("{}: removed {removed} temporaries an interrupted export left behind", path.display());
        }
    }
    // One pair: the bundle (what the edge trusts) is renamed into place last.
    let bundle_bytes = bundle.to_bytes();
    shared::atomic::write_all_atomic(&[(&onnx_path, &bundle.onnx), (&bundle_path, &bundle_bytes)])
        .with_context(|| format!("{}: cannot write the model pair", out.display()))?;
    let bundle_bytes = bundle_bytes.len() as u64;
    Ok(ExportReport { onnx_path, bundle_path, bundle_bytes, manifest })
}

/// Refuses an export path that names a folder (`models/` would write `./models.bundle`): the
/// path is `DIR/NAME`, without extension. Checked before any work.
pub fn check_destination(out: &Path) -> Result<(), String> {
    if out.as_os_str().to_string_lossy().ends_with('/') || out.is_dir() || out.file_name().is_none() {
        return Err(format!(
            "{}: a folder; an export path names the model without extension (models/NAME writes models/NAME.onnx and models/NAME.bundle)",
            out.display()
        ));
    }
    // NAME is the model's name in its manifest, which the edge checks as any bundle's.
    let name = model_name(out);
    shared::manifest::check_name("the model's name", &name, shared::manifest::MAX_LABEL_BYTES)
        .map_err(|problem| format!("{}: {problem}", shared::text::escaped(&out.display().to_string())))
}

/// The model's name in its manifest: the export path's file name.
pub fn model_name(out: &Path) -> String {
    out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
}

/// Creates the folder an export writes into.
fn create_folder(out: &Path) -> anyhow::Result<()> {
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))
}

fn with_suffix(base: &Path, ext: &str) -> PathBuf {
    let mut name = base.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{ext}"));
    base.with_file_name(name)
}

/// Up to [`SELF_CHECKS`] images, taking the classes in turn, with tract's probabilities: the
/// device must compute what tract computed here (which the gate tied to the trainer's).
fn self_checks(input: &ExportInput, tract: &[shared::runtime::Outputs]) -> Vec<SelfCheck> {
    let classes: Vec<usize> = input.images.iter().map(|(_, class, _)| *class).collect();
    crate::data::split::classes_in_turn(&classes, SELF_CHECKS)
        .into_iter()
        .map(|i| {
            let (name, class, image) = &input.images[i];
            SelfCheck {
                name: shared::manifest::printable_name(name, shared::manifest::MAX_PATH_NAME_BYTES),
                label: input.labels[*class].clone(),
                rgb: image.as_raw().clone(),
                expected: tract[i].probabilities.clone(),
                expected_unknown_score: tract[i].unknown_score,
            }
        })
        .collect()
}

/// `metadata_props`: what any ONNX runtime user needs, readable without our bundle format.
fn metadata(m: &Manifest) -> Vec<(String, String)> {
    vec![
        ("labels".into(), serde_json::to_string(&m.labels).expect("labels serialize")),
        ("input_layout".into(), "NHWC uint8 RGB, 0-255".into()),
        ("input_size".into(), m.preprocessing.input_size.to_string()),
        ("resize".into(), m.preprocessing.resize.name().into()),
        ("resize_filter".into(), "bilinear (triangle)".into()),
        ("backbone".into(), m.backbone.name.clone()),
        ("backbone_weights_sha256".into(), m.backbone.weights_sha256.clone()),
        ("input_convention".into(), m.backbone.convention.name().into()),
        ("head".into(), m.head.name().into()),
        ("precision".into(), m.precision.name().into()),
        ("val_accuracy".into(), m.training.val_accuracy.to_string()),
        ("unknown_output".into(), m.open_set.as_ref().map_or("none".into(), |o| format!("{ONNX_UNKNOWN_OUTPUT} ({})", o.method))),
        ("unknown_threshold".into(), m.open_set.as_ref().map_or("none".into(), |o| o.threshold.to_string())),
        ("manifest".into(), serde_json::to_string(m).expect("manifest serializes")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_path_names_a_model_not_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_destination(&dir.path().join("models/daffodil")).is_ok());
        for folder in [dir.path().to_path_buf(), PathBuf::from("models/"), PathBuf::from("/")] {
            assert!(check_destination(&folder).unwrap_err().contains("a folder"), "{folder:?}");
        }
    }
}
