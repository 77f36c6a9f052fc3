//! The optimizers the gradient stages use, fresh or restored from a checkpoint's bytes.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};

use super::config::OptimizerKind;

pub fn make(kind: OptimizerKind, momentum: f64) -> ModuleOptimizer {
    match kind {
        OptimizerKind::Adam => AdamConfig::new().init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_momentum(momentum).with_dampening(0.0)))
            .with_weight_decay(None::<WeightDecayConfig>)
            .init(),
    }
}

/// The optimizer state a checkpoint saved (empty bytes: a fresh optimizer).
pub fn restore(kind: OptimizerKind, momentum: f64, bytes: &[u8]) -> anyhow::Result<ModuleOptimizer> {
    let fresh = make(kind, momentum);
    if bytes.is_empty() {
        return Ok(fresh);
    }
    fresh
        .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| anyhow::anyhow!("checkpoint optimizer state is unreadable: {e:?}"))
}
