//! Train on a synthetic dataset, export, and run the bundle on the edge: the edge must say
//! what the trainer said, image by image.

use e2e::{export_for_onnxruntime, ok, run};

#[test]
fn trainer_to_edge_agree_on_every_validation_image() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    trainer::fixtures::write_dataset(&data, &["stripes", "columns", "checks"], 10, 3).unwrap();
    let backbone = dir.path().join("trunk.onnx");
    trainer::fixtures::write_trunk_onnx(&backbone, 1.0 / 16.0, 9).unwrap();
    let p = |s: &str| dir.path().join(s).to_str().unwrap().to_string();
    for head in ["linear", "gap", "flatten"] {
        let out = run(
            "trainer",
            &[
                "train",
                "--data",
                &p("data"),
                "--backbone",
                &p("trunk.onnx"),
                "--out",
                &p(head),
                "--export-to",
                &p(&format!("models/{head}")),
                "--cache-dir",
                &p("cache"),
                "--input-size",
                "64",
                "--epochs",
                "15",
                "--head",
                head,
                "--json",
            ],
        );
        let summary: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
        let bundle = p(&format!("models/{head}.bundle"));
        export_for_onnxruntime(bundle.as_ref(), &format!("synthetic_{head}"));

        // The bundle describes itself.
        let inspect = ok(&run("trainer", &["inspect", &bundle]));
        assert!(inspect.contains("labels      checks, columns, stripes") && inspect.contains("verified"), "{inspect}");
        assert!(inspect.contains("graph       loads in tract"), "{inspect}");

        // The edge gives the trainer's predicted class for every validation image.
        let predictions = std::fs::read_to_string(dir.path().join(head).join("predictions.csv")).unwrap();
        let mut checked = 0;
        for row in predictions.lines().skip(1) {
            let cols: Vec<&str> = row.split(',').collect();
            let image = data.join(cols[0]);
            let line = ok(&run("edge", &["classify", "--model", &bundle, "--json", image.to_str().unwrap()]));
            let edge: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
            // `top_label`: the most probable class, as predictions.csv has it (the answer itself may
            // be `unknown` where the open-set score refuses the photo).
            assert_eq!(edge["top_label"], cols[2], "{head}: {} classified differently on the edge", cols[0]);
            let p_trainer: f64 = cols[3].parse().unwrap();
            assert!((edge["probability"].as_f64().unwrap() - p_trainer).abs() < 1e-4, "{head}: {row} vs {edge}");
            checked += 1;
        }
        assert_eq!(checked, summary["val"]["images"].as_u64().unwrap());
        assert!(ok(&run("edge", &["selftest", "--model", &bundle])).contains("selftest passed"));
    }

    // One export per model name at a time: while another holds it, a second fails at once naming
    // the holder, and leaves the pair alone.
    let target = p("models/gap");
    let before = std::fs::read(format!("{target}.bundle")).unwrap();
    let held = shared::lock::FileLock::acquire(&dir.path().join("models/.gap.lock"), |_| unreachable!()).unwrap();
    // With the photos out of reach: an export that read them before taking the name would
    // fail on them, not on the lock.
    std::fs::rename(&data, dir.path().join("data_away")).unwrap();
    let out = run("trainer", &["export", "--run", &p("gap"), "--out", &target]);
    std::fs::rename(dir.path().join("data_away"), &data).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("another trainer (pid {})", std::process::id())), "refused before the export's work: {err}");
    assert_eq!(std::fs::read(format!("{target}.bundle")).unwrap(), before);
    // A training that would export to that name is refused before it trains.
    let (data, trunk, second, cache) = (p("data"), p("trunk.onnx"), p("second"), p("cache"));
    let train = ["train", "--data", &data, "--backbone", &trunk, "--out", &second, "--export-to", &target];
    let out = run("trainer", &[&train[..], &["--cache-dir", &cache, "--input-size", "64"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("another trainer (pid"), "{err}");
    assert!(!dir.path().join("second/run.json").exists(), "no training began");
    drop(held);
    ok(&run("trainer", &["export", "--run", &p("gap"), "--out", &target]));

    // The same run exported in int8: the gate held it to its own tolerance and the same class on
    // every validation image, and the edge runs and self-checks it like any bundle.
    let int8 = p("models/gap_int8");
    let out = ok(&run("trainer", &["export", "--run", &p("gap"), "--out", &int8, "--precision", "int8", "--json"]));
    let export: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(export["precision"], "int8");
    assert_eq!(export["parity_argmax_agreement"].as_f64(), Some(1.0));
    assert!(export["parity_max_abs_diff"].as_f64().unwrap() <= export["parity_tolerance"].as_f64().unwrap());
    assert_eq!(export["parity_tolerance"].as_f64().unwrap() as f32, shared::INT8_PROBABILITY_TOLERANCE);
    let bundle = format!("{int8}.bundle");
    assert!(ok(&run("trainer", &["inspect", &bundle])).contains("precision   int8"));
    let selftest = ok(&run("edge", &["selftest", "--model", &bundle]));
    assert!(selftest.contains("selftest passed"), "{selftest}");
    export_for_onnxruntime(bundle.as_ref(), "synthetic_gap_int8");
}
