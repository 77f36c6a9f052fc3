//! The first phase of every job (train, export, evaluate's own checks): the data scanned and
//! checked, the split made (or read from a run folder), the backbone loaded; and the frozen
//! trunk's features of any photo, from the cache where possible.

use shared::usage::UsageError;
use std::fmt::Write as _;
use std::time::Instant;

use burn::prelude::*;
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use shared::{Normalization, Preprocessing};

use super::config::TrainConfig;
use super::fit::{self, Evaluation};
use super::inputs::{FeatureInputs, ImageInputs};
use crate::backbone::Vgg16Weights;
use crate::data::{self, Dataset, ScanOptions, Split, SplitOptions};
use crate::features::{self, FeatureCache, TrunkEngine, TrunkFeatures, ViewKey};
use crate::model::head::HeadInput;
use crate::model::weights::ModelWeights;
use crate::model::{Classifier, Head, Vgg16Trunk};
use crate::run_folder::RunFolder;

/// Wall-clock seconds per phase, in order of first use; a phase timed twice adds up.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Phases(pub Vec<(String, f32)>);

impl Phases {
    pub fn time<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        let seconds = started.elapsed().as_secs_f32();
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 += seconds,
            None => self.0.push((name.to_string(), seconds)),
        }
        out
    }
}

/// Validation photos whose trunk features [`Prepared::cross_check_trunk`] recomputes in Burn: each
/// costs one trunk pass in the slowest engine, and a wrong trunk shows on any photo.
pub const TRUNK_CROSS_CHECK_PHOTOS: usize = 2;
/// Largest difference allowed there, relative to the largest feature: float32 rounding through
/// two engines' 13 convolutions (Winograd against Burn: measured 4.5e-5 on the VGG16 trunk at 224
/// with flex, 4.8e-5 with libtorch), with room to spare; a wrong trunk (a channel order, a missing
/// ReLU or pool) differs by the order of 1.
pub const TRUNK_CROSS_CHECK_TOLERANCE: f32 = 1e-3;

/// Data, split and backbone, checked and loaded: what training and export both start from.
pub struct Prepared {
    pub config: TrainConfig,
    pub preprocessing: Preprocessing,
    pub normalization: Normalization,
    pub dataset: Dataset,
    pub split: Split,
    /// Near-duplicate group of each sample.
    pub groups: Vec<usize>,
    pub backbone: Vgg16Weights,
    pub backbone_sha256: String,
    pub device: Device,
    pub cache: FeatureCache,
    /// The frozen backbone in the engine that computes features, built on first need (it holds
    /// 58 MB of weights).
    trunk: std::cell::OnceCell<TrunkEngine>,
}

impl Prepared {
    pub fn classes_of(&self, items: &[usize]) -> Vec<usize> {
        items.iter().map(|&i| self.dataset.samples[i].class).collect()
    }

    pub fn images_of(&self, items: &[usize]) -> Vec<&RgbImage> {
        items.iter().map(|&i| &self.dataset.samples[i].image).collect()
    }

    /// How many of `items` are of `class`.
    pub fn count_of_class(&self, items: &[usize], class: usize) -> usize {
        items.iter().filter(|&&i| self.dataset.samples[i].class == class).count()
    }

    /// The split per class, and how many near-duplicates were kept with their group: a table.
    pub fn split_table(&self) -> String {
        let mut table = String::new();
        let _ = writeln!(table, "{:<20} {:>6} {:>6} {:>6}", "class", "train", "val", "test");
        for (c, name) in self.dataset.classes.iter().enumerate() {
            let count = |items: &[usize]| self.count_of_class(items, c);
            let (train, val, test) = (count(&self.split.train), count(&self.split.val), count(&self.split.test));
            let _ = writeln!(table, "{name:<20} {train:>6} {val:>6} {test:>6}");
        }
        let _ = write!(
            table,
            "{:<20} {:>6} {:>6} {:>6}   ({} skipped file(s), {} near-duplicate photo(s) kept with their group)",
            "total",
            self.split.train.len(),
            self.split.val.len(),
            self.split.test.len(),
            self.dataset.skipped.len(),
            self.near_duplicates_grouped()
        );
        table
    }

    /// Photos grouped with an earlier near-duplicate.
    pub fn near_duplicates_grouped(&self) -> usize {
        self.groups.iter().enumerate().filter(|&(i, &g)| g != i).count()
    }

    fn trunk(&self) -> &TrunkEngine {
        self.trunk.get_or_init(|| TrunkEngine::for_run(self.config.device, &self.backbone.convs, &self.normalization, &self.device))
    }

    pub fn feature_dims(&self) -> [usize; 3] {
        features::feature_dims(self.backbone.out_channels(), self.preprocessing.input_size)
    }

    fn cache_context(&self) -> String {
        features::cache_context(&self.backbone_sha256, &self.preprocessing.fingerprint(), &self.normalization)
    }

    /// The feature-cache key of one view of `sample`: `None` for the clean view, else a text that
    /// names the transform and changes whenever its pixels would.
    pub fn view_key(&self, sample: &data::Sample, view: Option<String>) -> String {
        ViewKey { context: &self.cache_context(), file_sha256: &sample.file_sha256, augmentation: view }.hash()
    }

    /// Trunk features of each job (cache key, image maker), from the cache where possible.
    pub fn features_of<'a>(
        &self,
        jobs: Vec<(String, Box<dyn Fn() -> RgbImage + Send + Sync + 'a>)>,
        label: &'static str,
    ) -> anyhow::Result<Vec<TrunkFeatures>> {
        let shape = features::FeatureShape { map: self.feature_dims(), block4_channels: self.backbone.block4_channels() };
        features::extract(|| self.trunk(), &self.cache, shape, jobs, label)
    }

    /// The head's input ([`HeadInput`]) for the clean view of each item, from the cache where
    /// possible.
    pub fn clean_features(&self, items: &[usize], label: &'static str) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(self.clean_trunk_features(items, label)?.into_iter().map(|f| self.head_input(f)).collect())
    }

    /// What the configured head reads of one view's trunk features.
    pub fn head_input(&self, features: TrunkFeatures) -> Vec<f32> {
        match HeadInput::of(self.config.head) {
            HeadInput::Map => features.map,
            HeadInput::Descriptor => {
                crate::openset::normalized(&crate::openset::descriptor(&features.block4_pooled, &features.map, self.feature_dims()))
            }
        }
    }

    /// The shape of one head input, `[channels, s, s]` (see [`HeadInput::dims`]).
    pub fn head_dims(&self) -> [usize; 3] {
        HeadInput::of(self.config.head).dims(self.feature_dims())
    }

    fn clean_trunk_features(&self, items: &[usize], label: &'static str) -> anyhow::Result<Vec<TrunkFeatures>> {
        let jobs = items
            .iter()
            .map(|&i| {
                let sample = &self.dataset.samples[i];
                let job: Box<dyn Fn() -> RgbImage + Send + Sync> = Box::new(move || sample.image.clone());
                (self.view_key(sample, None), job)
            })
            .collect();
        self.features_of(jobs, label)
    }

    /// The first [`TRUNK_CROSS_CHECK_PHOTOS`] of `items` through Burn's own trunk (the module the
    /// trainer's maths is written in), whose features must agree with those training used (from
    /// the cache, which any engine of any earlier run may have written) and, on the CPU, with a
    /// fresh pass of the CPU trunk (Winograd convolutions): so a wrong engine or a wrong cache
    /// entry fails the export. Returns the largest difference relative to the features' scale
    /// (`None` when the trunk was trained: then no features come from elsewhere).
    pub fn cross_check_trunk(&self, items: &[usize]) -> anyhow::Result<Option<f32>> {
        if self.config.trains_trunk() {
            return Ok(None);
        }
        let items = &items[..items.len().min(TRUNK_CROSS_CHECK_PHOTOS)];
        let images: Vec<RgbImage> = items.iter().map(|&i| self.dataset.samples[i].image.clone()).collect();
        let mut checked = vec![("the cached features", self.clean_trunk_features(items, "trunk cross-check")?)];
        if let engine @ TrunkEngine::Cpu(_) = self.trunk() {
            checked.push(("the CPU trunk's features", engine.forward(&images)));
        }
        let trunk = Vgg16Trunk::from_weights(&self.backbone.convs, &self.device);
        let burn = features::burn_forward(&trunk, &self.device, &self.normalization, &images);
        let mut worst = 0f32;
        for (what, features) in &checked {
            for ((c, b), &i) in features.iter().zip(&burn).zip(items) {
                let scale = b.map.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
                let diff = c
                    .map
                    .iter()
                    .chain(&c.block4_pooled)
                    .zip(b.map.iter().chain(&b.block4_pooled))
                    .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                let relative = diff / scale;
                // NaN (a broken trunk) fails too.
                if relative.is_nan() || relative > TRUNK_CROSS_CHECK_TOLERANCE {
                    return Err(crate::export::parity::ParityFailure {
                        details: format!(
                            "{}: {what} differ from Burn's trunk's by {relative:.2e} of their scale (tolerance {TRUNK_CROSS_CHECK_TOLERANCE})",
                            self.dataset.samples[i].name
                        ),
                    }
                    .into());
                }
                worst = worst.max(relative);
            }
        }
        Ok(Some(worst))
    }

    /// The head's input for the clean view plus `aug_views` augmented views of each training item.
    pub fn train_views(&self, items: &[usize]) -> anyhow::Result<Vec<Vec<Vec<f32>>>> {
        let views = self.view_trunk_features(items, "train features")?;
        Ok(views.into_iter().map(|item| item.into_iter().map(|f| self.head_input(f)).collect()).collect())
    }

    /// The open-set descriptor ([`crate::openset::descriptor`]) of each of the views
    /// [`Self::train_views`] gives the head, clean view first, per item.
    pub fn view_descriptors(&self, items: &[usize], label: &'static str) -> anyhow::Result<Vec<Vec<Vec<f32>>>> {
        let dims = self.feature_dims();
        let views = self.view_trunk_features(items, label)?;
        Ok(views.iter().map(|item| item.iter().map(|f| crate::openset::descriptor(&f.block4_pooled, &f.map, dims)).collect()).collect())
    }

    /// The trunk features of the clean view plus `aug_views` augmented views of each item, from
    /// the cache where possible.
    fn view_trunk_features(&self, items: &[usize], label: &'static str) -> anyhow::Result<Vec<Vec<TrunkFeatures>>> {
        let views = 1 + self.config.aug_views;
        let augmentation = self.config.augmentation;
        let seed = self.config.seed;
        let mut jobs = Vec::new();
        for &i in items {
            let sample = &self.dataset.samples[i];
            for view in 0..views {
                let description = (view > 0).then(|| format!("aug:{seed}:{view}:{augmentation:?}"));
                let key = self.view_key(sample, description);
                let job: Box<dyn Fn() -> RgbImage + Send + Sync> = Box::new(move || {
                    if view == 0 {
                        return sample.image.clone();
                    }
                    // Seeded by the photo and view, not its position: cache entries stay valid
                    // across different splits of the same data.
                    let file_seed = u64::from_le_bytes(sample.file_sha256[..8].try_into().expect("8 bytes"));
                    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ file_seed ^ view as u64);
                    augmentation.apply(&sample.image, &mut rng)
                });
                jobs.push((key, job));
            }
        }
        let flat = self.features_of(jobs, label)?;
        anyhow::ensure!(flat.len() == items.len() * views, "{} features for {} views", flat.len(), items.len() * views);
        let mut flat = flat.into_iter();
        Ok(items.iter().map(|_| flat.by_ref().take(views).collect()).collect())
    }

    /// The trainer's own (Burn) class probabilities for `items` under `weights`.
    pub fn probabilities(&self, weights: &ModelWeights, items: &[usize]) -> anyhow::Result<Evaluation> {
        let classes = self.classes_of(items);
        Ok(match &weights.trunk {
            None => {
                let maps = self.clean_features(items, "eval features")?;
                self.evaluate_features(weights, &maps.iter().map(Vec::as_slice).collect::<Vec<_>>(), &classes)
            }
            Some(records) => {
                let model = Classifier { trunk: Vgg16Trunk::from_records(records, &self.device), head: self.head(weights) };
                let inputs = self.image_inputs(&[], items);
                fit::evaluate(&model, &inputs, &classes, features::EXTRACT_BATCH, &self.device)
            }
        })
    }

    /// The head of `weights` (whose trunk must be the frozen backbone) on the frozen trunk's
    /// head inputs ([`Prepared::head_input`]), scored against `classes`.
    pub fn evaluate_features(&self, weights: &ModelWeights, feature_maps: &[&[f32]], classes: &[usize]) -> Evaluation {
        debug_assert!(weights.trunk.is_none(), "feature maps are the frozen trunk's");
        let inputs = FeatureInputs { train_views: vec![], eval: feature_maps.to_vec(), dims: self.head_dims(), seed: 0 };
        fit::evaluate(&self.head(weights), &inputs, classes, self.config.batch_size, &self.device)
    }

    /// The logits of the head of `weights` (on the frozen trunk) for each head input.
    pub fn head_logits(&self, weights: &ModelWeights, feature_maps: &[&[f32]]) -> Vec<Vec<f32>> {
        let [c, h, w] = self.head_dims();
        let head = self.head(weights);
        let mut logits = Vec::with_capacity(feature_maps.len());
        for batch in feature_maps.chunks(self.config.batch_size.max(1)) {
            let values = crate::model::to_vec(head.forward(crate::model::from_vec(batch.concat(), [batch.len(), c, h, w], &self.device)));
            logits.extend(values.chunks_exact(values.len() / batch.len()).map(<[f32]>::to_vec));
        }
        logits
    }

    fn head(&self, weights: &ModelWeights) -> Head {
        Head::new(weights.head_kind, self.feature_dims(), self.dataset.classes.len(), 0.0, &self.device)
            .load_weights(&weights.head, &self.device)
    }

    pub fn image_inputs(&self, train: &[usize], eval: &[usize]) -> ImageInputs<'_> {
        ImageInputs {
            train: self.images_of(train),
            eval: self.images_of(eval),
            augmentation: self.config.augmentation,
            normalization: self.normalization,
            seed: self.config.seed,
        }
    }
}

/// Scans and checks the data, splits it (or reads the split `from` a run folder) and loads the
/// backbone.
pub fn prepare(config: &TrainConfig, from: Option<&RunFolder>, phases: &mut Phases) -> anyhow::Result<Prepared> {
    config.validate().map_err(anyhow::Error::msg)?;
    let preprocessing = Preprocessing::new(config.input_size, config.resize).map_err(anyhow::Error::msg)?;
    let scan_options = ScanOptions {
        classes: config.classes.clone(),
        strict: config.strict,
        min_images_per_class: config.min_images_per_class,
        labels: true,
    };
    let dataset = phases.time("scan", || data::scan::scan(&config.data, &scan_options, &preprocessing))?;
    let (groups, split) = phases.time("split", || -> anyhow::Result<_> {
        if let Some(run) = from {
            let (split, groups) = data::split_file::read(&dataset, &run.split_csv())?;
            return Ok((groups, split));
        }
        let hashes: Vec<_> = dataset.samples.iter().map(|s| &s.phash).collect();
        let groups = data::dedup::group(&hashes, config.dedup_distance);
        warn_of_pictures_in_two_classes(&dataset, &groups);
        let classes: Vec<usize> = dataset.samples.iter().map(|s| s.class).collect();
        let options = SplitOptions { val_fraction: config.val_fraction, test_fraction: config.test_fraction, seed: config.seed };
        let split = data::split::split(&classes, &groups, &options);
        Ok((groups, split))
    })?;
    check_split(config, &dataset, &split, &groups, from)?;
    let backbone = phases.time("backbone", || Vgg16Weights::load(&config.backbone, config.convention))?;
    let backbone_sha256 = backbone.sha256();
    tracing::info!("backbone {} ({} convention, weights sha256 {}...)", backbone.source, backbone.convention, &backbone_sha256[..12]);
    let device = crate::device::burn_device(config.backend, config.device)?;
    let cache = FeatureCache::from_setting(config.cache_dir.clone())?;
    Ok(Prepared {
        config: config.clone(),
        normalization: backbone.convention.normalization(),
        preprocessing,
        dataset,
        split,
        groups,
        backbone,
        backbone_sha256,
        device,
        cache,
        trunk: std::cell::OnceCell::new(),
    })
}

/// Warns of near-duplicates filed under different classes (the same picture with two labels:
/// a mistake in the folders, or classes a photo cannot tell apart); their group follows the
/// class of its first photo into one split.
fn warn_of_pictures_in_two_classes(dataset: &Dataset, groups: &[usize]) {
    let samples = &dataset.samples;
    let pairs: Vec<(usize, usize)> =
        (0..samples.len()).filter(|&i| groups[i] != i && samples[groups[i]].class != samples[i].class).map(|i| (groups[i], i)).collect();
    if let Some(&(a, b)) = pairs.first() {
        tracing::warn!(
            "{} photo(s) are near-duplicates of a photo in another class, e.g. {} ({}) and {} ({}): check the folders",
            pairs.len(),
            samples[a].name,
            dataset.classes[samples[a].class],
            samples[b].name,
            dataset.classes[samples[b].class]
        );
    }
}

/// Refuses a split the run cannot use, naming the class and what to change: a class without a
/// training or validation photo (all its photos one picture, or an edited split.csv), a
/// `--test-fraction` that holds out no photo at all (one that misses a class is warned), or
/// more cross-validation folds than groups of photos to fill them (the last two: bad usage).
fn check_split(config: &TrainConfig, dataset: &Dataset, split: &Split, groups: &[usize], from: Option<&RunFolder>) -> anyhow::Result<()> {
    let classes: Vec<usize> = dataset.samples.iter().map(|s| s.class).collect();
    if let Some((class, lacking)) = data::split::class_missing_from(split, &classes, dataset.classes.len()) {
        let name = &dataset.classes[class];
        if let Some(run) = from {
            anyhow::bail!("{}: class '{name}' has no {lacking} photo; every class needs one of each", run.split_csv().display());
        }
        let of_class: Vec<usize> = (0..classes.len()).filter(|&i| classes[i] == class).collect();
        let (photos, pictures) = (of_class.len(), data::split::groups_among(&of_class, groups));
        anyhow::bail!(
            "class '{name}' has no {lacking} photo: its {photos} photo(s) are {pictures} distinct picture(s) once near-duplicates \
             (--dedup-distance {}) are grouped, and a picture's copies stay in one split; add photos of it taken apart, or lower --dedup-distance",
            config.dedup_distance
        );
    }
    if config.test_fraction > 0.0 && from.is_none() {
        let has_test = |class: usize| split.test.iter().any(|&i| classes[i] == class);
        let lacking: Vec<&str> = (0..dataset.classes.len()).filter(|&c| !has_test(c)).map(|c| dataset.classes[c].as_str()).collect();
        // Asked for a test figure, the run must give one, or say whose photos it leaves out.
        if lacking.len() == dataset.classes.len() {
            return Err(UsageError(format!(
                "--test-fraction {} holds out no photo: each class's share rounds to none (or its last picture stays for training); raise it",
                config.test_fraction
            ))
            .into());
        }
        if !lacking.is_empty() {
            tracing::warn!(
                "--test-fraction {} holds out no photo of {}: the test accuracy leaves {} out",
                config.test_fraction,
                lacking.join(", "),
                if lacking.len() == 1 { "it" } else { "them" }
            );
        }
    }
    let held: Vec<usize> = split.train.iter().chain(&split.val).copied().collect();
    let pictures = data::split::groups_among(&held, groups);
    if config.cv_folds > pictures && !config.trains_trunk() {
        return Err(UsageError(format!(
            "--cv {}: the training and validation photos are {pictures} distinct picture(s) (near-duplicates count as one), too few to fill {} folds; \
             pass --cv {pictures} or fewer, or --cv 0",
            config.cv_folds, config.cv_folds
        ))
        .into());
    }
    Ok(())
}
