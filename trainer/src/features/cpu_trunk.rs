//! The frozen VGG16 trunk on the CPU, built for one job: features of one photo per core, as fast
//! as the CPU allows. Its convolutions are Winograd's ([`shared::winograd`]); the layout (blocks,
//! pools, what is kept of block 4) is the one Burn's module and the exported graph have, and the
//! network's input is `shared`'s single preprocessing definition.
//!
//! Memory: the transformed kernels (4x the trunk's weights), and per photo in flight (one per
//! core) the largest map in and out: 2 x 12.8 MB at 224 pixels, 2 x 268 MB at 1024.

use image::RgbImage;
use shared::Normalization;
use shared::winograd::{Scratch, WinogradConv};

use super::TrunkFeatures;
use crate::backbone::{ConvWeights, VGG16_BLOCKS};

pub struct CpuTrunk {
    convs: Vec<WinogradConv>,
    normalization: Normalization,
}

impl CpuTrunk {
    /// Transforms each convolution's kernels once (4x the weights' bytes: 236 MB for VGG16).
    pub fn new(convs: &[ConvWeights], normalization: &Normalization) -> Self {
        let convs = convs.iter().map(|c| WinogradConv::new(c.in_channels, c.out_channels, &c.weight, &c.bias, true)).collect();
        Self { convs, normalization: *normalization }
    }

    /// Block 5's output `[C, s, s]` and block 4's output pooled by average and by max.
    pub fn forward(&self, image: &RgbImage) -> TrunkFeatures {
        let (w, h) = image.dimensions();
        let (mut h, mut w) = (h as usize, w as usize);
        let mut x = chw_to_hwc(&self.normalization.to_chw(image), 3);
        let mut channels = 3;
        let mut scratch = Scratch::default();
        let mut convs = self.convs.iter();
        let mut block4_pooled = Vec::new();
        for (b, block) in VGG16_BLOCKS.into_iter().enumerate() {
            for conv in convs.by_ref().take(block) {
                x = conv.forward(&x, h, w, &mut scratch);
                channels = conv.out_channels();
            }
            (x, h, w) = max_pool_2x2(&x, h, w, channels);
            if b == 3 {
                block4_pooled = [average_over_pixels(&x, channels), max_over_pixels(&x, channels)].concat();
            }
        }
        TrunkFeatures { map: hwc_to_chw(&x, channels), block4_pooled }
    }
}

/// Max over each 2x2 window, stride 2; an odd last row or column is dropped (floor), as in
/// Burn's `MaxPool2d` and ONNX's `MaxPool` without padding.
fn max_pool_2x2(x: &[f32], h: usize, w: usize, c: usize) -> (Vec<f32>, usize, usize) {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![0f32; oh * ow * c];
    for y in 0..oh {
        for xx in 0..ow {
            let o = &mut out[(y * ow + xx) * c..(y * ow + xx + 1) * c];
            let at = |dy: usize, dx: usize| &x[((2 * y + dy) * w + 2 * xx + dx) * c..((2 * y + dy) * w + 2 * xx + dx + 1) * c];
            let (a, b, p, q) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
            for i in 0..c {
                o[i] = a[i].max(b[i]).max(p[i].max(q[i]));
            }
        }
    }
    (out, oh, ow)
}

fn average_over_pixels(x: &[f32], c: usize) -> Vec<f32> {
    let pixels = x.len() / c;
    let mut sum = vec![0f32; c];
    for pixel in x.chunks_exact(c) {
        sum.iter_mut().zip(pixel).for_each(|(s, v)| *s += v);
    }
    sum.iter().map(|s| s / pixels as f32).collect()
}

fn max_over_pixels(x: &[f32], c: usize) -> Vec<f32> {
    let mut max = vec![f32::NEG_INFINITY; c];
    for pixel in x.chunks_exact(c) {
        max.iter_mut().zip(pixel).for_each(|(m, v)| *m = m.max(*v));
    }
    max
}

fn chw_to_hwc(x: &[f32], c: usize) -> Vec<f32> {
    let plane = x.len() / c;
    (0..plane * c).map(|i| x[(i % c) * plane + i / c]).collect()
}

fn hwc_to_chw(x: &[f32], c: usize) -> Vec<f32> {
    let plane = x.len() / c;
    (0..plane * c).map(|i| x[(i % plane) * c + i / plane]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip_and_pools_match_their_definition() {
        // [2 channels, 3 x 2 pixels]: channel 0 holds 0..6, channel 1 holds 10..16.
        let chw: Vec<f32> = (0..6).map(|v| v as f32).chain((10..16).map(|v| v as f32)).collect();
        let hwc = chw_to_hwc(&chw, 2);
        assert_eq!(&hwc[..4], &[0.0, 10.0, 1.0, 11.0]);
        assert_eq!(hwc_to_chw(&hwc, 2), chw);
        // 3 rows x 2 columns: one 2x2 window, the odd last row dropped.
        let (pooled, h, w) = max_pool_2x2(&hwc, 3, 2, 2);
        assert_eq!((h, w), (1, 1));
        assert_eq!(pooled, vec![3.0, 13.0]);
        assert_eq!(average_over_pixels(&hwc, 2), vec![2.5, 12.5]);
        assert_eq!(max_over_pixels(&hwc, 2), vec![5.0, 15.0]);
    }
}
