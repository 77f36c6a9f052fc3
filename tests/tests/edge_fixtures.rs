//! The edge's tests run on bundles checked in under `edge/tests/fixtures/`, so that they do not
//! compile the trainer and Burn. This test keeps them what the trainer's exporter writes today:
//! it exports them afresh and compares. `FLOWERCAM_BLESS=1` writes the fresh ones in their place
//! (after a change to the bundle format or the graph builder).

use std::path::{Path, PathBuf};

use e2e::{TINY_LABELS, write_tiny_bundle};
use prost::Message;
use shared::Bundle;
use tract_onnx::pb;

/// Each checked-in bundle: file name and labels; both at the tiny bundle's size and width.
const FIXTURES: [(&str, &[&str]); 2] = [("tiny.bundle", &TINY_LABELS), ("three_classes.bundle", &["daffodil", "coltsfoot", "dandelion"])];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../edge/tests/fixtures")
}

#[test]
fn the_edge_test_bundles_are_what_the_exporter_writes_today() {
    let scratch = tempfile::tempdir().unwrap();
    let bless = std::env::var_os("FLOWERCAM_BLESS").is_some_and(|v| v == "1");
    for (file, labels) in FIXTURES {
        let stem = file.trim_end_matches(".bundle");
        let fresh_path = write_tiny_bundle(&scratch.path().join(stem), labels);
        let checked_in_path = fixtures_dir().join(file);
        if bless {
            std::fs::copy(&fresh_path, &checked_in_path).unwrap();
            eprintln!("wrote {}", checked_in_path.display());
            continue;
        }
        let rerun = "rewrite them with `FLOWERCAM_BLESS=1 cargo test -p flowercam-tests --test edge_fixtures`";
        let checked_in = Bundle::read(&checked_in_path).unwrap_or_else(|e| panic!("{e}: {rerun}"));
        let fresh = Bundle::read(&fresh_path).unwrap();
        let (a, b) = (&checked_in.manifest, &fresh.manifest);
        // What the edge's tests rest on. Floats computed through the trunk (parity figures, the
        // open-set references) may differ in the last bits between CPUs, so they are not compared.
        assert_eq!(
            (&a.labels, &a.preprocessing, &a.backbone, &a.head, &a.precision, &a.trainer_version),
            (&b.labels, &b.preprocessing, &b.backbone, &b.head, &b.precision, &b.trainer_version),
            "{file} is out of date: {rerun}"
        );
        assert_eq!(a.open_set.is_some(), b.open_set.is_some(), "{file}: open-set output differs: {rerun}");
        assert_eq!(graph_structure(&checked_in.onnx), graph_structure(&fresh.onnx), "{file}: the graph changed: {rerun}");
        assert_eq!(checked_in.self_checks.len(), fresh.self_checks.len(), "{file}: self-checks differ: {rerun}");
    }
}

/// The graph's operators, their wiring and their integer attributes (kernels, strides, axes), and
/// the names and shapes of its tensors: what the edge's tests rest on. Not the values of its
/// weights and constants, nor the metadata (which carries the manifest): floats computed through
/// the trunk may differ in their last bits between CPUs, and with them a number's printed length.
fn graph_structure(onnx: &[u8]) -> Vec<String> {
    let graph = pb::ModelProto::decode(onnx).expect("an ONNX model").graph.expect("a graph");
    let attribute = |a: &pb::AttributeProto| {
        let tensor_dims = a.t.as_ref().map(|t| t.dims.clone());
        format!("{}={}{:?}{:?}{:?}", a.name, a.i, a.ints, tensor_dims, a.s)
    };
    let nodes = graph.node.iter().map(|n| {
        let attributes: Vec<String> = n.attribute.iter().map(attribute).collect();
        format!("{} {:?} -> {:?} {attributes:?}", n.op_type, n.input, n.output)
    });
    let tensors = graph.initializer.iter().map(|t| format!("{} {:?} {}", t.name, t.dims, t.data_type));
    nodes.chain(tensors).collect()
}
