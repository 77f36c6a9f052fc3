//! The graph's 3x3 convolutions run by Winograd's algorithm ([`crate::winograd`]) instead of
//! tract's im2col and matrix product: about 2.3 times fewer multiply-adds, every frame.
//!
//! [`use_winograd`] rewrites a typed graph before tract plans it: each float32 convolution with a
//! 3x3 kernel, stride 1, no dilation, one group, one pixel of padding on every side, and constant
//! weights and bias (every convolution of the VGG16 trunk, and nothing else) becomes
//! `[N, C, H, W] -> channels last -> WinogradConv3x3 -> channels first`, and each max pool that
//! such a convolution feeds pools channels last too. tract's own passes then cancel the layout
//! changes between them (across the ReLU): the trunk runs channels last from its first
//! convolution to its last pool, without a transposed copy of its maps between layers (those
//! copies took 9% of a frame). Any other convolution, int8 ones included, stays tract's.
//!
//! `FLOWERCAM_CONV=im2col` in the environment leaves every convolution to tract (to compare, or
//! where the transformed kernels' memory, 4x the weights', is too much). The rewrite is the
//! default on x86-64 and aarch64 only ([`enabled`]).
//!
//! A bundle may come from anywhere ([`super::limits`]), and what the rewrite allocates grows with
//! the weights and the channels: it takes a convolution only within [`MAX_CHANNELS`] and
//! [`MAX_KERNEL_BYTES`], and leaves the rest to tract, whose memory the limits bound. On a box
//! short of memory the kernels also stay within half of what is free ([`kernel_budget`]).

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool};
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::tract_linalg::multithread::{Executor, current_tract_executor};

use crate::winograd::{WinogradConv, with_thread_scratch};

/// The environment variable that turns the rewrite off, and the value that does.
pub const CONV_ENV: &str = "FLOWERCAM_CONV";
pub const CONV_IM2COL: &str = "im2col";

/// The most input or output channels of a convolution the rewrite takes: four times VGG16's
/// widest (512). A block's buffers grow with them (its tiles, 256 or one row of tiles for the
/// deep layers, x 36 positions x the channels, twice a thread: 75 MB at 2048 channels and 256
/// tiles), and 36 MB of weights can declare a million input channels over a one-pixel map.
pub const MAX_CHANNELS: usize = 2048;
/// The most bytes the transformed kernels of one graph may take together: about twice the VGG16
/// trunk's (236 MB, 4x its weights, at any input size). A bundle carrying 1 GiB of 3x3 kernels
/// would otherwise have the rewrite ask for 4 GiB, and an allocation that fails aborts the box.
pub const MAX_KERNEL_BYTES: usize = 512 << 20;

/// A 3x3 convolution, stride 1, padding 1, plus bias, on channels-last `[N, H, W, C]` float32
/// maps (see [`use_winograd`]).
#[derive(Debug, Clone)]
pub struct WinogradConv3x3 {
    conv: Arc<WinogradConv>,
}

/// Two nodes are the same operator only when they share the same transformed kernels.
impl PartialEq for WinogradConv3x3 {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.conv, &other.conv)
    }
}
impl Eq for WinogradConv3x3 {}

impl Op for WinogradConv3x3 {
    fn name(&self) -> StaticName {
        "WinogradConv3x3".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{} -> {} channels, F(4x4, 3x3)", self.conv.in_channels(), self.conv.out_channels())])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for WinogradConv3x3 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = inputs[0].to_plain_array_view::<f32>()?;
        let &[n, h, w, c] = x.shape() else { bail!("WinogradConv3x3 takes [N, H, W, C], not {:?}", x.shape()) };
        ensure!(c == self.conv.in_channels(), "WinogradConv3x3 for {} channels got {c}", self.conv.in_channels());
        let x = x.as_standard_layout();
        let x = x.as_slice().context("a contiguous map")?;
        // On tract's threads (`edge --threads`), as its own matrix products are.
        let executor = current_tract_executor();
        let k = self.conv.out_channels();
        let mut out = vec![0f32; n * h * w * k];
        for (image, out) in x.chunks_exact(h * w * c).zip(out.chunks_exact_mut(h * w * k)) {
            match &executor {
                Executor::SingleThread => with_thread_scratch(|scratch| self.conv.forward_into(image, h, w, scratch, out)),
                Executor::MultiThread(pool) => pool.install(|| self.conv.forward_parallel_into(image, h, w, out)),
                Executor::RayonGlobal => self.conv.forward_parallel_into(image, h, w, out),
            }
        }
        let out = tract_ndarray::Array4::from_shape_vec((n, h, w, k), out)?;
        Ok(tvec!(out.into_tensor().into_tvalue()))
    }
}

impl TypedOp for WinogradConv3x3 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs[0];
        ensure!(input.datum_type == f32::datum_type() && input.rank() == 4, "WinogradConv3x3 takes [N, H, W, C] float32");
        let mut shape: TVec<TDim> = input.shape.iter().cloned().collect();
        shape[3] = self.conv.out_channels().to_dim();
        Ok(tvec!(f32::fact(shape)))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        // What the convolution it replaces costs: the figure users compare between graphs.
        let pixels: TDim = inputs[0].shape.iter().take(3).product();
        Ok(tvec!((Cost::FMA(f32::datum_type()), pixels * (9 * self.conv.in_channels() * self.conv.out_channels()))))
    }

    as_op!();
}

/// The value of [`CONV_ENV`] that asks for the rewrite where it is not the default.
pub const CONV_WINOGRAD: &str = "winograd";

/// Whether the rewrite runs unless [`CONV_ENV`] says otherwise: where the `gemm` crate has SIMD
/// kernels for its matrix products (x86-64, aarch64). On 32-bit Arm (armv7: Raspberry Pi OS
/// 32-bit) it has only portable code, against tract's NEON kernels: not measured on a board, so
/// tract's own convolutions stay there (`FLOWERCAM_CONV=winograd` to compare).
const BY_DEFAULT: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Whether this process rewrites convolutions ([`CONV_ENV`], else [`BY_DEFAULT`]).
pub fn enabled() -> bool {
    chosen(std::env::var(CONV_ENV).ok().as_deref())
}

fn chosen(setting: Option<&str>) -> bool {
    match setting {
        Some(CONV_IM2COL) => false,
        Some(CONV_WINOGRAD) => true,
        None => BY_DEFAULT,
        Some(other) => {
            // A typo would otherwise compare the default with itself, unsaid.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| tracing::warn!("{CONV_ENV}={other:?} is neither {CONV_IM2COL} nor {CONV_WINOGRAD}: ignored"));
            BY_DEFAULT
        }
    }
}

/// What [`use_winograd`] did to a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite {
    /// Convolutions now run by [`WinogradConv3x3`].
    pub replaced: usize,
    /// Convolutions it could have taken whose kernels did not fit in the budget: tract's still.
    pub over_budget: usize,
    /// The bytes all transformed kernels were allowed ([`kernel_budget`]).
    pub budget: usize,
}

/// Replaces every convolution that Winograd's F(4x4, 3x3) computes exactly (up to rounding) with
/// [`WinogradConv3x3`], and the max pools they feed with channels-last ones. Within
/// [`MAX_CHANNELS`] and a budget for all transformed kernels ([`kernel_budget`]): in the graph's
/// order, each convolution whose kernels still fit in what is left; the others stay tract's.
pub fn use_winograd(model: &mut TypedModel) -> TractResult<Rewrite> {
    use_winograd_within(model, kernel_budget(super::memory::available()))
}

/// The most bytes of transformed kernels for a graph loaded when `available` bytes of memory
/// are ([`super::memory::available`]): half of them, and never past [`MAX_KERNEL_BYTES`]. The
/// other half is for the rest of the load and of the box: tract's buffers, the frames, and on a
/// box that swaps models the graph still running. On a board with 1 GB, a second VGG16 graph
/// loading beside the first keeps only its first convolutions' kernels (the widest, last ones
/// stay tract's: slower, in a quarter of the memory) rather than waking the out-of-memory killer.
fn kernel_budget(available: Option<u64>) -> usize {
    available.map_or(MAX_KERNEL_BYTES, |bytes| usize::try_from(bytes / 2).unwrap_or(usize::MAX).min(MAX_KERNEL_BYTES))
}

/// [`use_winograd`] with `kernel_bytes` for all transformed kernels.
fn use_winograd_within(model: &mut TypedModel, mut kernel_bytes: usize) -> TractResult<Rewrite> {
    let mut rewrite = Rewrite { replaced: 0, over_budget: 0, budget: kernel_bytes };
    for id in model.eval_order()? {
        let node = &model.nodes[id];
        let op: Box<dyn TypedOp> = if let Some(conv) = node.op_as::<Conv>() {
            let Some(eligible) = eligible(model, node, conv)? else { continue };
            let Some(left) = kernel_bytes.checked_sub(WinogradConv::kernel_bytes(eligible.c, eligible.k)) else {
                rewrite.over_budget += 1;
                continue;
            };
            kernel_bytes = left;
            rewrite.replaced += 1;
            Box::new(WinogradConv3x3 { conv: Arc::new(eligible.transform()?) })
        } else if let Some(pool) = node.op_as::<MaxPool>() {
            if pool.with_index_outputs.is_some() || pool.pool_spec.data_format != DataFormat::NCHW || !fed_by_winograd(model, node) {
                continue;
            }
            let mut channels_last = pool.clone();
            channels_last.pool_spec.data_format = DataFormat::NHWC;
            Box::new(channels_last)
        } else {
            continue;
        };
        replace(model, id, op)?;
    }
    Ok(rewrite)
}

/// Puts `op`, which works channels last, in the place of node `id`, which works channels first.
fn replace(model: &mut TypedModel, id: usize, op: Box<dyn TypedOp>) -> TractResult<()> {
    let node = &model.nodes[id];
    let name = node.name.clone();
    let mut patch = TypedModelPatch::default();
    let x = patch.tap_model(model, node.inputs[0])?;
    let x = patch.wire_node(format!("{name}.channels_last"), AxisOp::Move(1, 3), &[x])?;
    let y = patch.wire_node(format!("{name}.{}", op.name().to_lowercase()), op, &x)?;
    let y = patch.wire_node(format!("{name}.channels_first"), AxisOp::Move(3, 1), &y)?;
    patch.shunt_outside(model, OutletId::new(id, 0), y[0])?;
    patch.obliterate(id)?;
    patch.apply(model)
}

/// Whether `node`'s input comes from a [`WinogradConv3x3`] (through its change back to channels
/// first and at most a few element-wise nodes, such as the ReLU: nodes whose other inputs are
/// constants), so that pooling it channels last saves two layout changes instead of adding them.
fn fed_by_winograd(model: &TypedModel, node: &TypedNode) -> bool {
    let mut outlet = node.inputs[0];
    for _ in 0..4 {
        let from = &model.nodes[outlet.node];
        if from.op_is::<WinogradConv3x3>() {
            return true;
        }
        let mut variable = from.inputs.iter().filter(|i| model.outlet_fact(**i).map_or(true, |f| f.konst.is_none()));
        match (variable.next(), variable.next()) {
            (Some(input), None) => outlet = *input,
            _ => return false,
        }
    }
    false
}

/// A convolution Winograd's F(4x4, 3x3) computes: `c` channels in, `k` out, its weights.
struct Eligible {
    c: usize,
    k: usize,
    weight: Arc<Tensor>,
    bias: Vec<f32>,
}

impl Eligible {
    fn transform(&self) -> TractResult<WinogradConv> {
        Ok(WinogradConv::new(self.c, self.k, self.weight.try_as_plain_ram()?.as_slice::<f32>()?, &self.bias, false))
    }
}

/// `conv`, if Winograd's algorithm computes it: float32 `[N, C, H, W]`, a constant `[K, C, 3, 3]`
/// kernel and a constant bias (one per output channel, or one for all), stride and dilation 1,
/// one group, padding that keeps the map's size, and at most [`MAX_CHANNELS`].
fn eligible(model: &TypedModel, node: &TypedNode, conv: &Conv) -> TractResult<Option<Eligible>> {
    let spec = &conv.pool_spec;
    let facts = model.node_input_facts(node.id)?;
    let plain = conv.q_params.is_none()
        && conv.group == 1
        && conv.kernel_fmt == KernelFormat::OIHW
        && spec.data_format == DataFormat::NCHW
        && spec.kernel_shape.as_slice() == [3, 3]
        && spec.strides().iter().all(|s| *s == 1)
        && spec.dilations().iter().all(|d| *d == 1)
        && facts.len() == 3
        && facts[0].datum_type == f32::datum_type();
    if !plain {
        return Ok(None);
    }
    let Some(shape) = facts[0].shape.as_concrete() else { return Ok(None) };
    let &[_, c, h, w] = shape else { return Ok(None) };
    let k = spec.output_channels;
    if [c, h, w, k].contains(&0) || c.max(k) > MAX_CHANNELS {
        return Ok(None);
    }
    let padding = spec.computed_padding(&[h, w]);
    if padding.iter().any(|p| p.pad_before != 1 || p.pad_after != 1) {
        return Ok(None);
    }
    let (Some(weight), Some(bias)) = (facts[1].konst.as_ref(), facts[2].konst.as_ref()) else { return Ok(None) };
    if weight.datum_type() != f32::datum_type() || weight.shape() != [k, c, 3, 3] || bias.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let bias = match bias.try_as_plain_ram()?.as_slice::<f32>()? {
        [] => return Ok(None),
        [one] if bias.rank() == 0 || k == 1 => vec![*one; k],
        all if all.len() == k => all.to_vec(),
        _ => return Ok(None),
    };
    Ok(Some(Eligible { c, k, weight: weight.clone(), bias }))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};

    use super::*;

    fn random(shape: &[usize], scale: f32, rng: &mut impl Rng) -> Tensor {
        let values: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random_range(-scale..scale)).collect();
        Tensor::from_shape(shape, &values).unwrap()
    }

    fn pool_spec(kernel: usize, c: usize, k: usize, padding: usize, stride: usize, dilation: usize) -> PoolSpec {
        PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![kernel, kernel],
            padding: PaddingSpec::Explicit(tvec![padding, padding], tvec![padding, padding]),
            dilations: Some(tvec![dilation, dilation]),
            strides: Some(tvec![stride, stride]),
            input_channels: c,
            output_channels: k,
        }
    }

    /// A convolution of `x` with constant random weights and bias.
    fn conv(model: &mut TypedModel, x: OutletId, spec: PoolSpec, group: usize, rng: &mut impl Rng) -> OutletId {
        let name = format!("conv{}", model.nodes.len());
        let kernel = spec.kernel_shape[0];
        let weight = random(&[spec.output_channels, spec.input_channels / group, kernel, kernel], 0.2, rng);
        let w = model.add_const(format!("{name}.w"), weight).unwrap();
        let b = model.add_const(format!("{name}.b"), random(&[spec.output_channels], 1.0, rng)).unwrap();
        model.wire_node(name, Conv::new(spec, KernelFormat::OIHW, group, None), &[x, w, b]).unwrap()[0]
    }

    fn run(model: &TypedModel, input: &Tensor) -> Vec<f32> {
        let plan = model.clone().into_optimized().unwrap().into_runnable().unwrap();
        let out = plan.run(tvec![input.clone().into()]).unwrap();
        out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect()
    }

    /// Equal to tract's answer up to Winograd's rounding, relative to the answer's largest value.
    fn assert_close(got: &[f32], expected: &[f32]) {
        assert_eq!(got.len(), expected.len());
        let scale = expected.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let worst = got.iter().zip(expected).fold(0f32, |m, (g, e)| m.max((g - e).abs()));
        assert!(worst <= 4e-5 * scale, "worst {worst} of {scale}");
    }

    /// A small VGG block pair (conv, conv, 2x2 max pool, conv, with sides that cut tiles): every
    /// convolution and the pool are rewritten, the layout changes between them cancel, and the
    /// graph answers as tract's own convolutions do.
    #[test]
    fn a_vgg_block_runs_by_winograd_and_answers_as_tract() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 3, 18, 13])).unwrap();
        let y = conv(&mut model, x, pool_spec(3, 3, 8, 1, 1, 1), 1, &mut rng);
        let y = conv(&mut model, y, pool_spec(3, 8, 8, 1, 1, 1), 1, &mut rng);
        let pool = MaxPool::new(
            PoolSpec { kernel_shape: tvec![2, 2], strides: Some(tvec![2, 2]), padding: PaddingSpec::Valid, ..pool_spec(2, 8, 8, 0, 2, 1) },
            None,
        );
        let y = model.wire_node("pool", pool, &[y]).unwrap()[0];
        let y = conv(&mut model, y, pool_spec(3, 8, 5, 1, 1, 1), 1, &mut rng);
        model.select_output_outlets(&[y]).unwrap();
        let input = random(&[1, 3, 18, 13], 50.0, &mut rng);
        let expected = run(&model, &input);

        let mut rewritten = model.into_decluttered().unwrap();
        let weights: Vec<std::sync::Weak<Tensor>> = rewritten
            .nodes
            .iter()
            .flat_map(|n| n.outputs.iter().filter_map(|o| o.fact.konst.as_ref().filter(|k| k.rank() == 4).map(Arc::downgrade)))
            .collect();
        assert_eq!(weights.len(), 3);
        let rewrite = use_winograd(&mut rewritten).unwrap();
        assert_eq!((rewrite.replaced, rewrite.over_budget), (3, 0));
        // Each convolution's weights are freed with it: the original weights and the kernels,
        // 4x their size, are not both kept while the graph runs.
        assert!(weights.iter().all(|w| w.upgrade().is_none()), "a convolution's weights outlived it");
        let optimized = rewritten.clone().into_optimized().unwrap();
        let count = |name: &str| optimized.nodes.iter().filter(|n| n.op().name() == name).count();
        assert_eq!(count("WinogradConv3x3"), 3);
        assert!(count("MoveAxis") <= 2, "only the way in and out change layout: {optimized}");
        assert_close(&run(&rewritten, &input), &expected);
    }

    /// What the rewrite may allocate is bounded: past the kernels' budget, and beyond
    /// [`MAX_CHANNELS`], convolutions stay tract's, and the graph answers the same.
    #[test]
    fn convolutions_past_the_budgets_stay_tracts() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 3, 9, 7])).unwrap();
        let y = conv(&mut model, x, pool_spec(3, 3, 8, 1, 1, 1), 1, &mut rng);
        let y = conv(&mut model, y, pool_spec(3, 8, 8, 1, 1, 1), 1, &mut rng);
        let y = conv(&mut model, y, pool_spec(3, 8, 4, 1, 1, 1), 1, &mut rng);
        model.select_output_outlets(&[y]).unwrap();
        let input = random(&[1, 3, 9, 7], 50.0, &mut rng);
        let expected = run(&model, &input);
        let model = model.into_decluttered().unwrap();

        // Room for the first two kernels (3 -> 8, 8 -> 8) but not the third (8 -> 4).
        let budget = WinogradConv::kernel_bytes(3, 8) + WinogradConv::kernel_bytes(8, 8) + WinogradConv::kernel_bytes(8, 4) - 1;
        let mut rewritten = model.clone();
        assert_eq!(use_winograd_within(&mut rewritten, budget).unwrap(), Rewrite { replaced: 2, over_budget: 1, budget });
        assert_eq!(rewritten.nodes.iter().filter(|n| n.op_is::<Conv>()).count(), 1, "{rewritten}");
        assert_close(&run(&rewritten, &input), &expected);
        let mut whole = model.clone();
        assert_eq!(use_winograd_within(&mut whole, budget + 1).unwrap().replaced, 3);

        // A few kilobytes of weights over a one-pixel map can declare more channels than a
        // block's buffers should hold: tract's (and so within the limits of `super::limits`).
        for (c, k) in [(MAX_CHANNELS + 1, 1), (1, MAX_CHANNELS + 1), (MAX_CHANNELS, 1)] {
            let mut wide = TypedModel::default();
            let x = wide.add_source("x", f32::fact([1, c, 1, 1])).unwrap();
            let y = conv(&mut wide, x, pool_spec(3, c, k, 1, 1, 1), 1, &mut rng);
            wide.select_output_outlets(&[y]).unwrap();
            let mut wide = wide.into_decluttered().unwrap();
            assert_eq!(use_winograd(&mut wide).unwrap().replaced, usize::from(c.max(k) <= MAX_CHANNELS), "{c} -> {k} channels");
        }
    }

    /// The kernels may take half the memory available, up to the fixed bound.
    #[test]
    fn the_kernels_budget_is_half_the_memory_available() {
        assert_eq!(kernel_budget(None), MAX_KERNEL_BYTES);
        assert_eq!(kernel_budget(Some(600 << 20)), 300 << 20);
        assert_eq!(kernel_budget(Some(64 << 30)), MAX_KERNEL_BYTES);
        assert_eq!(kernel_budget(Some(0)), 0);
    }

    /// `FLOWERCAM_CONV` turns the rewrite off or on; unset, it runs where gemm has SIMD kernels.
    #[test]
    fn the_setting_chooses_and_the_architecture_decides_by_default() {
        assert!(!chosen(Some("im2col")));
        assert!(chosen(Some("winograd")));
        let simd = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));
        assert_eq!(chosen(None), simd);
        assert_eq!(chosen(Some("anything else")), simd);
    }

    /// Convolutions Winograd's F(4x4, 3x3) does not compute stay tract's: other kernel sizes,
    /// strides, dilations, groups and paddings, and weights that are not constants.
    #[test]
    fn other_convolutions_stay_tracts() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 4, 16, 16])).unwrap();
        let mut outputs = vec![];
        for (spec, group) in [
            (pool_spec(1, 4, 4, 0, 1, 1), 1),
            (pool_spec(3, 4, 4, 1, 2, 1), 1),
            (pool_spec(3, 4, 4, 2, 1, 2), 1),
            (pool_spec(3, 4, 4, 1, 1, 1), 2),
            (pool_spec(3, 4, 4, 0, 1, 1), 1),
            (pool_spec(5, 4, 4, 2, 1, 1), 1),
        ] {
            outputs.push(conv(&mut model, x, spec, group, &mut rng));
        }
        let w = model.add_source("w", f32::fact([4, 4, 3, 3])).unwrap();
        let b = model.add_const("b", random(&[4], 1.0, &mut rng)).unwrap();
        let spec = pool_spec(3, 4, 4, 1, 1, 1);
        outputs.push(model.wire_node("variable", Conv::new(spec, KernelFormat::OIHW, 1, None), &[x, w, b]).unwrap()[0]);
        model.select_output_outlets(&outputs).unwrap();
        let mut model = model.into_decluttered().unwrap();
        let rewrite = use_winograd(&mut model).unwrap();
        assert_eq!((rewrite.replaced, rewrite.over_budget), (0, 0), "{model}");
        assert!(!model.nodes.iter().any(|n| n.op_is::<WinogradConv3x3>()));
    }
}
