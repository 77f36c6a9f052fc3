//! Step 2 of [`super`]: tract's typed graph, its shapes concrete, before it is optimized or run.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::Cost;
use tract_onnx::tract_core::ops::cnn::{Conv, MaxPool, PoolSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::konst::Const;

use super::proto::MAX_RANK;

/// The most bytes any computed tensor may take, per pixel of the input square: four times the
/// trainer's largest (VGG16's first block, 64 float channels at full size: 256 bytes a pixel). At
/// 224 pixels that is 51 MB; at the largest input (1024) 1 GiB.
pub const TENSOR_BYTES_PER_PIXEL: u64 = 1024;

/// The most bytes all computed tensors of a frame may take together, per pixel of the input:
/// four times the trainer's (VGG16 and its head, 224 or 112 pixels: 2 335 bytes a pixel), which
/// bounds the element-wise work of a frame as [`MACS_PER_PIXEL`] bounds the products. 471 MB at
/// 224.
pub const ALL_TENSORS_BYTES_PER_PIXEL: u64 = 9_400;

/// The most bytes a convolution may unfold its input into (tract lays each output position's
/// window out in a row: input channels x kernel area x positions), per pixel of the input: twice
/// the trainer's largest (VGG16's second convolution, 64 float channels x 3 x 3 at full size:
/// 2 304 bytes a pixel). 231 MB at 224. A kernel's size comes from its weights too, so this is
/// checked on the typed graph, not on the attributes alone.
pub const UNFOLD_BYTES_PER_PIXEL: u64 = 4_608;

/// The most multiply-adds per frame, per pixel of the input square: twice VGG16's conv trunk
/// (15.4 G at 224: 306 000 a pixel) ...
pub const MACS_PER_PIXEL: u64 = 612_000;
/// ... plus this much for the head and the open-set references (1 360 photos and their views
/// against a 2 048-value descriptor are 6 M).
pub const MACS_BESIDE_THE_TRUNK: u64 = 1_000_000_000;

/// The most bytes the weights of the convolutions and of the matrix products may take once tract
/// has packed them for its kernels, beyond twice those weights' own bytes (each constant counted
/// once: weights a bundle carries are memory it was allowed to hold, a `flatten` head at 448
/// pixels is 411 MB; bytes it carries for nothing do not raise the bound). Packing rounds
/// output channels, or a constant matrix's rows, up to a panel of 64: 1 output channel over a
/// 4 MB window took 80 MB, thirty 1-row constants of 4 MB 2.6 GB. About four times VGG16's 59 MB.
pub const PACKED_WEIGHT_BYTES: u64 = 256 << 20;
/// The panel width the packing above is counted with (tract's widest kernels on x86 and ARM).
const PACKING_PANEL: u64 = 64;

/// Step 2 (see the module): on the typed graph for a `side`-pixel square, before it is optimized
/// or run: each computed tensor's axes and size, all of them together, each convolution's unfolded
/// input, the packed weights (against their own size) and the multiply-adds of a frame, within
/// the bounds above. Constants are left out of the tensors: they are the bundle's
/// own bytes, already read.
pub(in crate::runtime) fn check_typed(model: &TypedModel, side: usize) -> anyhow::Result<()> {
    let pixels = (side * side) as u64;
    let at_most = |what: &str, value: u64, per_pixel: u64| -> anyhow::Result<()> {
        let bound = per_pixel * pixels;
        anyhow::ensure!(value <= bound, "{what} of {} (at most {} for a {side}-pixel input)", megabytes(value), megabytes(bound));
        Ok(())
    };
    let (mut all_bytes, mut macs, mut packed) = (0u64, 0u64, 0u64);
    // The weights the convolutions and matrix products carry, each constant once.
    let mut carried: std::collections::HashMap<OutletId, u64> = std::collections::HashMap::new();
    let mut carry = |outlet: OutletId, fact: &TypedFact| {
        let bytes = fact.shape.as_concrete().map_or(0, volume).saturating_mul(fact.datum_type.size_of() as u64);
        carried.insert(outlet, bytes);
    };
    for node in model.nodes() {
        if node.op_is::<Const>() {
            continue;
        }
        let name = format!("node '{}', a {},", node.name, node.op.name());
        for output in &node.outputs {
            let fact = &output.fact;
            let shape =
                fact.shape.as_concrete().ok_or_else(|| anyhow::anyhow!("{name} has an output of no fixed shape ({:?})", fact.shape))?;
            anyhow::ensure!(shape.len() <= MAX_RANK, "{name} would make a tensor of {} axes (at most {MAX_RANK})", shape.len());
            let bytes = volume(shape).saturating_mul(fact.datum_type.size_of() as u64);
            at_most(&format!("{name} would make a tensor {shape:?}"), bytes, TENSOR_BYTES_PER_PIXEL)?;
            all_bytes = all_bytes.saturating_add(bytes);
        }
        let pool_spec = node.op_as::<Conv>().map(|conv| &conv.pool_spec).or_else(|| node.op_as::<MaxPool>().map(|pool| &pool.pool_spec));
        if let Some(spec) = pool_spec {
            let input = model.outlet_fact(node.inputs[0])?;
            at_most(&format!("{name} would pad its input into a tensor"), padded_bytes(spec, input)?, TENSOR_BYTES_PER_PIXEL)?;
        }
        if let Some(conv) = node.op_as::<Conv>() {
            let window = (conv.input_channels() / conv.group.max(1)) as u64 * volume(&conv.pool_spec.kernel_shape);
            let output = node.outputs[0].fact.shape.as_concrete().map_or(u64::MAX, volume);
            let positions = output / conv.output_channels().max(1) as u64;
            let element = model.outlet_fact(node.inputs[0])?.datum_type.size_of() as u64;
            let unfolded = window.saturating_mul(positions).saturating_mul(element);
            let groups = conv.group.max(1) as u64;
            let panels = (conv.output_channels() as u64 / groups).div_ceil(PACKING_PANEL) * PACKING_PANEL;
            let weights = model.outlet_fact(node.inputs[1])?;
            carry(node.inputs[1], weights);
            let weight = weights.datum_type.size_of() as u64;
            packed = packed.saturating_add((groups * panels).saturating_mul(window).saturating_mul(weight));
            at_most(
                &format!("{name} would unfold its input ({window} values a position) into a buffer"),
                unfolded,
                UNFOLD_BYTES_PER_PIXEL,
            )?;
        }
        let inputs = model.node_input_facts(node.id)?;
        if let Some(einsum) = node.op_as::<EinSum>() {
            for (slot, fact) in inputs.iter().enumerate().take(2).filter(|(_, fact)| fact.konst.is_some()) {
                anyhow::ensure!(
                    fact.rank() <= 2,
                    "{name} multiplies by a constant of {} axes (the trainer's matrix products take matrices)",
                    fact.rank()
                );
                carry(node.inputs[slot], fact);
            }
            packed = packed.saturating_add(packed_constants(einsum, &inputs));
        }
        for (cost, count) in node.op.cost(&inputs)? {
            if matches!(cost, Cost::FMA(_)) {
                let count = count.to_i64().ok().and_then(|c| u64::try_from(c).ok());
                let count = count.ok_or_else(|| anyhow::anyhow!("{name} has a cost of no fixed size"))?;
                macs = macs.saturating_add(count);
            }
        }
    }
    at_most("the graph's tensors would add up to a total", all_bytes, ALL_TENSORS_BYTES_PER_PIXEL)?;
    let carried: u64 = carried.values().sum();
    let max_packed = PACKED_WEIGHT_BYTES.saturating_add(carried.saturating_mul(2));
    anyhow::ensure!(
        packed <= max_packed,
        "the weights of the convolutions and matrix products would take {} once packed for tract's kernels (at most {}: 256 MiB beyond twice their own {})",
        megabytes(packed),
        megabytes(max_packed),
        megabytes(carried)
    );
    let max_macs = MACS_PER_PIXEL * pixels + MACS_BESIDE_THE_TRUNK;
    anyhow::ensure!(
        macs <= max_macs,
        "the graph asks {:.1} G multiply-adds a frame (at most {:.1} G for a {side}-pixel input: twice VGG16's trunk)",
        macs as f64 / 1e9,
        max_macs as f64 / 1e9
    );
    Ok(())
}

/// The bytes of a convolution's or pool's input once padded (tract pads it before some
/// convolutions: a 1x1 kernel padded by 16 around a million channels asked for 4.5 GB).
fn padded_bytes(spec: &PoolSpec, input: &TypedFact) -> anyhow::Result<u64> {
    let shape = input.shape.as_concrete().ok_or_else(|| anyhow::anyhow!("an input of no fixed shape ({:?})", input.shape))?;
    let data = spec.data_format.shape(shape.to_vec())?;
    let hw = data.hw_dims();
    let padded: u64 = spec.computed_padding(hw).iter().zip(hw).map(|(p, &d)| (d + p.pad_before + p.pad_after) as u64).product();
    Ok((volume(shape) / volume(hw).max(1)).saturating_mul(padded).saturating_mul(input.datum_type.size_of() as u64))
}

/// The bytes of a matrix product's constant operands (MatMul and Gemm become tract's EinSum) once
/// packed: each as a matrix of its summed axes by the rest, the rest rounded up to a panel. A
/// constant shared by several products counts for each (tract may pack it once: the bound errs on
/// the safe side; the trainer shares none).
fn packed_constants(einsum: &EinSum, inputs: &[&TypedFact]) -> u64 {
    let mut packed = 0u64;
    for (slot, fact) in inputs.iter().enumerate().take(2) {
        let (Some(_), Some(shape)) = (&fact.konst, fact.shape.as_concrete()) else { continue };
        let summed: u64 = einsum
            .axes
            .iter_all_axes()
            .filter(|axis| axis.outputs.iter().all(|positions| positions.is_empty()))
            .flat_map(|axis| axis.inputs.get(slot).into_iter().flatten())
            .map(|&position| shape.get(position).copied().unwrap_or(1) as u64)
            .product();
        let rows = (volume(shape) / summed.max(1)).div_ceil(PACKING_PANEL) * PACKING_PANEL;
        packed = packed.saturating_add(summed.saturating_mul(rows).saturating_mul(fact.datum_type.size_of() as u64));
    }
    packed
}

/// The number of values of a shape, saturating.
fn volume(shape: &[usize]) -> u64 {
    shape.iter().fold(1u64, |product, &d| product.saturating_mul(d as u64))
}

fn megabytes(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}
