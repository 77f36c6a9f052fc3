//! Feature distillation: the pruned trunk learns to give what the full trunk (the teacher) gives
//! on the same photos, so that the head, the open-set score and the field see the teacher's
//! features through a cheaper network. No labels: any photos do (the training collection, the
//! frames a box saved).
//!
//! The student's block-5 map and block-4 pooled features are mapped to the teacher's channels by
//! linear adapters (FitNets, Romero et al. 2015), which start as the pruning's channel selection
//! and are thrown away afterwards: the student must keep in its fewer channels what the
//! teacher's dropped channels carried, as far as a linear read-out can recover it. The loss is
//! the squared error of each part divided by the part's mean square over the photos, summed.
//!
//! Crash-safe like training: after every epoch `CHECKPOINT` holds the student, the adapters, the
//! optimizer and the loss history (atomic, checksummed); `resume` continues from it.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::prelude::*;
use image::RgbImage;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use shared::Normalization;

use crate::backbone::ConvWeights;
use crate::features::{TrunkFeatures, images_to_tensor};
use crate::model::vgg::param;
use crate::model::weights::ConvRecord;
use crate::model::{Vgg16Trunk, from_vec, to_vec};
use crate::training::checkpoint;
use crate::training::config::OptimizerKind;
use crate::training::optimizer;

/// The index of block 4's last convolution (blocks of 2, 2, 3, 3, 3): whose channels block 4's
/// output has.
const BLOCK4_LAST: usize = 9;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct DistillOptions {
    /// Whether the adapters learn (FitNets) or stay the pruning's channel selection (each student
    /// channel then reproduces the teacher channel it was cut from).
    pub learn_adapters: bool,
    pub epochs: u32,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
}

/// What the student must reproduce, per photo: the teacher's [`TrunkFeatures`].
pub struct Targets<'a> {
    pub images: &'a [RgbImage],
    pub features: &'a [TrunkFeatures],
    pub normalization: Normalization,
}

/// Mean feature loss of each epoch (`before`: the pruned trunk, untrained).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DistillHistory {
    pub before: f32,
    pub epochs: Vec<DistillEpoch>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct DistillEpoch {
    pub epoch: u32,
    pub loss: f32,
    pub seconds: f32,
}

/// `resume`'s state, saved after every epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct DistillCheckpoint {
    /// What the run distils (teacher hash, kept channels, photos, options): a checkpoint of another
    /// run is refused, not continued.
    fingerprint: String,
    student: Vec<ConvRecord>,
    adapters: Vec<AdapterRecord>,
    optimizer: Vec<u8>,
    history: DistillHistory,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct AdapterRecord {
    id: u64,
    shape: Vec<usize>,
    values: Vec<f32>,
}

#[derive(Module, Debug)]
struct Student {
    trunk: Vgg16Trunk,
    /// Student block-5 channels -> teacher's, at every position of the map (a 1x1 convolution).
    block5: Conv2d,
    /// Student block-4 channels -> teacher's, for the pooled average and the pooled max alike.
    block4: Linear,
}

/// The per-part scale of the loss: each part's mean square over the targets.
struct Scales {
    map: f32,
    average4: f32,
    max4: f32,
}

impl Scales {
    fn of(features: &[TrunkFeatures]) -> Self {
        let mean_square = |values: &mut dyn Iterator<Item = f32>| {
            let (sum, n) = values.fold((0f64, 0usize), |(s, n), v| (s + (v as f64).powi(2), n + 1));
            ((sum / n.max(1) as f64) as f32).max(f32::MIN_POSITIVE)
        };
        let c4 = features.first().map_or(0, |f| f.block4_pooled.len() / 2);
        Self {
            map: mean_square(&mut features.iter().flat_map(|f| f.map.iter().copied())),
            average4: mean_square(&mut features.iter().flat_map(|f| f.block4_pooled[..c4].iter().copied())),
            max4: mean_square(&mut features.iter().flat_map(|f| f.block4_pooled[c4..].iter().copied())),
        }
    }
}

impl Student {
    /// Fresh adapters that read the kept channels where the teacher had them (the loss then
    /// starts at what pruning alone leaves).
    fn new(convs: &[ConvWeights], kept: &[Vec<usize>], teacher_channels: usize, device: &Device) -> Self {
        let selection = |kept: &[usize], transposed: bool| {
            let mut values = vec![0f32; kept.len() * teacher_channels];
            for (j, &t) in kept.iter().enumerate() {
                values[if transposed { t * kept.len() + j } else { j * teacher_channels + t }] = 1.0;
            }
            values
        };
        let (k5, k4) = (&kept[kept.len() - 1], &kept[BLOCK4_LAST]);
        let mut block5 = Conv2dConfig::new([k5.len(), teacher_channels], [1, 1]).with_bias(false).init(device);
        block5.weight = Param::from_tensor(from_vec(selection(k5, true), [teacher_channels, k5.len(), 1, 1], device));
        let mut block4 = LinearConfig::new(k4.len(), teacher_channels).with_bias(false).init(device);
        block4.weight = Param::from_tensor(from_vec(selection(k4, false), [k4.len(), teacher_channels], device));
        Self { trunk: Vgg16Trunk::from_weights(convs, device), block5, block4 }
    }

    fn with_adapters_learning(self, learn: bool) -> Self {
        if learn { self } else { Self { block5: self.block5.no_grad(), block4: self.block4.no_grad(), ..self } }
    }

    fn restore(c: &DistillCheckpoint, device: &Device) -> anyhow::Result<Self> {
        let [b5, b4] = c.adapters.as_slice() else { anyhow::bail!("a distillation checkpoint holds two adapters") };
        let mut block5 = Conv2dConfig::new([b5.shape[1], b5.shape[0]], [1, 1]).with_bias(false).init(device);
        block5.weight = param(Some(b5.id), from_vec(b5.values.clone(), [b5.shape[0], b5.shape[1], 1, 1], device));
        let mut block4 = LinearConfig::new(b4.shape[0], b4.shape[1]).with_bias(false).init(device);
        block4.weight = param(Some(b4.id), from_vec(b4.values.clone(), [b4.shape[0], b4.shape[1]], device));
        Ok(Self { trunk: Vgg16Trunk::from_records(&c.student, device), block5, block4 })
    }

    fn adapter_records(&self) -> Vec<AdapterRecord> {
        let record = |id: u64, shape: Vec<usize>, values| AdapterRecord { id, shape, values };
        vec![
            record(self.block5.weight.id.val(), self.block5.weight.dims()[..2].to_vec(), to_vec(self.block5.weight.val())),
            record(self.block4.weight.id.val(), self.block4.weight.dims().to_vec(), to_vec(self.block4.weight.val())),
        ]
    }

    /// The loss on photos `items` of `targets` (a scalar tensor).
    fn batch_loss(&self, targets: &Targets, items: &[usize], scales: &Scales, device: &Device) -> Tensor<1> {
        let images: Vec<RgbImage> = items.iter().map(|&i| targets.images[i].clone()).collect();
        let features: Vec<&TrunkFeatures> = items.iter().map(|&i| &targets.features[i]).collect();
        self.loss(images_to_tensor(&images, &targets.normalization, device), &features, scales, device)
    }

    /// The loss of a batch against its targets (a scalar tensor).
    fn loss(&self, images: Tensor<4>, targets: &[&TrunkFeatures], scales: &Scales, device: &Device) -> Tensor<1> {
        let (block4, block5) = self.trunk.forward_keeping_block4(images);
        let n = targets.len();
        let predicted_map = self.block5.forward(block5);
        let map_dims = predicted_map.dims();
        let target_map = from_vec(targets.iter().flat_map(|t| t.map.iter().copied()).collect(), map_dims, device);
        let [_, c4s, h4, w4] = block4.dims();
        let flat4 = block4.reshape([n, c4s, h4 * w4]);
        let c4t = targets[0].block4_pooled.len() / 2;
        let part = |pooled: Tensor<3>, offset: usize| {
            let predicted = self.block4.forward(pooled.reshape([n, c4s]));
            let target =
                from_vec(targets.iter().flat_map(|t| t.block4_pooled[offset..offset + c4t].iter().copied()).collect(), [n, c4t], device);
            mean_square_error(predicted, target)
        };
        let average4 = part(flat4.clone().mean_dim(2), 0);
        let max4 = part(flat4.max_dim(2), c4t);
        mean_square_error(predicted_map, target_map).div_scalar(scales.map)
            + average4.div_scalar(scales.average4)
            + max4.div_scalar(scales.max4)
    }
}

fn mean_square_error<const D: usize>(predicted: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
    (predicted - target).powi_scalar(2).mean()
}

/// Trains `convs` (the pruned trunk; `kept`: the teacher's channels each layer kept) to give
/// `targets`' features; returns the distilled convolutions and the loss history. `fingerprint`
/// names the run for `checkpoint_path`.
pub fn distill(
    convs: &[ConvWeights],
    kept: &[Vec<usize>],
    targets: &Targets,
    options: &DistillOptions,
    device: &Device,
    (checkpoint_path, resume, fingerprint): (&Path, bool, &str),
) -> anyhow::Result<(Vec<ConvWeights>, DistillHistory)> {
    anyhow::ensure!(!targets.images.is_empty() && targets.images.len() == targets.features.len(), "distillation needs photos");
    let autodiff = device.clone().autodiff();
    let scales = Scales::of(targets.features);
    let teacher_channels = targets.features[0].block4_pooled.len() / 2;
    // More epochs may be asked on resume; other settings would make another run.
    let o = options;
    let fingerprint = format!("{fingerprint};batch {};lr {};seed {};adapters {}", o.batch_size, o.lr, o.seed, o.learn_adapters);
    let (mut student, mut optim, mut history) = if resume && checkpoint_path.exists() {
        let c: DistillCheckpoint = checkpoint::load(checkpoint_path)?;
        anyhow::ensure!(
            c.fingerprint == fingerprint,
            "{}: a checkpoint of another distillation (other teacher, --keep, photos or settings); remove it or drop --resume",
            checkpoint_path.display()
        );
        let optim = optimizer::restore(OptimizerKind::Adam, 0.0, &c.optimizer)?;
        tracing::info!("resuming distillation after epoch {} of {}", c.history.epochs.len(), options.epochs);
        (Student::restore(&c, &autodiff)?.with_adapters_learning(options.learn_adapters), optim, c.history)
    } else {
        let student = Student::new(convs, kept, teacher_channels, &autodiff).with_adapters_learning(options.learn_adapters);
        let before = mean_loss(&student.valid(), targets, &scales, options.batch_size, &device.clone());
        tracing::info!("distillation: feature loss {before:.4} after pruning, {} photos", targets.images.len());
        (student, optimizer::make(OptimizerKind::Adam, 0.0), DistillHistory { before, epochs: Vec::new() })
    };
    let bar = crate::progress::bar(options.epochs as u64, "distilling");
    bar.set_position(history.epochs.len() as u64);
    while (history.epochs.len() as u32) < options.epochs {
        let epoch = history.epochs.len() as u32 + 1;
        let started = Instant::now();
        let mut order: Vec<usize> = (0..targets.images.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(options.seed ^ ((epoch as u64) << 20) ^ 0xd157));
        let mut loss_sum = 0f64;
        for batch in order.chunks(options.batch_size) {
            let loss = student.batch_loss(targets, batch, &scales, &autodiff);
            loss_sum += to_vec(loss.clone().detach())[0] as f64 * batch.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &student);
            student = optim.step(options.lr, student, grads);
        }
        let record =
            DistillEpoch { epoch, loss: (loss_sum / targets.images.len() as f64) as f32, seconds: started.elapsed().as_secs_f32() };
        tracing::info!("distillation epoch {epoch}: feature loss {:.4} | {:.1}s", record.loss, record.seconds);
        history.epochs.push(record);
        let state = DistillCheckpoint {
            fingerprint: fingerprint.clone(),
            student: student.trunk.to_records(),
            adapters: student.adapter_records(),
            optimizer: optim.into_bytes().map_err(|e| anyhow::anyhow!("saving optimizer state: {e:?}"))?.to_vec(),
            history: history.clone(),
        };
        checkpoint::save(checkpoint_path, &state).context("saving the distillation checkpoint")?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((student.trunk.to_records().iter().map(Into::into).collect(), history))
}

/// The mean loss over all targets, without gradients.
fn mean_loss(student: &Student, targets: &Targets, scales: &Scales, batch_size: usize, device: &Device) -> f32 {
    let mut sum = 0f64;
    for batch in (0..targets.images.len()).collect::<Vec<_>>().chunks(batch_size) {
        let loss = student.batch_loss(targets, batch, scales, device);
        sum += to_vec(loss)[0] as f64 * batch.len() as f64;
    }
    (sum / targets.images.len() as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::Vgg16Weights;
    use crate::features::burn_forward;
    use crate::slim::prune::prune;
    use shared::Convention;

    /// A teacher twice the width of its students, synthetic photos at 32 px, their features.
    fn setup() -> (Vgg16Weights, Vec<RgbImage>, Vec<TrunkFeatures>, Normalization) {
        let teacher = Vgg16Weights::random(5, 1.0 / 8.0, Convention::Caffe);
        let normalization = teacher.convention.normalization();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let images: Vec<RgbImage> = (0..12)
            .map(|i| image::imageops::resize(&crate::fixtures::photo(i % 3, &mut rng), 32, 32, image::imageops::FilterType::Triangle))
            .collect();
        let device = Device::flex();
        let features = burn_forward(&Vgg16Trunk::from_weights(&teacher.convs, &device), &device, &normalization, &images);
        (teacher, images, features, normalization)
    }

    fn options(epochs: u32) -> DistillOptions {
        DistillOptions { learn_adapters: true, epochs, batch_size: 4, lr: 1e-3, seed: 1 }
    }

    #[test]
    fn distillation_lowers_the_feature_loss() {
        let (teacher, images, features, normalization) = setup();
        let (convs, kept) = prune(&teacher.convs, [0.5; 5]);
        let targets = Targets { images: &images, features: &features, normalization };
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = dir.path().join("ckpt");
        let (distilled, history) = distill(&convs, &kept, &targets, &options(6), &Device::flex(), (&checkpoint, false, "t")).unwrap();
        let last = history.epochs.last().unwrap().loss;
        assert_eq!(history.epochs.len(), 6);
        assert!(history.before.is_finite() && last < 0.8 * history.before, "{history:?}");
        assert_ne!(distilled, convs, "the student's weights moved");
        assert_eq!(
            distilled.iter().map(|c| (c.out_channels, c.in_channels)).collect::<Vec<_>>(),
            convs.iter().map(|c| (c.out_channels, c.in_channels)).collect::<Vec<_>>()
        );
    }

    /// The adapters start as the pruning's selection: a student that kept every channel starts
    /// at zero loss.
    #[test]
    fn a_student_that_kept_everything_starts_at_zero_loss() {
        let (teacher, images, features, normalization) = setup();
        let (convs, kept) = prune(&teacher.convs, [1.0; 5]);
        let targets = Targets { images: &images, features: &features, normalization };
        let dir = tempfile::tempdir().unwrap();
        let (_, history) = distill(&convs, &kept, &targets, &options(0), &Device::flex(), (&dir.path().join("c"), false, "t")).unwrap();
        assert!(history.before.abs() < 1e-8, "{history:?}");
    }

    #[test]
    fn a_resumed_distillation_ends_where_an_uninterrupted_one_does() {
        let (teacher, images, features, normalization) = setup();
        let (convs, kept) = prune(&teacher.convs, [0.5; 5]);
        let targets = Targets { images: &images, features: &features, normalization };
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex();
        let (whole, _) = distill(&convs, &kept, &targets, &options(3), &device, (&dir.path().join("a"), false, "t")).unwrap();
        let checkpoint = dir.path().join("b");
        distill(&convs, &kept, &targets, &options(1), &device, (&checkpoint, false, "t")).unwrap();
        let (resumed, history) = distill(&convs, &kept, &targets, &options(3), &device, (&checkpoint, true, "t")).unwrap();
        assert_eq!(history.epochs.len(), 3);
        for (a, b) in whole.iter().zip(&resumed) {
            let worst = a.weight.iter().zip(&b.weight).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-6, "resumed weights differ by {worst}");
        }
        // Another run's checkpoint is refused, naming the file.
        let err = distill(&convs, &kept, &targets, &options(3), &device, (&checkpoint, true, "other teacher")).unwrap_err();
        assert!(err.to_string().contains(&checkpoint.display().to_string()), "{err}");
    }
}
