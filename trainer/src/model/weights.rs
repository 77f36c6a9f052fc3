//! Plain, backend-free copies of the weights: what checkpoints store and the exporter writes.

use serde::{Deserialize, Serialize};
use shared::HeadKind;

use crate::backbone::ConvWeights;

/// One fully-connected layer; `weight` is `[inputs, outputs]` row-major (Burn's layout,
/// which is also ONNX Gemm's `B` without transposition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseWeights {
    /// Burn parameter ids (weight, bias): the optimizer state is keyed by them on resume.
    pub ids: [u64; 2],
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvRecord {
    pub ids: [u64; 2],
    pub out_channels: usize,
    pub in_channels: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl From<&ConvRecord> for ConvWeights {
    fn from(c: &ConvRecord) -> Self {
        Self { out_channels: c.out_channels, in_channels: c.in_channels, weight: c.weight.clone(), bias: c.bias.clone() }
    }
}

/// A whole model's weights. `trunk` is `None` while the trunk is the untouched backbone (frozen
/// training): the backbone file, checked by hash, supplies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelWeights {
    pub head_kind: HeadKind,
    pub trunk: Option<Vec<ConvRecord>>,
    pub head: Vec<DenseWeights>,
}
