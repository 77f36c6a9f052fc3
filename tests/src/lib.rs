//! Helpers for the workspace-level end-to-end tests: finding the built binaries, running
//! them, and locating the real data when CI provides it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A workspace binary (`trainer`, `edge`) from the same target folder as this test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/..");
    let path = dir.join(name);
    assert!(path.exists(), "{} is not built: run the tests with `cargo test --workspace` (same profile)", path.display());
    path
}

pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name)).args(args).env("RUST_LOG", "warn").output().expect("binary runs")
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tiny bundle's classes.
pub const TINY_LABELS: [&str; 2] = ["daffodil", "coltsfoot"];

/// A random 2-class bundle (daffodil, coltsfoot) at 64 px in `dir`: fast, and a real tract graph.
pub fn tiny_bundle(dir: &Path) -> PathBuf {
    write_tiny_bundle(&dir.join("tiny"), &TINY_LABELS)
}

/// A random f32 bundle with `labels` at 64 px and 1/16 of VGG16's filters, written to `out`
/// (`DIR/NAME`) by the trainer's exporter. The edge's tests use copies checked in under
/// `edge/tests/fixtures/` (tests/edge_fixtures.rs keeps them current).
pub fn write_tiny_bundle(out: &Path, labels: &[&str]) -> PathBuf {
    trainer::fixtures::write_random_bundle(out, 64, 1.0 / 16.0, labels, shared::Precision::F32).expect("a random bundle")
}

/// A path from the environment for tests on real data and weights. Unset: `None` locally, but
/// a failure under CI (`CI` set), so a CI run never passes while skipping them. Set but
/// missing on disk: always a failure.
pub fn real_input(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(path.exists(), "{var}={} does not exist", path.display());
            Some(path)
        }
        None if std::env::var_os("CI").is_some() => panic!("{var} is not set; CI must run the real-data tests (see .ci/run)"),
        None => {
            eprintln!("{var} not set: real-data test not run here");
            None
        }
    }
}

/// Where tests leave exported ONNX files for the onnxruntime cross-check in `.ci/run`.
pub fn onnx_check_dir() -> PathBuf {
    let dir = PathBuf::from(std::env::var_os("FLOWERCAM_ONNX_CHECK_DIR").unwrap_or_else(|| "target/onnx-check".into()));
    std::fs::create_dir_all(&dir).expect("create the onnx-check folder");
    dir
}

/// Writes a bundle's self-checks as JSON next to its ONNX, for the onnxruntime cross-check.
pub fn export_for_onnxruntime(bundle: &Path, name: &str) {
    let b = shared::Bundle::read(bundle).expect("bundle");
    let dir = onnx_check_dir();
    std::fs::write(dir.join(format!("{name}.onnx")), &b.onnx).unwrap();
    let s = b.manifest.preprocessing.input_size;
    let checks: Vec<_> = b
        .self_checks
        .iter()
        .map(|c| {
            serde_json::json!({"name": c.name, "shape": [1, s, s, 3], "rgb": c.rgb, "expected": c.expected, "expected_unknown_score": c.expected_unknown_score})
        })
        .collect();
    let checks = serde_json::json!({"tolerance": b.manifest.parity.tolerance, "precision": b.manifest.precision.name(), "checks": checks});
    std::fs::write(dir.join(format!("{name}.checks.json")), serde_json::to_vec(&checks).unwrap()).unwrap();
}
