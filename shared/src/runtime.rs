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
    /// For a classifier ([`Graph::load_classifier`]): the number of labels every answer must have.
    classes: Option<usize>,
}

/// One node's time in a run of the plan ([`Graph::profile`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeTime {
    /// The node's name in tract's optimized graph (its ONNX name where the node kept one).
    pub node: String,
    /// The operator tract runs there (`Conv`, `Optimized matmul`, `MaxPool`...).
    pub op: String,
    /// Median wall time over the profiled runs, milliseconds.
    pub ms: f32,
}

/// What the classifier graph answers for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// Class probabilities, in the manifest's label order.
    pub probabilities: Vec<f32>,
    /// The open-set score (higher: less like anything trained on), when the graph computes one.
    pub unknown_score: Option<f32>,
}

/// tract's knobs as this product sets them, per architecture, measured on our graph. They are
/// defaults: the same name in the environment still wins (tract reads it first).
///
/// - `TRACT_DISABLE_DIRECT_SPATIAL` on x86-64: the VGG16 graph at 224 on an AMD EPYC VM (AVX2
///   and FMA, no AVX-512), 3 alternating rounds of `edge bench`: 1.10x faster on one thread (1 032-1 082 ms
///   against 1 126-1 293), 1.02-1.04x on two; the issue that asked for it measured 1.22x / 1.13x
///   on its machine. Not measured on aarch64, so tract's own choice stays there.
const TRACT_KNOBS: &[(&str, &str)] = if cfg!(target_arch = "x86_64") { &[("TRACT_DISABLE_DIRECT_SPATIAL", "true")] } else { &[] };

fn set_tract_knobs() -> anyhow::Result<()> {
    static SET: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let set = SET.get_or_init(|| {
        TRACT_KNOBS.iter().try_for_each(|(name, value)| {
            tract_onnx::tract_core::knobs::set_config_global(name, value).map_err(|e| format!("tract knob {name}={value}: {e}"))
        })
    });
    set.clone().map_err(anyhow::Error::msg)
}

impl Graph {
    /// Reads, optimizes and plans `onnx` for squares of side `input_size` (the manifest's).
    pub fn load(onnx: &[u8], input_size: u32) -> anyhow::Result<Self> {
        set_tract_knobs()?;
        let s = input_size as usize;
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .context("tract cannot read the ONNX graph")?
            .with_input_fact(0, u8::fact([1, s, s, 3]).into())?
            .into_optimized()
            .context("tract cannot optimize the graph")?
            .into_runnable()
            .context("tract cannot plan the graph")?;
        Ok(Self { plan, input_size, classes: None })
    }

    /// Loads a classifier graph and checks its outputs against the manifest: class probabilities
    /// `[1, classes]`, then optionally the open-set score `[1, 1]`. A graph of another shape (a
    /// crafted or mismatched bundle) is refused here, not when its first answer is indexed.
    pub fn load_classifier(onnx: &[u8], input_size: u32, classes: usize) -> anyhow::Result<Self> {
        let mut graph = Self::load(onnx, input_size)?;
        let model = graph.plan.model();
        let outputs = model.outputs.len();
        anyhow::ensure!(
            (1..=2).contains(&outputs),
            "the graph has {outputs} outputs; a classifier has probabilities and at most an open-set score"
        );
        let shape = |i: usize| -> anyhow::Result<Vec<usize>> {
            let fact = model.output_fact(i)?;
            fact.shape.as_concrete().map(<[usize]>::to_vec).with_context(|| format!("output {i} has no fixed shape ({:?})", fact.shape))
        };
        let probabilities = shape(0)?;
        anyhow::ensure!(
            probabilities == [1, classes],
            "the graph answers {probabilities:?} values for the manifest's {classes} labels (expected [1, {classes}])"
        );
        if outputs == 2 {
            let score = shape(1)?;
            anyhow::ensure!(score == [1, 1], "the open-set output has shape {score:?} (expected [1, 1])");
        }
        graph.classes = Some(classes);
        Ok(graph)
    }

    pub fn input_size(&self) -> u32 {
        self.input_size
    }

    /// The graph's input for one prepared square.
    fn input(&self, rgb: &RgbImage) -> anyhow::Result<Tensor> {
        let s = self.input_size;
        anyhow::ensure!(rgb.dimensions() == (s, s), "input is {:?}, the model takes {s}x{s}", rgb.dimensions());
        Ok(tract_ndarray::Array4::from_shape_vec((1, s as usize, s as usize, 3), rgb.as_raw().clone())?.into_tensor())
    }

    /// Every output of the graph, flattened, for one prepared square.
    pub fn run(&self, rgb: &RgbImage) -> anyhow::Result<Vec<Vec<f32>>> {
        let outputs = self.plan.run(tvec!(self.input(rgb)?.into()))?;
        outputs.iter().map(|t| Ok(t.to_plain_array_view::<f32>()?.iter().copied().collect())).collect()
    }

    /// Each node's wall time, median over `runs` runs of `rgb`, in the plan's order: where a
    /// frame's time goes (`edge bench --profile`). Timed around each node's own evaluation; the
    /// timing has a cost of its own, so the sum can exceed an untimed run.
    pub fn profile(&self, rgb: &RgbImage, runs: usize) -> anyhow::Result<Vec<NodeTime>> {
        let input = self.input(rgb)?;
        let mut state = tract_onnx::tract_core::plan::SimpleState::new(&self.plan)?;
        let mut times: Vec<(usize, Vec<f32>)> = Vec::new();
        for _ in 0..runs.max(1) {
            state.run_plan_with_eval(tvec!(input.clone().into()), |context, op_state, node, inputs| {
                let started = std::time::Instant::now();
                let outputs = tract_onnx::tract_core::plan::eval(context, op_state, node, inputs);
                let ms = started.elapsed().as_secs_f32() * 1000.0;
                match times.iter_mut().find(|(id, _)| *id == node.id) {
                    Some((_, samples)) => samples.push(ms),
                    None => times.push((node.id, vec![ms])),
                }
                outputs
            })?;
        }
        let model = self.plan.model();
        Ok(times
            .into_iter()
            .map(|(id, mut samples)| {
                samples.sort_by(f32::total_cmp);
                let node = &model.nodes[id];
                NodeTime { node: node.name.clone(), op: node.op().name().to_string(), ms: samples[samples.len() / 2] }
            })
            .collect())
    }

    /// The classifier's outputs: `probabilities`, then `unknown_score` where the graph has it.
    /// A non-finite value (NaN, infinity) is an error, never an answer.
    pub fn classify(&self, rgb: &RgbImage) -> anyhow::Result<Outputs> {
        let mut outputs = self.run(rgb)?.into_iter();
        let probabilities = outputs.next().context("the graph has no output")?;
        let unknown_score = outputs.next().and_then(|v| v.first().copied());
        if let Some(k) = self.classes {
            anyhow::ensure!(probabilities.len() == k, "the graph answered {} values for {k} labels", probabilities.len());
        }
        anyhow::ensure!(
            probabilities.iter().chain(&unknown_score).all(|v| v.is_finite()),
            "the graph answered a non-finite value (NaN or infinity): {probabilities:?}, unknown score {unknown_score:?}"
        );
        Ok(Outputs { probabilities, unknown_score })
    }
}
