//! VGG16's 13 convolutions and 5 max-pools, loaded with ImageNet weights.

use burn::module::{Param, ParamId};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::weights::ConvRecord;
use super::{from_vec, to_vec};
use crate::backbone::{ConvWeights, VGG16_BLOCKS};

#[derive(Module, Debug)]
pub struct Vgg16Trunk {
    pub convs: Vec<Conv2d>,
    pool: MaxPool2d,
}

impl Vgg16Trunk {
    /// Fresh parameters holding `convs` (the backbone file's weights).
    pub fn from_weights(convs: &[ConvWeights], device: &Device) -> Self {
        Self::build(convs.iter().map(|w| (None, w)), device)
    }

    /// Parameters restored from a checkpoint, with their ids (the optimizer state refers to them).
    pub fn from_records(records: &[ConvRecord], device: &Device) -> Self {
        let weights: Vec<ConvWeights> = records.iter().map(Into::into).collect();
        Self::build(records.iter().map(|r| Some(r.ids)).zip(&weights), device)
    }

    fn build<'a>(layers: impl Iterator<Item = (Option<[u64; 2]>, &'a ConvWeights)>, device: &Device) -> Self {
        let convs = layers
            .map(|(ids, w)| {
                let mut conv = Conv2dConfig::new([w.in_channels, w.out_channels], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device);
                let shape = [w.out_channels, w.in_channels, 3, 3];
                conv.weight = param(ids.map(|i| i[0]), from_vec(w.weight.clone(), shape, device));
                conv.bias = Some(param(ids.map(|i| i[1]), from_vec(w.bias.clone(), [w.out_channels], device)));
                conv
            })
            .collect();
        Self { convs, pool: MaxPool2dConfig::new([2, 2]).init() }
    }

    /// `[N, 3, S, S]` normalized images -> `[N, C, S/32, S/32]` features.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_keeping_block4(x).1
    }

    /// The block-4 output (`[N, C4, S/16, S/16]`, after its pool) and the features.
    pub fn forward_keeping_block4(&self, mut x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let mut convs = self.convs.iter();
        let mut block4 = None;
        for (b, block) in VGG16_BLOCKS.into_iter().enumerate() {
            for conv in convs.by_ref().take(block) {
                x = relu(conv.forward(x));
            }
            x = self.pool.forward(x);
            if b == 3 {
                block4 = Some(x.clone());
            }
        }
        (block4.expect("VGG16 has five blocks"), x)
    }

    /// Stops gradients for the first `n` convolutions (the rest keep their trainability).
    pub fn freeze_first(mut self, n: usize) -> Self {
        self.convs = self.convs.into_iter().enumerate().map(|(i, conv)| if i < n { conv.no_grad() } else { conv }).collect();
        self
    }

    /// Indices of the convolutions whose weights receive gradients.
    pub fn trainable_layers(&self) -> Vec<usize> {
        (0..self.convs.len()).filter(|&i| self.convs[i].weight.is_require_grad()).collect()
    }

    pub fn to_records(&self) -> Vec<ConvRecord> {
        self.convs
            .iter()
            .map(|conv| {
                let [out_channels, in_channels, _, _] = conv.weight.dims();
                let bias = conv.bias.as_ref();
                ConvRecord {
                    ids: [conv.weight.id.val(), bias.map_or(0, |b| b.id.val())],
                    out_channels,
                    in_channels,
                    weight: to_vec(conv.weight.val()),
                    bias: bias.map(|b| to_vec(b.val())).unwrap_or_else(|| vec![0.0; out_channels]),
                }
            })
            .collect()
    }
}

/// A trainable parameter; with the id it had when saved, if given, so that restored optimizer
/// state (keyed by parameter id) finds it.
pub fn param<const D: usize>(id: Option<u64>, tensor: Tensor<D>) -> Param<Tensor<D>> {
    let mut param = Param::from_tensor(tensor);
    if let Some(id) = id {
        param.id = ParamId::from(id);
    }
    param
}
