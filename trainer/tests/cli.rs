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
    assert_eq!(c.l2, 1.0);
    assert_eq!(c.lr, 1e-3);
    assert_eq!(c.input_size, 224);
}

#[test]
fn the_original_recipe() {
    let c = train_config(&["--freeze-first", "3", "--optimizer", "sgd", "--head", "flatten"]);
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
    assert!(train_config(&["--l2", "0"]).validate().is_err());
}
