//! Which engine runs the frozen trunk over the photos: the slow part of a training run from an
//! empty cache (one VGG16 pass per photo view).
//!
//! - On a GPU (libtorch, CUDA), Burn's trunk module, batched.
//! - On the CPU, in either build, [`CpuTrunk`]: Winograd convolutions, one photo per core.
//!   Measured on the development machine (2-core AMD EPYC with AVX-512, 224 px, the README's
//!   320 trunk passes, 2026-12-07): 26 s, against 68-71 s for tract on the export's own trunk
//!   graph (the default build's engine before) and 58 s for libtorch's CPU convolutions; Burn's
//!   flex backend was 2.3x slower than tract (BENCHMARKS.md, "Features on the default build").
//!   The export then cross-checks a few photos in Burn's trunk
//!   ([`crate::training::prepare::Prepared::cross_check_trunk`]), and the parity
//!   gate runs the exported graph in tract: three engines agree before a bundle exists.

use burn::prelude::*;
use image::RgbImage;
use shared::Normalization;

use super::cpu_trunk::CpuTrunk;
use super::{TrunkFeatures, pool, pool_max};
use crate::backbone::ConvWeights;
use crate::device::DeviceSpec;
use crate::model::{Vgg16Trunk, from_vec, to_vec};

pub enum TrunkEngine {
    /// Burn's trunk module on the run's GPU.
    Burn { trunk: Vgg16Trunk, device: Device, normalization: Normalization },
    /// Winograd convolutions on the CPU cores.
    Cpu(CpuTrunk),
}

impl TrunkEngine {
    /// The fastest engine for a run on `spec`: Burn's module on a GPU, else the CPU trunk.
    pub fn for_run(spec: DeviceSpec, convs: &[ConvWeights], normalization: &Normalization, device: &Device) -> Self {
        match spec {
            DeviceSpec::Cuda(_) => {
                Self::Burn { trunk: Vgg16Trunk::from_weights(convs, device), device: device.clone(), normalization: *normalization }
            }
            DeviceSpec::Cpu => Self::Cpu(CpuTrunk::new(convs, normalization)),
        }
    }

    /// Photos per [`TrunkEngine::forward`] call: a batch for Burn's GEMMs; on the CPU, one photo
    /// per core (at least a Burn batch, so the progress bar moves in the same steps).
    pub fn batch(&self) -> usize {
        match self {
            Self::Burn { .. } => super::EXTRACT_BATCH,
            Self::Cpu(_) => rayon::current_num_threads().max(super::EXTRACT_BATCH),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Burn { .. } => "burn",
            Self::Cpu(_) => "winograd",
        }
    }

    /// The features of each prepared square.
    pub fn forward(&self, images: &[RgbImage]) -> Vec<TrunkFeatures> {
        match self {
            Self::Burn { trunk, device, normalization } => burn_forward(trunk, device, normalization, images),
            Self::Cpu(trunk) => {
                use rayon::prelude::*;
                images.par_iter().map(|image| trunk.forward(image)).collect()
            }
        }
    }
}

/// One pass of Burn's trunk over prepared images; returns each image's features.
pub fn burn_forward(trunk: &Vgg16Trunk, device: &Device, normalization: &Normalization, images: &[RgbImage]) -> Vec<TrunkFeatures> {
    let input = images_to_tensor(images, normalization, device);
    let (block4, block5) = trunk.forward_keeping_block4(input);
    let per_image = |t: &Tensor<4>| t.dims()[1..].iter().product::<usize>();
    let [_, c4, h4, w4] = block4.dims();
    let (maps_len, block4_len) = (per_image(&block5), per_image(&block4));
    let (maps, block4) = (to_vec(block5), to_vec(block4));
    maps.chunks_exact(maps_len)
        .zip(block4.chunks_exact(block4_len))
        .map(|(map, b4)| {
            let b4_dims = [c4, h4, w4];
            TrunkFeatures { map: map.to_vec(), block4_pooled: [pool(b4, b4_dims), pool_max(b4, b4_dims)].concat() }
        })
        .collect()
}

/// Prepared images -> the `[N, 3, S, S]` tensor the network sees, through `shared`.
pub fn images_to_tensor(images: &[RgbImage], normalization: &Normalization, device: &Device) -> Tensor<4> {
    let (w, h) = images[0].dimensions();
    let mut values = Vec::with_capacity(images.len() * 3 * (w * h) as usize);
    for image in images {
        values.extend(normalization.to_chw(image));
    }
    from_vec(values, [images.len(), 3, h as usize, w as usize], device)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use shared::{Convention, Preprocessing, ResizePolicy};

    use super::*;
    use crate::backbone::Vgg16Weights;

    /// The CPU trunk and Burn's module compute the same features: the cache may hold either's,
    /// and a run on one device reads what the other wrote. At 64 px every map is a multiple of 4
    /// pixels (whole tiles); at 80 px the maps of 5 x 5 cut tiles at the border and the pools
    /// drop an odd row and column.
    #[test]
    fn cpu_and_burn_compute_the_same_features() {
        let weights = Vgg16Weights::random(7, 0.125, Convention::Caffe);
        let normalization = weights.convention.normalization();
        let device = Device::flex();
        let cpu = TrunkEngine::for_run(DeviceSpec::Cpu, &weights.convs, &normalization, &device);
        assert_eq!(cpu.name(), "winograd");
        let burn = TrunkEngine::Burn { trunk: Vgg16Trunk::from_weights(&weights.convs, &device), device, normalization };
        for (size, side) in [(64, 2), (80, 2)] {
            let preprocessing = Preprocessing::new(size, ResizePolicy::CenterCrop).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
            let images: Vec<RgbImage> = (0..3).map(|c| preprocessing.prepare_rgb(&crate::fixtures::photo(c, &mut rng))).collect();
            let (a, b) = (cpu.forward(&images), burn.forward(&images));
            assert_eq!(a.len(), 3);
            let c = weights.out_channels();
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.map.len(), c * side * side, "block 5 map [C, {side}, {side}] at {size} px");
                assert_eq!(x.block4_pooled.len(), 2 * weights.block4_channels());
                let scale = y.map.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
                assert!(scale > 1e-3, "the random trunk gives non-trivial features");
                for (u, v) in x.map.iter().chain(&x.block4_pooled).zip(y.map.iter().chain(&y.block4_pooled)) {
                    assert!((u - v).abs() <= 1e-4 * scale, "{size} px: winograd {u} against burn {v} (scale {scale})");
                }
            }
        }
    }
}
