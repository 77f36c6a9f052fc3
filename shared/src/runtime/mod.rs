//! The one place an exported graph is loaded into tract and run. The export's parity gate, int8
//! calibration, `trainer evaluate` and the edge all go through here, so what the trainer proves
//! and measures is what the board runs.

use std::sync::Arc;

use anyhow::Context;
use image::RgbImage;
use tract_onnx::prelude::*;

pub mod limits;
pub mod memory;
pub mod winograd_op;
pub use limits::{MAX_NODES, ONNX_OPERATORS};

/// An ONNX graph planned by tract for one uint8 RGB square `[1, S, S, 3]` at a time.
#[derive(Clone)]
pub struct Graph {
    plan: Arc<TypedRunnableModel>,
    input_size: u32,
    /// For a classifier ([`Graph::load_classifier`]): the number of labels every answer must have.
    classes: Option<usize>,
    /// Convolutions Winograd's algorithm would have run but left to tract for want of memory.
    left_for_memory: usize,
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

thread_local! {
    /// Set while this thread runs tract inside [`unless_panic`], whose error carries the message.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// What the quiet hook heard of the last guarded panic on this thread (message and place).
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// How many [`unless_panic`] calls are running, on any thread: while there are some, a panic on
/// one of tract's worker threads (its pool with `--threads` above 1) is one of theirs, which the
/// pool hands back to the caller without its message. Panics on other pools' workers (the
/// trainer's) are printed as always: the pool re-raises them without calling the hook again.
static GUARDED_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// How tract names the threads of the pools it makes (`Executor::multithread`: "tract-default-0").
const TRACT_THREAD_PREFIX: &str = "tract-";
/// What the quiet hook heard of the last panic on a worker during a guarded call.
static LAST_WORKER_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Runs `f`, turning a panic inside it (tract asserts on some malformed graphs: a stride of 0, an
/// axis out of range, an impossible allocation size) into an error, so that a bad bundle is
/// refused by name instead of taking the process, or the live swapper's thread, down with it.
/// The panic is not printed as well: the error says it, also when it happened on one of tract's
/// worker threads (it was printed there, raw, past `--log-format json`, until 2026-12-07).
fn unless_panic<T>(what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    use std::sync::atomic::Ordering;
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(std::cell::Cell::get) {
                LAST_PANIC.with(|last| *last.borrow_mut() = Some(info.to_string()));
            } else if std::thread::current().name().is_some_and(|n| n.starts_with(TRACT_THREAD_PREFIX))
                && GUARDED_CALLS.load(Ordering::SeqCst) > 0
            {
                *LAST_WORKER_PANIC.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(info.to_string());
            } else {
                previous(info);
            }
        }));
    });
    let was = GUARDED.with(|g| g.replace(true));
    GUARDED_CALLS.fetch_add(1, Ordering::SeqCst);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED_CALLS.fetch_sub(1, Ordering::SeqCst);
    GUARDED.with(|g| g.set(was));
    result.unwrap_or_else(|_| {
        let on_worker = || LAST_WORKER_PANIC.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let said = LAST_PANIC.with(|last| last.borrow_mut().take()).or_else(on_worker).unwrap_or_else(|| "on another thread".into());
        Err(anyhow::anyhow!("tract failed {what}: {}", said.replace('\n', " ")))
    })
}

impl Graph {
    /// Reads, optimizes and plans `onnx` for squares of side `input_size` (the manifest's). The
    /// graph must have one input and stay within what the trainer writes ([`limits`]: its
    /// operators, window sizes, tensor sizes and multiply-adds). It takes the bytes to free them
    /// once tract has parsed them: at its peak, while the convolutions are rewritten, a VGG16
    /// load then holds its 59 MB of weights once, not three times (bytes, parsed, typed).
    pub fn load(onnx: Vec<u8>, input_size: u32) -> anyhow::Result<Self> {
        set_tract_knobs()?;
        let s = input_size as usize;
        let (plan, rewrite) = unless_panic("on this graph", || {
            let onnx_reader = tract_onnx::onnx();
            limits::check_wire(&onnx)?;
            let proto = onnx_reader.proto_model_for_read(&mut &onnx[..]).context("tract cannot read the ONNX graph")?;
            drop(onnx);
            limits::check_proto(proto.graph.as_ref().context("the ONNX file has no graph")?)?;
            let model = onnx_reader.model_for_proto_model(&proto).context("tract cannot read the ONNX graph")?;
            drop(proto);
            let inputs = model.inputs.len();
            anyhow::ensure!(inputs == 1, "the graph has {inputs} inputs (expected one, the uint8 image [1, {s}, {s}, 3])");
            let typed = model.with_input_fact(0, u8::fact([1, s, s, 3]).into())?.into_typed().context("tract cannot type the graph")?;
            limits::check_typed(&typed, s)?;
            // Decluttered first: the convolutions' weights are constants only then (the rewrite
            // needs them), and into_optimized declutters again to cancel the rewrite's layout changes.
            let (typed, rewrite) = if winograd_op::enabled() {
                let mut typed = typed.into_decluttered().context("tract cannot optimize the graph")?;
                let rewrite = winograd_op::use_winograd(&mut typed).context("cannot rewrite the graph's convolutions")?;
                (typed, Some(rewrite))
            } else {
                (typed, None)
            };
            let plan = typed
                .into_optimized()
                .context("tract cannot optimize the graph")?
                .into_runnable()
                .context("tract cannot plan the graph")?;
            Ok((plan, rewrite))
        })?;
        let left_for_memory = rewrite.map_or(0, |r| r.over_budget);
        if let Some(rewrite) = rewrite.filter(|r| r.over_budget > 0) {
            tracing::warn!(
                "{} of the graph's 3x3 convolutions stay tract's (slower): their Winograd kernels would pass the {} MiB allowed \
                 them (half the memory free as the graph loads, at most {} MiB); {} run by Winograd's algorithm",
                rewrite.over_budget,
                rewrite.budget >> 20,
                winograd_op::MAX_KERNEL_BYTES >> 20,
                rewrite.replaced
            );
        }
        Ok(Self { plan, input_size, classes: None, left_for_memory })
    }

    /// Loads a classifier graph and checks its outputs against the manifest: class probabilities
    /// `[1, labels]` as f32, then the open-set score `[1, 1]` exactly when the manifest has an
    /// open set. A graph of another shape (a crafted or mismatched bundle) is refused here, not
    /// when its first answer is indexed; a graph without the score the manifest promises would
    /// otherwise never answer `unknown`.
    pub fn load_classifier(onnx: Vec<u8>, manifest: &crate::Manifest) -> anyhow::Result<Self> {
        let classes = manifest.labels.len();
        let mut graph = Self::load(onnx, manifest.preprocessing.input_size)?;
        let model = graph.plan.model();
        let outputs = model.outputs.len();
        let expected = if manifest.open_set.is_some() { 2 } else { 1 };
        anyhow::ensure!(
            outputs == expected,
            "the graph has {outputs} outputs; the manifest asks for {expected} (probabilities{})",
            if expected == 2 { " and the open-set score" } else { " only: it has no open set" }
        );
        let fact = |i: usize| -> anyhow::Result<Vec<usize>> {
            let fact = model.output_fact(i)?;
            anyhow::ensure!(fact.datum_type == f32::datum_type(), "output {i} is {:?} (expected f32)", fact.datum_type);
            fact.shape.as_concrete().map(<[usize]>::to_vec).with_context(|| format!("output {i} has no fixed shape ({:?})", fact.shape))
        };
        let probabilities = fact(0)?;
        anyhow::ensure!(
            probabilities == [1, classes],
            "the graph answers {probabilities:?} values for the manifest's {classes} labels (expected [1, {classes}])"
        );
        if outputs == 2 {
            let score = fact(1)?;
            anyhow::ensure!(score == [1, 1], "the open-set output has shape {score:?} (expected [1, 1])");
        }
        graph.classes = Some(classes);
        Ok(graph)
    }

    /// How many 3x3 convolutions run by tract (slower) because the memory free when the graph
    /// loaded did not hold their Winograd kernels ([`winograd_op::Rewrite::over_budget`]).
    pub fn convolutions_left_for_memory(&self) -> usize {
        self.left_for_memory
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
        let input = self.input(rgb)?;
        unless_panic("running the graph", || {
            let outputs = self.plan.run(tvec!(input.into()))?;
            outputs.iter().map(|t| Ok(t.to_plain_array_view::<f32>()?.iter().copied().collect())).collect()
        })
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
        let outputs = Outputs { probabilities, unknown_score };
        outputs.check().map_err(anyhow::Error::msg)?;
        // Below 0 where the head's evidence lowers a near distance (or `1 - cosine` of a photo
        // against itself rounds below 0): kept as the graph answered it, which the parity gate
        // and the self-checks compare.
        Ok(outputs)
    }
}

/// How far a sum of probabilities may stray from 1 (f32 softmax over a few hundred classes stays
/// within 1e-6).
pub const PROBABILITY_SUM_TOLERANCE: f32 = 1e-3;

pub use crate::manifest::UNKNOWN_SCORE_RANGE;

impl Outputs {
    /// [`check_answer`] of these outputs.
    pub fn check(&self) -> Result<(), String> {
        check_answer(&self.probabilities, self.unknown_score)
    }
}

/// Whether `p` and `unknown_score` are answers at all (a graph's, or a self-check's expected
/// ones): probabilities in [0, 1] that sum to 1, and a score in [`UNKNOWN_SCORE_RANGE`]. A graph
/// that answers logits, or a score of -1e30, would otherwise print a confident answer that no
/// threshold can refuse.
pub fn check_answer(p: &[f32], unknown_score: Option<f32>) -> Result<(), String> {
    let sum: f32 = p.iter().sum();
    if !p.iter().all(|v| (0.0..=1.0).contains(v)) || (sum - 1.0).abs() > PROBABILITY_SUM_TOLERANCE {
        return Err(format!("the graph answered values that are not probabilities (each in 0-1, summing to 1): {p:?}"));
    }
    match unknown_score {
        Some(score) if !UNKNOWN_SCORE_RANGE.contains(&score) => {
            Err(format!("the graph answered an open-set score of {score}, outside {UNKNOWN_SCORE_RANGE:?}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(probabilities: &[f32], unknown_score: Option<f32>) -> Outputs {
        Outputs { probabilities: probabilities.to_vec(), unknown_score }
    }

    #[test]
    fn answers_are_probabilities_and_a_score_in_range() {
        assert!(outputs(&[0.25, 0.75], Some(0.3)).check().is_ok());
        assert!(outputs(&[1.0, 0.0], None).check().is_ok());
        assert!(outputs(&[0.5, 0.5 + 0.9 * PROBABILITY_SUM_TOLERANCE], Some(0.0)).check().is_ok(), "rounding");
        assert!(outputs(&[1.0, 0.0], Some(2.0)).check().is_ok(), "1 - cos of opposite directions");
        assert!(outputs(&[1.0, 0.0], Some(-0.2)).check().is_ok(), "a twin of a reference, lowered by the most evidence");
        for bad in [vec![135.4, 7.4], vec![1.0, 1.0], vec![-0.25, 1.25], vec![0.5, 0.49]] {
            let e = outputs(&bad, None).check().unwrap_err();
            assert!(e.contains("not probabilities"), "{bad:?}: {e}");
        }
        for score in [-1e30, -0.21, 2.5] {
            let e = outputs(&[0.5, 0.5], Some(score)).check().unwrap_err();
            assert!(e.contains("open-set score"), "{score}: {e}");
        }
    }

    #[test]
    fn a_panic_inside_is_an_error_that_says_what_and_where() {
        let e = unless_panic("on a test", || -> anyhow::Result<()> { panic!("a stride of 0") }).unwrap_err().to_string();
        assert!(e.starts_with("tract failed on a test: "), "{e}");
        assert!(e.contains("a stride of 0") && e.contains("runtime/mod.rs"), "message and place: {e}");
        assert!(!GUARDED.with(std::cell::Cell::get), "the guard is down again after a panic");
        // Nested: the inner guard leaves the outer one up.
        let inner = unless_panic("outside", || {
            let e = unless_panic("inside", || -> anyhow::Result<()> { panic!("inner") }).unwrap_err();
            assert!(GUARDED.with(std::cell::Cell::get));
            Ok(e.to_string())
        });
        assert!(inner.unwrap().contains("inner"));
        assert_eq!(unless_panic("on nothing", || Ok(7)).unwrap(), 7);
    }

    /// A panic on one of tract's worker threads (its pool, with more than one thread) is said by
    /// the error too, not printed there and lost here; one on another pool's worker is not taken.
    #[test]
    fn a_panic_on_a_tract_worker_thread_is_said_by_the_error() {
        use tract_linalg::multithread::Executor;
        let Executor::MultiThread(tract_pool) = Executor::multithread(2) else { panic!("tract built without its thread pool") };
        let e = unless_panic("on a worker", || -> anyhow::Result<()> {
            tract_pool
                .install(|| assert!(std::thread::current().name().unwrap().starts_with(TRACT_THREAD_PREFIX), "tract names its threads"));
            tract_pool.install(|| panic!("an axis out of range"))
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("tract failed on a worker: "), "{e}");
        assert!(e.contains("an axis out of range") && e.contains("runtime/mod.rs"), "message and place: {e}");
        // Heard once, and only from tract's threads: a panic on another pool is not taken for
        // tract's (it is printed, and the error cannot say it), nor is the one above repeated.
        let other_pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let e =
            unless_panic("again", || -> anyhow::Result<()> { other_pool.install(|| panic!("the trainer's own")) }).unwrap_err().to_string();
        assert_eq!(e, "tract failed again: on another thread");
    }
}
