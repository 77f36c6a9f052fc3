//! Training: configuration, the phases of the `train` job (prepare, head, trunk, final fit), the
//! epoch loop they share, and checkpoints.

pub mod calibration;
pub mod checkpoint;
pub mod conditions;
pub mod config;
pub mod final_fit;
pub mod fit;
pub mod head;
pub mod inputs;
pub mod job;
pub mod logistic;
pub mod optimizer;
pub mod prepare;
pub mod trunk;

pub use config::{OptimizerKind, TrainConfig};
pub use job::{TrainOutcome, train};
