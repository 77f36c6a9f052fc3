//! Tests on the real Oxford 17-flowers photos and VGG16 ImageNet weights. Paths come from
//! FLOWERCAM_DATA (the flowers17 folder), FLOWERCAM_BACKBONE (the ONNX trunk) and FLOWERCAM_FIELD
//! (photos from other sources: daffodil/, coltsfoot/, other/); `.ci/run` sets them. Under CI,
//! unset variables fail the tests rather than skip them.

use std::collections::HashMap;

use e2e::{export_for_onnxruntime, ok, real_input, run};

/// Measured with the defaults (README, "Field accuracy"): 75/75 right, 4.0% of the targets and
/// 63.9% of the others refused (62 of 97), ECE 0.016, open-set AUROC 0.934, the worst field
/// condition 72/75 right (low-contrast and blur; scale-0.6 74 with the field view, 71 without);
/// each bound leaves one photo of slack (the AUROC about one pair in a hundred).
const FIELD_RIGHT_AT_LEAST: u32 = 74;
const FIELD_WORST_CONDITION_RIGHT_AT_LEAST: u32 = 71;
const FIELD_TARGETS_REFUSED_AT_MOST: f64 = 4.0 / 75.0 + 1e-6;
const FIELD_OTHER_REFUSED_AT_LEAST: f64 = 61.0 / 97.0 - 1e-6;
const FIELD_OPEN_SET_AUROC_AT_LEAST: f64 = 0.92;
/// The slim trunk at 112 px (keep 0.5, distilled on daffodil/coltsfoot), measured: CV 0.956,
/// 65 of 75 field photos right; the bounds leave about two photos of slack.
const SLIM_CV_AT_LEAST: f64 = 0.93;
const SLIM_FIELD_RIGHT_AT_LEAST: u32 = 63;

/// Multiply-adds of real VGG16's 13 convolutions on a 224 frame.
const VGG16_MACS_AT_224: u64 = 15_346_630_656;

/// The manifest of a bundle, as `trainer inspect --json` shows it.
fn bundle_manifest(bundle: &std::path::Path) -> serde_json::Value {
    let inspect: serde_json::Value = serde_json::from_str(&ok(&run("trainer", &["inspect", "--json", bundle.to_str().unwrap()]))).unwrap();
    inspect["manifest"].clone()
}

#[test]
fn daffodil_vs_coltsfoot_with_defaults_reaches_98_percent_and_exports_exactly() {
    let (Some(data), Some(backbone)) = (real_input("FLOWERCAM_DATA"), real_input("FLOWERCAM_BACKBONE")) else { return };
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("daffodil_coltsfoot");
    let model = dir.path().join("models/daffodil_coltsfoot");
    let out = run(
        "trainer",
        &[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--backbone",
            backbone.to_str().unwrap(),
            "--classes",
            "daffodil,coltsfoot",
            "--out",
            run_dir.to_str().unwrap(),
            "--export-to",
            model.to_str().unwrap(),
            "--json",
        ],
    );
    let summary: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    eprintln!("real daffodil/coltsfoot: {}", serde_json::to_string(&summary["val"]).unwrap());
    eprintln!("seconds: {}", serde_json::to_string(&summary["seconds"]).unwrap());
    let val = summary["val"]["accuracy"].as_f64().unwrap();
    assert!(val >= 0.98, "validation accuracy {val} < 0.98");
    let export = &summary["export"];
    assert!(export["parity_max_abs_diff"].as_f64().unwrap() <= 1e-4);
    assert_eq!(export["parity_images"].as_u64().unwrap(), summary["val"]["images"].as_u64().unwrap());
    assert_eq!(export["tract_val_accuracy"].as_f64().unwrap() as f32, val as f32, "tract's accuracy differs from Burn's");
    let cv = &summary["cross_validation"];
    let cv_accuracy = cv["mean_accuracy"].as_f64().unwrap();
    assert!(cv_accuracy >= 0.98, "5-fold cross-validated accuracy {cv_accuracy} < 0.98: {cv}");
    let bundle = model.with_extension("bundle");
    assert!(ok(&run("edge", &["selftest", "--model", bundle.to_str().unwrap()])).contains("selftest passed"));
    let manifest = bundle_manifest(&bundle);
    assert_eq!(manifest["backbone"]["macs"], VGG16_MACS_AT_224, "the real trunk's cost: {}", manifest["backbone"]);
    assert!(manifest["backbone"]["slimmed_from"].is_null());
    export_for_onnxruntime(&bundle, "daffodil_coltsfoot");

    // Photos from other sources, never trained on: right, and "none of these" for the rest, with
    // the threshold the trainer fixed. The levels are this model's measured ones (README), so a
    // change that loses field accuracy or refusals fails here.
    let field = real_input("FLOWERCAM_FIELD").expect("FLOWERCAM_FIELD is needed with FLOWERCAM_DATA");
    // With the field-conditions suite (15 model runs per target photo, about 10 minutes here).
    let report = ok(&run(
        "trainer",
        &["evaluate", "--model", bundle.to_str().unwrap(), "--data", field.to_str().unwrap(), "--conditions", "--json"],
    ));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let figures = ["accuracy", "target_refused", "other_refused", "ece", "open_set_auroc"].map(|k| (k, report[k].clone()));
    eprintln!("field: {figures:?}");
    assert_eq!(report["target_images"], 75);
    let right = (report["accuracy"].as_f64().unwrap() * 75.0).round() as u32;
    assert!(right >= FIELD_RIGHT_AT_LEAST, "{right} of 75 field photos right");
    assert!(report["target_refused"].as_f64().unwrap() <= FIELD_TARGETS_REFUSED_AT_MOST, "{figures:?}");
    assert!(report["other_refused"].as_f64().unwrap() >= FIELD_OTHER_REFUSED_AT_LEAST, "{figures:?}");
    assert!(report["ece"].as_f64().unwrap() <= 0.03, "{figures:?}");
    assert!(report["open_set_auroc"].as_f64().unwrap() >= FIELD_OPEN_SET_AUROC_AT_LEAST, "{figures:?}");
    let conditions = report["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 15, "{conditions:?}");
    for condition in conditions {
        let right = (condition["accuracy"].as_f64().unwrap() * 75.0).round() as u32;
        eprintln!("field condition {}: {right} of 75 right", condition["condition"]);
        assert!(right >= FIELD_WORST_CONDITION_RIGHT_AT_LEAST, "{right} of 75 right under {}", condition["condition"]);
    }

    // int8: same classes on every validation image, probabilities within the int8 tolerance.
    let int8 = dir.path().join("models/daffodil_coltsfoot_int8");
    let out =
        run("trainer", &["export", "--run", run_dir.to_str().unwrap(), "--out", int8.to_str().unwrap(), "--precision", "int8", "--json"]);
    let export: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    eprintln!("real daffodil/coltsfoot int8: {export}");
    assert_eq!(export["tract_val_accuracy"].as_f64().unwrap() as f32, val as f32, "int8 changed the accuracy");
    assert!(export["parity_max_abs_diff"].as_f64().unwrap() <= shared::INT8_PROBABILITY_TOLERANCE as f64);
    let bundle = int8.with_extension("bundle");
    assert!(ok(&run("edge", &["selftest", "--model", bundle.to_str().unwrap()])).contains("selftest passed"));
    export_for_onnxruntime(&bundle, "daffodil_coltsfoot_int8");
}

#[test]
fn near_duplicate_detector_against_the_known_flowers17_groups() {
    let Some(data) = real_input("FLOWERCAM_DATA") else { return };
    let tsv = std::fs::read_to_string(data.join("near_duplicates.tsv")).unwrap();
    let pairs: Vec<(String, String, u32)> = tsv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("group"))
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c[1].to_string(), c[2].to_string(), c[4].parse().unwrap())
        })
        .collect();
    let hasher = trainer::data::scan::perceptual_hasher();
    let mut hashes = HashMap::new();
    for (a, b, _) in &pairs {
        for name in [a, b] {
            hashes.entry(name.clone()).or_insert_with(|| hasher.hash_image(&shared::preprocess::decode_file(&data.join(name)).unwrap()));
        }
    }
    let names: Vec<&String> = hashes.keys().collect();
    let refs: Vec<_> = names.iter().map(|n| &hashes[*n]).collect();
    let groups = trainer::data::dedup::group(&refs, trainer::data::dedup::DEFAULT_MAX_DISTANCE);
    let group_of: HashMap<&str, usize> = names.iter().zip(&groups).map(|(n, g)| (n.as_str(), *g)).collect();
    let together = |(a, b, _): &(String, String, u32)| group_of[a.as_str()] == group_of[b.as_str()];
    let exact: Vec<_> = pairs.iter().filter(|p| p.2 <= 4).collect();
    let found_exact = exact.iter().filter(|p| together(p)).count();
    let found_all = pairs.iter().filter(|p| together(p)).count();
    eprintln!(
        "near-duplicates grouped: {found_exact}/{} re-encodes (phash <= 4), {found_all}/{} of all listed pairs",
        exact.len(),
        pairs.len()
    );
    assert_eq!(found_exact, exact.len(), "every re-encoded copy must be grouped");
}

/// `trainer slim` on the real trunk, at 112 px to fit CI's time: half the filters of every
/// convolution, distilled on the daffodil and coltsfoot photos, then the default training on it.
/// Bounds: the measured figures (BENCHMARKS.md, "Slim trunks") less about two photos.
#[test]
fn a_slim_trunk_distilled_on_daffodil_and_coltsfoot_keeps_its_field_accuracy() {
    let (Some(data), Some(backbone)) = (real_input("FLOWERCAM_DATA"), real_input("FLOWERCAM_BACKBONE")) else { return };
    let field = real_input("FLOWERCAM_FIELD").expect("FLOWERCAM_FIELD is needed with FLOWERCAM_DATA");
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| dir.path().join(s).to_str().unwrap().to_string();
    let (data, backbone) = (data.to_str().unwrap(), backbone.to_str().unwrap());
    let classes = "daffodil,coltsfoot";
    let slim = ok(&run(
        "trainer",
        &[
            "slim",
            "--backbone",
            backbone,
            "--keep",
            "0.5",
            "--data",
            data,
            "--classes",
            classes,
            "--input-size",
            "112",
            "--out",
            &p("slim.onnx"),
            "--json",
        ],
    ));
    let slim: serde_json::Value = serde_json::from_str(&slim).unwrap();
    let history = &slim["distillation"]["history"];
    eprintln!("real slim: {history}");
    let last = history["epochs"].as_array().unwrap().last().unwrap()["loss"].as_f64().unwrap();
    assert!(last < 0.8 * history["before"].as_f64().unwrap(), "{history}");
    assert!(slim["slim_macs"].as_u64().unwrap() * 3 < slim["teacher_macs"].as_u64().unwrap());

    let model = dir.path().join("models/slim");
    let summary = ok(&run(
        "trainer",
        &[
            "train",
            "--data",
            data,
            "--classes",
            classes,
            "--backbone",
            &p("slim.onnx"),
            "--input-size",
            "112",
            "--out",
            &p("run"),
            "--export-to",
            model.to_str().unwrap(),
            "--json",
        ],
    ));
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert!(summary["export"]["parity_max_abs_diff"].as_f64().unwrap() <= 1e-4);
    let cv = summary["cross_validation"]["mean_accuracy"].as_f64().unwrap();
    let bundle = model.with_extension("bundle");
    assert!(ok(&run("edge", &["selftest", "--model", bundle.to_str().unwrap()])).contains("selftest passed"));
    let backbone = &bundle_manifest(&bundle)["backbone"];
    let from = &backbone["slimmed_from"];
    assert_eq!(from["teacher_sha256"], slim["teacher_sha256"], "{backbone}");
    assert_eq!(from["teacher_macs"], VGG16_MACS_AT_224 / 4, "the full trunk at 112: {backbone}");
    assert_eq!(backbone["macs"], slim["slim_macs"], "{backbone}");
    assert_eq!(from["distilled_on"], 160, "{backbone}");
    export_for_onnxruntime(&bundle, "daffodil_coltsfoot_slim");
    let report = ok(&run("trainer", &["evaluate", "--model", bundle.to_str().unwrap(), "--data", field.to_str().unwrap(), "--json"]));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let right = (report["accuracy"].as_f64().unwrap() * 75.0).round() as u32;
    eprintln!("real slim at 112: CV {cv:.4}, field {right} of 75 right, auroc {}", report["open_set_auroc"]);
    assert!(cv >= SLIM_CV_AT_LEAST, "cross-validated accuracy {cv}");
    assert!(right >= SLIM_FIELD_RIGHT_AT_LEAST, "{right} of 75 field photos right");
}
