//! A bundle loaded into tract: verified (hash, version), shape fixed, optimized, ready to run.

use std::path::Path;

use anyhow::Context;
use image::{DynamicImage, RgbImage};
use serde::Serialize;
use shared::compare::argmax;
use shared::{Bundle, Manifest, SelfCheck};
use tract_onnx::prelude::*;

pub struct EdgeModel {
    pub manifest: Manifest,
    pub self_checks: Vec<SelfCheck>,
    model: std::sync::Arc<TypedRunnableModel>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub label: String,
    pub index: usize,
    pub probability: f32,
    pub probabilities: Vec<f32>,
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
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let bundle = Bundle::read(path)?;
        Self::from_bundle(bundle).with_context(|| format!("{}: cannot load the model", path.display()))
    }

    pub fn from_bundle(bundle: Bundle) -> anyhow::Result<Self> {
        let [n, h, w, c] = bundle.manifest.input_shape();
        let model = tract_onnx::onnx()
            .model_for_read(&mut bundle.onnx.as_slice())
            .context("tract cannot read the ONNX graph")?
            .with_input_fact(0, u8::fact([n, h, w, c]).into())?
            .into_optimized()
            .context("tract cannot optimize the graph")?
            .into_runnable()
            .context("tract cannot plan the graph")?;
        Ok(Self { manifest: bundle.manifest, self_checks: bundle.self_checks, model })
    }

    pub fn input_size(&self) -> u32 {
        self.manifest.preprocessing.input_size
    }

    /// The shared preprocessing: any photo -> the square RGB input.
    pub fn prepare(&self, image: &DynamicImage) -> RgbImage {
        self.manifest.preprocessing.prepare(image)
    }

    /// Probabilities for one prepared square.
    pub fn probabilities(&self, rgb: &RgbImage) -> anyhow::Result<Vec<f32>> {
        let s = self.input_size();
        anyhow::ensure!(rgb.dimensions() == (s, s), "input is {:?}, the model takes {s}x{s}", rgb.dimensions());
        let input = tract_ndarray::Array4::from_shape_vec((1, s as usize, s as usize, 3), rgb.as_raw().clone())?.into_tensor();
        let out = self.model.run(tvec!(input.into()))?;
        Ok(out[0].to_plain_array_view::<f32>()?.iter().copied().collect())
    }

    pub fn predict(&self, rgb: &RgbImage) -> anyhow::Result<Prediction> {
        Ok(self.prediction(self.probabilities(rgb)?))
    }

    pub fn prediction(&self, probabilities: Vec<f32>) -> Prediction {
        let index = argmax(&probabilities);
        Prediction { label: self.manifest.labels[index].clone(), index, probability: probabilities[index], probabilities }
    }
}
