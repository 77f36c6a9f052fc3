//! The contract between the `trainer` (host) and the `edge` (camera board).
//!
//! Everything both sides must agree on lives here and nowhere else:
//! - [`preprocess`]: the one definition of how a photo becomes the network's input
//!   (decode, RGB, resize policy, normalization convention);
//! - [`manifest`]: what a trained model is (labels, preprocessing, backbone, metrics);
//! - [`bundle`]: the deployable file that carries the manifest, the ONNX graph and self-checks;
//! - [`signing`]: ed25519 keys, bundle signatures, and the keys an edge trusts;
//! - [`runtime`]: the exported graph loaded into tract and run, for both sides;
//! - [`webp`]: WebP files checked before their decoder, which takes no allocation limits;
//! - [`winograd`]: the 3x3 convolutions of the trainer's trunk and of every graph tract runs;
//! - [`atomic`]: crash-safe file writes used by both sides.

pub mod answer;
pub mod args;
pub mod atomic;
pub mod bounded;
pub mod bundle;
pub mod compare;
pub mod folders;
pub mod lock;
pub mod logging;
pub mod manifest;
pub mod named;
pub mod preprocess;
pub mod read;
pub mod runtime;
pub mod signing;
pub mod stdout;
pub mod text;
pub mod usage;
pub mod webp;
pub mod winograd;

pub use bundle::{Bundle, BundleError, SelfCheck};
pub use manifest::{
    BackboneInfo, CrossValidation, GateRule, HeadKind, Manifest, OpenSet, OpenSetMethod, ParityReport, Precision, Slimming, TrainingSummary,
};
pub use preprocess::{Convention, Normalization, Preprocessing, ResizePolicy};

/// The largest |difference| of probabilities tolerated between the trainer's own prediction and
/// the exported graph run by tract, at export (parity gate) and on the device (`edge selftest`).
pub const PROBABILITY_TOLERANCE: f32 = 1e-4;

/// The same for an int8 export against the float32 model it was quantized from. 8-bit activations
/// move probabilities by up to about 0.12 on the 17-class model (BENCHMARKS.md), and can change
/// the class of an image the float model was unsure of, so the int8 gate also allows 1% of the
/// validation images another class and 1% less accuracy ([`Precision::gate`]).
pub const INT8_PROBABILITY_TOLERANCE: f32 = 0.15;

/// Names of the exported graph's input and output, fixed so every runtime finds them.
pub const ONNX_INPUT: &str = "image";
pub const ONNX_OUTPUT: &str = "probabilities";
/// The exported graph's second output: the open-set score `[N, 1]` (see [`OpenSetMethod`]).
pub const ONNX_UNKNOWN_OUTPUT: &str = "unknown_score";
