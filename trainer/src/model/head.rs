//! The classification heads that sit on the trunk's `[N, C, s, s]` feature map.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use shared::HeadKind;

use super::vgg::param;
use super::weights::DenseWeights;
use super::{from_vec, to_vec};

/// Hidden layers use ReLU; dropout follows the first hidden layer; the last layer gives logits.
#[derive(Module, Debug)]
pub struct Head {
    pub layers: Vec<Linear>,
    dropout: Dropout,
    #[module(skip)]
    kind: HeadKind,
}

impl Head {
    /// `channels` x `spatial` x `spatial` features in, `classes` logits out.
    pub fn new(kind: HeadKind, channels: usize, spatial: usize, classes: usize, dropout: f64, device: &Device) -> Self {
        let widths = Self::widths(kind, channels, spatial, classes);
        let layers = widths.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        Self { layers, dropout: DropoutConfig::new(dropout).init(), kind }
    }

    /// Layer widths from input to output.
    pub fn widths(kind: HeadKind, channels: usize, spatial: usize, classes: usize) -> Vec<usize> {
        match kind {
            HeadKind::Linear => vec![channels, classes],
            HeadKind::Gap => vec![channels, 256, classes],
            HeadKind::Flatten => vec![channels * spatial * spatial, 1024, 1024, classes],
        }
    }

    pub fn kind(&self) -> HeadKind {
        self.kind
    }

    pub fn forward(&self, features: Tensor<4>) -> Tensor<2> {
        let [n, c, h, w] = features.dims();
        let mut x: Tensor<2> = if self.kind.pools_globally() {
            features.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
        } else {
            features.reshape([n, c * h * w])
        };
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = relu(x);
                // Dropout after the first hidden layer only: never on the logits.
                if i == 0 {
                    x = self.dropout.forward(x);
                }
            }
        }
        x
    }

    pub fn to_weights(&self) -> Vec<DenseWeights> {
        self.layers
            .iter()
            .map(|layer| {
                let [inputs, outputs] = layer.weight.dims();
                DenseWeights {
                    ids: [layer.weight.id.val(), layer.bias.as_ref().map_or(0, |b| b.id.val())],
                    inputs,
                    outputs,
                    weight: to_vec(layer.weight.val()),
                    bias: layer.bias.as_ref().map(|b| to_vec(b.val())).unwrap_or_else(|| vec![0.0; outputs]),
                }
            })
            .collect()
    }

    pub fn load_weights(mut self, weights: &[DenseWeights], device: &Device) -> Self {
        for (layer, w) in self.layers.iter_mut().zip(weights) {
            layer.weight = param(Some(w.ids[0]), from_vec(w.weight.clone(), [w.inputs, w.outputs], device));
            layer.bias = Some(param(Some(w.ids[1]), from_vec(w.bias.clone(), [w.outputs], device)));
        }
        self
    }
}
