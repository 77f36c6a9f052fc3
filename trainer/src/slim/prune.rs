//! Structured channel pruning: each convolution keeps the filters with the largest L1 norm
//! (Li et al. 2017, "Pruning Filters for Efficient ConvNets"), the next one the matching input
//! channels. Each of VGG16's five blocks keeps its own fraction, so a slim trunk is a VGG16 with
//! narrower blocks that every reader of backbones accepts ([`crate::backbone::check_shapes`]);
//! block 5 keeps block 4's fraction (the open-set descriptor relies on equal widths).

use crate::backbone::{ConvWeights, per_layer};

/// The fraction of each block's filters to keep, blocks 1 to 5.
pub type BlockKeep = [f32; 5];

/// The L1 norm of each output filter of `conv`.
pub fn filter_l1_norms(conv: &ConvWeights) -> Vec<f32> {
    conv.weight.chunks_exact(conv.in_channels * 9).map(|filter| filter.iter().map(|v| v.abs()).sum()).collect()
}

/// The `count` filters with the largest L1 norm, in ascending index order (ties: the lower index).
pub fn strongest_filters(conv: &ConvWeights, count: usize) -> Vec<usize> {
    let norms = filter_l1_norms(conv);
    let mut order: Vec<usize> = (0..norms.len()).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
    let mut kept = order[..count.min(order.len())].to_vec();
    kept.sort_unstable();
    kept
}

/// `conv` restricted to output filters `outputs` and input channels `inputs`.
pub fn select(conv: &ConvWeights, outputs: &[usize], inputs: &[usize]) -> ConvWeights {
    let mut weight = Vec::with_capacity(outputs.len() * inputs.len() * 9);
    for &o in outputs {
        for &i in inputs {
            let start = (o * conv.in_channels + i) * 9;
            weight.extend_from_slice(&conv.weight[start..start + 9]);
        }
    }
    ConvWeights { out_channels: outputs.len(), in_channels: inputs.len(), weight, bias: outputs.iter().map(|&o| conv.bias[o]).collect() }
}

/// Prunes every convolution to `keep` of its block's filters (at least one; rounded to the
/// nearest filter); returns the slim convolutions and the teacher's filter indices each one kept.
pub fn prune(convs: &[ConvWeights], keep: BlockKeep) -> (Vec<ConvWeights>, Vec<Vec<usize>>) {
    let mut inputs: Vec<usize> = (0..convs.first().map_or(3, |c| c.in_channels)).collect();
    let mut slim = Vec::with_capacity(convs.len());
    let mut kept_per_layer = Vec::with_capacity(convs.len());
    for (conv, keep) in convs.iter().zip(per_layer(keep)) {
        let count = ((conv.out_channels as f32 * keep).round() as usize).clamp(1, conv.out_channels);
        let outputs = strongest_filters(conv, count);
        slim.push(select(conv, &outputs, &inputs));
        inputs = outputs.clone();
        kept_per_layer.push(outputs);
    }
    (slim, kept_per_layer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::{Vgg16Weights, block_scaled_shapes, scaled_shapes};
    use crate::model::{Vgg16Trunk, from_vec, to_vec};
    use burn::prelude::*;
    use shared::Convention;
    use std::path::Path;

    fn teacher() -> Vgg16Weights {
        Vgg16Weights::random(11, 1.0 / 8.0, Convention::Caffe)
    }

    #[test]
    fn keeping_everything_changes_nothing() {
        let t = teacher();
        let (convs, kept) = prune(&t.convs, [1.0; 5]);
        assert_eq!(convs, t.convs);
        assert!(kept.iter().zip(&t.convs).all(|(k, c)| *k == (0..c.out_channels).collect::<Vec<_>>()));
    }

    #[test]
    fn pruned_shapes_chain_and_match_a_narrowed_vgg16() {
        let t = teacher();
        let (convs, kept) = prune(&t.convs, [0.5; 5]);
        assert_eq!(convs.iter().map(|c| (c.out_channels, c.in_channels)).collect::<Vec<_>>(), scaled_shapes(1.0 / 16.0));
        for (i, c) in convs.iter().enumerate() {
            assert_eq!(c.weight.len(), c.out_channels * c.in_channels * 9);
            assert_eq!(c.bias.len(), c.out_channels);
            assert_eq!(kept[i].len(), c.out_channels);
        }
        crate::backbone::check_shapes(Path::new("slim"), &convs, &[]).unwrap();
    }

    /// Blocks keep their own fractions; the shapes still chain and read back as a backbone.
    #[test]
    fn each_block_keeps_its_own_fraction() {
        let t = teacher();
        let (convs, _) = prune(&t.convs, [0.5, 0.25, 1.0, 0.75, 0.75]);
        let shapes: Vec<(usize, usize)> = convs.iter().map(|c| (c.out_channels, c.in_channels)).collect();
        assert_eq!(shapes, block_scaled_shapes([1.0 / 16.0, 1.0 / 32.0, 1.0 / 8.0, 3.0 / 32.0, 3.0 / 32.0]));
        assert_eq!(shapes[..5], [(4, 3), (4, 4), (4, 4), (4, 4), (32, 4)]);
        crate::backbone::check_shapes(Path::new("slim"), &convs, &[]).unwrap();
        // Block 5 narrower than block 4 is refused, naming its first layer.
        let (uneven, _) = prune(&t.convs, [1.0, 1.0, 1.0, 1.0, 0.5]);
        let err = crate::backbone::check_shapes(Path::new("uneven.onnx"), &uneven, &[]).unwrap_err().to_string();
        assert!(err.contains("uneven.onnx") && err.contains("conv layer 11"), "{err}");
    }

    #[test]
    fn the_strongest_filters_are_kept() {
        let mut conv = teacher().convs[1].clone();
        let per_filter = conv.in_channels * 9;
        for o in [2, 5] {
            conv.weight[o * per_filter..(o + 1) * per_filter].iter_mut().for_each(|v| *v *= 100.0);
        }
        assert_eq!(strongest_filters(&conv, 2), vec![2, 5]);
    }

    /// Filters that output nothing (zero weights and bias: zero after the ReLU) can be removed
    /// with their next layer's input channels without changing the kept channels' values.
    #[test]
    fn removing_silent_filters_keeps_the_network_exact() {
        let mut t = teacher();
        let width = 1.0 / 16.0;
        for (conv, (count, _)) in t.convs.iter_mut().zip(scaled_shapes(width)) {
            let per_filter = conv.in_channels * 9;
            for o in count..conv.out_channels {
                conv.weight[o * per_filter..(o + 1) * per_filter].iter_mut().for_each(|v| *v = 0.0);
                conv.bias[o] = 0.0;
            }
            // Strong filters first, so that the silent ones are the ones pruned.
            for o in 0..count {
                conv.weight[o * per_filter..(o + 1) * per_filter].iter_mut().for_each(|v| *v *= 4.0);
            }
        }
        let (slim, kept) = prune(&t.convs, [0.5; 5]);
        let device = Device::flex();
        let input = || from_vec((0..2 * 3 * 32 * 32).map(|i| ((i * 37) % 255) as f32 - 120.0).collect(), [2, 3, 32, 32], &device);
        let full = to_vec(Vgg16Trunk::from_weights(&t.convs, &device).forward(input()));
        let small = to_vec(Vgg16Trunk::from_weights(&slim, &device).forward(input()));
        let (c_full, c_small) = (t.convs[12].out_channels, slim[12].out_channels);
        for n in 0..2 {
            for (j, &c) in kept[12].iter().enumerate() {
                let (a, b) = (full[n * c_full + c], small[n * c_small + j]);
                // Sums over fewer (zero) terms round differently: f32 to a few ulps per layer.
                assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "image {n} channel {c}: {a} against {b}");
            }
        }
    }
}
