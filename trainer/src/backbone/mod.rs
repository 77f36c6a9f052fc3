//! ImageNet VGG16 weights from the files users actually have, checked layer by layer.
//!
//! Formats: an ONNX file holding a VGG16 conv trunk ([`onnx`]), or torchvision-style
//! `features.N.weight` tensors in `.safetensors` or a PyTorch `.pth` ([`torchvision`]).

pub mod onnx;
pub mod torchvision;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use shared::Convention;

/// (out channels, in channels) of VGG16's 13 convolutions, all 3x3, padding 1.
pub const VGG16_CONVS: [(usize, usize); 13] = [
    (64, 3),
    (64, 64),
    (128, 64),
    (128, 128),
    (256, 128),
    (256, 256),
    (256, 256),
    (512, 256),
    (512, 512),
    (512, 512),
    (512, 512),
    (512, 512),
    (512, 512),
];

/// How many convolutions each of VGG16's five blocks has; a 2x2 max-pool ends each block.
pub const VGG16_BLOCKS: [usize; 5] = [2, 2, 3, 3, 3];

/// Channels of the trunk's output feature map.
pub const TRUNK_CHANNELS: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    #[error("{path}: cannot read: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("{path}: {problem}")]
    Format { path: PathBuf, problem: String },
    #[error("{path}: conv layer {layer} ({name}) has shape {found:?}, VGG16 needs {expected:?}")]
    Shape { path: PathBuf, layer: usize, name: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("{path}: found {found} VGG16 conv layers, need 13{hint}")]
    MissingLayers { path: PathBuf, found: usize, hint: String },
    #[error(
        "{path}: the file does not say which input convention its weights expect; pass --backbone-convention caffe (Keras weights) or torchvision"
    )]
    UnknownConvention { path: PathBuf },
    #[error("{path}: unsupported weights file (expected .onnx, .safetensors or .pth)")]
    UnsupportedFormat { path: PathBuf },
}

/// The largest weights file read: VGG16 with its ImageNet classifier is 553 MB as a PyTorch file.
pub const MAX_BACKBONE_BYTES: u64 = 2 << 30;

/// A backbone must be a regular file of at most [`MAX_BACKBONE_BYTES`], checked before it is
/// opened: a pipe would wait for ever, and a link to `/dev/zero` never ends.
fn check_file(path: &Path) -> Result<(), BackboneError> {
    shared::read::check_file(path, MAX_BACKBONE_BYTES).map(drop).map_err(|cause| BackboneError::Read { path: path.into(), cause })
}

/// One 3x3 convolution: weight in OIHW order, bias per output channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvWeights {
    pub out_channels: usize,
    pub in_channels: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct Vgg16Weights {
    pub convs: Vec<ConvWeights>,
    pub convention: Convention,
    /// File name, for the manifest.
    pub source: String,
    /// The full trunk a slim one was made from (`trainer slim`), as its file records it.
    pub slimmed_from: Option<Teacher>,
}

/// What a slim trunk's file says of the trunk it was slimmed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Teacher {
    pub sha256: String,
    /// Filters in each of the teacher's 13 convolutions.
    pub channels: Vec<usize>,
    /// Photos the slim trunk was distilled on (0: pruned only).
    pub distilled_on: usize,
}

impl Vgg16Weights {
    /// Loads from `path` by extension. `convention` overrides what the file says (or fills in
    /// what it does not say).
    pub fn load(path: &Path, convention: Option<Convention>) -> Result<Self, BackboneError> {
        check_file(path)?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let TrunkFile { convs, convention: found, slimmed_from } = match ext.as_str() {
            "onnx" => onnx::read_convs(path)?,
            "safetensors" => torchvision::read_safetensors(path)?.into(),
            "pth" | "pt" => torchvision::read_pth(path)?.into(),
            _ => return Err(BackboneError::UnsupportedFormat { path: path.into() }),
        };
        let convention = convention.or(found).ok_or_else(|| BackboneError::UnknownConvention { path: path.into() })?;
        // Shown by the edge and `trainer inspect` as the manifest's backbone name: printable.
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let source = shared::manifest::printable_name(&file_name, shared::manifest::MAX_LABEL_BYTES);
        Ok(Self { convs, convention, source, slimmed_from })
    }

    /// The manifest's account of this trunk, for a bundle of `input_size` pixels; `weights_sha256`
    /// is [`Vgg16Weights::sha256`], which a caller has usually computed already (58 MB hashed).
    pub fn info(&self, input_size: usize, weights_sha256: &str) -> shared::BackboneInfo {
        let as_u32 = |channels: &[usize]| channels.iter().map(|&c| c as u32).collect();
        let channels = self.channels();
        shared::BackboneInfo {
            name: self.source.clone(),
            weights_sha256: weights_sha256.to_string(),
            convention: self.convention,
            channels: as_u32(&channels),
            macs: trunk_macs(&channels, input_size),
            slimmed_from: self.slimmed_from.as_ref().map(|t| shared::Slimming {
                teacher_sha256: t.sha256.clone(),
                teacher_channels: as_u32(&t.channels),
                teacher_macs: trunk_macs(&t.channels, input_size),
                distilled_on: t.distilled_on as u32,
            }),
        }
    }

    /// Filters in each convolution.
    pub fn channels(&self) -> Vec<usize> {
        self.convs.iter().map(|c| c.out_channels).collect()
    }

    /// SHA-256 of the 13 layers' raw weights (each W then b, little-endian f32): identifies
    /// the weights whatever file they came in (the shared trunk's README lists this hash).
    pub fn sha256(&self) -> String {
        let mut hasher = Sha256::new();
        for conv in &self.convs {
            for values in [&conv.weight, &conv.bias] {
                for v in values.iter() {
                    hasher.update(v.to_le_bytes());
                }
            }
        }
        hex::encode(hasher.finalize())
    }

    /// Random weights of VGG16's shapes scaled by `width` (1.0 = real VGG16), for tests and
    /// benchmarks that must not depend on a 58 MB download.
    pub fn random(seed: u64, width: f32, convention: Convention) -> Self {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let convs = scaled_shapes(width)
            .into_iter()
            .map(|(o, i)| {
                let k = (2.0 / (i * 9) as f32).sqrt();
                ConvWeights {
                    out_channels: o,
                    in_channels: i,
                    weight: (0..o * i * 9).map(|_| rng.random_range(-k..k)).collect(),
                    bias: (0..o).map(|_| rng.random_range(-0.01..0.01)).collect(),
                }
            })
            .collect();
        Self { convs, convention, source: format!("random-vgg16-width{width}"), slimmed_from: None }
    }

    /// Channels of the last conv (512 for real VGG16).
    pub fn out_channels(&self) -> usize {
        self.convs.last().map(|c| c.out_channels).unwrap_or(0)
    }

    /// Channels of block 4's output (its last convolution's).
    pub fn block4_channels(&self) -> usize {
        let last_of_block4 = VGG16_BLOCKS[..4].iter().sum::<usize>() - 1;
        self.convs.get(last_of_block4).map_or(0, |c| c.out_channels)
    }
}

/// What a weights file holds: the 13 convolutions, the input convention it states, and, for a
/// slim trunk, its teacher.
pub struct TrunkFile {
    pub convs: Vec<ConvWeights>,
    pub convention: Option<Convention>,
    pub slimmed_from: Option<Teacher>,
}

impl From<(Vec<ConvWeights>, Option<Convention>)> for TrunkFile {
    fn from((convs, convention): (Vec<ConvWeights>, Option<Convention>)) -> Self {
        Self { convs, convention, slimmed_from: None }
    }
}

/// Multiply-adds of one RGB frame of `input_size` pixels through a VGG16 trunk whose 13
/// convolutions have `channels` filters (each block's max-pool halves the side).
pub fn trunk_macs(channels: &[usize], input_size: usize) -> u64 {
    let mut side = input_size as u64;
    let mut inputs = 3;
    let mut layers = channels.iter();
    let mut macs = 0;
    for block in VGG16_BLOCKS {
        for &filters in layers.by_ref().take(block) {
            macs += (filters * inputs * 9) as u64 * side * side;
            inputs = filters;
        }
        side /= 2;
    }
    macs
}

/// VGG16 conv shapes with every width multiplied by `width` (input stays 3 channels).
pub fn scaled_shapes(width: f32) -> Vec<(usize, usize)> {
    block_scaled_shapes([width; 5])
}

/// VGG16 conv shapes with each block's filters multiplied by its own width (blocks of
/// [`VGG16_BLOCKS`]); each convolution takes the previous one's filters (the first, 3 channels).
pub fn block_scaled_shapes(widths: [f32; 5]) -> Vec<(usize, usize)> {
    let mut inputs = 3;
    VGG16_CONVS
        .iter()
        .zip(per_layer(widths))
        .map(|(&(o, _), width)| {
            let filters = ((o as f32 * width).round() as usize).max(1);
            (filters, std::mem::replace(&mut inputs, filters))
        })
        .collect()
}

/// A value per block of [`VGG16_BLOCKS`] repeated for each of the block's convolutions (13 in all).
pub fn per_layer<T: Copy>(per_block: [T; 5]) -> impl Iterator<Item = T> {
    VGG16_BLOCKS.into_iter().zip(per_block).flat_map(|(n, v)| std::iter::repeat_n(v, n))
}

/// Each block's width (of real VGG16's) in `convs`: its first convolution's filters over VGG16's.
pub fn block_widths(convs: &[ConvWeights]) -> [f32; 5] {
    let mut first = 0;
    VGG16_BLOCKS.map(|n| {
        let width = convs[first].out_channels as f32 / VGG16_CONVS[first].0 as f32;
        first += n;
        width
    })
}

/// Checks 13 (weight shape, bias length) pairs against VGG16 or a narrowed VGG16 (each block's
/// convolutions as wide as its first; tests use width-scaled trunks, `trainer slim` writes
/// narrowed ones), and names the first layer that does not fit. Block 5 must be as wide as
/// block 4: the open-set descriptor pools both into parts of one length.
pub(crate) fn check_shapes(path: &Path, convs: &[ConvWeights], names: &[String]) -> Result<(), BackboneError> {
    if convs.len() < 13 {
        return Err(BackboneError::MissingLayers { path: path.into(), found: convs.len(), hint: String::new() });
    }
    let mut widths = block_widths(convs);
    widths[4] = widths[3];
    for (layer, (conv, expected)) in convs.iter().zip(block_scaled_shapes(widths)).enumerate() {
        let found = vec![conv.out_channels, conv.in_channels, 3, 3];
        let expected = vec![expected.0, expected.1, 3, 3];
        if found != expected || conv.weight.len() != conv.out_channels * conv.in_channels * 9 || conv.bias.len() != conv.out_channels {
            let name = names.get(layer).cloned().unwrap_or_default();
            return Err(BackboneError::Shape { path: path.into(), layer: layer + 1, name, found, expected });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vgg16_costs_15_35_gmac_at_224_and_a_quarter_at_112() {
        let channels: Vec<usize> = VGG16_CONVS.iter().map(|&(filters, _)| filters).collect();
        // The published figure for VGG16's convolutions: 15.35 GMAC at 224 (every layer counted by hand).
        assert_eq!(trunk_macs(&channels, 224), 15_346_630_656);
        assert_eq!(trunk_macs(&channels, 112) * 4, trunk_macs(&channels, 224));
        let random = Vgg16Weights::random(1, 1.0, Convention::Caffe);
        assert_eq!(random.info(224, "00").macs, 15_346_630_656);
        assert_eq!(random.info(224, "00").slimmed_from, None);
    }

    #[test]
    fn a_backbone_that_is_no_regular_file_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("trunk.onnx");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let zero = dir.path().join("zero.safetensors");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        // Each would hang or grow without end if it were opened and read.
        for path in [fifo, zero, dir.path().to_path_buf()] {
            let err = Vgg16Weights::load(&path, Some(Convention::Caffe)).unwrap_err().to_string();
            assert!(err.starts_with(&path.display().to_string()) && err.contains("not a regular file"), "{err}");
        }
    }
}
