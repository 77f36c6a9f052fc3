//! `trainer slim` end to end: a narrower trunk from a teacher, trained on like any backbone,
//! exported through the parity gate, and run by the edge.

use e2e::{export_for_onnxruntime, ok, run};

#[test]
fn a_slim_trunk_trains_exports_and_runs_on_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| dir.path().join(s).to_str().unwrap().to_string();
    trainer::fixtures::write_dataset(&dir.path().join("data"), &["stripes", "columns"], 10, 5).unwrap();
    // A teacher twice as wide as the other tests' trunks, so that half of it is their size.
    let teacher = trainer::fixtures::write_trunk_onnx(&dir.path().join("teacher.onnx"), 1.0 / 8.0, 9).unwrap();

    let report: serde_json::Value = serde_json::from_str(&ok(&run(
        "trainer",
        &[
            "slim",
            "--backbone",
            &p("teacher.onnx"),
            "--keep",
            "0.5",
            "--data",
            &p("data"),
            "--epochs",
            "3",
            "--lr",
            "1e-3",
            "--input-size",
            "64",
            "--cache-dir",
            &p("cache"),
            "--out",
            &p("slim.onnx"),
            "--json",
        ],
    )))
    .unwrap();
    let history = &report["distillation"]["history"];
    let losses: Vec<f64> = history["epochs"].as_array().unwrap().iter().map(|e| e["loss"].as_f64().unwrap()).collect();
    assert_eq!(losses.len(), 3, "{history}");
    assert!(losses[2] < history["before"].as_f64().unwrap(), "distillation lowers the feature loss: {history}");
    assert!(!dir.path().join("slim.onnx.distill-checkpoint").exists(), "the checkpoint goes once the trunk is written");
    let channels: Vec<u64> = serde_json::from_value(report["channels"].clone()).unwrap();
    let halved: Vec<u64> = teacher.convs.iter().map(|c| c.out_channels as u64 / 2).collect();
    assert_eq!(channels, halved, "{report}");
    assert_eq!(report["teacher_sha256"], teacher.sha256());
    let (full, slim) = (report["teacher_macs"].as_u64().unwrap(), report["slim_macs"].as_u64().unwrap());
    assert!(slim * 7 / 2 < full && slim * 5 > full, "half the filters cost about a quarter: {slim} of {full}");

    // The slim file is a backbone: it trains, passes the gate, and the edge agrees.
    let out = run(
        "trainer",
        &[
            "train",
            "--data",
            &p("data"),
            "--backbone",
            &p("slim.onnx"),
            "--out",
            &p("run"),
            "--export-to",
            &p("models/slim"),
            "--input-size",
            "64",
            "--epochs",
            "12",
            "--cache-dir",
            &p("cache"),
            "--json",
        ],
    );
    let summary: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert!(summary["export"]["parity_max_abs_diff"].as_f64().unwrap() <= 1e-4, "{}", summary["export"]);
    assert_eq!(summary["backbone"], "slim.onnx");
    let bundle = p("models/slim.bundle");
    let inspect = ok(&run("trainer", &["inspect", "--json", &bundle]));
    let manifest: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert!(inspect.contains(report["slim_sha256"].as_str().unwrap()), "the manifest names the slim trunk by its hash: {manifest}");
    // ... and records what it was slimmed from and what each costs.
    let backbone = &manifest["manifest"]["backbone"];
    assert_eq!(backbone["channels"], report["channels"], "{backbone}");
    assert_eq!(backbone["macs"], report["slim_macs"], "{backbone}");
    let from = &backbone["slimmed_from"];
    assert_eq!(from["teacher_sha256"], teacher.sha256(), "{backbone}");
    assert_eq!(from["teacher_macs"], report["teacher_macs"], "{backbone}");
    let photos = report["distillation"]["photos"].as_u64().unwrap();
    assert!(photos >= 20, "every photo of the data set, near-duplicates included: {report}");
    assert_eq!(from["distilled_on"], photos, "{backbone}");
    let text = ok(&run("trainer", &["inspect", &bundle]));
    let slimmed = format!("slimmed     from weights sha256 {}", teacher.sha256());
    assert!(text.contains(&slimmed) && text.contains(&format!("distilled on {photos} photos")), "{text}");
    assert!(ok(&run("edge", &["selftest", "--model", &bundle])).contains("selftest passed"));
    export_for_onnxruntime(bundle.as_ref(), "synthetic_slim");

    // Bad usage exits 2 and writes nothing.
    for keep in ["0", "1.5", "-0.2", "half", "0.5,0.5", "1,1,1,1,0.5", "1,1,1,0,0"] {
        let out = run("trainer", &["slim", "--backbone", &p("teacher.onnx"), "--keep", keep, "--out", &p("bad.onnx")]);
        assert_eq!(out.status.code(), Some(2), "--keep {keep}");
    }
    // A missing teacher is an error naming it.
    let out = run("trainer", &["slim", "--backbone", &p("none.onnx"), "--keep", "0.5", "--out", &p("bad.onnx")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("none.onnx"));
    assert!(!dir.path().join("bad.onnx").exists());
}

/// `--keep F1,...,F5`: each block keeps its own fraction; such a trunk trains, passes the
/// parity gate and runs on the edge like a uniformly narrowed one.
#[test]
fn a_trunk_slimmed_per_block_trains_exports_and_runs_on_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| dir.path().join(s).to_str().unwrap().to_string();
    trainer::fixtures::write_dataset(&dir.path().join("data"), &["stripes", "columns"], 8, 4).unwrap();
    let teacher = trainer::fixtures::write_trunk_onnx(&dir.path().join("teacher.onnx"), 1.0 / 8.0, 9).unwrap();
    let slim = ["slim", "--backbone", &p("teacher.onnx"), "--keep", "0.5,0.5,1,0.75,0.75", "--out", &p("slim.onnx"), "--json"];
    let report: serde_json::Value = serde_json::from_str(&ok(&run("trainer", &slim))).unwrap();
    let channels: Vec<usize> = serde_json::from_value(report["channels"].clone()).unwrap();
    let expected: Vec<usize> = teacher
        .convs
        .iter()
        .enumerate()
        .map(|(layer, c)| match layer {
            0..4 => c.out_channels / 2,
            4..7 => c.out_channels,
            _ => c.out_channels * 3 / 4,
        })
        .collect();
    assert_eq!(channels, expected, "{report}");
    assert_eq!(report["keep"], serde_json::json!([0.5, 0.5, 1.0, 0.75, 0.75]), "{report}");

    let train = ["train", "--data", &p("data"), "--backbone", &p("slim.onnx"), "--out", &p("run"), "--export-to", &p("models/blocks")];
    let settings = ["--input-size", "64", "--aug-views", "0", "--epochs", "4", "--cache-dir", &p("cache"), "--json"];
    let summary: serde_json::Value = serde_json::from_str(&ok(&run("trainer", &[train.as_slice(), &settings].concat()))).unwrap();
    assert!(summary["export"]["parity_max_abs_diff"].as_f64().unwrap() <= 1e-4, "{}", summary["export"]);
    let manifest: serde_json::Value =
        serde_json::from_str(&ok(&run("trainer", &["inspect", "--json", &p("models/blocks.bundle")]))).unwrap();
    assert_eq!(manifest["manifest"]["backbone"]["channels"], report["channels"], "{manifest}");
    assert!(ok(&run("edge", &["selftest", "--model", &p("models/blocks.bundle")])).contains("selftest passed"));
}

/// A distillation killed (-9) after an epoch continues with --resume and ends where an
/// uninterrupted one ends.
#[test]
fn a_killed_distillation_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| dir.path().join(s).to_str().unwrap().to_string();
    trainer::fixtures::write_dataset(&dir.path().join("data"), &["stripes", "columns"], 12, 6).unwrap();
    trainer::fixtures::write_trunk_onnx(&dir.path().join("teacher.onnx"), 1.0 / 8.0, 4).unwrap();
    let args = |out: &str, epochs: &str| -> Vec<String> {
        let teacher = p("teacher.onnx");
        let (data, cache, out) = (p("data"), p("cache"), p(out));
        [
            "slim",
            "--backbone",
            &teacher,
            "--keep",
            "0.5",
            "--data",
            &data,
            "--epochs",
            epochs,
            "--input-size",
            "64",
            "--cache-dir",
            &cache,
            "--out",
            &out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // Enough epochs that the kill lands before the end.
    let epochs = "100";
    ok(&run("trainer", &args("whole.onnx", epochs).iter().map(String::as_str).collect::<Vec<_>>()));

    let killed = args("killed.onnx", epochs);
    let checkpoint = dir.path().join("killed.onnx.distill-checkpoint");
    let mut child = std::process::Command::new(e2e::bin("trainer")).args(&killed).env("RUST_LOG", "warn").spawn().unwrap();
    let started = std::time::Instant::now();
    while !checkpoint.exists() {
        assert!(started.elapsed().as_secs() < 120, "no checkpoint after 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!dir.path().join("killed.onnx").exists(), "killed before the end: no slim trunk yet");
    let mut resumed = killed.clone();
    resumed.push("--resume".into());
    ok(&run("trainer", &resumed.iter().map(String::as_str).collect::<Vec<_>>()));

    let load = |name: &str| trainer::backbone::Vgg16Weights::load(&dir.path().join(name), None).unwrap();
    let (a, b) = (load("whole.onnx"), load("killed.onnx"));
    for (x, y) in a.convs.iter().zip(&b.convs) {
        let worst = x.weight.iter().zip(&y.weight).map(|(u, v)| (u - v).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-5, "the resumed trunk differs from the uninterrupted one by {worst}");
    }
}

/// `trainer slim --run RUN --keep F --out RUN2`: from a finished run to a slim bundle in one
/// command, with the run's settings; --resume keeps the slim trunk; bad usage exits 2.
#[test]
fn slim_from_a_run_trains_and_exports_with_the_runs_settings() {
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| dir.path().join(s).to_str().unwrap().to_string();
    trainer::fixtures::write_dataset(&dir.path().join("data"), &["stripes", "columns", "dots"], 10, 3).unwrap();
    let teacher = trainer::fixtures::write_trunk_onnx(&dir.path().join("teacher.onnx"), 1.0 / 8.0, 9).unwrap();
    let (data, teacher_onnx, cache, run_dir) = (p("data"), p("teacher.onnx"), p("cache"), p("run"));
    let train = ["train", "--data", &data, "--classes", "stripes,columns", "--backbone", &teacher_onnx, "--out", &run_dir];
    let settings = ["--no-export", "--aug-views", "0", "--input-size", "64", "--cache-dir", &cache];
    ok(&run("trainer", &[train.as_slice(), &settings].concat()));

    let (slim_dir, models) = (p("run-slim"), p("models/slim"));
    let slim = ["slim", "--run", &run_dir, "--keep", "0.5", "--epochs", "2", "--out", &slim_dir, "--export-to", &models];
    let done: serde_json::Value = serde_json::from_str(&ok(&run("trainer", &[slim.as_slice(), &["--json"]].concat()))).unwrap();
    // Distilled on the run's photos (its two classes, not the third folder), at its input size.
    let report = &done["slim"];
    assert_eq!(report["input_size"], 64, "{report}");
    let run_photos: u64 = done["run"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ["train", "val", "test"].iter().map(|s| c[s].as_u64().unwrap()).sum::<u64>())
        .sum();
    assert_eq!(report["distillation"]["photos"], run_photos, "{report}");
    assert_eq!(report["teacher_sha256"], teacher.sha256());
    // The head trained with the run's settings on the slim trunk, exported through the gate.
    let summary = &done["run"];
    assert_eq!(summary["classes"], serde_json::json!(["stripes", "columns"]), "{summary}");
    assert_eq!(summary["backbone"], "trunk.onnx", "{summary}");
    assert!(summary["export"]["parity_max_abs_diff"].as_f64().unwrap() <= 1e-4, "{summary}");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("run-slim/run.json")).unwrap()).unwrap();
    assert_eq!(config["aug_views"], 0, "the run's settings: {config}");
    assert_eq!(config["backbone"], p("run-slim/trunk.onnx"), "{config}");
    let manifest: serde_json::Value = serde_json::from_str(&ok(&run("trainer", &["inspect", "--json", &p("models/slim.bundle")]))).unwrap();
    let backbone = &manifest["manifest"]["backbone"];
    assert_eq!(backbone["slimmed_from"]["teacher_sha256"], teacher.sha256(), "{backbone}");
    assert_eq!(backbone["channels"], report["channels"], "{backbone}");
    assert!(ok(&run("edge", &["selftest", "--model", &p("models/slim.bundle")])).contains("selftest passed"));

    // Again into the same folder: refused before any work, naming it; --resume keeps the trunk.
    let out = run("trainer", &slim);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a training run"), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed = ok(&run("trainer", &[slim.as_slice(), &["--resume"]].concat()));
    assert!(resumed.contains("kept ") && resumed.contains("slimmed before"), "{resumed}");

    // --run with --backbone, neither of them, or --export-to without --run: bad usage.
    let teacher = p("teacher.onnx");
    for args in [
        vec!["slim", "--run", "x", "--backbone", &teacher, "--keep", "0.5", "--out", "y"],
        vec!["slim", "--keep", "0.5", "--out", "y"],
        vec!["slim", "--backbone", &teacher, "--keep", "0.5", "--out", "y", "--export-to", "z"],
    ] {
        assert_eq!(run("trainer", &args).status.code(), Some(2), "{args:?}");
    }
    // A run folder that is not one is an error naming it, and leaves no model folder behind
    // (the bundle would have gone to models/never, beside the working folder).
    let models = std::env::current_dir().unwrap().join("models");
    let models_before = models.exists();
    let out = run("trainer", &["slim", "--run", &p("data"), "--keep", "0.5", "--out", &p("never")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run.json"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!models.join(".never.lock").exists(), "the export lock is taken only for a run that can be slimmed");
    assert_eq!(models.exists(), models_before);
}
