//! Step 1 of [`super`]: the protobuf, before tract reads more of it.

use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

/// The most nodes a graph may have: about four times the trainer's (45 to 70, float, int8 and
/// slim; 66 for the default f32 graph with the head's evidence). tract's optimizer takes time
/// more than quadratic in a chain's length (1 000 max pools took 45 s and 660 MB, 20 000
/// identities over a minute), which a crafted bundle would spend of a box's start or swap.
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
    "Log",
    "MatMul",
    "Max",
    "MaxPool",
    "Min",
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

/// The element types a graph's constants and casts may have: those the trainer writes (float
/// weights, int8 and uint8 quantized ones, int32 biases, int64 shapes and indices). An f16
/// convolution ran 135 times slower than its f32 twin, for the same count of multiply-adds.
pub const ELEMENT_TYPES: &[DataType] = &[DataType::Float, DataType::Uint8, DataType::Int8, DataType::Int32, DataType::Int64];

/// The most inputs a node may take (QLinearConv's 9; the trainer's widest Concat takes 4): a
/// Concat of 30 000 inputs took tract 32 s to load.
pub const MAX_NODE_INPUTS: usize = 9;

/// The most numbers an attribute may hold (the trainer's longest is a 4-value padding).
pub const MAX_ATTRIBUTE_VALUES: usize = 8;

/// The most axes a tensor may have (the trainer's have at most 4: an image `[N, S, S, 3]`, a
/// convolution's weights). tract types and optimizes a graph axis by axis: a constant of 2 000
/// axes of one value each made it abort on 3.5 GB, and typing 5 000 took 44 s.
pub const MAX_RANK: usize = 6;

/// The window attributes' lengths: the trainer's windows are 2-D (two kernel sides, strides and
/// dilations; four paddings). A 7-D pool of 3s does 243 comparisons an output value, which the
/// count of multiply-adds does not see.
const WINDOW_LENGTHS: &[(&str, usize)] = &[("kernel_shape", 2), ("strides", 2), ("dilations", 2), ("pads", 4)];

/// Step 1 (see the module): refuses a graph beyond what the trainer writes before tract reads
/// more of it than its protobuf.
pub(in crate::runtime) fn check_proto(graph: &pb::GraphProto) -> anyhow::Result<()> {
    anyhow::ensure!(graph.node.len() <= MAX_NODES, "the graph has {} nodes (at most {MAX_NODES})", graph.node.len());
    anyhow::ensure!(graph.sparse_initializer.is_empty(), "the graph has sparse constants, which no graph this trainer writes has");
    for constant in &graph.initializer {
        check_initializer(constant).map_err(|why| anyhow::anyhow!("constant '{}': {why}", constant.name))?;
    }
    let constants: Constants = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    for (i, node) in graph.node.iter().enumerate() {
        let name = if node.name.is_empty() { format!("node {i}") } else { format!("node {i} ('{}')", node.name) };
        let op = &node.op_type;
        anyhow::ensure!(
            node.input.len() <= MAX_NODE_INPUTS && node.output.len() == 1,
            "{name}, a {op}, has {} inputs and {} outputs (the trainer's nodes have at most {MAX_NODE_INPUTS}, and one)",
            node.input.len(),
            node.output.len()
        );
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
            !node.input.iter().all(|input| input.is_empty() || constants.contains_key(input.as_str())),
            "{name}, a {op}, computes from constants only, which no graph this trainer writes does"
        );
        for attribute in &node.attribute {
            check_attribute(attribute).map_err(|why| anyhow::anyhow!("{name}, a {op}: {why}"))?;
        }
        check_shapes_known(node, &constants).map_err(|why| anyhow::anyhow!("{name}, a {op}, {why}"))?;
        check_scales(node, &constants).map_err(|why| anyhow::anyhow!("{name}, a {op}, {why}"))?;
    }
    Ok(())
}

/// The graph's constants (initializers), by name.
type Constants<'a> = std::collections::HashMap<&'a str, &'a pb::TensorProto>;

/// The constant a node takes in input `slot`, if that input is one.
fn input_constant<'a>(node: &pb::NodeProto, constants: &Constants<'a>, slot: usize) -> Option<&'a pb::TensorProto> {
    node.input.get(slot).and_then(|input| constants.get(input.as_str())).copied()
}

/// The inputs that decide a node's axes, as the trainer writes them, so that no node makes more
/// axes than [`MAX_RANK`] or a window other than its weights say: a Reshape's shape and a
/// Gather's indices are constants (of at most `MAX_RANK` values, and of at most one axis: a
/// Gather adds its indices' axes, and a chain of them made 491 axes and took 112 s to load); a
/// window says its `kernel_shape`, with no `auto_pad`, and a convolution's weights are a constant
/// of 4 axes whose kernel is that one (tract takes a missing kernel, of any size and any number of
/// axes, from the weights).
fn check_shapes_known(node: &pb::NodeProto, constants: &Constants) -> Result<(), String> {
    let constant = |slot: usize| input_constant(node, constants, slot);
    let attribute = |name: &str| node.attribute.iter().find(|a| a.name == name);
    match node.op_type.as_str() {
        "Reshape" if constant(1).is_none_or(|shape| shape.dims.len() != 1 || shape.dims[0] > MAX_RANK as i64) => {
            Err(format!("takes a shape other than a constant of at most {MAX_RANK} axes, as the trainer writes"))
        }
        "Gather" if constant(1).is_none_or(|indices| indices.dims.len() > 1) => {
            Err("takes indices other than a constant of at most one axis, as the trainer writes".into())
        }
        "Conv" | "QLinearConv" | "MaxPool" => {
            if attribute("auto_pad").is_some_and(|a| !a.s.is_empty() && a.s != b"NOTSET") {
                return Err("has an auto_pad, which the trainer's windows do not".into());
            }
            let kernel =
                attribute("kernel_shape").map(|a| a.ints.clone()).ok_or("has no kernel_shape, which the trainer's windows have")?;
            let weights = match node.op_type.as_str() {
                "Conv" => 1,
                "QLinearConv" => 3,
                _ => return Ok(()),
            };
            match constant(weights) {
                Some(w) if w.dims.len() == 4 && w.dims[2..] == kernel[..] => Ok(()),
                _ => Err(format!("takes weights other than a constant of 4 axes with its kernel_shape {kernel:?}, as the trainer writes")),
            }
        }
        _ => Ok(()),
    }
}

/// The quantization scales as the trainer writes them: one float constant each (a scale per
/// layer), finite and above zero, and a QLinearConv's requantization multiplier
/// (`x_scale * w_scale / y_scale`) at most [`MAX_REQUANT_MULTIPLIER`]. tract answers otherwise
/// than onnxruntime for a scale of 0, NaN or one small enough to saturate its integer arithmetic
/// (1e-8 turned 255 into 0), and for multipliers from about 2e4.
fn check_scales(node: &pb::NodeProto, constants: &Constants) -> Result<(), String> {
    let slots: &[usize] = match node.op_type.as_str() {
        "QuantizeLinear" | "DequantizeLinear" => &[1],
        "QLinearConv" => &[1, 4, 6],
        _ => return Ok(()),
    };
    let mut scales = Vec::with_capacity(slots.len());
    for &slot in slots {
        let value = input_constant(node, constants, slot)
            .filter(|c| c.data_type == DataType::Float as i32 && c.raw_data.len() == 4)
            .map(|c| f32::from_le_bytes([c.raw_data[0], c.raw_data[1], c.raw_data[2], c.raw_data[3]]));
        match value {
            Some(v) if v.is_finite() && v >= MIN_SCALE => scales.push(v as f64),
            Some(v) => return Err(format!("has a scale of {v} (the trainer's are finite and at least {MIN_SCALE:e})")),
            None => return Err("takes a scale other than one float constant, as the trainer writes".into()),
        }
    }
    if let [x_scale, w_scale, y_scale] = scales[..] {
        let multiplier = x_scale * w_scale / y_scale;
        if multiplier > MAX_REQUANT_MULTIPLIER {
            return Err(format!(
                "has a requantization multiplier x_scale * w_scale / y_scale of {multiplier:e} (the trainer's are at most {MAX_REQUANT_MULTIPLIER})"
            ));
        }
    }
    Ok(())
}

/// The largest QLinearConv requantization multiplier taken: the trainer's largest, measured in
/// its int8 graphs (full trunk and keep 0.5, 112 px), is 6.7e-3; an output scale below the
/// product of the input scales is what integer kernels are not written for.
const MAX_REQUANT_MULTIPLIER: f64 = 1.0;

/// The smallest quantization scale taken: far below the trainer's (its smallest, measured: 1.3e-3
/// in the daffodil/coltsfoot int8 graph, 3.4e-4 in a synthetic one).
const MIN_SCALE: f32 = 1e-6;

/// A constant as the trainer writes it: raw little-endian bytes of one of [`ELEMENT_TYPES`],
/// exactly as many as its shape holds. Values written one by one (a packed int64 zero is one
/// byte in the file and eight, three times over, in memory) and data kept outside are refused.
fn check_initializer(constant: &pb::TensorProto) -> Result<(), String> {
    let element = element_type(constant.data_type)?;
    if constant.dims.len() > MAX_RANK {
        return Err(format!("{} axes (the trainer's tensors have at most {MAX_RANK})", constant.dims.len()));
    }
    let spread = constant.float_data.len()
        + constant.int32_data.len()
        + constant.string_data.len()
        + constant.int64_data.len()
        + constant.double_data.len()
        + constant.uint64_data.len();
    let elsewhere = !constant.external_data.is_empty() || constant.data_location.is_some_and(|at| at != 0) || constant.segment.is_some();
    if spread > 0 || elsewhere {
        return Err("its values are not stored as raw bytes, as the trainer stores them".into());
    }
    let values = constant.dims.iter().try_fold(1u64, |product, &d| u64::try_from(d).ok().and_then(|d| product.checked_mul(d)));
    let bytes = values.and_then(|v| v.checked_mul(element_size(element)));
    if bytes != Some(constant.raw_data.len() as u64) {
        return Err(format!("its {} bytes do not make its shape {:?} of {element:?}", constant.raw_data.len(), constant.dims));
    }
    Ok(())
}

/// One of [`ELEMENT_TYPES`], from its ONNX number.
fn element_type(number: i32) -> Result<DataType, String> {
    DataType::try_from(number)
        .ok()
        .filter(|t| ELEMENT_TYPES.contains(t))
        .ok_or_else(|| format!("element type {number} is none of the trainer's ({ELEMENT_TYPES:?})"))
}

fn element_size(element: DataType) -> u64 {
    match element {
        DataType::Uint8 | DataType::Int8 => 1,
        DataType::Int64 => 8,
        _ => 4,
    }
}

/// A window attribute within [`WINDOW_ATTRIBUTES`]; a permutation that is one; a cast to one of
/// [`ELEMENT_TYPES`]; numbers and names only, and few of them.
fn check_attribute(attribute: &pb::AttributeProto) -> Result<(), String> {
    let holds_more = attribute.t.is_some()
        || attribute.g.is_some()
        || attribute.sparse_tensor.is_some()
        || !attribute.tensors.is_empty()
        || !attribute.graphs.is_empty()
        || !attribute.sparse_tensors.is_empty()
        || !attribute.strings.is_empty();
    if holds_more || attribute.ints.len() + attribute.floats.len() > MAX_ATTRIBUTE_VALUES {
        return Err(format!("attribute '{}' holds more than the trainer's attributes do", attribute.name));
    }
    if attribute.name == "to" {
        return element_type(attribute.i as i32).map(|_| ()).map_err(|why| format!("a cast to {why}"));
    }
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
    if let Some((_, length)) = WINDOW_LENGTHS.iter().find(|(name, _)| *name == attribute.name)
        && values.len() != *length
    {
        return Err(format!("{name} of {} values (the trainer's windows are 2-D: {length})", values.len()));
    }
    match values.iter().find(|v| !range.contains(v)) {
        Some(v) => Err(format!("{name} of {v} (the trainer's graphs stay within {}-{})", range.start(), range.end())),
        None => Ok(()),
    }
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
            output: vec!["y".into()],
            ..Default::default()
        }
    }

    /// A constant as the trainer writes it: `raw` bytes of `data_type`, shaped `dims`.
    fn tensor(name: &str, data_type: DataType, dims: Vec<i64>, raw: Vec<u8>) -> pb::TensorProto {
        pb::TensorProto { name: name.into(), data_type: data_type as i32, dims, raw_data: raw, ..Default::default() }
    }

    fn graph(nodes: Vec<pb::NodeProto>) -> pb::GraphProto {
        let weight = tensor("w", DataType::Float, vec![1], vec![0; 4]);
        let kernel = tensor("k", DataType::Float, vec![1, 1, 3, 3], vec![0; 36]);
        pb::GraphProto { node: nodes, initializer: vec![weight, kernel], ..Default::default() }
    }

    /// A convolution as the trainer writes it: 3x3, its kernel a constant.
    fn conv() -> pb::NodeProto {
        with(node("Conv", "", &["x", "k"]), "kernel_shape", vec![3, 3])
    }

    fn with(mut node: pb::NodeProto, name: &str, ints: Vec<i64>) -> pb::NodeProto {
        node.attribute.push(pb::AttributeProto { name: name.into(), ints, ..Default::default() });
        node
    }

    #[test]
    fn only_the_trainers_operators_are_read() {
        assert!(check_proto(&graph(vec![conv(), node("Relu", "ai.onnx", &["y"])])).is_ok());
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
        let good = with(with(conv(), "pads", vec![1; 4]), "strides", vec![2, 2]);
        assert!(check_proto(&graph(vec![good, with(node("Transpose", "", &["x"]), "perm", vec![0, 3, 1, 2])])).is_ok());
        for (attribute, ints, said) in [
            ("pads", vec![1_000_000; 4], "pads of 1000000"),
            ("pads", vec![-1; 4], "pads of -1"),
            ("strides", vec![0, 0], "strides of 0"),
            ("strides", vec![3, 3], "strides of 3"),
            ("dilations", vec![1, 2], "dilations of 2"),
            ("kernel_shape", vec![16, 16], "kernel_shape of 16"),
            ("strides", vec![1], "strides of 1 values"),
            ("pads", vec![1, 1], "pads of 2 values"),
        ] {
            let mut bad = conv();
            bad.attribute.retain(|a| a.name != attribute);
            let e = check_proto(&graph(vec![with(bad, attribute, ints)])).unwrap_err().to_string();
            assert!(e.contains(said) && e.contains("a Conv:"), "{e}");
        }
        let pool = |kernel: Vec<i64>| with(node("MaxPool", "", &["x"]), "kernel_shape", kernel);
        assert!(check_proto(&graph(vec![pool(vec![2, 2])])).is_ok());
        let e = check_proto(&graph(vec![pool(vec![2; 7])])).unwrap_err().to_string();
        assert!(e.contains("kernel_shape of 7 values"), "{e}");
        // The kernel is said, and is the weights' own.
        let mut auto = conv();
        auto.attribute.push(pb::AttributeProto { name: "auto_pad".into(), s: b"SAME_UPPER".to_vec(), ..Default::default() });
        for (bad, said) in [
            (node("Conv", "", &["x", "k"]), "has no kernel_shape"),
            (node("MaxPool", "", &["x"]), "has no kernel_shape"),
            (auto, "has an auto_pad"),
            (with(node("Conv", "", &["x", "w"]), "kernel_shape", vec![3, 3]), "weights other than a constant of 4 axes"),
            (with(node("Conv", "", &["x", "k"]), "kernel_shape", vec![1, 1]), "weights other than a constant of 4 axes"),
            (with(node("Conv", "", &["x", "computed"]), "kernel_shape", vec![3, 3]), "weights other than a constant"),
        ] {
            let e = check_proto(&graph(vec![bad])).unwrap_err().to_string();
            assert!(e.contains(said), "{said}: {e}");
        }
        for perm in [vec![0, 0, 1, 2], vec![0, 9, 1, 2], vec![1, 2, 3]] {
            let e = check_proto(&graph(vec![with(node("Transpose", "", &["x"]), "perm", perm.clone())])).unwrap_err().to_string();
            assert!(e.contains("is not a permutation"), "{perm:?}: {e}");
        }
    }

    #[test]
    fn constants_are_raw_bytes_of_the_trainers_types_and_nodes_are_narrow() {
        let constant = |data_type: DataType, dims: Vec<i64>, raw: usize| tensor("c", data_type, dims, vec![0; raw]);
        for good in
            [constant(DataType::Float, vec![2, 3], 24), constant(DataType::Int64, vec![2], 16), constant(DataType::Uint8, vec![], 1)]
        {
            assert!(check_initializer(&good).is_ok());
        }
        let packed = pb::TensorProto { int64_data: vec![0; 10], ..constant(DataType::Int64, vec![10], 0) };
        for (bad, said) in [
            (constant(DataType::Float16, vec![2], 4), "element type 10"),
            (constant(DataType::Float, vec![2, 3], 23), "23 bytes do not make its shape [2, 3]"),
            (constant(DataType::Float, vec![-1], 0), "do not make its shape [-1]"),
            (packed, "not stored as raw bytes"),
            (constant(DataType::Float, vec![1; MAX_RANK + 1], 4), "7 axes"),
        ] {
            let e = check_initializer(&bad).unwrap_err();
            assert!(e.contains(said), "{e}");
        }
        let mut cast = node("Cast", "", &["x"]);
        cast.attribute.push(pb::AttributeProto { name: "to".into(), i: DataType::Float16 as i64, ..Default::default() });
        let e = check_proto(&graph(vec![cast])).unwrap_err().to_string();
        assert!(e.contains("a cast to element type 10"), "{e}");
        let e = check_proto(&graph(vec![node("Concat", "", &["x"; MAX_NODE_INPUTS + 1])])).unwrap_err().to_string();
        assert!(e.contains("10 inputs"), "{e}");
    }

    #[test]
    fn a_reshape_takes_its_shape_from_a_short_constant() {
        let shape = |name: &str, values: usize| tensor(name, DataType::Int64, vec![values as i64], vec![0; values * 8]);
        let with_shapes = |node: pb::NodeProto| {
            let mut g = graph(vec![node]);
            g.initializer.extend([shape("short", MAX_RANK), shape("long", 2000)]);
            g
        };
        assert!(check_proto(&with_shapes(node("Reshape", "", &["x", "short"]))).is_ok());
        for inputs in [&["x", "long"][..], &["x", "computed"], &["x"]] {
            let e = check_proto(&with_shapes(node("Reshape", "", inputs))).unwrap_err().to_string();
            assert!(e.contains("a Reshape, takes a shape other than a constant of at most 6 axes"), "{inputs:?}: {e}");
        }
        // A Gather adds its indices' axes: the trainer's are a constant list.
        assert!(check_proto(&with_shapes(node("Gather", "", &["x", "short"]))).is_ok());
        for inputs in [&["x", "k"][..], &["x", "computed"]] {
            let e = check_proto(&with_shapes(node("Gather", "", inputs))).unwrap_err().to_string();
            assert!(e.contains("a Gather, takes indices other than a constant of at most one axis"), "{inputs:?}: {e}");
        }
    }

    #[test]
    fn quantization_scales_are_single_positive_floats() {
        let scalar = |name: &str, value: f32| tensor(name, DataType::Float, vec![], value.to_le_bytes().to_vec());
        let with_scales = |node: pb::NodeProto| {
            let mut g = graph(vec![node]);
            g.initializer.extend([scalar("good", 0.02), scalar("zero", 0.0), scalar("nan", f32::NAN), scalar("tiny", 1e-8)]);
            g
        };
        assert!(check_proto(&with_scales(node("QuantizeLinear", "", &["x", "good", "w"]))).is_ok());
        for (scale, said) in [("zero", "a scale of 0"), ("nan", "a scale of NaN"), ("tiny", "a scale of 0.00000001"), ("w", "a scale of 0")]
        {
            let e = check_proto(&with_scales(node("DequantizeLinear", "", &["x", scale, "w"]))).unwrap_err().to_string();
            assert!(e.contains(said), "{scale}: {e}");
        }
        for inputs in [&["x", "computed", "w"][..], &["x", "k", "w"]] {
            let e = check_proto(&with_scales(node("QuantizeLinear", "", inputs))).unwrap_err().to_string();
            assert!(e.contains("a scale other than one float constant"), "{inputs:?}: {e}");
        }
        // A QLinearConv's multiplier x_scale * w_scale / y_scale: 0.02 * 0.02 / 0.02 passes,
        // 0.02 * 0.02 / 1e-6 (400) does not, though each scale alone would.
        let mut qconv = with_scales(node("QLinearConv", "", &["x", "good", "w", "w", "good", "w", "good", "w"]));
        qconv.initializer.push(scalar("small", 1e-6));
        let check = |g: &pb::GraphProto| check_scales(&g.node[0], &g.initializer.iter().map(|t| (t.name.as_str(), t)).collect());
        assert!(check(&qconv).is_ok());
        qconv.node[0].input[6] = "small".into();
        let e = check(&qconv).unwrap_err();
        assert!(e.contains("a requantization multiplier x_scale * w_scale / y_scale of 3.99") && e.contains("at most 1"), "{e}");
    }
}
