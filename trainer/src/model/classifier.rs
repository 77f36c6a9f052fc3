//! Trunk + head: normalized images in, class logits out.

use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::{Head, Vgg16Trunk};

#[derive(Module, Debug)]
pub struct Classifier {
    pub trunk: Vgg16Trunk,
    pub head: Head,
}

impl Classifier {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.trunk.forward(images))
    }

    pub fn probabilities(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.forward(images), 1)
    }
}
