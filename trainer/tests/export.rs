//! The exporter and its parity gate, on random VGG16-shaped models (no data, no download).

use burn::prelude::*;
use image::RgbImage;
use shared::manifest::OpenSetMethod;
use shared::{BackboneInfo, Convention, HeadKind, Precision, Preprocessing, ResizePolicy, TrainingSummary};
use trainer::backbone::Vgg16Weights;
use trainer::export::write::ExportLock;
use trainer::export::{ExportInput, export};
use trainer::features::images_to_tensor;
use trainer::model::{Classifier, Head, Vgg16Trunk, to_vec};

/// What an export left in `dir`, but for the name's lock (`.NAME.lock`, which stays as a
/// lock file does).
fn written(dir: &std::path::Path) -> Vec<String> {
    let names = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
    names.filter(|n| !(n.starts_with('.') && n.ends_with(".lock"))).collect()
}

/// The export's hold on its model name, as the commands take it.
fn lock(out: &std::path::Path) -> ExportLock {
    ExportLock::acquire(out).unwrap()
}

const SIZE: u32 = 64;

fn images() -> Vec<RgbImage> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let p = Preprocessing::new(SIZE, ResizePolicy::Stretch).unwrap();
    (0..6).map(|i| p.prepare_rgb(&trainer::fixtures::photo(i % 2, &mut rng))).collect()
}

struct Model {
    trunk: Vgg16Weights,
    head: Vec<trainer::model::weights::DenseWeights>,
    kind: HeadKind,
}

fn model(kind: HeadKind, convention: Convention) -> Model {
    let trunk = Vgg16Weights::random(21, 1.0 / 16.0, convention);
    let device = Device::flex();
    device.seed(5);
    let head = Head::new(kind, trainer::features::feature_dims(trunk.out_channels(), SIZE), 2, 0.0, &device).to_weights();
    Model { trunk, head, kind }
}

/// What Burn (the trainer's engine) predicts for the images.
fn burn_probabilities(m: &Model, images: &[RgbImage]) -> Vec<Vec<f32>> {
    let device = Device::flex();
    let head =
        Head::new(m.kind, trainer::features::feature_dims(m.trunk.out_channels(), SIZE), 2, 0.0, &device).load_weights(&m.head, &device);
    let classifier = Classifier { trunk: Vgg16Trunk::from_weights(&m.trunk.convs, &device), head };
    let probs = to_vec(classifier.probabilities(images_to_tensor(images, &m.trunk.convention.normalization(), &device)));
    probs.chunks(2).map(<[f32]>::to_vec).collect()
}

fn input<'a>(m: &Model, images: &'a [RgbImage], expected: Vec<Vec<f32>>) -> ExportInput<'a> {
    input_at(m, images, expected, Precision::F32)
}

fn input_at<'a>(m: &Model, images: &'a [RgbImage], expected: Vec<Vec<f32>>, precision: Precision) -> ExportInput<'a> {
    ExportInput {
        signing_key: None,
        name: "tiny".into(),
        labels: vec!["a".into(), "b".into()],
        preprocessing: Preprocessing::new(SIZE, ResizePolicy::Stretch).unwrap(),
        normalization: m.trunk.convention.normalization(),
        backbone: BackboneInfo { name: "random".into(), ..m.trunk.info(SIZE as usize, &m.trunk.sha256()) },
        head_kind: m.kind,
        trunk: m.trunk.convs.clone(),
        head: m.head.clone(),
        precision,
        calibration: images.iter().collect(),
        training: TrainingSummary::untrained(images.len() as u32),
        images: images.iter().enumerate().map(|(i, img)| (format!("img{i}"), i % 2, img)).collect(),
        expected,
        open_set: None,
        cross_validation: None,
    }
}

/// The open-set output with the first two images as references, scored as the trainer scores.
/// With `probabilities` (the model's, per image), the score lowered by the head's evidence.
fn open_set(m: &Model, images: &[RgbImage], probabilities: Option<&[Vec<f32>]>) -> trainer::export::OpenSetExport {
    let device = Device::flex();
    let trunk = Vgg16Trunk::from_weights(&m.trunk.convs, &device);
    let dims = trainer::features::feature_dims(m.trunk.out_channels(), SIZE);
    let pooled: Vec<Vec<f32>> = trainer::features::burn_forward(&trunk, &device, &m.trunk.convention.normalization(), images)
        .iter()
        .map(|f| trainer::openset::descriptor(&f.block4_pooled, &f.map, dims))
        .collect();
    let references: Vec<Vec<f32>> = pooled[..2].iter().map(|r| trainer::openset::normalized(r)).collect();
    let distances = pooled.iter().map(|f| trainer::openset::score(f, &references));
    let (method, expected) = match probabilities {
        Some(p) => {
            (OpenSetMethod::KnnCosineBlocks45Evidence, distances.zip(p).map(|(d, p)| trainer::openset::with_evidence(d, p)).collect())
        }
        None => (OpenSetMethod::KnnCosineBlocks45, distances.collect()),
    };
    trainer::export::OpenSetExport { method, references, threshold: 0.5, target_acceptance: 0.975, expected }
}

#[test]
fn each_head_and_convention_exports_and_matches_burn_in_tract() {
    let images = images();
    let cases = [(HeadKind::Linear, Convention::Caffe), (HeadKind::Gap, Convention::Caffe), (HeadKind::Flatten, Convention::Torchvision)];
    for (kind, convention) in cases {
        let m = model(kind, convention);
        let expected = burn_probabilities(&m, &images);
        let dir = tempfile::tempdir().unwrap();
        // The open-set output rides on the trunk's pooled blocks, whichever head: one head without it.
        let with_open_set = kind != HeadKind::Gap;
        let mut export_input = input(&m, &images, expected.clone());
        // The linear head's score is lowered by its evidence, as the trainer exports it.
        let evidence = (kind == HeadKind::Linear).then_some(expected.as_slice());
        export_input.open_set = with_open_set.then(|| open_set(&m, &images, evidence));
        let report = export(export_input, &lock(&dir.path().join("tiny"))).unwrap();
        let parity = &report.manifest.parity;
        assert_eq!(parity.unknown_score_max_abs_diff.is_some(), with_open_set);
        assert!(parity.unknown_score_max_abs_diff.unwrap_or(0.0) <= 1e-4, "{kind}: {parity:?}");
        assert_eq!(report.manifest.open_set.as_ref().map(|o| o.threshold), with_open_set.then_some(0.5));
        let method = if kind == HeadKind::Linear { OpenSetMethod::KnnCosineBlocks45Evidence } else { OpenSetMethod::KnnCosineBlocks45 };
        assert_eq!(report.manifest.open_set.as_ref().map(|o| o.method), with_open_set.then_some(method));
        assert_eq!(parity.images, 6);
        assert!(parity.max_abs_diff <= 1e-4, "{kind}: {parity:?}");
        assert_eq!(parity.argmax_agreement, 1.0);
        // The bundle reloads, and its ONNX run again in tract gives the recorded self-checks.
        let bundle = shared::Bundle::read(&report.bundle_path).unwrap();
        assert_eq!(bundle.onnx, std::fs::read(&report.onnx_path).unwrap());
        let graph = shared::runtime::Graph::load(bundle.onnx.clone(), SIZE).unwrap();
        for check in &bundle.self_checks {
            let img = RgbImage::from_raw(SIZE, SIZE, check.rgb.clone()).unwrap();
            let got = graph.classify(&img).unwrap();
            let diff = got.probabilities.iter().zip(&check.expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff <= 1e-6, "{kind}: self-check {} drifted by {diff}", check.name);
            assert_eq!(got.unknown_score, check.expected_unknown_score, "{kind}: self-check {}", check.name);
            assert_eq!(got.unknown_score.is_some(), with_open_set);
        }
        // The graph is standard ONNX with the labels in its metadata.
        use prost::Message;
        let proto = tract_onnx::pb::ModelProto::decode(bundle.onnx.as_slice()).unwrap();
        assert_eq!(proto.opset_import[0].version, 13);
        assert!(proto.metadata_props.iter().any(|p| p.key == "labels" && p.value == r#"["a","b"]"#));
        let graph = proto.graph.unwrap();
        assert_eq!(graph.input[0].name, "image");
        assert_eq!(graph.output[0].name, "probabilities");
        assert_eq!(graph.output.get(1).map(|o| o.name.as_str()), with_open_set.then_some("unknown_score"));
    }
}

#[test]
fn a_corrupted_export_is_caught_and_leaves_no_files() {
    let images = images();
    let m = model(HeadKind::Gap, Convention::Caffe);
    let expected = burn_probabilities(&m, &images);
    let mut corrupted = model(HeadKind::Gap, Convention::Caffe);
    // One value changed in the last dense layer (its first bias): what a bad copy would do.
    let last = corrupted.head.len() - 1;
    corrupted.head[last].bias[0] = -corrupted.head[last].bias[0] + 1.0;
    let dir = tempfile::tempdir().unwrap();
    let err = export(input(&corrupted, &images, expected), &lock(&dir.path().join("tiny"))).unwrap_err();
    assert!(err.downcast_ref::<trainer::export::parity::ParityFailure>().is_some(), "{err:#}");
    assert!(err.to_string().contains("img"), "the report names the worst images: {err}");
    assert_eq!(written(dir.path()), Vec::<String>::new(), "a failed export must write nothing");
}

#[test]
fn an_int8_export_runs_quantized_convolutions_within_its_stated_tolerance() {
    let images = images();
    let m = model(HeadKind::Gap, Convention::Caffe);
    let expected = burn_probabilities(&m, &images);
    let dir = tempfile::tempdir().unwrap();
    let report = export(input_at(&m, &images, expected.clone(), Precision::Int8), &lock(&dir.path().join("tiny_int8"))).unwrap();
    let manifest = &report.manifest;
    assert_eq!(manifest.precision, Precision::Int8);
    assert_eq!(manifest.parity.tolerance, shared::INT8_PROBABILITY_TOLERANCE);
    assert!(manifest.parity.max_abs_diff <= shared::INT8_PROBABILITY_TOLERANCE, "{:?}", manifest.parity);
    assert_eq!(manifest.parity.argmax_agreement, 1.0);

    // The trunk really is 8-bit: 13 QLinearConv with int8 weights, no float Conv left.
    use prost::Message;
    let bundle = shared::Bundle::read(&report.bundle_path).unwrap();
    let graph = tract_onnx::pb::ModelProto::decode(bundle.onnx.as_slice()).unwrap().graph.unwrap();
    let count = |op: &str| graph.node.iter().filter(|n| n.op_type == op).count();
    assert_eq!((count("QLinearConv"), count("Conv"), count("MaxPool")), (13, 0, 5));
    let int8_weights =
        graph.initializer.iter().filter(|t| t.data_type == tract_onnx::pb::tensor_proto::DataType::Int8 as i32 && t.dims.len() == 4);
    assert_eq!(int8_weights.count(), 13);

    // Quantization moved the probabilities (it is not the float graph), but not past the tolerance.
    let graph = shared::runtime::Graph::load(bundle.onnx.clone(), SIZE).unwrap();
    let got: Vec<Vec<f32>> = images.iter().map(|img| graph.classify(img).unwrap().probabilities).collect();
    let diff = got.iter().zip(&expected).map(|(g, e)| shared::compare::max_abs_diff(g, e)).fold(0f32, f32::max);
    assert!(diff > 0.0 && diff <= shared::INT8_PROBABILITY_TOLERANCE, "int8 vs float32: {diff}");
}

#[test]
fn an_open_set_score_that_disagrees_with_the_trainer_is_caught() {
    let images = images();
    let m = model(HeadKind::Linear, Convention::Caffe);
    let expected = burn_probabilities(&m, &images);
    let mut bad = open_set(&m, &images, Some(&expected));
    bad.expected[3] += 0.01;
    let mut export_input = input(&m, &images, expected);
    export_input.open_set = Some(bad);
    let dir = tempfile::tempdir().unwrap();
    let err = export(export_input, &lock(&dir.path().join("tiny"))).unwrap_err();
    assert!(err.downcast_ref::<trainer::export::parity::ParityFailure>().is_some(), "{err:#}");
    assert!(err.to_string().contains("open-set score"), "{err}");
    assert_eq!(written(dir.path()), Vec::<String>::new(), "a failed export must write nothing");
}

/// The graphs the trainer writes stay within what the edge loads (`shared::runtime::limits`) at
/// the extremes a bundle may have: input 32 and 1024, a full-width VGG16, 1000 classes and 5000
/// open-set references (the fixed-size head and references weigh most at 32 pixels, the trunk's
/// tensors at 1024).
#[test]
fn the_trainers_largest_graphs_stay_within_the_edges_limits() {
    let trunk = Vgg16Weights::random(3, 1.0, Convention::Caffe);
    let normalization = trunk.convention.normalization();
    let classes = shared::bounded::MAX_LABELS;
    let width = trainer::openset::PARTS * trunk.out_channels();
    let references = vec![vec![0.01; width]; 5000];
    let device = Device::flex();
    for size in [32usize, 1024] {
        let dims = trainer::features::feature_dims(trunk.out_channels(), size as u32);
        let head = Head::new(HeadKind::Linear, dims, classes, 0.0, &device).to_weights();
        let outputs = trainer::export::graph::Outputs {
            head_kind: HeadKind::Linear,
            head: &head,
            open_set_references: Some(&references),
            open_set_evidence: true,
        };
        let graph =
            trainer::export::graph::classifier(trainer::export::graph::Trunk::F32(&trunk.convs), outputs, &normalization, size, vec![]);
        let loaded = shared::runtime::Graph::load(prost::Message::encode_to_vec(&graph), size as u32);
        assert!(loaded.is_ok(), "{size} pixels: {:#}", loaded.err().unwrap());
    }
    // The original recipe's `flatten` head grows with the input: at 320 pixels its first matrix
    // is 210 MB, which with the trunk's 59 MB packs past 256 MB; the bound allows what a graph
    // carries itself.
    let size = 320;
    let dims = trainer::features::feature_dims(trunk.out_channels(), size as u32);
    let head = Head::new(HeadKind::Flatten, dims, 2, 0.0, &device).to_weights();
    let outputs = trainer::export::graph::Outputs {
        head_kind: HeadKind::Flatten,
        head: &head,
        open_set_references: Some(&references),
        open_set_evidence: false,
    };
    let graph = trainer::export::graph::classifier(trainer::export::graph::Trunk::F32(&trunk.convs), outputs, &normalization, size, vec![]);
    let loaded = shared::runtime::Graph::load(prost::Message::encode_to_vec(&graph), size as u32);
    assert!(loaded.is_ok(), "flatten at {size} pixels: {:#}", loaded.err().unwrap());
}
