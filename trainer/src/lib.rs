//! The host side of flowercam: from a folder of labelled photos and ImageNet VGG16 weights to
//! a trained, verified, deployable classifier bundle.
//!
//! - [`data`]: scan and check the photos, group near-duplicates, split, augment;
//! - [`backbone`]: read VGG16 weights (ONNX, safetensors);
//! - [`model`]: the Burn network (trunk + head);
//! - [`features`]: trunk features, computed once and cached;
//! - [`openset`]: the "none of these" score and its threshold;
//! - [`training`]: the epoch loop, checkpoints, the whole train job;
//! - [`export`]: ONNX graph, tract parity gate, bundle;
//! - [`slim`]: a narrower trunk for slow boards (structured channel pruning);
//! - [`run_folder`]: a run folder and the names of its files; [`paths`]: one spelling of a path;
//! - [`lock`]: one writer per run folder;
//! - [`evaluate`]: a bundle scored through tract on any class folder (field photos, unknowns);
//! - [`report`]: metrics, CSVs, plots;
//! - [`commands`]: what each CLI subcommand does.

pub mod backbone;
pub mod cli;
pub mod commands;
pub mod data;
pub mod device;
pub mod evaluate;
pub mod export;
pub mod features;
/// Generated stand-ins for real data and weights: test code, compiled only for tests (the
/// `fixtures` feature, which the workspace's test crates turn on), never in the shipped library.
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod lock;
pub mod model;
pub mod openset;
pub mod paths;
pub mod progress;
pub mod report;
pub mod run_folder;
pub mod slim;
pub mod training;
