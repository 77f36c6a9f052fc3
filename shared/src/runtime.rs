//! The one place an exported graph is loaded into tract and run. The export's parity gate, int8
//! calibration, `trainer evaluate` and the edge all go through here, so what the trainer proves
//! and measures is what the board runs.

use std::sync::Arc;

use anyhow::Context;
use image::RgbImage;
use tract_onnx::prelude::*;

/// An ONNX graph planned by tract for one uint8 RGB square `[1, S, S, 3]` at a time.
#[derive(Clone)]
pub struct Graph {
    plan: Arc<TypedRunnableModel>,
    input_size: u32,
}

/// What the classifier graph answers for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// Class probabilities, in the manifest's label order.
    pub probabilities: Vec<f32>,
    /// The open-set score (higher: less like anything trained on), when the graph computes one.
    pub unknown_score: Option<f32>,
}

impl Graph {
    /// Reads, optimizes and plans `onnx` for squares of side `input_size` (the manifest's).
    pub fn load(onnx: &[u8], input_size: u32) -> anyhow::Result<Self> {
        let s = input_size as usize;
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .context("tract cannot read the ONNX graph")?
            .with_input_fact(0, u8::fact([1, s, s, 3]).into())?
            .into_optimized()
            .context("tract cannot optimize the graph")?
            .into_runnable()
            .context("tract cannot plan the graph")?;
        Ok(Self { plan, input_size })
    }

    pub fn input_size(&self) -> u32 {
        self.input_size
    }

    /// Every output of the graph, flattened, for one prepared square.
    pub fn run(&self, rgb: &RgbImage) -> anyhow::Result<Vec<Vec<f32>>> {
        let s = self.input_size;
        anyhow::ensure!(rgb.dimensions() == (s, s), "input is {:?}, the model takes {s}x{s}", rgb.dimensions());
        let input = tract_ndarray::Array4::from_shape_vec((1, s as usize, s as usize, 3), rgb.as_raw().clone())?.into_tensor();
        let outputs = self.plan.run(tvec!(input.into()))?;
        outputs.iter().map(|t| Ok(t.to_plain_array_view::<f32>()?.iter().copied().collect())).collect()
    }

    /// The classifier's outputs: `probabilities`, then `unknown_score` where the graph has it.
    pub fn classify(&self, rgb: &RgbImage) -> anyhow::Result<Outputs> {
        let mut outputs = self.run(rgb)?.into_iter();
        let probabilities = outputs.next().context("the graph has no output")?;
        let unknown_score = outputs.next().and_then(|v| v.first().copied());
        Ok(Outputs { probabilities, unknown_score })
    }
}
