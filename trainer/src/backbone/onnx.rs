//! VGG16 conv weights out of an ONNX graph: the first 13 `Conv` nodes, in graph order, whose
//! weights are initializers. Works for our clean trunk and for Keras exports (tf2onnx) alike.
//! And the other way: a trunk written as such a graph (slim trunks, test fixtures).

use std::collections::HashMap;
use std::path::Path;

use prost::Message;
use shared::Convention;
use tract_onnx::pb;

use super::{BackboneError, ConvWeights, Teacher, TrunkFile, Vgg16Weights, check_shapes};

const FLOAT: i32 = 1;

/// Metadata keys of a slim trunk's file (`trainer slim` writes them, [`read_convs`] reads the
/// teacher back for the manifest).
pub const META_TEACHER_SHA256: &str = "slim_teacher_sha256";
pub const META_TEACHER_CHANNELS: &str = "slim_teacher_channels";
pub const META_KEEP: &str = "slim_keep";
pub const META_KEPT_CHANNELS: &str = "slim_kept_channels";
/// JSON with, among the settings and losses, `photos`: how many it was distilled on.
pub const META_DISTILLATION: &str = "slim_distillation";

/// Writes `weights` as a trunk ONNX (`image` in, `features` out: the last block's pooled map)
/// that [`read_convs`] reads back, atomically. `metadata` goes beside `input_convention`.
pub fn write_trunk(path: &Path, weights: &Vgg16Weights, metadata: Vec<(String, String)>, description: &str) -> anyhow::Result<()> {
    use crate::export::graph::{GraphBuilder, trunk_f32};
    use tract_onnx::pb::tensor_proto::DataType;

    let mut g = GraphBuilder::default();
    let (trunk, _) = trunk_f32(&mut g, "image".into(), &weights.convs);
    let out = g.node("Identity", &[&trunk.features], vec![], Some("features"));
    let mut all_metadata = vec![("input_convention".to_string(), weights.convention.name().to_string())];
    all_metadata.extend(metadata);
    let model = g.finish(
        ("image", DataType::Float, &[None, Some(3), None, None]),
        &[(&out, DataType::Float, &[None, Some(weights.out_channels()), None, None])],
        all_metadata,
        description,
    );
    Ok(shared::atomic::write_atomic(path, &model.encode_to_vec())?)
}

/// The 13 convolutions, the input convention the file states, and a slim trunk's teacher.
pub fn read_convs(path: &Path) -> Result<TrunkFile, BackboneError> {
    let bytes = std::fs::read(path).map_err(|cause| BackboneError::Read { path: path.into(), cause })?;
    let format = |problem: String| BackboneError::Format { path: path.into(), problem };
    let model = pb::ModelProto::decode(bytes.as_slice()).map_err(|e| format(format!("not an ONNX model: {e}")))?;
    let graph = model.graph.as_ref().ok_or_else(|| format("ONNX model has no graph".into()))?;
    let initializers: HashMap<&str, &pb::TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();

    let mut convs = Vec::new();
    let mut names = Vec::new();
    for node in graph.node.iter().filter(|n| n.op_type == "Conv").take(13) {
        let tensor = |i: usize| -> Result<(Vec<usize>, Vec<f32>), BackboneError> {
            let name = node.input.get(i).map(String::as_str).unwrap_or("");
            let t =
                initializers.get(name).ok_or_else(|| format(format!("Conv node '{}' input '{name}' is not a stored weight", node.name)))?;
            Ok((t.dims.iter().map(|&d| d as usize).collect(), float_values(t).map_err(|p| format(format!("{name}: {p}")))?))
        };
        let (dims, weight) = tensor(1)?;
        let bias = if node.input.len() > 2 { tensor(2)?.1 } else { vec![0.0; dims.first().copied().unwrap_or(0)] };
        if dims.len() != 4 || dims[2] != 3 || dims[3] != 3 {
            let found = dims.clone();
            return Err(BackboneError::Shape {
                path: path.into(),
                layer: convs.len() + 1,
                name: node.input[1].clone(),
                found,
                expected: vec![64, 3, 3, 3],
            });
        }
        names.push(node.input[1].clone());
        convs.push(ConvWeights { out_channels: dims[0], in_channels: dims[1], weight, bias });
    }
    if convs.len() < 13 {
        let hint = if convs.is_empty() { ": is this a VGG16 model?".into() } else { String::new() };
        return Err(BackboneError::MissingLayers { path: path.into(), found: convs.len(), hint });
    }
    check_shapes(path, &convs, &names)?;
    let teacher = teacher_of(&model).map_err(|problem| format(format!("slim trunk metadata: {problem}")))?;
    Ok(TrunkFile { convs, convention: convention_of(&model), slimmed_from: teacher })
}

/// A slim trunk's teacher, from its metadata (`None`: not a slim trunk). The teacher's filters
/// are VGG16's when the file does not state them.
fn teacher_of(model: &pb::ModelProto) -> Result<Option<Teacher>, String> {
    let meta = |key: &str| model.metadata_props.iter().find(|p| p.key == key).map(|p| p.value.as_str());
    let Some(sha256) = meta(META_TEACHER_SHA256) else { return Ok(None) };
    let channels = match meta(META_TEACHER_CHANNELS) {
        Some(json) => serde_json::from_str(json).map_err(|e| format!("{META_TEACHER_CHANNELS}: {e}"))?,
        None => super::VGG16_CONVS.iter().map(|&(filters, _)| filters).collect(),
    };
    let distilled_on = match meta(META_DISTILLATION) {
        Some(json) => {
            let summary: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("{META_DISTILLATION}: {e}"))?;
            summary["photos"].as_u64().ok_or_else(|| format!("{META_DISTILLATION}: no photo count"))? as usize
        }
        None => 0,
    };
    Ok(Some(Teacher { sha256: sha256.to_string(), channels, distilled_on }))
}

/// The input convention, from metadata (`input_convention`), the doc string, or the producer:
/// Keras models (tf2onnx, keras2onnx) always use the caffe convention for VGG16.
fn convention_of(model: &pb::ModelProto) -> Option<Convention> {
    for prop in &model.metadata_props {
        if prop.key == "input_convention" {
            return prop.value.parse().ok();
        }
    }
    let doc = format!("{} {}", model.doc_string, model.graph.as_ref().map(|g| g.doc_string.as_str()).unwrap_or("")).to_lowercase();
    if doc.contains("torchvision") {
        return Some(Convention::Torchvision);
    }
    if doc.contains("caffe") {
        return Some(Convention::Caffe);
    }
    let producer = model.producer_name.to_lowercase();
    (producer.contains("tf2onnx") || producer.contains("keras")).then_some(Convention::Caffe)
}

fn float_values(t: &pb::TensorProto) -> Result<Vec<f32>, String> {
    if t.data_type != FLOAT {
        return Err(format!("data type {} is not float32", t.data_type));
    }
    if !t.external_data.is_empty() {
        return Err("weights stored outside the .onnx file are not supported; re-save with weights inside".into());
    }
    let count: usize = t.dims.iter().map(|&d| d as usize).product();
    let values: Vec<f32> = if !t.raw_data.is_empty() {
        t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else {
        t.float_data.clone()
    };
    if values.len() != count {
        return Err(format!("holds {} values, its shape {:?} needs {count}", values.len(), t.dims));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::{BackboneError, Vgg16Weights};
    use crate::export::graph::GraphBuilder;
    use tract_onnx::pb::tensor_proto::DataType;

    fn write(path: &Path, convs: &[ConvWeights], metadata: Vec<(String, String)>) {
        let mut g = GraphBuilder::default();
        let mut x = "image".to_string();
        for (i, w) in convs.iter().enumerate() {
            x = g.conv3x3(&x, &format!("c{i}"), w);
        }
        let m = g.finish(("image", DataType::Float, &[None, Some(3), None, None]), &[(&x, DataType::Float, &[])], metadata, "");
        std::fs::write(path, m.encode_to_vec()).unwrap();
    }

    #[test]
    fn reads_a_trunk_and_its_convention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.onnx");
        let w = Vgg16Weights::random(5, 1.0 / 16.0, Convention::Caffe);
        write(&path, &w.convs, vec![("input_convention".into(), "torchvision".into())]);
        let loaded = Vgg16Weights::load(&path, None).unwrap();
        assert_eq!(loaded.convs, w.convs);
        assert_eq!(loaded.convention, Convention::Torchvision);
        assert_eq!(loaded.sha256(), w.sha256());
        // The command line overrides the file.
        assert_eq!(Vgg16Weights::load(&path, Some(Convention::Caffe)).unwrap().convention, Convention::Caffe);
    }

    #[test]
    fn unknown_convention_asks_for_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.onnx");
        write(&path, &Vgg16Weights::random(5, 1.0 / 16.0, Convention::Caffe).convs, vec![]);
        let err = Vgg16Weights::load(&path, None).unwrap_err();
        assert!(matches!(err, BackboneError::UnknownConvention { .. }), "{err}");
        assert!(err.to_string().contains("--backbone-convention"));
    }

    #[test]
    fn a_slim_trunks_teacher_is_read_back_and_bad_metadata_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slim.onnx");
        let w = Vgg16Weights::random(5, 1.0 / 16.0, Convention::Caffe);
        let meta = |channels: &str, distillation: &str| {
            vec![
                ("input_convention".to_string(), "caffe".to_string()),
                (META_TEACHER_SHA256.to_string(), "ab12".to_string()),
                (META_TEACHER_CHANNELS.to_string(), channels.to_string()),
                (META_DISTILLATION.to_string(), distillation.to_string()),
            ]
        };
        write(&path, &w.convs, meta("[8,8,16,16,32,32,32,64,64,64,64,64,64]", r#"{"photos": 160, "options": {}}"#));
        let loaded = Vgg16Weights::load(&path, None).unwrap();
        let teacher = loaded.slimmed_from.clone().expect("a slim trunk's teacher");
        assert_eq!(
            teacher,
            Teacher {
                sha256: "ab12".into(),
                channels: Vgg16Weights::random(5, 1.0 / 8.0, Convention::Caffe).channels(),
                distilled_on: 160
            }
        );
        let info = loaded.info(64, &loaded.sha256());
        let slimming = info.slimmed_from.expect("in the manifest");
        assert_eq!(slimming.teacher_sha256, "ab12");
        assert_eq!(slimming.distilled_on, 160);
        assert_eq!(info.channels, w.channels().iter().map(|&c| c as u32).collect::<Vec<_>>());
        // Half the filters everywhere: a quarter of the multiply-adds, but the first layer's (3 inputs) only half.
        assert!(slimming.teacher_macs > 3 * info.macs && slimming.teacher_macs < 4 * info.macs, "{slimming:?} {}", info.macs);
        // A trunk without the keys is no slim trunk.
        write(&path, &w.convs, vec![("input_convention".into(), "caffe".into())]);
        assert_eq!(Vgg16Weights::load(&path, None).unwrap().slimmed_from, None);
        // Damaged metadata is an error naming the file and the key.
        write(&path, &w.convs, meta("[8,8", "{}"));
        let err = Vgg16Weights::load(&path, None).unwrap_err().to_string();
        assert!(err.contains("slim.onnx") && err.contains(META_TEACHER_CHANNELS), "{err}");
        write(&path, &w.convs, meta("[8]", "{}"));
        let err = Vgg16Weights::load(&path, None).unwrap_err().to_string();
        assert!(err.contains(META_DISTILLATION) && err.contains("photo count"), "{err}");
    }

    #[test]
    fn missing_and_misshapen_layers_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.onnx");
        let w = Vgg16Weights::random(5, 1.0 / 16.0, Convention::Caffe);
        write(&path, &w.convs[..5], vec![]);
        let err = Vgg16Weights::load(&path, Some(Convention::Caffe)).unwrap_err();
        assert!(matches!(err, BackboneError::MissingLayers { found: 5, .. }), "{err}");
        let mut convs = w.convs.clone();
        convs[6] = Vgg16Weights::random(5, 1.0 / 8.0, Convention::Caffe).convs[6].clone();
        write(&path, &convs, vec![]);
        let err = Vgg16Weights::load(&path, Some(Convention::Caffe)).unwrap_err().to_string();
        assert!(err.contains("conv layer 7") && err.contains("t.onnx"), "{err}");
        std::fs::write(&path, b"not a protobuf at all").unwrap();
        assert!(Vgg16Weights::load(&path, Some(Convention::Caffe)).is_err());
    }
}
