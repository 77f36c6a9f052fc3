//! Trunk features, computed once per image view (on the CPU by Winograd convolutions, on a GPU
//! by libtorch: [`engine`]) and cached on disk.
//!
//! With a frozen trunk the expensive part of training is one forward pass per image; the head
//! then trains in seconds on the stored features. A cache entry is keyed by everything that
//! determines it: the backbone weights' hash, the image file's hash, the preprocessing and
//! convention, and for augmented views the seed, view number and augmentation settings. An entry
//! holds the block-5 feature map (what the heads see) followed by the block-4 output pooled by
//! average and by max (what the open-set descriptor adds): one trunk pass gives both.

mod cpu_trunk;
pub mod engine;

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::RgbImage;
use sha2::{Digest, Sha256};
use shared::Normalization;

pub use engine::{TrunkEngine, burn_forward, images_to_tensor};

/// Images per Burn trunk forward pass: large enough to keep the GEMMs busy, small enough for memory.
pub const EXTRACT_BATCH: usize = 8;

/// What a cache file holds.
#[derive(Debug, PartialEq)]
enum Entry {
    Whole(Vec<f32>),
    /// Another layout: a foreign or older entry.
    Foreign,
    /// The right layout, the wrong checksum: a disk error, a copy cut short, bytes overwritten.
    Damaged,
}

/// An entry is `len` little-endian f32 followed by the SHA-256 of those bytes; anything else is
/// recomputed, never trusted.
fn decode_entry(bytes: &[u8], len: usize) -> Entry {
    let Some((values, checksum)) = bytes.split_at_checked(len * 4) else { return Entry::Foreign };
    if checksum.len() != 32 {
        return Entry::Foreign;
    }
    if checksum != Sha256::digest(values).as_slice() {
        return Entry::Damaged;
    }
    Entry::Whole(values.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

pub struct FeatureCache {
    dir: Option<PathBuf>,
}

impl FeatureCache {
    /// `None` disables the cache (`--no-cache`).
    pub fn new(dir: Option<PathBuf>) -> anyhow::Result<Self> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the feature cache", dir.display()))?;
        }
        Ok(Self { dir })
    }

    /// The cache a `--cache-dir` setting names: `None` the default folder, an empty path none
    /// (`--no-cache`).
    pub fn from_setting(setting: Option<PathBuf>) -> anyhow::Result<Self> {
        let dir = setting.unwrap_or_else(default_cache_dir);
        Self::new((!dir.as_os_str().is_empty()).then_some(dir))
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{key}.f32")))
    }

    /// The entry for `key`, if it is whole (see [`decode_entry`]).
    fn get(&self, key: &str, len: usize) -> Option<Vec<f32>> {
        let path = self.path(key)?;
        let bytes = std::fs::read(&path).ok()?;
        match decode_entry(&bytes, len) {
            Entry::Whole(values) => Some(values),
            Entry::Foreign => None,
            Entry::Damaged => {
                tracing::warn!("{}: damaged feature cache entry (checksum), recomputing it", path.display());
                None
            }
        }
    }

    fn put(&self, key: &str, values: &[f32]) {
        if let Some(path) = self.path(key) {
            let mut bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let checksum = Sha256::digest(&bytes);
            bytes.extend_from_slice(&checksum);
            if let Err(e) = shared::atomic::write_atomic(&path, &bytes) {
                tracing::warn!("{}: cannot write feature cache entry: {e}", path.display());
            }
        }
    }
}

/// What one cached feature map was computed from.
pub struct ViewKey<'a> {
    pub context: &'a str,
    pub file_sha256: &'a [u8; 32],
    /// `None` for the clean view; `Some(description)` for an augmented one.
    pub augmentation: Option<String>,
}

impl ViewKey<'_> {
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.context.as_bytes());
        h.update(self.file_sha256);
        h.update(self.augmentation.as_deref().unwrap_or("clean").as_bytes());
        hex::encode(h.finalize())
    }
}

/// The part of every key shared by a run: backbone, preprocessing, convention.
pub fn cache_context(backbone_sha256: &str, preprocessing_fingerprint: &str, normalization: &Normalization) -> String {
    format!("vgg16:{backbone_sha256};{preprocessing_fingerprint};{normalization:?};features-v2")
}

/// The sizes of what the frozen trunk gives for one image.
#[derive(Debug, Clone, Copy)]
pub struct FeatureShape {
    /// The block-5 feature map, `[C, s, s]`.
    pub map: [usize; 3],
    /// Channels of block 4's output.
    pub block4_channels: usize,
}

/// What the frozen trunk gives for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkFeatures {
    /// The block-5 feature map, `[C, s, s]` flattened.
    pub map: Vec<f32>,
    /// Block 4's output pooled by average, then by max: `2 C4` values.
    pub block4_pooled: Vec<f32>,
}

impl TrunkFeatures {
    fn to_entry(&self) -> Vec<f32> {
        [self.map.as_slice(), &self.block4_pooled].concat()
    }

    fn from_entry(mut entry: Vec<f32>, map_len: usize) -> Self {
        let block4_pooled = entry.split_off(map_len);
        Self { map: entry, block4_pooled }
    }
}

/// The feature shape for an input side of `input_size`: `[channels, s, s]`, `s = size / 32`
/// rounded down, as the five 2x2 max-pools (floor mode, in Burn and ONNX alike) leave it.
pub fn feature_dims(channels: usize, input_size: u32) -> [usize; 3] {
    let s = input_size as usize / 32;
    [channels, s, s]
}

/// Global average pool of one `[channels, s, s]` feature map: what the `gap` head sees, and a part
/// of the descriptor that the `linear` head and the open-set score read, in the same order of summation as the exported graph's
/// GlobalAveragePool up to rounding.
pub fn pool(feature_map: &[f32], dims: [usize; 3]) -> Vec<f32> {
    let [c, h, w] = dims;
    debug_assert_eq!(feature_map.len(), c * h * w);
    feature_map.chunks_exact(h * w).map(|plane| plane.iter().sum::<f32>() / (h * w) as f32).collect()
}

/// Global max pool of one `[channels, s, s]` feature map (the graph's GlobalMaxPool).
pub fn pool_max(feature_map: &[f32], dims: [usize; 3]) -> Vec<f32> {
    let [c, h, w] = dims;
    debug_assert_eq!(feature_map.len(), c * h * w);
    feature_map.chunks_exact(h * w).map(|plane| plane.iter().copied().fold(f32::NEG_INFINITY, f32::max)).collect()
}

/// Computes (or loads) the features of each job: (cache key, lazily produced image). `engine`
/// is asked for only when some feature map is not cached.
pub fn extract<'a, 't>(
    engine: impl FnOnce() -> &'t TrunkEngine,
    cache: &FeatureCache,
    shape: FeatureShape,
    jobs: Vec<(String, Box<dyn Fn() -> RgbImage + Send + Sync + 'a>)>,
    label: &'static str,
) -> anyhow::Result<Vec<TrunkFeatures>> {
    let map_len: usize = shape.map.iter().product();
    let len = map_len + 2 * shape.block4_channels;
    let mut out: Vec<Option<TrunkFeatures>> =
        jobs.iter().map(|(key, _)| cache.get(key, len).map(|e| TrunkFeatures::from_entry(e, map_len))).collect();
    let missing: Vec<usize> = (0..jobs.len()).filter(|&i| out[i].is_none()).collect();
    if missing.is_empty() {
        tracing::info!("{label}: all {} feature maps cached", jobs.len());
        return Ok(out.into_iter().map(|f| f.expect("every job cached")).collect());
    }
    let engine = engine();
    tracing::info!(
        "{label}: {} of {} feature maps cached, computing {} in {}",
        jobs.len() - missing.len(),
        jobs.len(),
        missing.len(),
        engine.name()
    );
    let bar = crate::progress::bar(missing.len() as u64, label);
    for chunk in missing.chunks(engine.batch()) {
        let images: Vec<RgbImage> = {
            use rayon::prelude::*;
            chunk.par_iter().map(|&i| (jobs[i].1)()).collect()
        };
        let features = engine.forward(&images);
        for (&i, f) in chunk.iter().zip(features) {
            anyhow::ensure!(
                f.map.len() == map_len && f.block4_pooled.len() == 2 * shape.block4_channels,
                "the trunk answered features of another shape"
            );
            cache.put(&jobs[i].0, &f.to_entry());
            out[i] = Some(f);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out.into_iter().map(|f| f.expect("every job computed")).collect())
}

pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("flowercam").join("features")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_cache_entry_is_recomputed_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FeatureCache::new(Some(dir.path().to_path_buf())).unwrap();
        let values: Vec<f32> = (0..64).map(|i| i as f32 * 0.5).collect();
        cache.put("k", &values);
        assert_eq!(cache.get("k", 64), Some(values.clone()));
        assert_eq!(cache.get("k", 63), None, "another length");
        let path = cache.path("k").unwrap();
        let whole = std::fs::read(&path).unwrap();
        // One flipped bit anywhere, values or checksum: refused.
        for at in [0, 100, whole.len() - 1] {
            let mut bad = whole.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert_eq!(cache.get("k", 64), None, "byte {at} flipped");
        }
        // Random bytes of the same length, and a cut entry: refused.
        std::fs::write(&path, vec![0x5Au8; whole.len()]).unwrap();
        assert_eq!(cache.get("k", 64), None);
        std::fs::write(&path, &whole[..whole.len() - 8]).unwrap();
        assert_eq!(cache.get("k", 64), None);
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(testkit::fuzz_config())]

            /// A cache entry with any byte changed, cut or grown is never taken for features.
            #[test]
            fn every_altered_entry_is_recomputed(damage in testkit::damage(), extra in proptest::collection::vec(any::<u8>(), 0..8)) {
                let values: Vec<f32> = (0..48).map(|i| (i as f32).sin()).collect();
                let mut good: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                let checksum = Sha256::digest(&good);
                good.extend_from_slice(&checksum);
                let (mut bytes, _) = damage.apply(&good);
                bytes.extend(&extra);
                match decode_entry(&bytes, values.len()) {
                    Entry::Whole(back) => {
                        prop_assert_eq!(&bytes, &good);
                        prop_assert_eq!(back, values);
                    }
                    _ => prop_assert_ne!(&bytes, &good),
                }
            }
        }
    }
}
