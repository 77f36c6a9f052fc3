//! What a graph may ask of a box, checked before tract computes anything with it. A bundle may come
//! from anywhere (an upload to a live box, a file drop): a few hundred bytes of ONNX can ask tract
//! for terabytes while it loads, or for minutes per frame, and an allocation that fails aborts the
//! process (no panic to catch). So the graph is held to what the trainer writes, in two steps:
//!
//! 1. [`check_proto`], on the protobuf before tract reads more of it: the trainer's operators
//!    only, a bounded node count, sane window attributes, and nothing computed from constants
//!    alone (tract evaluates those while it loads, before any size is known to us);
//! 2. [`check_typed`], on tract's typed graph, whose shapes are all concrete once the input is
//!    fixed, before it is optimized or run: every tensor's size and the multiply-adds per frame.

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::Cost;
use tract_onnx::tract_core::ops::cnn::{Conv, MaxPool, PoolSpec};
use tract_onnx::tract_core::ops::konst::Const;

/// The most nodes a graph may have: about four times the trainer's (45 to 57, float, int8 and
/// slim). tract's optimizer takes time more than quadratic in a chain's length (1 000 max pools
/// took 45 s and 660 MB, 20 000 identities over a minute), which a crafted bundle would spend of
/// a box's start or swap.
pub const MAX_NODES: usize = 256;

/// The ONNX operators a graph may use: those the trainer's graph builder writes
/// (`trainer/src/export/graph.rs`, float, int8 and slim alike; every export's parity gate loads its
/// graph through here, so a new operator there fails the trainer's tests until it is added). The
/// operators a crafted graph would spend a box's memory or time with (Loop, Scan, If,
/// ConstantOfShape, Expand, Tile, Pad, Resize, Range...) are not among them.
pub const ONNX_OPERATORS: &[&str] = &[
    "Add",
    "Cast",
    "Concat",
    "Conv",
    "DequantizeLinear",
    "Div",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Identity",
    "MatMul",
    "MaxPool",
    "Mul",
    "QLinearConv",
    "QuantizeLinear",
    "ReduceL2",
    "ReduceMax",
    "Relu",
    "Reshape",
    "Softmax",
    "Sub",
    "Transpose",
];

/// The window attributes a convolution or pool may have, each value within its range: those the
/// trainer writes (3x3 convolutions padded by 1, 2x2 pools of stride 2). A padding of a million
/// made tract ask for 32 TB while planning, a 16x16 kernel for 11 GB.
pub const WINDOW_ATTRIBUTES: &[(&str, std::ops::RangeInclusive<i64>)] =
    &[("kernel_shape", 1..=3), ("strides", 1..=2), ("dilations", 1..=1), ("pads", 0..=1)];

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

/// Step 1 (see the module): refuses a graph beyond what the trainer writes before tract reads
/// more of it than its protobuf.
pub(super) fn check_proto(graph: &pb::GraphProto) -> anyhow::Result<()> {
    anyhow::ensure!(graph.node.len() <= MAX_NODES, "the graph has {} nodes (at most {MAX_NODES})", graph.node.len());
    let constants: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    for (i, node) in graph.node.iter().enumerate() {
        let name = if node.name.is_empty() { format!("node {i}") } else { format!("node {i} ('{}')", node.name) };
        let op = &node.op_type;
        let standard = node.domain.is_empty() || node.domain == "ai.onnx";
        anyhow::ensure!(
            standard && ONNX_OPERATORS.contains(&node.op_type.as_str()),
            "{name} is a {}{} operator, which no graph this trainer writes has",
            if standard { String::new() } else { format!("{}.", node.domain) },
            node.op_type
        );
        // The trainer folds constants itself; tract would compute such a node while loading,
        // whatever size it comes to (two 400 KB vectors multiply to 40 GB).
        anyhow::ensure!(
            !node.input.iter().all(|input| input.is_empty() || constants.contains(input.as_str())),
            "{name}, a {op}, computes from constants only, which no graph this trainer writes does"
        );
        for attribute in &node.attribute {
            check_attribute(attribute).map_err(|why| anyhow::anyhow!("{name}, a {op}: {why}"))?;
        }
    }
    Ok(())
}

/// A window attribute within [`WINDOW_ATTRIBUTES`]; a permutation that is one.
fn check_attribute(attribute: &pb::AttributeProto) -> Result<(), String> {
    let values = &attribute.ints;
    if attribute.name == "perm" {
        let mut sorted = values.clone();
        sorted.sort_unstable();
        return if sorted.iter().copied().eq(0..values.len() as i64) {
            Ok(())
        } else {
            Err(format!("perm {values:?} is not a permutation of the axes"))
        };
    }
    let Some((name, range)) = WINDOW_ATTRIBUTES.iter().find(|(name, _)| *name == attribute.name) else { return Ok(()) };
    match values.iter().find(|v| !range.contains(v)) {
        Some(v) => Err(format!("{name} of {v} (the trainer's graphs stay within {}-{})", range.start(), range.end())),
        None => Ok(()),
    }
}

/// Step 2 (see the module): on the typed graph for a `side`-pixel square, before it is optimized
/// or run: each computed tensor, all of them together, each convolution's unfolded input and the
/// multiply-adds of a frame, within the bounds above (per pixel of the input). Constants are
/// left out: they are the bundle's own bytes, already read.
pub(super) fn check_typed(model: &TypedModel, side: usize) -> anyhow::Result<()> {
    let pixels = (side * side) as u64;
    let at_most = |what: &str, value: u64, per_pixel: u64| -> anyhow::Result<()> {
        let bound = per_pixel * pixels;
        anyhow::ensure!(value <= bound, "{what} of {} (at most {} for a {side}-pixel input)", megabytes(value), megabytes(bound));
        Ok(())
    };
    let (mut all_bytes, mut macs) = (0u64, 0u64);
    for node in model.nodes() {
        if node.op_is::<Const>() {
            continue;
        }
        let name = format!("node '{}', a {},", node.name, node.op.name());
        for output in &node.outputs {
            let fact = &output.fact;
            let shape =
                fact.shape.as_concrete().ok_or_else(|| anyhow::anyhow!("{name} has an output of no fixed shape ({:?})", fact.shape))?;
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
            at_most(
                &format!("{name} would unfold its input ({window} values a position) into a buffer"),
                unfolded,
                UNFOLD_BYTES_PER_PIXEL,
            )?;
        }
        let inputs = model.node_input_facts(node.id)?;
        for (cost, count) in node.op.cost(&inputs)? {
            if matches!(cost, Cost::FMA(_)) {
                let count = count.to_i64().ok().and_then(|c| u64::try_from(c).ok());
                let count = count.ok_or_else(|| anyhow::anyhow!("{name} has a cost of no fixed size"))?;
                macs = macs.saturating_add(count);
            }
        }
    }
    at_most("the graph's tensors would add up to a total", all_bytes, ALL_TENSORS_BYTES_PER_PIXEL)?;
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

/// The number of values of a shape, saturating.
fn volume(shape: &[usize]) -> u64 {
    shape.iter().fold(1u64, |product, &d| product.saturating_mul(d as u64))
}

fn megabytes(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, domain: &str, inputs: &[&str]) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            domain: domain.into(),
            name: "n".into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn graph(nodes: Vec<pb::NodeProto>) -> pb::GraphProto {
        let weight = pb::TensorProto { name: "w".into(), ..Default::default() };
        pb::GraphProto { node: nodes, initializer: vec![weight], ..Default::default() }
    }

    fn with(mut node: pb::NodeProto, name: &str, ints: Vec<i64>) -> pb::NodeProto {
        node.attribute.push(pb::AttributeProto { name: name.into(), ints, ..Default::default() });
        node
    }

    #[test]
    fn only_the_trainers_operators_are_read() {
        assert!(check_proto(&graph(vec![node("Conv", "", &["x", "w"]), node("Relu", "ai.onnx", &["y"])])).is_ok());
        for (op, domain) in [("Loop", ""), ("ConstantOfShape", ""), ("Relu", "com.evil")] {
            let e = check_proto(&graph(vec![node(op, domain, &["x"])])).unwrap_err().to_string();
            assert!(e.contains(op) && e.contains("no graph this trainer writes"), "{e}");
        }
        let e = check_proto(&graph(vec![node("Relu", "", &["x"]); MAX_NODES + 1])).unwrap_err().to_string();
        assert!(e.contains("257 nodes"), "{e}");
    }

    #[test]
    fn nothing_is_computed_from_constants_alone() {
        for inputs in [&["w", "w"][..], &["w", ""], &[]] {
            let e = check_proto(&graph(vec![node("MatMul", "", inputs)])).unwrap_err().to_string();
            assert!(e.contains("a MatMul, computes from constants only"), "{inputs:?}: {e}");
        }
        assert!(check_proto(&graph(vec![node("MatMul", "", &["x", "w"])])).is_ok());
    }

    #[test]
    fn windows_stay_small_and_permutations_are_permutations() {
        let conv = || node("Conv", "", &["x", "w"]);
        let good = with(with(with(conv(), "pads", vec![1; 4]), "kernel_shape", vec![3, 3]), "strides", vec![2, 2]);
        assert!(check_proto(&graph(vec![good, with(node("Transpose", "", &["x"]), "perm", vec![0, 3, 1, 2])])).is_ok());
        for (attribute, ints, said) in [
            ("pads", vec![1_000_000; 4], "pads of 1000000"),
            ("pads", vec![-1; 4], "pads of -1"),
            ("strides", vec![0, 0], "strides of 0"),
            ("strides", vec![3, 3], "strides of 3"),
            ("dilations", vec![1, 2], "dilations of 2"),
            ("kernel_shape", vec![16, 16], "kernel_shape of 16"),
        ] {
            let e = check_proto(&graph(vec![with(conv(), attribute, ints)])).unwrap_err().to_string();
            assert!(e.contains(said) && e.contains("a Conv:"), "{e}");
        }
        for perm in [vec![0, 0, 1, 2], vec![0, 9, 1, 2], vec![1, 2, 3]] {
            let e = check_proto(&graph(vec![with(node("Transpose", "", &["x"]), "perm", perm.clone())])).unwrap_err().to_string();
            assert!(e.contains("is not a permutation"), "{perm:?}: {e}");
        }
    }
}
