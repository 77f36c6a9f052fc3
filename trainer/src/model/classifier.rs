//! Trunk + head: normalized images in, class logits out.

use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::head::HeadInput;
use super::{Head, Vgg16Trunk};

#[derive(Module, Debug)]
pub struct Classifier {
    pub trunk: Vgg16Trunk,
    pub head: Head,
}

impl Classifier {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match HeadInput::of(self.head.kind()) {
            HeadInput::Map => self.head.forward(self.trunk.forward(images)),
            HeadInput::Descriptor => {
                let (block4, block5) = self.trunk.forward_keeping_block4(images);
                self.head.forward(normalized_descriptor(block4, block5))
            }
        }
    }

    pub fn probabilities(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.forward(images), 1)
    }
}

/// [`crate::openset::normalized`] of [`crate::openset::descriptor`] in Burn, for a trunk that is
/// being trained (a frozen trunk's descriptors come from the feature cache): block 4 and block 5
/// pooled by average and by max, each part L2-normalized and scaled by `1 / sqrt(PARTS)`, as a
/// `[N, PARTS * C, 1, 1]` map.
pub fn normalized_descriptor(block4: Tensor<4>, block5: Tensor<4>) -> Tensor<4> {
    use crate::openset::{NORM_EPSILON, PARTS};
    let pools = |map: Tensor<4>| {
        let [n, c, h, w] = map.dims();
        let flat = map.reshape([n, c, h * w]);
        [flat.clone().mean_dim(2).reshape([n, c]), flat.max_dim(2).reshape([n, c])]
    };
    let scale = 1.0 / (PARTS as f32).sqrt();
    let parts: Vec<Tensor<2>> = pools(block4)
        .into_iter()
        .chain(pools(block5))
        .map(|part| {
            let norm = part.clone().powi_scalar(2).sum_dim(1).sqrt().add_scalar(NORM_EPSILON);
            part.div(norm).mul_scalar(scale)
        })
        .collect();
    let descriptor = Tensor::cat(parts, 1);
    let [n, d] = descriptor.dims();
    descriptor.reshape([n, d, 1, 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{pool, pool_max};
    use crate::model::{from_vec, to_vec};

    #[test]
    fn burn_descriptor_is_the_normalized_cached_descriptor() {
        let device = Device::flex();
        // Two photos; block 4 is [2, 3, 2, 2], block 5 [2, 3, 1, 2]; one photo's block 5 is all zero.
        let block4: Vec<f32> = (0..24).map(|i| ((i * 7) % 5) as f32 * 0.5).collect();
        let block5: Vec<f32> = [vec![3.0, 0.0, 1.0, 2.0, 0.5, 4.0], vec![0.0; 6]].concat();
        let got =
            to_vec(normalized_descriptor(from_vec(block4.clone(), [2, 3, 2, 2], &device), from_vec(block5.clone(), [2, 3, 1, 2], &device)));
        assert_eq!(got.len(), 2 * crate::openset::PARTS * 3);
        for photo in 0..2 {
            let b4 = &block4[photo * 12..(photo + 1) * 12];
            let b5 = &block5[photo * 6..(photo + 1) * 6];
            let pooled4 = [pool(b4, [3, 2, 2]), pool_max(b4, [3, 2, 2])].concat();
            let expected = crate::openset::normalized(&crate::openset::descriptor(&pooled4, b5, [3, 1, 2]));
            let got = &got[photo * 12..(photo + 1) * 12];
            for (g, e) in got.iter().zip(&expected) {
                assert!((g - e).abs() < 1e-6, "photo {photo}: Burn {got:?}, direct {expected:?}");
            }
        }
    }
}
