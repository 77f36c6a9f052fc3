//! Shared set-up for the trainer's integration tests: a synthetic dataset and a tiny random
//! VGG16-shaped ONNX trunk in a temporary folder, and a way to run the `trainer` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub backbone: PathBuf,
    pub layout: trainer::fixtures::DatasetLayout,
}

pub fn fixture(classes: &[&str], per_class: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let layout = trainer::fixtures::write_dataset(&data, classes, per_class, 7).unwrap();
    let backbone = dir.path().join("tiny_vgg16.onnx");
    trainer::fixtures::write_trunk_onnx(&backbone, 1.0 / 16.0, 3).unwrap();
    Fixture { dir, data, backbone, layout }
}

impl Fixture {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `trainer train` on the fixture with small, fast settings; flags in `extra` replace them.
    pub fn train_args(&self, run: &str, extra: &[&str]) -> Vec<String> {
        let path = |name: &str| self.path(name).to_str().unwrap().to_string();
        let defaults = [
            ("--data", self.data.to_str().unwrap().to_string()),
            ("--backbone", self.backbone.to_str().unwrap().to_string()),
            ("--out", path(run)),
            ("--export-to", self.path("models").join(run).to_str().unwrap().to_string()),
            ("--cache-dir", path("cache")),
            ("--input-size", "64".into()),
            ("--epochs", "12".into()),
            ("--batch-size", "8".into()),
        ];
        let mut args = vec!["train".to_string()];
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                args.extend([flag.to_string(), value]);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// `trainer export --run RUN --out models/NAME --json` on a run of this fixture.
    pub fn export(&self, run: &str, name: &str) -> Output {
        let path = |p: PathBuf| p.to_str().unwrap().to_string();
        trainer(&[
            "export".into(),
            "--run".into(),
            path(self.path(run)),
            "--out".into(),
            path(self.path("models").join(name)),
            "--json".into(),
        ])
    }
}

pub fn trainer(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer")).args(args).env("RUST_LOG", "warn").output().expect("trainer runs")
}

pub fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "trainer failed ({:?}):\n{}", output.status.code(), String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}

pub fn exists(path: &Path) -> bool {
    path.exists() && std::fs::metadata(path).map(|m| m.len() > 0).unwrap_or(false)
}
