//! Training: configuration, the epoch loop, checkpoints, and the whole `train` job.

pub mod calibration;
pub mod checkpoint;
pub mod conditions;
pub mod config;
pub mod fit;
pub mod inputs;
pub mod job;
pub mod logistic;

pub use config::{OptimizerKind, TrainConfig};
pub use job::{TrainOutcome, train};
