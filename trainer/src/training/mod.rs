//! Training: configuration, the epoch loop, checkpoints, and the whole `train` job.

pub mod checkpoint;
pub mod config;
pub mod fit;
pub mod inputs;
pub mod job;

pub use config::{OptimizerKind, TrainConfig};
pub use job::{TrainOutcome, train};
