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
use tract_onnx::tract_core::ops::konst::Const;

/// The most nodes a graph may have. The trainer's graphs have tens to a few hundred (the int8
/// trunk adds its quantize nodes); tract's optimizer takes time quadratic in a chain's length
/// (20 000 nodes took over a minute), which a crafted bundle would spend of a box's start or swap.
pub const MAX_NODES: usize = 5_000;

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

/// The largest kernel side, stride, dilation and padding of a convolution or pool. The trainer
/// writes 3x3 convolutions padded by 1 and 2x2 pools of stride 2; a padding of a million made
/// tract ask for 32 TB while planning.
pub const MAX_WINDOW: i64 = 16;

/// The most bytes any computed tensor may take, per pixel of the input square: four times the
/// trainer's largest (VGG16's first block, 64 float channels at full size: 256 bytes a pixel). At
/// 224 pixels that is 51 MB; at the largest input (1024) 1 GiB.
pub const TENSOR_BYTES_PER_PIXEL: u64 = 1024;

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

/// A window attribute within [`MAX_WINDOW`]; a permutation that is one.
fn check_attribute(attribute: &pb::AttributeProto) -> Result<(), String> {
    let values = &attribute.ints;
    let least = match attribute.name.as_str() {
        "pads" => 0,
        "kernel_shape" | "strides" | "dilations" => 1,
        "perm" => {
            let mut sorted = values.clone();
            sorted.sort_unstable();
            return if sorted.iter().copied().eq(0..values.len() as i64) {
                Ok(())
            } else {
                Err(format!("perm {values:?} is not a permutation of the axes"))
            };
        }
        _ => return Ok(()),
    };
    match values.iter().find(|v| !(least..=MAX_WINDOW).contains(*v)) {
        Some(v) => Err(format!("{} of {v} (the trainer's graphs stay within {least}-{MAX_WINDOW})", attribute.name)),
        None => Ok(()),
    }
}

/// Step 2 (see the module): on the typed graph for a `side`-pixel square, before it is optimized
/// or run, every computed tensor within [`TENSOR_BYTES_PER_PIXEL`] and the frame within
/// [`MACS_PER_PIXEL`] and [`MACS_BESIDE_THE_TRUNK`]. Constants are left out: they are the
/// bundle's own bytes, already read.
pub(super) fn check_typed(model: &TypedModel, side: usize) -> anyhow::Result<()> {
    let pixels = (side * side) as u64;
    let max_bytes = TENSOR_BYTES_PER_PIXEL * pixels;
    let max_macs = MACS_PER_PIXEL * pixels + MACS_BESIDE_THE_TRUNK;
    let mut macs = 0u64;
    for node in model.nodes() {
        if node.op_is::<Const>() {
            continue;
        }
        let name = format!("node '{}', a {},", node.name, node.op.name());
        for output in &node.outputs {
            let fact = &output.fact;
            let shape =
                fact.shape.as_concrete().ok_or_else(|| anyhow::anyhow!("{name} has an output of no fixed shape ({:?})", fact.shape))?;
            let bytes = shape.iter().fold(fact.datum_type.size_of() as u64, |product, &d| product.saturating_mul(d as u64));
            anyhow::ensure!(
                bytes <= max_bytes,
                "{name} would make a tensor {shape:?} of {} (at most {} for a {side}-pixel input)",
                megabytes(bytes),
                megabytes(max_bytes)
            );
        }
        let inputs = model.node_input_facts(node.id)?;
        for (cost, count) in node.op.cost(&inputs)? {
            if matches!(cost, Cost::FMA(_)) {
                let count = count.to_i64().map_err(|_| anyhow::anyhow!("{name} has a cost of no fixed size ({count})"))?;
                macs = macs.saturating_add(count.max(0) as u64);
            }
        }
    }
    anyhow::ensure!(
        macs <= max_macs,
        "the graph asks {:.1} G multiply-adds a frame (at most {:.1} G for a {side}-pixel input: twice VGG16's trunk)",
        macs as f64 / 1e9,
        max_macs as f64 / 1e9
    );
    Ok(())
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
        assert!(e.contains("5001 nodes"), "{e}");
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
        let good = with(with(with(conv(), "pads", vec![1; 4]), "kernel_shape", vec![3, 3]), "strides", vec![1, 1]);
        assert!(check_proto(&graph(vec![good, with(node("Transpose", "", &["x"]), "perm", vec![0, 3, 1, 2])])).is_ok());
        for (attribute, ints, said) in [
            ("pads", vec![1_000_000; 4], "pads of 1000000"),
            ("pads", vec![-1; 4], "pads of -1"),
            ("strides", vec![0, 0], "strides of 0"),
            ("dilations", vec![1, 17], "dilations of 17"),
            ("kernel_shape", vec![99, 3], "kernel_shape of 99"),
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
