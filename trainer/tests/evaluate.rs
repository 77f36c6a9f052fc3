//! `trainer evaluate` end to end: train on two synthetic classes, then score the bundle on new
//! photos of them and on frames that are neither (a capped lens, a blown-out exposure), which the
//! open-set score must refuse. (With the tests' tiny random trunk, a third stripe pattern is not
//! far enough from the trained ones to be refused: the real-data test checks real unknowns.)

mod common;

use common::{exists, fixture, json, trainer};

fn evaluate_args(model: &std::path::Path, data: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args =
        vec!["evaluate".into(), "--model".into(), model.to_str().unwrap().into(), "--data".into(), data.to_str().unwrap().into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn scores_targets_and_refuses_what_it_never_saw() {
    let f = fixture(&["stripes", "columns"], 14);
    let summary = json(&trainer(&f.train_args("run", &["--json"])));
    assert_eq!(summary["head"], "linear");
    let model = f.path("models").join("run.bundle");
    let bundle = shared::Bundle::read(&model).unwrap();
    let open_set = bundle.manifest.open_set.clone().expect("the default export has an open-set output");
    // Lowered by the head's evidence: below 0 where the head is sure of every held-out photo.
    assert!(shared::runtime::UNKNOWN_SCORE_RANGE.contains(&open_set.threshold) && open_set.threshold < 1.0, "{open_set:?}");
    assert_eq!(open_set.method, shared::manifest::OpenSetMethod::KnnCosineBlocks45Evidence, "the default: a cross-validated linear head");
    let photos: u64 = summary["counts"].as_array().unwrap().iter().map(|c| c["train"].as_u64().unwrap() + c["val"].as_u64().unwrap()).sum();
    assert_eq!(open_set.references as u64, 2 * photos, "every photo and its one (default) field view");

    // New photos (another seed) of both classes; black and white frames and a broken file as `other/`.
    let field = f.path("field");
    trainer::fixtures::write_dataset(&field, &["stripes", "columns"], 10, 99).unwrap();
    std::fs::create_dir_all(field.join("other")).unwrap();
    for (name, value) in [("black.png", 0u8), ("white.png", 255)] {
        image::RgbImage::from_pixel(120, 90, image::Rgb([value; 3])).save(field.join("other").join(name)).unwrap();
    }
    std::fs::write(field.join("other").join("broken.jpg"), b"\xff\xd8 not really").unwrap();
    let report_dir = f.path("report");
    let report = json(&trainer(&evaluate_args(&model, &field, &["--json", "--out", report_dir.to_str().unwrap()])));
    assert_eq!(report["target_images"], 22, "10 + 1 near-duplicate per class");
    assert_eq!(report["other_images"], 2);
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 3, "two bad files in stripes/ and the broken one: {skipped:?}");
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.9, "accuracy {accuracy}");
    eprintln!("CSV {}", std::fs::read_to_string(report_dir.join("predictions.csv")).unwrap());
    let other_refused = report["other_refused"].as_f64().unwrap();
    let target_refused = report["target_refused"].as_f64().unwrap();
    assert_eq!(other_refused, 1.0, "flat frames are like no training photo");
    assert!(target_refused <= 0.25, "{target_refused}");
    assert_eq!(report["open_set_auroc"].as_f64(), Some(1.0));
    let ece = report["ece"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ece));
    // The answers table: rows are folders, columns the labels then unknown and unsure.
    assert_eq!(report["answers"], serde_json::json!(["columns", "stripes", "unknown", "unsure"]));
    assert_eq!(report["folders"], serde_json::json!(["columns", "other", "stripes"]));
    assert_eq!(report["confusion"][1], serde_json::json!([0, 0, 2, 0]), "both flat frames answered unknown");
    for file in ["report.json", "predictions.csv", "confusion.png", "reliability.png", "contact_sheet.png"] {
        assert!(exists(&report_dir.join(file)), "{file} missing");
    }
    let csv = std::fs::read_to_string(report_dir.join("predictions.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 22 + 2);
    assert!(csv.lines().next().unwrap().contains("unknown_score,p_columns,p_stripes"));
    // Every row: `unknown` exactly when its score is above the bundle's threshold.
    for row in csv.lines().skip(1) {
        let cols: Vec<&str> = row.split(',').collect();
        let score: f32 = cols[6].parse().unwrap();
        assert_eq!(cols[3] == "unknown", score > open_set.threshold, "{row}");
    }

    // A threshold above every score refuses nothing; the edge's answers follow the same rule.
    let lenient = json(&trainer(&evaluate_args(&model, &field, &["--json", "--unknown-threshold", "2"])));
    assert_eq!(lenient["other_refused"], 0.0);
}

#[test]
fn missing_or_empty_folders_are_errors_naming_them() {
    let f = fixture(&["stripes", "columns"], 8);
    json(&trainer(&f.train_args("run", &["--json", "--input-size", "32"])));
    let model = f.path("models").join("run.bundle");
    let missing = f.path("nowhere");
    let out = trainer(&evaluate_args(&model, &missing, &[]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"), "{}", String::from_utf8_lossy(&out.stderr));
    let data = f.path("field");
    std::fs::create_dir_all(data.join("stripes")).unwrap();
    let out = trainer(&evaluate_args(&model, &data, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("stripes") && stderr.contains("empty folder"), "{stderr}");
}

#[test]
fn the_field_conditions_suite_gives_one_accuracy_per_condition() {
    let f = fixture(&["stripes", "columns"], 8);
    // At the end of training: on 6 validation photos, by the trained head on cached features.
    let summary = json(&trainer(&f.train_args("run", &["--json", "--input-size", "32", "--conditions", "6"])));
    let names: Vec<&str> = trainer::data::conditions::Condition::ALL.iter().map(|c| c.name()).collect();
    let rows = summary["conditions"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["condition"].as_str().unwrap()).collect::<Vec<_>>(), names);
    let val_images = summary["val"]["images"].as_u64().unwrap();
    for row in rows {
        assert_eq!(row["images"].as_u64().unwrap(), val_images.min(6), "{row}");
        assert!((0.0..=1.0).contains(&row["accuracy"].as_f64().unwrap()), "{row}");
        assert!(row["refused"].is_null(), "training's suite runs the classifier only: {row}");
    }
    // A second run on the same photos finds every conditioned view in the feature cache.
    let again = json(&trainer(&f.train_args("run2", &["--json", "--input-size", "32", "--conditions", "6", "--no-export"])));
    assert_eq!(again["conditions"], summary["conditions"]);

    // On a bundle through tract: every target image under every condition, with answers.
    let model = f.path("models").join("run.bundle");
    let field = f.path("field");
    trainer::fixtures::write_dataset(&field, &["stripes", "columns"], 4, 7).unwrap();
    let report = json(&trainer(&evaluate_args(&model, &field, &["--json", "--conditions"])));
    let rows = report["conditions"].as_array().unwrap();
    assert_eq!(rows.len(), names.len());
    let targets = report["target_images"].as_u64().unwrap();
    for row in rows {
        assert_eq!(row["images"].as_u64().unwrap(), targets, "{row}");
        assert!(row["answered_correctly"].as_f64().unwrap() <= row["accuracy"].as_f64().unwrap() + 1e-6, "{row}");
    }
    assert_eq!(rows[0]["condition"], "original");
    assert_eq!(rows[0]["accuracy"], report["accuracy"], "the original row is the plain evaluation");
    assert_eq!(rows[0]["refused"], report["target_refused"]);
    // Without the flag there is no suite.
    let plain = json(&trainer(&evaluate_args(&model, &field, &["--json"])));
    assert!(plain.get("conditions").is_none());
}
