//! Builds the exported ONNX graph with `tract_onnx::pb` (prost) types.
//!
//! Burn's experimental ONNX exporter can record a forward pass, but it cannot express the parts
//! that matter most here (uint8 input, in-graph preprocessing, Softmax, metadata), and it needs
//! Burn's graph-capture stack in the build. The graph is small and regular, so it is written
//! directly: one function per node type, each with its own test against tract.
//!
//! Graph: image u8 [N,S,S,3] -> Cast -> Transpose(NCHW) -> Gather(channel order) -> Sub(mean)
//! [-> Div(std)] -> 13 x (Conv 3x3 + Relu), MaxPool after each block -> head -> Softmax.
//! An int8 export replaces the trunk with QuantizeLinear -> 13 x QLinearConv, uint8 MaxPools ->
//! DequantizeLinear (see [`super::quantize`]).

use shared::{HeadKind, Normalization, ONNX_INPUT, ONNX_OUTPUT, ONNX_UNKNOWN_OUTPUT};
use tract_onnx::pb::{self, attribute_proto::AttributeType, tensor_proto::DataType};

use super::int8::{QuantParams, QuantizedConv, QuantizedTrunk};
use crate::backbone::{ConvWeights, VGG16_BLOCKS};
use crate::model::head::HeadInput;
use crate::model::weights::DenseWeights;

pub const OPSET: i64 = 13;
/// ONNX IR version 7 goes with opset 13.
pub const IR_VERSION: i64 = 7;

#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    counter: usize,
}

fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

fn attr_ints(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Ints as i32, ints: ints.to_vec(), ..Default::default() }
}

fn dims(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

impl GraphBuilder {
    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}_{}", self.counter)
    }

    fn initializer(&mut self, name: &str, shape: &[usize], data_type: DataType, raw_data: Vec<u8>) -> String {
        self.initializers.push(pb::TensorProto {
            name: name.into(),
            dims: dims(shape),
            data_type: data_type as i32,
            raw_data,
            ..Default::default()
        });
        name.into()
    }

    pub fn initializer_f32(&mut self, name: &str, shape: &[usize], values: &[f32]) -> String {
        assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}: shape and values disagree");
        self.initializer(name, shape, DataType::Float, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    pub fn initializer_i64(&mut self, name: &str, shape: &[usize], values: &[i64]) -> String {
        self.initializer(name, shape, DataType::Int64, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    pub fn initializer_i32(&mut self, name: &str, shape: &[usize], values: &[i32]) -> String {
        self.initializer(name, shape, DataType::Int32, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    pub fn initializer_i8(&mut self, name: &str, shape: &[usize], values: &[i8]) -> String {
        self.initializer(name, shape, DataType::Int8, values.iter().map(|&v| v as u8).collect())
    }

    /// A scalar scale and uint8 zero point: `real = scale * (q - zero_point)`.
    fn quant_params(&mut self, prefix: &str, q: QuantParams) -> (String, String) {
        let scale = self.initializer(&format!("{prefix}.scale"), &[], DataType::Float, q.scale.to_le_bytes().to_vec());
        let zero_point = self.initializer(&format!("{prefix}.zero_point"), &[], DataType::Uint8, vec![q.zero_point]);
        (scale, zero_point)
    }

    /// Adds a node; returns its output's name (`output`, or a fresh one).
    pub fn node(&mut self, op: &str, inputs: &[&str], attributes: Vec<pb::AttributeProto>, output: Option<&str>) -> String {
        let out = output.map(String::from).unwrap_or_else(|| self.fresh(&op.to_lowercase()));
        self.nodes.push(pb::NodeProto {
            name: format!("{op}_{}", self.nodes.len()),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute: attributes,
            ..Default::default()
        });
        out
    }

    pub fn cast_to_float(&mut self, x: &str) -> String {
        self.node("Cast", &[x], vec![attr_int("to", DataType::Float as i64)], None)
    }

    pub fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.node("Transpose", &[x], vec![attr_ints("perm", perm)], None)
    }

    /// Picks channels (axis 1) in the given order: RGB -> BGR for the caffe convention.
    pub fn gather_channels(&mut self, x: &str, order: &[usize]) -> String {
        let idx: Vec<i64> = order.iter().map(|&c| c as i64).collect();
        let indices = self.initializer_i64("channel_order", &[order.len()], &idx);
        self.node("Gather", &[x, &indices], vec![attr_int("axis", 1)], None)
    }

    /// `x - values` with `values` per channel, broadcast as `[1, C, 1, 1]`.
    pub fn sub_per_channel(&mut self, x: &str, name: &str, values: &[f32]) -> String {
        let c = self.initializer_f32(name, &[1, values.len(), 1, 1], values);
        self.node("Sub", &[x, &c], vec![], None)
    }

    /// `x / values` with `values` per channel, broadcast as `[1, C, 1, 1]`.
    pub fn div_per_channel(&mut self, x: &str, name: &str, values: &[f32]) -> String {
        let c = self.initializer_f32(name, &[1, values.len(), 1, 1], values);
        self.node("Div", &[x, &c], vec![], None)
    }

    /// 3x3 convolution, stride 1, padding 1.
    pub fn conv3x3(&mut self, x: &str, prefix: &str, w: &ConvWeights) -> String {
        let weight = self.initializer_f32(&format!("{prefix}.weight"), &[w.out_channels, w.in_channels, 3, 3], &w.weight);
        let bias = self.initializer_f32(&format!("{prefix}.bias"), &[w.out_channels], &w.bias);
        self.node("Conv", &[x, &weight, &bias], vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("pads", &[1, 1, 1, 1])], None)
    }

    /// float32 -> uint8 (round half to even, saturating).
    pub fn quantize_linear(&mut self, x: &str, prefix: &str, q: QuantParams) -> String {
        let (scale, zero_point) = self.quant_params(prefix, q);
        self.node("QuantizeLinear", &[x, &scale, &zero_point], vec![], None)
    }

    /// uint8 -> float32.
    pub fn dequantize_linear(&mut self, x: &str, prefix: &str, q: QuantParams) -> String {
        let (scale, zero_point) = self.quant_params(prefix, q);
        self.node("DequantizeLinear", &[x, &scale, &zero_point], vec![], None)
    }

    /// 3x3 convolution, stride 1, padding 1, on uint8 activations with int8 weights; the output is
    /// requantized to `w.output`, whose zero point 0 makes the uint8 saturation the ReLU.
    pub fn qlinear_conv3x3(&mut self, x: &str, prefix: &str, input: QuantParams, w: &QuantizedConv) -> String {
        let m = w.out_channels;
        let (x_scale, x_zero_point) = self.quant_params(&format!("{prefix}.input"), input);
        let weight = self.initializer_i8(&format!("{prefix}.weight"), &[m, w.in_channels, 3, 3], &w.weight);
        let w_scale = self.initializer_f32(&format!("{prefix}.weight.scale"), &[], &[w.weight_scale]);
        let w_zero_point = self.initializer_i8(&format!("{prefix}.weight.zero_point"), &[], &[0]);
        let (y_scale, y_zero_point) = self.quant_params(&format!("{prefix}.output"), w.output);
        let bias = self.initializer_i32(&format!("{prefix}.bias"), &[m], &w.bias);
        self.node(
            "QLinearConv",
            &[x, &x_scale, &x_zero_point, &weight, &w_scale, &w_zero_point, &y_scale, &y_zero_point, &bias],
            vec![attr_ints("kernel_shape", &[3, 3]), attr_ints("pads", &[1, 1, 1, 1])],
            None,
        )
    }

    pub fn relu(&mut self, x: &str) -> String {
        self.node("Relu", &[x], vec![], None)
    }

    /// 2x2 max-pool, stride 2.
    pub fn max_pool2(&mut self, x: &str) -> String {
        self.node("MaxPool", &[x], vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("strides", &[2, 2])], None)
    }

    pub fn global_average_pool(&mut self, x: &str) -> String {
        self.node("GlobalAveragePool", &[x], vec![], None)
    }

    /// `[N, ...]` -> `[N, rest]`, row-major: the same order as Burn's reshape.
    pub fn flatten(&mut self, x: &str) -> String {
        self.node("Flatten", &[x], vec![attr_int("axis", 1)], None)
    }

    /// `x @ W + b` with `W` stored `[inputs, outputs]` (Burn's layout, no transposition).
    pub fn gemm(&mut self, x: &str, prefix: &str, w: &DenseWeights) -> String {
        let weight = self.initializer_f32(&format!("{prefix}.weight"), &[w.inputs, w.outputs], &w.weight);
        let bias = self.initializer_f32(&format!("{prefix}.bias"), &[w.outputs], &w.bias);
        self.node("Gemm", &[x, &weight, &bias], vec![], None)
    }

    /// `x @ M` with `M` a constant `[rows, columns]` matrix (no bias).
    pub fn matmul_const(&mut self, x: &str, name: &str, rows: usize, columns: usize, values: &[f32]) -> String {
        let m = self.initializer_f32(name, &[rows, columns], values);
        self.node("MatMul", &[x, &m], vec![], None)
    }

    /// A reduction (`ReduceL2`, `ReduceMax`, ...) over one axis, kept as a dimension of 1.
    pub fn reduce(&mut self, op: &str, x: &str, axis: i64) -> String {
        self.node(op, &[x], vec![attr_ints("axes", &[axis]), attr_int("keepdims", 1)], None)
    }

    pub fn global_max_pool(&mut self, x: &str) -> String {
        self.node("GlobalMaxPool", &[x], vec![], None)
    }

    pub fn concat_axis1(&mut self, parts: &[&str]) -> String {
        self.node("Concat", parts, vec![attr_int("axis", 1)], None)
    }

    /// Reshape to `shape` (`-1`: whatever the batch is).
    pub fn reshape(&mut self, x: &str, name: &str, shape: &[i64]) -> String {
        let shape = self.initializer_i64(name, &[shape.len()], shape);
        self.node("Reshape", &[x, &shape], vec![], None)
    }

    /// An elementwise binary node (`Add`, `Sub`, `Div`, ...) with a scalar constant on either side.
    pub fn with_scalar(&mut self, op: &str, x: &str, name: &str, value: f32, scalar_first: bool) -> String {
        let c = self.initializer_f32(name, &[], &[value]);
        let inputs = if scalar_first { [c.as_str(), x] } else { [x, c.as_str()] };
        self.node(op, &inputs, vec![], None)
    }

    pub fn div(&mut self, a: &str, b: &str) -> String {
        self.node("Div", &[a, b], vec![], None)
    }

    pub fn softmax(&mut self, x: &str, output: &str) -> String {
        self.node("Softmax", &[x], vec![attr_int("axis", 1)], Some(output))
    }

    /// A model with one input; `None` dimensions are symbolic (`N` for the batch).
    pub fn finish(
        self,
        input: (&str, DataType, &[Option<usize>]),
        outputs: &[(&str, DataType, &[Option<usize>])],
        metadata: Vec<(String, String)>,
        doc: &str,
    ) -> pb::ModelProto {
        let value_info = |(name, ty, shape): (&str, DataType, &[Option<usize>])| pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: ty as i32,
                    shape: Some(pb::TensorShapeProto {
                        dim: shape
                            .iter()
                            .enumerate()
                            .map(|(i, d)| pb::tensor_shape_proto::Dimension {
                                value: Some(match d {
                                    Some(v) => pb::tensor_shape_proto::dimension::Value::DimValue(*v as i64),
                                    None if i == 0 => pb::tensor_shape_proto::dimension::Value::DimParam("N".into()),
                                    None => pb::tensor_shape_proto::dimension::Value::DimParam(format!("d{i}")),
                                }),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        pb::ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
            producer_name: "flowercam-trainer".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(pb::GraphProto {
                name: "flowercam".into(),
                node: self.nodes,
                initializer: self.initializers,
                input: vec![value_info(input)],
                output: outputs.iter().copied().map(value_info).collect(),
                ..Default::default()
            }),
            metadata_props: metadata.into_iter().map(|(key, value)| pb::StringStringEntryProto { key, value }).collect(),
            ..Default::default()
        }
    }
}

/// The preprocessing nodes: RGB bytes `[N, S, S, 3]` -> the normalized `[N, 3, S, S]` tensor,
/// the same arithmetic in the same order as [`Normalization::to_chw`].
pub fn preprocessing(g: &mut GraphBuilder, input: &str, normalization: &Normalization) -> String {
    let x = g.cast_to_float(input);
    let x = g.transpose(&x, &[0, 3, 1, 2]);
    let x = if normalization.source_channels == [0, 1, 2] { x } else { g.gather_channels(&x, &normalization.source_channels) };
    let x = g.sub_per_channel(&x, "mean", &normalization.mean);
    // Dividing by 1 changes nothing: the caffe convention has no scaling, so no node for it.
    if normalization.std.iter().all(|&s| s == 1.0) { x } else { g.div_per_channel(&x, "std", &normalization.std) }
}

/// The trunk's outputs that the rest of the graph reads.
pub struct TrunkOutputs {
    /// Block 4's output, after its max-pool (the open-set descriptor pools it).
    pub block4: String,
    /// Block 5's output: the feature map.
    pub features: String,
    /// The feature map's channels (block 4 has as many in VGG16).
    pub channels: usize,
}

/// Index of block 4's last convolution.
const BLOCK4_LAST_CONV: usize = 9;

/// VGG16's layout: `conv(g, x, name, i)` for each of the 13 convolutions, a 2x2 max-pool after
/// each block. The float32 and int8 trunks differ only in `conv`.
fn vgg16_layout(
    g: &mut GraphBuilder,
    mut x: String,
    channels: usize,
    mut conv: impl FnMut(&mut GraphBuilder, &str, &str, usize) -> String,
) -> TrunkOutputs {
    let mut i = 0;
    let mut block4 = String::new();
    for (b, block) in VGG16_BLOCKS.iter().enumerate() {
        for c in 0..*block {
            x = conv(g, &x, &format!("block{}_conv{}", b + 1, c + 1), i);
            i += 1;
        }
        x = g.max_pool2(&x);
        if i == BLOCK4_LAST_CONV + 1 {
            block4 = x.clone();
        }
    }
    TrunkOutputs { block4, features: x, channels }
}

/// The float32 trunk; returns its outputs and every ReLU's output (what int8 calibration measures).
pub fn trunk_f32(g: &mut GraphBuilder, x: String, convs: &[ConvWeights]) -> (TrunkOutputs, Vec<String>) {
    let mut activations = Vec::new();
    let channels = convs.last().map_or(0, |c| c.out_channels);
    let out = vgg16_layout(g, x, channels, |g, x, name, i| {
        let y = g.conv3x3(x, name, &convs[i]);
        let y = g.relu(&y);
        activations.push(y.clone());
        y
    });
    (out, activations)
}

/// The int8 trunk: quantize the normalized input, 13 QLinearConv (ReLU by saturation), uint8
/// max-pools, dequantize the block-4 output and the last feature map.
pub fn trunk_int8(g: &mut GraphBuilder, x: String, q: &QuantizedTrunk) -> TrunkOutputs {
    let x = g.quantize_linear(&x, "input", q.input);
    let channels = q.convs.last().map_or(0, |c| c.out_channels);
    let out = vgg16_layout(g, x, channels, |g, x, name, i| {
        let input = if i == 0 { q.input } else { q.convs[i - 1].output };
        g.qlinear_conv3x3(x, name, input, &q.convs[i])
    });
    TrunkOutputs {
        block4: g.dequantize_linear(&out.block4, "block4", q.convs[BLOCK4_LAST_CONV].output),
        features: g.dequantize_linear(&out.features, "features", q.convs[q.convs.len() - 1].output),
        channels,
    }
}

/// Block 4's output pooled by average and by max, each `[N, C4]`: what the feature cache keeps of
/// it, and the open-set descriptor's first half.
fn pooled_block4(g: &mut GraphBuilder, trunk: &TrunkOutputs) -> (String, String) {
    let average = g.global_average_pool(&trunk.block4);
    let average = g.flatten(&average);
    let max = g.global_max_pool(&trunk.block4);
    (average, g.flatten(&max))
}

/// The exported trunk's weights, in the precision they are written in.
pub enum Trunk<'a> {
    F32(&'a [ConvWeights]),
    Int8(&'a QuantizedTrunk),
}

/// The open-set descriptor `[N, PARTS * C]` ([`crate::openset::descriptor`]): block 4 averaged
/// and max-pooled, then block 5 the same. `pooled5` is block 5's average pool, `[N, C]`, which the
/// head may share.
pub fn open_set_descriptor(g: &mut GraphBuilder, trunk: &TrunkOutputs, pooled5: &str) -> String {
    let (average4, max4) = pooled_block4(g, trunk);
    let max5 = g.global_max_pool(&trunk.features);
    let max5 = g.flatten(&max5);
    g.concat_axis1(&[&average4, &max4, pooled5, &max5])
}

/// The descriptor `[N, PARTS * C]` with each part L2-normalized and scaled by `1 / sqrt(PARTS)`, as
/// [`crate::openset::normalized`] computes it: what the `linear` head and the open-set branch read.
pub fn normalized_descriptor(g: &mut GraphBuilder, descriptor: &str, channels: usize) -> String {
    use crate::openset::PARTS;
    let width = PARTS * channels;
    let parts = g.reshape(descriptor, "descriptor.parts_shape", &[-1, PARTS as i64, channels as i64]);
    let norm = g.reduce("ReduceL2", &parts, 2);
    let norm = g.with_scalar("Add", &norm, "descriptor.epsilon", crate::openset::NORM_EPSILON, false);
    let unit = g.div(&parts, &norm);
    let unit = g.reshape(&unit, "descriptor.flat_shape", &[-1, width as i64]);
    g.with_scalar("Mul", &unit, "descriptor.part_scale", 1.0 / (PARTS as f32).sqrt(), false)
}

/// The open-set branch on normalized descriptors ([`normalized_descriptor`]): `1 - max_j <x, r_j>`
/// against the references normalized the same way, as [`crate::openset::score`] computes it.
pub fn knn_cosine_score(g: &mut GraphBuilder, unit: &str, references: &[Vec<f32>], output: &str) -> String {
    let width = references.first().map_or(0, Vec::len);
    // References as the columns of a [PARTS * C, M] matrix.
    let mut columns = vec![0f32; width * references.len()];
    for (j, r) in references.iter().enumerate() {
        for (i, v) in r.iter().enumerate() {
            columns[i * references.len() + j] = *v;
        }
    }
    let similarities = g.matmul_const(unit, "open_set.references", width, references.len(), &columns);
    let best = g.reduce("ReduceMax", &similarities, 1);
    let one = g.initializer_f32("open_set.one", &[], &[1.0]);
    g.node("Sub", &[&one, &best], vec![], Some(output))
}

/// `score` lowered by the head's evidence in `probabilities` (`[N, K]`), as
/// [`crate::openset::with_evidence`] computes it.
pub fn lowered_by_evidence(g: &mut GraphBuilder, score: &str, probabilities: &str, output: &str) -> String {
    use crate::openset::{EVIDENCE_CAP, EVIDENCE_WEIGHT, PROBABILITY_FLOOR};
    let top = g.reduce("ReduceMax", probabilities, 1);
    let rest = g.with_scalar("Sub", &top, "open_set.evidence.one", 1.0, true);
    let rest = g.with_scalar("Max", &rest, "open_set.evidence.floor", PROBABILITY_FLOOR, false);
    let top = g.with_scalar("Max", &top, "open_set.evidence.top_floor", PROBABILITY_FLOOR, false);
    let (log_top, log_rest) = (g.node("Log", &[&top], vec![], None), g.node("Log", &[&rest], vec![], None));
    let log_odds = g.node("Sub", &[&log_top, &log_rest], vec![], None);
    let evidence = g.with_scalar("Max", &log_odds, "open_set.evidence.zero", 0.0, false);
    let evidence = g.with_scalar("Min", &evidence, "open_set.evidence.cap", EVIDENCE_CAP, false);
    let lowering = g.with_scalar("Mul", &evidence, "open_set.evidence.weight", EVIDENCE_WEIGHT, false);
    g.node("Sub", &[score, &lowering], vec![], Some(output))
}

/// What the exported graph computes besides the trunk: the head and, optionally, the open set.
pub struct Outputs<'a> {
    pub head_kind: HeadKind,
    pub head: &'a [DenseWeights],
    /// L2-normalized pooled features of the training images, for the `unknown_score` output.
    pub open_set_references: Option<&'a [Vec<f32>]>,
    /// The open-set score lowered by the head's evidence ([`lowered_by_evidence`]).
    pub open_set_evidence: bool,
}

/// The whole classifier: preprocessing, trunk, head, Softmax [, open-set score].
pub fn classifier(
    trunk: Trunk,
    outputs: Outputs,
    normalization: &Normalization,
    input_size: usize,
    metadata: Vec<(String, String)>,
) -> pb::ModelProto {
    let mut g = GraphBuilder::default();
    let x = preprocessing(&mut g, ONNX_INPUT, normalization);
    let trunk = match trunk {
        Trunk::F32(convs) => trunk_f32(&mut g, x, convs).0,
        Trunk::Int8(q) => trunk_int8(&mut g, x, q),
    };
    let head_input = HeadInput::of(outputs.head_kind);
    let needs_pool = outputs.head_kind.pools_globally() || outputs.open_set_references.is_some();
    let pooled = if needs_pool {
        let p = g.global_average_pool(&trunk.features);
        Some(g.flatten(&p))
    } else {
        None
    };
    // The normalized descriptor, shared by a `linear` head and the open-set branch.
    let needs_descriptor = head_input == HeadInput::Descriptor || outputs.open_set_references.is_some();
    let descriptor = match &pooled {
        Some(pooled) if needs_descriptor => {
            let descriptor = open_set_descriptor(&mut g, &trunk, pooled);
            Some(normalized_descriptor(&mut g, &descriptor, trunk.channels))
        }
        _ => None,
    };
    let mut x = match (head_input, &descriptor, &pooled, outputs.head_kind.pools_globally()) {
        (HeadInput::Descriptor, Some(d), _, _) => d.clone(),
        (_, _, Some(p), true) => p.clone(),
        _ => g.flatten(&trunk.features),
    };
    let last = outputs.head.len() - 1;
    for (i, layer) in outputs.head.iter().enumerate() {
        x = g.gemm(&x, &format!("head.dense{}", i + 1), layer);
        if i < last {
            x = g.relu(&x);
        }
    }
    let probabilities = g.softmax(&x, ONNX_OUTPUT);
    let classes = outputs.head.last().map_or(0, |l| l.outputs);
    let s = Some(input_size);
    let mut graph_outputs = vec![(probabilities.clone(), DataType::Float, vec![None, Some(classes)])];
    if let (Some(references), Some(descriptor)) = (outputs.open_set_references, &descriptor) {
        let score = if outputs.open_set_evidence {
            let distance = knn_cosine_score(&mut g, descriptor, references, "open_set.distance");
            lowered_by_evidence(&mut g, &distance, &probabilities, ONNX_UNKNOWN_OUTPUT)
        } else {
            knn_cosine_score(&mut g, descriptor, references, ONNX_UNKNOWN_OUTPUT)
        };
        graph_outputs.push((score, DataType::Float, vec![None, Some(1)]));
    }
    let graph_outputs: Vec<(&str, DataType, &[Option<usize>])> =
        graph_outputs.iter().map(|(name, ty, shape)| (name.as_str(), *ty, shape.as_slice())).collect();
    g.finish(
        (ONNX_INPUT, DataType::Uint8, &[None, s, s, Some(3)]),
        &graph_outputs,
        metadata,
        "VGG16 + head image classifier. Input: RGB uint8 [N, S, S, 3] after the resize in metadata; outputs: class \
         probabilities, and where present unknown_score (open-set score; above the metadata's unknown_threshold: none of these).",
    )
}

#[cfg(test)]
mod tests {
    //! One test per node type: a one-node graph run in tract against values computed by hand.
    use super::*;
    use prost::Message;
    use tract_onnx::prelude::*;

    fn run(model: pb::ModelProto, input: Tensor) -> Vec<f32> {
        let bytes = model.encode_to_vec();
        let model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .unwrap()
            .with_input_fact(0, InferenceFact::from(input.clone()).without_value())
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let out = model.run(tvec!(input.into())).unwrap();
        out[0].cast_to::<f32>().unwrap().to_plain_array_view::<f32>().unwrap().iter().copied().collect()
    }

    fn one_node(
        build: impl FnOnce(&mut GraphBuilder, &str) -> String,
        in_type: DataType,
        in_shape: &[usize],
        out_shape: &[usize],
    ) -> pb::ModelProto {
        let mut g = GraphBuilder::default();
        let out = build(&mut g, "x");
        let i: Vec<_> = in_shape.iter().map(|&d| Some(d)).collect();
        let o: Vec<_> = out_shape.iter().map(|&d| Some(d)).collect();
        g.finish(("x", in_type, &i), &[(&out, DataType::Float, &o)], vec![], "")
    }

    fn f32_tensor(shape: &[usize], values: Vec<f32>) -> Tensor {
        tract_ndarray::ArrayD::from_shape_vec(shape, values).unwrap().into_tensor()
    }

    #[test]
    fn cast_u8_to_float() {
        let m = one_node(|g, x| g.cast_to_float(x), DataType::Uint8, &[3], &[3]);
        let input = tract_ndarray::arr1(&[0u8, 7, 255]).into_tensor();
        assert_eq!(run(m, input), vec![0.0, 7.0, 255.0]);
    }

    #[test]
    fn transpose_nhwc_to_nchw() {
        let m = one_node(|g, x| g.transpose(x, &[0, 3, 1, 2]), DataType::Float, &[1, 1, 2, 3], &[1, 3, 1, 2]);
        let out = run(m, f32_tensor(&[1, 1, 2, 3], vec![1., 2., 3., 4., 5., 6.]));
        assert_eq!(out, vec![1., 4., 2., 5., 3., 6.]);
    }

    #[test]
    fn gather_reorders_channels() {
        let m = one_node(|g, x| g.gather_channels(x, &[2, 1, 0]), DataType::Float, &[1, 3, 1, 1], &[1, 3, 1, 1]);
        assert_eq!(run(m, f32_tensor(&[1, 3, 1, 1], vec![1., 2., 3.])), vec![3., 2., 1.]);
    }

    #[test]
    fn sub_and_div_per_channel() {
        let m = one_node(|g, x| g.sub_per_channel(x, "m", &[1., 2., 3.]), DataType::Float, &[1, 3, 1, 1], &[1, 3, 1, 1]);
        assert_eq!(run(m, f32_tensor(&[1, 3, 1, 1], vec![10., 10., 10.])), vec![9., 8., 7.]);
        let m = one_node(|g, x| g.div_per_channel(x, "s", &[1., 2., 4.]), DataType::Float, &[1, 3, 1, 1], &[1, 3, 1, 1]);
        assert_eq!(run(m, f32_tensor(&[1, 3, 1, 1], vec![8., 8., 8.])), vec![8., 4., 2.]);
    }

    #[test]
    fn conv3x3_pads_and_adds_bias() {
        // A single 3x3 kernel of ones on a 3x3 image of ones: 4 at corners, 6 on edges, 9 centre.
        let w = ConvWeights { out_channels: 1, in_channels: 1, weight: vec![1.0; 9], bias: vec![0.5] };
        let m = one_node(|g, x| g.conv3x3(x, "c", &w), DataType::Float, &[1, 1, 3, 3], &[1, 1, 3, 3]);
        let out = run(m, f32_tensor(&[1, 1, 3, 3], vec![1.0; 9]));
        assert_eq!(out, vec![4.5, 6.5, 4.5, 6.5, 9.5, 6.5, 4.5, 6.5, 4.5]);
    }

    #[test]
    fn relu_clamps_negatives() {
        let m = one_node(|g, x| g.relu(x), DataType::Float, &[3], &[3]);
        assert_eq!(run(m, f32_tensor(&[3], vec![-1., 0., 2.])), vec![0., 0., 2.]);
    }

    #[test]
    fn max_pool_halves() {
        let m = one_node(|g, x| g.max_pool2(x), DataType::Float, &[1, 1, 2, 4], &[1, 1, 1, 2]);
        assert_eq!(run(m, f32_tensor(&[1, 1, 2, 4], vec![1., 5., 2., 0., 3., 4., 8., 1.])), vec![5., 8.]);
    }

    #[test]
    fn global_average_pool_and_flatten() {
        let m = one_node(
            |g, x| {
                let p = g.global_average_pool(x);
                g.flatten(&p)
            },
            DataType::Float,
            &[1, 2, 1, 2],
            &[1, 2],
        );
        assert_eq!(run(m, f32_tensor(&[1, 2, 1, 2], vec![1., 3., 10., 20.])), vec![2., 15.]);
    }

    #[test]
    fn gemm_uses_burn_layout() {
        // W is [inputs=2, outputs=3].
        let w = DenseWeights { ids: [0, 0], inputs: 2, outputs: 3, weight: vec![1., 2., 3., 4., 5., 6.], bias: vec![0.5, 0., -1.] };
        let m = one_node(|g, x| g.gemm(x, "d", &w), DataType::Float, &[1, 2], &[1, 3]);
        assert_eq!(run(m, f32_tensor(&[1, 2], vec![1., 1.])), vec![5.5, 7.0, 8.0]);
    }

    #[test]
    fn softmax_over_classes() {
        let m = one_node(|g, x| g.softmax(x, "p"), DataType::Float, &[1, 2], &[1, 2]);
        let out = run(m, f32_tensor(&[1, 2], vec![0.0, (3.0f32).ln()]));
        assert!((out[0] - 0.25).abs() < 1e-6 && (out[1] - 0.75).abs() < 1e-6, "{out:?}");
    }

    #[test]
    fn evidence_lowers_the_score_as_the_direct_computation() {
        let probabilities: [[f32; 3]; 5] = [[0.2, 0.3, 0.5], [0.05, 0.9, 0.05], [1.0, 0.0, 0.0], [0.0, 0.999, 0.001], [0.1, 0.2, 0.7]];
        let distances = [0.3f32, 0.25, 0.1, 0.0, 1.2];
        let m = one_node(
            |g, x| {
                let d = g.initializer_f32("d", &[5, 1], &distances);
                lowered_by_evidence(g, &d, x, "score")
            },
            DataType::Float,
            &[5, 3],
            &[5, 1],
        );
        let got = run(m, f32_tensor(&[5, 3], probabilities.concat()));
        for ((p, d), g) in probabilities.iter().zip(distances).zip(&got) {
            let expected = crate::openset::with_evidence(d, p);
            assert!((g - expected).abs() < 1e-5, "{p:?}: graph {g}, direct {expected}");
        }
        let capped = 0.1 - crate::openset::EVIDENCE_WEIGHT * crate::openset::EVIDENCE_CAP;
        assert!((got[2] - capped).abs() < 1e-6, "a certain head lowers by the cap: {}", got[2]);
    }

    #[test]
    fn open_set_branch_matches_the_direct_computation() {
        // Descriptors of 4 parts x 2 channels; parts differ in scale and direction.
        let references: Vec<Vec<f32>> = [[1.0, 0.0, 5.0, 0.0, 0.0, 1.0, 0.2, 0.9], [0.2, 0.9, 0.1, 3.0, 1.0, 1.0, 0.0, 2.0]]
            .iter()
            .map(|r| crate::openset::normalized(r))
            .collect();
        let rows: [[f32; 8]; 4] = [
            [2.0, 0.1, 0.0, 1.0, 0.5, 0.5, 0.3, 0.3],
            [0.5, 0.5, 0.5, 0.5, 0.0, 7.0, 1.0, 0.0],
            [0.0; 8],
            [1.0, 0.0, 5.0, 0.0, 0.0, 1.0, 0.2, 0.9],
        ];
        let m = one_node(
            |g, x| {
                let unit = normalized_descriptor(g, x, 2);
                knn_cosine_score(g, &unit, &references, "score")
            },
            DataType::Float,
            &[4, 8],
            &[4, 1],
        );
        let got = run(m, f32_tensor(&[4, 8], rows.concat()));
        for (row, g) in rows.iter().zip(&got) {
            let expected = crate::openset::score(row, &references);
            assert!((g - expected).abs() < 1e-6, "{row:?}: graph {g}, direct {expected}");
        }
        assert!((got[2] - 1.0).abs() < 1e-6, "an all-zero descriptor scores 1");
        assert!(got[3].abs() < 1e-5, "a reference's own descriptor scores 0");
    }

    #[test]
    fn normalized_descriptor_matches_the_direct_computation() {
        let rows: [[f32; 8]; 2] = [[2.0, 0.1, 0.0, 1.0, 0.5, 0.5, 0.3, 0.3], [0.0; 8]];
        let m = one_node(|g, x| normalized_descriptor(g, x, 2), DataType::Float, &[2, 8], &[2, 8]);
        let got = run(m, f32_tensor(&[2, 8], rows.concat()));
        let expected: Vec<f32> = rows.iter().flat_map(|r| crate::openset::normalized(r)).collect();
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-6, "graph {got:?}, direct {expected:?}");
        }
    }

    #[test]
    fn open_set_descriptor_pools_block4_and_block5_by_average_and_max() {
        // Block 4: [1, 2, 2, 2]; block 5: [1, 2, 1, 2]. Build the descriptor from both.
        let mut g = GraphBuilder::default();
        let b4 = "b4".to_string();
        let b5 = g.node("Identity", &["b5"], vec![], None);
        let trunk = TrunkOutputs { block4: b4, features: b5.clone(), channels: 2 };
        let p5 = g.global_average_pool(&b5);
        let p5 = g.flatten(&p5);
        let d = open_set_descriptor(&mut g, &trunk, &p5);
        let mut m = g.finish(
            ("b4", DataType::Float, &[Some(1), Some(2), Some(2), Some(2)]),
            &[(&d, DataType::Float, &[Some(1), Some(8)])],
            vec![],
            "",
        );
        let b5_input = pb::ValueInfoProto { name: "b5".into(), ..m.graph.as_ref().unwrap().input[0].clone() };
        m.graph.as_mut().unwrap().input.push(b5_input);
        let bytes = m.encode_to_vec();
        let b4 = vec![1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 0.0, 4.0];
        let b5 = vec![2.0, 4.0, -1.0, 1.0];
        let model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .unwrap()
            .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec!(1, 2, 2, 2)))
            .unwrap()
            .with_input_fact(1, InferenceFact::dt_shape(f32::datum_type(), tvec!(1, 2, 1, 2)))
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let out = model.run(tvec!(f32_tensor(&[1, 2, 2, 2], b4.clone()).into(), f32_tensor(&[1, 2, 1, 2], b5.clone()).into())).unwrap();
        let got: Vec<f32> = out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect();
        let b4_pooled = [crate::features::pool(&b4, [2, 2, 2]), crate::features::pool_max(&b4, [2, 2, 2])].concat();
        assert_eq!(got, crate::openset::descriptor(&b4_pooled, &b5, [2, 1, 2]));
    }

    #[test]
    fn preprocessing_matches_shared_to_chw() {
        use image::{Rgb, RgbImage};
        for convention in [shared::Convention::Caffe, shared::Convention::Torchvision] {
            let n = convention.normalization();
            let img = RgbImage::from_fn(4, 3, |x, y| Rgb([(x * 60) as u8, (y * 90) as u8, (x * y * 20) as u8]));
            let mut g = GraphBuilder::default();
            let out = preprocessing(&mut g, "x", &n);
            let m = g.finish(("x", DataType::Uint8, &[Some(1), Some(3), Some(4), Some(3)]), &[(&out, DataType::Float, &[])], vec![], "");
            let input = tract_ndarray::Array4::from_shape_vec((1, 3, 4, 3), img.as_raw().clone()).unwrap().into_tensor();
            let (graph, reference) = (run(m, input), n.to_chw(&img));
            let diff = graph.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            // Caffe is a subtraction: exact. tract may divide by multiplying with 1/std: 1 ulp.
            let tolerance = if convention == shared::Convention::Caffe { 0.0 } else { 1e-5 };
            assert!(diff <= tolerance, "{convention}: graph and shared::to_chw differ by {diff}");
        }
    }
}
