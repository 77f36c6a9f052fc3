//! The classification heads that sit on the trunk: `gap` and `flatten` on its `[N, C, s, s]`
//! block-5 feature map, `linear` on the normalized descriptor of blocks 4 and 5 ([`HeadInput`]).

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use shared::HeadKind;

use super::vgg::param;
use super::weights::DenseWeights;
use super::{from_vec, to_vec};

/// What a head reads from the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadInput {
    /// The block-5 feature map, `[C, s, s]` (pooled or flattened by the head itself).
    Map,
    /// The open-set descriptor ([`crate::openset::descriptor`]: blocks 4 and 5 pooled by average
    /// and by max) with each part L2-normalized ([`crate::openset::normalized`]), `[PARTS * C]`,
    /// handed over as a `[PARTS * C, 1, 1]` map. Why the `linear` head reads it: every part has
    /// unit length whatever the photo's exposure and contrast, and block 4's mid-level texture
    /// adds to block 5 (BENCHMARKS.md, "The linear head's input").
    Descriptor,
}

impl HeadInput {
    pub fn of(kind: HeadKind) -> Self {
        match kind {
            HeadKind::Linear => HeadInput::Descriptor,
            HeadKind::Gap | HeadKind::Flatten => HeadInput::Map,
        }
    }

    /// The shape of one input, `[channels, s, s]`, for trunk feature maps of `map_dims`.
    pub fn dims(self, map_dims: [usize; 3]) -> [usize; 3] {
        match self {
            HeadInput::Map => map_dims,
            HeadInput::Descriptor => [crate::openset::PARTS * map_dims[0], 1, 1],
        }
    }
}

/// Hidden layers use ReLU; dropout follows the first hidden layer; the last layer gives logits.
#[derive(Module, Debug)]
pub struct Head {
    pub layers: Vec<Linear>,
    dropout: Dropout,
    #[module(skip)]
    kind: HeadKind,
}

impl Head {
    /// A head for a trunk whose block-5 map is `map_dims` (`[C, s, s]`): it reads what
    /// [`HeadInput::of`] its kind says, and gives `classes` logits.
    pub fn new(kind: HeadKind, map_dims: [usize; 3], classes: usize, dropout: f64, device: &Device) -> Self {
        let [channels, spatial, _] = HeadInput::of(kind).dims(map_dims);
        let widths = Self::widths(kind, channels, spatial, classes);
        let layers = widths.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        Self { layers, dropout: DropoutConfig::new(dropout).init(), kind }
    }

    /// The width of the first layer: how many values per photo a head of `kind` is fitted on.
    pub fn input_width(kind: HeadKind, map_dims: [usize; 3]) -> usize {
        let [channels, spatial, _] = HeadInput::of(kind).dims(map_dims);
        Self::widths(kind, channels, spatial, 1)[0]
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
