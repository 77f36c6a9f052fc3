//! A bundle loaded into tract: verified (hash, version), shape fixed, optimized, ready to run.

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{DynamicImage, RgbImage};
use serde::Serialize;
use shared::answer::{Answer, Thresholds};
use shared::bundle::Provenance;
use shared::compare::argmax;
use shared::runtime::{Graph, Outputs};
use shared::signing::TrustedKeys;
use shared::{Bundle, Manifest, SelfCheck};

pub struct EdgeModel {
    pub manifest: Manifest,
    pub self_checks: Vec<SelfCheck>,
    /// The SHA-256 of the bundle's ONNX, in hex: which model this is, for status and metrics.
    pub onnx_sha256: String,
    /// Who signed the bundle (name and key fingerprint), if anyone.
    pub signed_by: Option<String>,
    graph: Graph,
    /// Where the bundle came from (a path, or an upload for one): what its errors name.
    origin: PathBuf,
}

/// Which model runs, as `/api/status`, `/metrics` and the events say it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub labels: Vec<String>,
    /// The SHA-256 of the bundle's ONNX, as in its manifest.
    pub hash: String,
    pub precision: String,
    /// Who signed the bundle, if anyone, and whether the edge checked that signer against its
    /// trusted keys (`--trusted-keys`).
    pub signed_by: Option<String>,
    pub trusted: bool,
    /// Convolutions run by tract instead of Winograd's algorithm because the memory free when
    /// the model loaded did not hold their kernels (0 normally): slower frames until a restart
    /// with more memory free, as after a swap on a tight box.
    pub convolutions_left_for_memory: usize,
    /// The open-set threshold in force: the bundle's calibrated one, or `--unknown-threshold`
    /// (kept across model swaps); `None` for a model without an open-set score.
    pub unknown_threshold: Option<f32>,
}

/// One image's answer, as `edge classify` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// A class, `unknown` or `unsure` (see `shared::answer`).
    pub label: String,
    /// The most probable class and its probability, whatever the answer.
    pub top_label: String,
    pub probability: f32,
    pub probabilities: Vec<f32>,
    pub unknown_score: Option<f32>,
}

/// Runs tract's matrix products on `threads` threads (1: single-threaded, tract's default).
pub fn set_threads(threads: usize) {
    if threads > 1 {
        tract_linalg::multithread::set_default_executor(tract_linalg::multithread::Executor::multithread(threads));
    }
}

pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl EdgeModel {
    /// Reads and verifies a bundle. With `trusted` keys, only a bundle signed by one of them
    /// loads; without, any intact bundle loads and the log says it is unverified.
    pub fn load(path: &Path, trusted: Option<&TrustedKeys>) -> anyhow::Result<Self> {
        Self::from_vec(Bundle::read_bytes(path)?, path, trusted)
    }

    /// [`EdgeModel::from_bytes`] that frees the bytes before the graph loads: a bundle is mostly
    /// its weights, and the load's peak is when the convolutions are rewritten.
    pub fn from_vec(bytes: Vec<u8>, path: &Path, trusted: Option<&TrustedKeys>) -> anyhow::Result<Self> {
        let bundle = Self::verified(&bytes, path, trusted)?;
        drop(bytes);
        Self::from_bundle(bundle, path)
    }

    /// [`EdgeModel::load`] on a bundle's bytes already in memory; `path` names it in messages.
    pub fn from_bytes(bytes: &[u8], path: &Path, trusted: Option<&TrustedKeys>) -> anyhow::Result<Self> {
        Self::from_bundle(Self::verified(bytes, path, trusted)?, path)
    }

    /// The bundle in `bytes`, intact and, with `trusted` keys, signed by one of them.
    fn verified(bytes: &[u8], path: &Path, trusted: Option<&TrustedKeys>) -> anyhow::Result<Bundle> {
        let mut bundle = Bundle::from_bytes(bytes, path)?;
        match (trusted, bundle.provenance()) {
            (Some(keys), Provenance::Signed { fingerprint, .. }) => {
                // Named from here on as the trusted keys file names the key.
                bundle.check_trust(keys, path)?;
                let signer = bundle.signature.as_ref().map_or("", |s| s.signer.as_str());
                tracing::info!("{}: signed by '{signer}' (key {fingerprint}), a trusted key", path.display());
            }
            (Some(keys), Provenance::Unsigned) => bundle.check_trust(keys, path)?,
            (None, Provenance::Signed { signer, fingerprint }) => tracing::info!(
                "{}: signed by '{signer}' (key {fingerprint}), unverified: no --trusted-keys to check the key against",
                path.display()
            ),
            (None, Provenance::Unsigned) => {
                tracing::info!("{}: unsigned, unverified (--trusted-keys refuses unsigned bundles)", path.display())
            }
        }
        Ok(bundle)
    }

    /// What the status and events say of this model; `trusted`: its signer was checked;
    /// `thresholds`: those it answers by.
    pub fn info(&self, trusted: bool, thresholds: &Thresholds) -> ModelInfo {
        ModelInfo {
            name: self.manifest.name.clone(),
            labels: self.manifest.labels.clone(),
            hash: self.onnx_sha256.clone(),
            signed_by: self.signed_by.clone(),
            trusted,
            precision: self.manifest.precision.to_string(),
            convolutions_left_for_memory: self.graph.convolutions_left_for_memory(),
            unknown_threshold: thresholds.unknown,
        }
    }

    fn from_bundle(bundle: Bundle, origin: &Path) -> anyhow::Result<Self> {
        let onnx_sha256 = bundle.onnx_sha256_hex();
        let signed_by = bundle.signature.as_ref().map(|s| format!("{} (key {})", s.signer, s.fingerprint()));
        let graph = Graph::load_classifier(bundle.onnx, &bundle.manifest)
            .with_context(|| format!("{}: cannot load the model", origin.display()))?;
        Ok(Self { manifest: bundle.manifest, self_checks: bundle.self_checks, onnx_sha256, signed_by, graph, origin: origin.into() })
    }

    pub fn input_size(&self) -> u32 {
        self.manifest.preprocessing.input_size
    }

    /// The shared preprocessing: any photo -> the square RGB input.
    pub fn prepare(&self, image: &DynamicImage) -> RgbImage {
        self.manifest.preprocessing.prepare(image)
    }

    /// The graph's outputs for one prepared square.
    pub fn outputs(&self, rgb: &RgbImage) -> anyhow::Result<Outputs> {
        self.graph.classify(rgb).with_context(|| format!("the model {}", self.origin.display()))
    }

    /// Each node's median time over `runs` runs of one prepared square ([`Graph::profile`]).
    pub fn profile(&self, rgb: &RgbImage, runs: usize) -> anyhow::Result<Vec<shared::runtime::NodeTime>> {
        self.graph.profile(rgb, runs)
    }

    pub fn predict(&self, rgb: &RgbImage, thresholds: &Thresholds) -> anyhow::Result<Prediction> {
        let Outputs { probabilities, unknown_score } = self.outputs(rgb)?;
        let top = argmax(&probabilities);
        let answer = Answer::of(&probabilities, unknown_score, thresholds);
        Ok(Prediction {
            label: answer.label(&self.manifest.labels).to_string(),
            top_label: self.manifest.labels[top].clone(),
            probability: probabilities[top],
            probabilities,
            unknown_score,
        })
    }
}
