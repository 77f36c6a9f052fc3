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

impl ModelWeights {
    /// The same model with its logits divided by `temperature` (temperature scaling): the last
    /// layer gives logits, so `x W / t + b / t` is folded into its weight and bias.
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        if let Some(last) = self.head.last_mut() {
            last.weight.iter_mut().for_each(|w| *w /= temperature);
            last.bias.iter_mut().for_each(|b| *b /= temperature);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_divides_the_last_layer_only() {
        let dense = |v: f32| DenseWeights { ids: [0, 0], inputs: 1, outputs: 2, weight: vec![v, 2.0 * v], bias: vec![v, -v] };
        let weights = ModelWeights { head_kind: HeadKind::Gap, trunk: None, head: vec![dense(4.0), dense(4.0)] };
        let scaled = weights.clone().with_temperature(2.0);
        assert_eq!(scaled.head[0], weights.head[0], "hidden layers are untouched");
        assert_eq!(scaled.head[1].weight, vec![2.0, 4.0]);
        assert_eq!(scaled.head[1].bias, vec![2.0, -2.0]);
    }
}
