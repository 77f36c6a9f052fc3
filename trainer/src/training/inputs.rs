//! The two sources of training input: cached trunk features (frozen trunk) and prepared
//! images augmented on the fly (training through the trunk).

use burn::prelude::*;
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use shared::Normalization;

use super::fit::Inputs;
use crate::data::augment::Augmentation;
use crate::features::images_to_tensor;
use crate::model::from_vec;

/// A per-(seed, epoch, item) generator: the same run draws the same augmentations, resumed or not.
fn item_rng(seed: u64, epoch: u32, item: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ ((epoch as u64) << 32) ^ (item as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

pub struct FeatureInputs<'a> {
    /// Per training item, its clean view followed by its augmented views.
    pub train_views: Vec<Vec<&'a [f32]>>,
    pub eval: Vec<&'a [f32]>,
    pub dims: [usize; 3],
    pub seed: u64,
}

impl FeatureInputs<'_> {
    fn stack(&self, rows: Vec<&[f32]>, device: &Device) -> Tensor<4> {
        let [c, h, w] = self.dims;
        let n = rows.len();
        from_vec(rows.concat(), [n, c, h, w], device)
    }
}

impl Inputs for FeatureInputs<'_> {
    fn train(&self, items: &[usize], epoch: u32, device: &Device) -> Tensor<4> {
        // Each epoch sees one view of each image, drawn at random among its cached views.
        let rows = items
            .iter()
            .map(|&i| {
                let views = &self.train_views[i];
                views[item_rng(self.seed, epoch, i).random_range(0..views.len())]
            })
            .collect();
        self.stack(rows, device)
    }

    fn eval(&self, items: &[usize], device: &Device) -> Tensor<4> {
        self.stack(items.iter().map(|&i| self.eval[i]).collect(), device)
    }
}

pub struct ImageInputs<'a> {
    pub train: Vec<&'a RgbImage>,
    pub eval: Vec<&'a RgbImage>,
    pub augmentation: Augmentation,
    pub normalization: Normalization,
    pub seed: u64,
}

impl Inputs for ImageInputs<'_> {
    fn train(&self, items: &[usize], epoch: u32, device: &Device) -> Tensor<4> {
        let images: Vec<RgbImage> =
            items.par_iter().map(|&i| self.augmentation.apply(self.train[i], &mut item_rng(self.seed, epoch, i))).collect();
        images_to_tensor(&images, &self.normalization, device)
    }

    fn eval(&self, items: &[usize], device: &Device) -> Tensor<4> {
        let images: Vec<RgbImage> = items.iter().map(|&i| self.eval[i].clone()).collect();
        images_to_tensor(&images, &self.normalization, device)
    }
}
