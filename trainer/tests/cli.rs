//! The seed recipe's flags parse into the right configuration and trainable set.

use clap::Parser;
use trainer::cli::{Cli, Command};

fn train_config(args: &[&str]) -> trainer::training::TrainConfig {
    let mut argv = vec!["trainer", "train", "--data", "d", "--backbone", "b.onnx", "--out", "o"];
    argv.extend(args);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Train(t) => t.config(),
        _ => unreachable!(),
    }
}

#[test]
fn defaults_are_the_fast_frozen_path() {
    let c = train_config(&[]);
    assert_eq!(c.freeze_first, None);
    assert!(!c.finetune_top_block && !c.trains_trunk());
    // The defaults chosen on photos from other sources (issue 9): a logistic regression on the
    // pooled features of the centred square.
    assert_eq!(c.head, shared::HeadKind::Linear);
    assert_eq!(c.resize, shared::ResizePolicy::CenterCrop);
    assert_eq!(c.l2, 1e-2);
    assert_eq!(c.lr, 1e-3);
    assert_eq!(c.input_size, 224);
    // One augmented view per photo, framed as a field camera frames a flower (BENCHMARKS.md,
    // "Augmented views for the linear head").
    assert_eq!(c.aug_views, 1);
    assert_eq!(c.augmentation, trainer::data::augment::AugmentationPolicy::Field.settings());
}

#[test]
fn the_original_recipe() {
    let c = train_config(&["--freeze-first", "3", "--optimizer", "sgd", "--head", "flatten", "--augmentation", "keras"]);
    assert_eq!(c.freeze_first, Some(3));
    assert_eq!(c.lr, 1e-4);
    assert_eq!(c.momentum, 0.9);
    assert_eq!(c.head, shared::HeadKind::Flatten);
    assert!(c.trains_trunk());
    let aug = c.augmentation;
    assert!(aug.horizontal_flip && aug.zoom == 0.3 && aug.shift == 0.3 && aug.rotation_degrees == 30.0);
}

#[test]
fn freeze_first_n_freezes_exactly_the_first_n_convolutions() {
    use burn::prelude::*;
    let device = Device::flex().autodiff();
    let weights = trainer::backbone::Vgg16Weights::random(0, 1.0 / 16.0, shared::Convention::Caffe);
    for n in [0, 3, 10, 13] {
        let trunk = trainer::model::Vgg16Trunk::from_weights(&weights.convs, &device).freeze_first(n);
        assert_eq!(trunk.trainable_layers(), (n..13).collect::<Vec<_>>(), "--freeze-first {n}");
    }
}

#[test]
fn bad_flag_values_are_usage_errors() {
    for bad in [["--head", "conv"], ["--device", "gpu"], ["--resize", "squash"], ["--optimizer", "rmsprop"]] {
        let mut argv = vec!["trainer", "train", "--data", "d", "--backbone", "b", "--out", "o"];
        argv.extend(bad);
        assert!(Cli::try_parse_from(argv).is_err(), "{bad:?} accepted");
    }
    assert!(train_config(&["--freeze-first", "14"]).validate().is_err());
}

#[test]
fn settings_that_validation_refuses_exit_2_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let numbers: &[&[&str]] = &[
        &["--l2", "0"],
        &["--lr", "NaN"],
        &["--lr", "1e40"],
        &["--momentum", "inf"],
        &["--momentum=-0.5"],
        &["--finetune-lr=-1"],
        &["--finetune-lr", "0"],
        &["--test-fraction=-1"],
        &["--test-fraction", "NaN"],
        &["--val-fraction", "0.95"],
        &["--dropout", "1"],
        &["--input-size", "0"],
        &["--input-size", "100000"],
        &["--input-size", "100"],
        &["--max-pixels", "100000000000"],
        &["--freeze-first", "13"],
        &["--finetune", "top-block", "--finetune-epochs", "0"],
        &["--aug-views", "17"],
        &["--dedup-distance", "65"],
        &["--data", "/no/such/data"],
        &["--classes", "daffodil"],
        &["--head", "flatten", "--input-size", "1024"],
    ];
    for bad in [&["--classes", "daffodil,daffodil"][..], &["--classes", "daffodil,,coltsfoot"], &["--cv", "1"]].iter().chain(numbers) {
        let mut args = vec!["train", "--data", "/no/such/data", "--backbone", "/no/such.onnx", "--out", out_dir.to_str().unwrap()];
        args.extend(bad.iter().copied());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer")).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        let flag = bad[0].split('=').next().unwrap();
        assert!(stderr.contains(flag), "{bad:?}: {stderr}");
        assert!(!out_dir.exists(), "{bad:?} wrote the run folder");
    }
    // Scores lowered by the head's evidence go below 0: a negative threshold, as a word of its own.
    for (flag, value, accepted) in [
        ("--min-confidence", "NaN", false),
        ("--unknown-threshold", "inf", false),
        ("--unknown-threshold", "-0.1", true),
        ("--unknown-threshold", "-1e-9", true),
        ("--unknown-threshold", "-0.5", false), // below every score
    ] {
        let argv = ["trainer", "evaluate", "--model", "m", "--data", "d", flag, value];
        assert_eq!(Cli::try_parse_from(argv).is_ok(), accepted, "{flag} {value}");
    }
    assert!(train_config(&["--classes", "a,a"]).validate().unwrap_err().contains("'a' twice"));
}
