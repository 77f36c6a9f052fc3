//! Which engine runs the frozen trunk over the photos: the slow part of a training run from an
//! empty cache (one VGG16 pass per photo view).
//!
//! - libtorch (the `tch` build, CPU or CUDA) runs Burn's trunk module, batched;
//! - with the flex backend (the pure-Rust build's), tract runs the export's own preprocessing and
//!   trunk graph, one photo per core. Measured on the development machine (2-core AMD EPYC,
//!   224 px, cold cache): 0.54 s per photo against 1.22 s in Burn's flex backend, which kept one
//!   core busy (BENCHMARKS.md, "Features on the default build"). It is also the edge's engine, so
//!   the head trains on the numbers the board's graph computes; the export then cross-checks a
//!   few photos in Burn's trunk, so that the parity gate does not compare tract with itself
//!   ([`crate::training::prepare::Prepared::cross_check_trunk`]).

use anyhow::Context;
use burn::prelude::*;
use image::RgbImage;
use shared::Normalization;
use shared::runtime::Graph;

use super::{TrunkFeatures, pool, pool_max};
use crate::backbone::ConvWeights;
use crate::device::Backend;
use crate::model::{Vgg16Trunk, from_vec, to_vec};

pub enum TrunkEngine {
    /// Burn's trunk module on the run's device.
    Burn { trunk: Vgg16Trunk, device: Device, normalization: Normalization },
    /// The trunk graph ([`crate::export::graph::trunk_features`]) planned by tract.
    Tract(Graph),
}

impl TrunkEngine {
    /// The fastest engine for a run on `backend`: Burn's module where it is libtorch, else tract.
    pub fn for_run(
        backend: Backend,
        convs: &[ConvWeights],
        normalization: &Normalization,
        input_size: u32,
        device: &Device,
    ) -> anyhow::Result<Self> {
        Ok(match backend {
            Backend::Libtorch => {
                Self::Burn { trunk: Vgg16Trunk::from_weights(convs, device), device: device.clone(), normalization: *normalization }
            }
            Backend::Flex => {
                let proto = crate::export::graph::trunk_features(convs, normalization, input_size as usize);
                let graph = Graph::load(&prost::Message::encode_to_vec(&proto), input_size).context("the trunk graph for features")?;
                Self::Tract(graph)
            }
        })
    }

    /// Photos per [`TrunkEngine::forward`] call: a batch for Burn's GEMMs; for tract, one photo
    /// per core (at least a Burn batch, so the progress bar moves in the same steps).
    pub fn batch(&self) -> usize {
        match self {
            Self::Burn { .. } => super::EXTRACT_BATCH,
            Self::Tract(_) => rayon::current_num_threads().max(super::EXTRACT_BATCH),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Burn { .. } => "burn",
            Self::Tract(_) => "tract",
        }
    }

    /// The features of each prepared square.
    pub fn forward(&self, images: &[RgbImage]) -> anyhow::Result<Vec<TrunkFeatures>> {
        match self {
            Self::Burn { trunk, device, normalization } => Ok(burn_forward(trunk, device, normalization, images)),
            Self::Tract(graph) => {
                use rayon::prelude::*;
                images
                    .par_iter()
                    .map(|image| {
                        let mut outputs = graph.run(image)?.into_iter();
                        let (Some(map), Some(average4), Some(max4)) = (outputs.next(), outputs.next(), outputs.next()) else {
                            anyhow::bail!("the trunk graph answered fewer than its 3 outputs");
                        };
                        Ok(TrunkFeatures { map, block4_pooled: [average4, max4].concat() })
                    })
                    .collect()
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

    /// tract on the trunk graph and Burn's module compute the same features: the cache may hold
    /// either's, and a run on one backend reads what the other wrote.
    #[test]
    fn tract_and_burn_compute_the_same_features() {
        let weights = Vgg16Weights::random(7, 0.125, Convention::Caffe);
        let normalization = weights.convention.normalization();
        let size = 64;
        let preprocessing = Preprocessing::new(size, ResizePolicy::CenterCrop).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let images: Vec<RgbImage> = (0..3).map(|c| preprocessing.prepare_rgb(&crate::fixtures::photo(c, &mut rng))).collect();
        let device = Device::flex();
        let tract = TrunkEngine::for_run(Backend::Flex, &weights.convs, &normalization, size, &device).unwrap();
        assert_eq!(tract.name(), "tract");
        let burn = TrunkEngine::Burn { trunk: Vgg16Trunk::from_weights(&weights.convs, &device), device, normalization };
        let (a, b) = (tract.forward(&images).unwrap(), burn.forward(&images).unwrap());
        assert_eq!(a.len(), 3);
        let c = weights.out_channels();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.map.len(), c * 2 * 2, "block 5 map [C, 2, 2] at 64 px");
            assert_eq!(x.block4_pooled.len(), 2 * weights.block4_channels());
            let scale = y.map.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            assert!(scale > 1e-3, "the random trunk gives non-trivial features");
            for (u, v) in x.map.iter().chain(&x.block4_pooled).zip(y.map.iter().chain(&y.block4_pooled)) {
                assert!((u - v).abs() <= 1e-4 * scale, "tract {u} against burn {v} (scale {scale})");
            }
        }
    }
}
