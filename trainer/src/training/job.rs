//! The whole `trainer train` job: check data, split, load the backbone, train the head on
//! cached features (and optionally through the trunk), evaluate, report. Resumable.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use shared::{HeadKind, Normalization, Preprocessing};

use super::checkpoint::{self, Checkpoint, Stage};
use super::config::{OptimizerKind, TrainConfig};
use super::fit::{self, Evaluation, FitOptions, Labels, Network};
use super::inputs::{FeatureInputs, ImageInputs};
use crate::backbone::Vgg16Weights;
use crate::data::{self, Dataset, ScanOptions, Split, SplitOptions};
use crate::features::{self, FeatureCache, TrunkEngine, TrunkFeatures, ViewKey};
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
/// costs one trunk pass in the slowest engine, and a wrong trunk graph shows on any photo.
pub const TRUNK_CROSS_CHECK_PHOTOS: usize = 2;
/// Largest difference allowed there, relative to the largest feature: float32 rounding through
/// two engines' 13 convolutions (measured 2.3e-5 on the VGG16 trunk at 224), with room to spare; a
/// wrong trunk graph (a channel order, a missing ReLU or pool) differs by the order of 1.
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

    fn trunk(&self) -> anyhow::Result<&TrunkEngine> {
        if let Some(engine) = self.trunk.get() {
            return Ok(engine);
        }
        let engine = TrunkEngine::for_run(
            self.config.backend,
            &self.backbone.convs,
            &self.normalization,
            self.preprocessing.input_size,
            &self.device,
        )?;
        Ok(self.trunk.get_or_init(|| engine))
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

    /// Feature maps of the clean view of each item, from the cache where possible.
    pub fn clean_features(&self, items: &[usize], label: &'static str) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(self.clean_trunk_features(items, label)?.into_iter().map(|f| f.map).collect())
    }

    /// The open-set descriptor ([`crate::openset::descriptor`]) of the clean view of each item.
    pub fn descriptors(&self, items: &[usize], label: &'static str) -> anyhow::Result<Vec<Vec<f32>>> {
        let dims = self.feature_dims();
        Ok(self.clean_trunk_features(items, label)?.iter().map(|f| crate::openset::descriptor(&f.block4_pooled, &f.map, dims)).collect())
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

    /// Where tract computed the frozen trunk's features (the pure-Rust build), the parity gate
    /// would compare the exported trunk with itself: so the first [`TRUNK_CROSS_CHECK_PHOTOS`] of
    /// `items` also go through Burn's own trunk, whose features must agree with the cached ones.
    /// Returns the largest difference relative to the features' scale (`None`: Burn computed them).
    pub fn cross_check_trunk(&self, items: &[usize]) -> anyhow::Result<Option<f32>> {
        if self.config.backend != crate::device::Backend::Flex || self.config.trains_trunk() {
            return Ok(None);
        }
        let items = &items[..items.len().min(TRUNK_CROSS_CHECK_PHOTOS)];
        let cached = self.clean_trunk_features(items, "trunk cross-check")?;
        let trunk = Vgg16Trunk::from_weights(&self.backbone.convs, &self.device);
        let images: Vec<RgbImage> = items.iter().map(|&i| self.dataset.samples[i].image.clone()).collect();
        let burn = features::burn_forward(&trunk, &self.device, &self.normalization, &images);
        let mut worst = 0f32;
        for ((c, b), &i) in cached.iter().zip(&burn).zip(items) {
            let scale = b.map.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
            let diff =
                c.map.iter().chain(&c.block4_pooled).zip(b.map.iter().chain(&b.block4_pooled)).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            let relative = diff / scale;
            // NaN (a broken trunk) fails too.
            if relative.is_nan() || relative > TRUNK_CROSS_CHECK_TOLERANCE {
                return Err(crate::export::parity::ParityFailure {
                    details: format!(
                        "{}: the trunk's features from tract differ from Burn's by {relative:.2e} of their scale (tolerance {TRUNK_CROSS_CHECK_TOLERANCE})",
                        self.dataset.samples[i].name
                    ),
                }
                .into());
            }
            worst = worst.max(relative);
        }
        Ok(Some(worst))
    }

    /// Clean view plus `aug_views` augmented views of each training item.
    fn train_views(&self, items: &[usize]) -> anyhow::Result<Vec<Vec<Vec<f32>>>> {
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
        let flat: Vec<Vec<f32>> = self.features_of(jobs, "train features")?.into_iter().map(|f| f.map).collect();
        Ok(flat.chunks(views).map(<[Vec<f32>]>::to_vec).collect())
    }

    /// The trainer's own (Burn) class probabilities for `items` under `weights`.
    pub fn probabilities(&self, weights: &ModelWeights, items: &[usize]) -> anyhow::Result<Evaluation> {
        let classes = self.classes_of(items);
        Ok(match &weights.trunk {
            None => self.evaluate_features(weights, &self.clean_features(items, "eval features")?, &classes),
            Some(records) => {
                let model = Classifier { trunk: Vgg16Trunk::from_records(records, &self.device), head: self.head(weights) };
                let inputs = self.image_inputs(&[], items);
                fit::evaluate(&model, &inputs, &classes, features::EXTRACT_BATCH, &self.device)
            }
        })
    }

    /// The head of `weights` (whose trunk must be the frozen backbone) on the frozen trunk's
    /// feature maps, scored against `classes`.
    pub fn evaluate_features(&self, weights: &ModelWeights, feature_maps: &[Vec<f32>], classes: &[usize]) -> Evaluation {
        debug_assert!(weights.trunk.is_none(), "feature maps are the frozen trunk's");
        let inputs = FeatureInputs {
            train_views: vec![],
            eval: feature_maps.iter().map(Vec::as_slice).collect(),
            dims: self.feature_dims(),
            seed: 0,
        };
        fit::evaluate(&self.head(weights), &inputs, classes, self.config.batch_size, &self.device)
    }

    fn head(&self, weights: &ModelWeights) -> Head {
        let [c, s, _] = self.feature_dims();
        Head::new(weights.head_kind, c, s, self.dataset.classes.len(), 0.0, &self.device).load_weights(&weights.head, &self.device)
    }

    fn image_inputs(&self, train: &[usize], eval: &[usize]) -> ImageInputs<'_> {
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
    let scan_options =
        ScanOptions { classes: config.classes.clone(), strict: config.strict, min_images_per_class: config.min_images_per_class };
    let dataset = phases.time("scan", || data::scan::scan(&config.data, &scan_options, &preprocessing))?;
    let (groups, split) = phases.time("split", || -> anyhow::Result<_> {
        if let Some(run) = from {
            let (split, groups) = data::split_file::read(&dataset, &run.split_csv())?;
            return Ok((groups, split));
        }
        let hashes: Vec<_> = dataset.samples.iter().map(|s| &s.phash).collect();
        let groups = data::dedup::group(&hashes, config.dedup_distance);
        let classes: Vec<usize> = dataset.samples.iter().map(|s| s.class).collect();
        let options = SplitOptions { val_fraction: config.val_fraction, test_fraction: config.test_fraction, seed: config.seed };
        let split = data::split::split(&classes, &groups, &options);
        Ok((groups, split))
    })?;
    let backbone = phases.time("backbone", || Vgg16Weights::load(&config.backbone, config.convention))?;
    let backbone_sha256 = backbone.sha256();
    tracing::info!("backbone {} ({} convention, weights sha256 {}...)", backbone.source, backbone.convention, &backbone_sha256[..12]);
    let device = crate::device::burn_device(config.backend, config.device)?;
    let cache_dir = config.cache_dir.clone().unwrap_or_else(features::default_cache_dir);
    let cache = FeatureCache::new((!cache_dir.as_os_str().is_empty()).then_some(cache_dir))?;
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

pub fn make_optimizer(kind: OptimizerKind, momentum: f64) -> ModuleOptimizer {
    match kind {
        OptimizerKind::Adam => AdamConfig::new().init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_momentum(momentum).with_dampening(0.0)))
            .with_weight_decay(None::<WeightDecayConfig>)
            .init(),
    }
}

fn restore_optimizer(kind: OptimizerKind, momentum: f64, bytes: &[u8]) -> anyhow::Result<ModuleOptimizer> {
    let fresh = make_optimizer(kind, momentum);
    if bytes.is_empty() {
        return Ok(fresh);
    }
    fresh
        .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| anyhow::anyhow!("checkpoint optimizer state is unreadable: {e:?}"))
}

fn fresh_state(stage: Stage, weights: ModelWeights, carried: Option<&Checkpoint>) -> Checkpoint {
    Checkpoint {
        stage,
        epochs_done: 0,
        weights,
        optimizer: Vec::new(),
        history: carried.map(|c| c.history.clone()).unwrap_or_default(),
        best: carried.and_then(|c| c.best),
        epochs_since_best: 0,
        stage_finished: false,
        cross_validation: carried.and_then(|c| c.cross_validation.clone()),
    }
}

/// Fits the `linear` head on every cached view of the training images (the clean one and any
/// `--aug-views`), cross-validates it on training + validation photos and divides its logits by
/// the temperature fitted there; records it as one finished head stage, saved as the best weights.
fn fit_linear_head(p: &Prepared, train_views: &[Vec<Vec<f32>>], run: &RunFolder) -> anyhow::Result<Checkpoint> {
    use super::calibration::{self, Sample};
    let started = Instant::now();
    let dims = p.feature_dims();
    let n_classes = p.dataset.classes.len();
    let train_classes = p.classes_of(&p.split.train);
    let train_pooled: Vec<Vec<Vec<f32>>> =
        train_views.iter().map(|views| views.iter().map(|v| features::pool(v, dims)).collect()).collect();
    let val_pooled: Vec<Vec<f32>> = if p.config.cv_folds >= 2 || p.config.refit {
        p.clean_features(&p.split.val, "val features")?.iter().map(|f| features::pool(f, dims)).collect()
    } else {
        Vec::new()
    };
    let (mut rows, mut classes) = (Vec::new(), Vec::new());
    for (views, &class) in train_pooled.iter().zip(&train_classes) {
        for view in views {
            rows.push(view.as_slice());
            classes.push(class);
        }
    }
    if p.config.refit {
        rows.extend(val_pooled.iter().map(Vec::as_slice));
        classes.extend(p.classes_of(&p.split.val));
    }
    let fit = super::logistic::LogisticProblem { features: &rows, classes: &classes, n_classes, l2: p.config.l2 }.fit()?;
    tracing::info!(
        "linear head: logistic regression on {} views{}, l2 {}, {} L-BFGS iterations, gradient {:.1e}",
        rows.len(),
        if p.config.refit { " (training + validation photos)" } else { "" },
        p.config.l2,
        fit.iterations,
        fit.gradient_max
    );
    let cross_validation = if p.config.cv_folds >= 2 {
        let items: Vec<usize> = p.split.train.iter().chain(&p.split.val).copied().collect();
        let groups: Vec<usize> = items.iter().map(|&i| p.groups[i]).collect();
        let item_classes = p.classes_of(&items);
        let folds = crate::data::split::folds(&item_classes, &groups, p.config.cv_folds, p.config.seed);
        let views = train_pooled.iter().map(|v| v.iter().map(Vec::as_slice).collect()).chain(val_pooled.iter().map(|v| vec![v.as_slice()]));
        let samples: Vec<Sample> =
            views.zip(&item_classes).zip(&folds).map(|((views, &class), &fold)| Sample { views, class, fold }).collect();
        let cv = calibration::cross_validate(&samples, n_classes, p.config.cv_folds, p.config.l2)?;
        tracing::info!(
            "{}-fold cross-validation: accuracy {:.4} +- {:.4}; temperature {:.3} (ECE {:.4} -> {:.4})",
            cv.folds,
            cv.mean_accuracy,
            cv.spread,
            cv.temperature,
            cv.ece_before,
            cv.ece_after
        );
        Some(cv)
    } else {
        None
    };
    let temperature = cross_validation.as_ref().map_or(1.0, |cv| cv.temperature);
    // Training figures on the clean view of each image (the first of its views).
    let clean: Vec<Vec<f32>> = train_pooled
        .iter()
        .map(|views| super::fit::softmax(&fit.logits(&views[0]).iter().map(|l| l / temperature).collect::<Vec<_>>()))
        .collect();
    let train = super::fit::summarize(clean, &train_classes);
    // Fresh Burn parameter ids, so a --finetune stage after this one keys its optimizer correctly.
    // The temperature is folded into the weights: logits / t = x (W / t) + b / t.
    let mut head = Head::new(HeadKind::Linear, dims[0], dims[1], n_classes, 0.0, &p.device).to_weights();
    head[0].weight = fit.weight.iter().map(|w| w / temperature).collect();
    head[0].bias = fit.bias.iter().map(|b| b / temperature).collect();
    let weights = ModelWeights { head_kind: HeadKind::Linear, trunk: None, head };
    let val = p.probabilities(&weights, &p.split.val)?;
    let record = super::checkpoint::EpochRecord {
        stage: Stage::Head,
        epoch: 1,
        train_loss: train.loss,
        train_accuracy: train.accuracy,
        val_loss: val.loss,
        val_accuracy: val.accuracy,
        seconds: started.elapsed().as_secs_f32(),
    };
    let mut state = fresh_state(Stage::Head, weights, None);
    state.history.push(record);
    state.best = Some(0);
    state.epochs_done = 1;
    state.stage_finished = true;
    state.cross_validation = cross_validation;
    checkpoint::save(&run.best(), &state.weights)?;
    checkpoint::save(&run.checkpoint(), &state)?;
    Ok(state)
}

/// What `trainer train` produced.
pub struct TrainOutcome {
    pub prepared: Prepared,
    pub best: ModelWeights,
    pub state: Checkpoint,
    pub val: Evaluation,
    pub test: Option<Evaluation>,
    pub phases: Phases,
    /// The run folder's lock, held until the caller has written its reports and the export.
    pub lock: crate::lock::RunLock,
}

/// Reads the configuration a run folder was created with (for `--resume` and `export`).
pub fn load_run_config(run: &RunFolder) -> anyhow::Result<TrainConfig> {
    let path = run.config();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read; is {} a trainer run folder?", path.display(), run.root().display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a run configuration", path.display()))
}

pub fn train(config: TrainConfig, run: &RunFolder, resume: bool) -> anyhow::Result<TrainOutcome> {
    let config = if resume {
        let mut saved = load_run_config(run)?;
        // How long to go on is the one thing a resumed run may change.
        saved.epochs = config.epochs;
        saved.patience = config.patience;
        saved.finetune_epochs = config.finetune_epochs;
        if saved != config {
            tracing::warn!(
                "--resume: continuing with the settings saved in {} (the command line's differ; only --epochs, --patience and --finetune-epochs may change)",
                run.config().display()
            );
        }
        saved
    } else {
        if run.checkpoint().exists() {
            bail!("{}: already holds a training run; pass --resume to continue it, or choose another --out", run.root().display());
        }
        config
    };
    let mut phases = Phases::default();
    // The data and backbone are checked before the run folder gets a file: a run that fails
    // here (a missing folder, --strict on a bad photo) leaves nothing that looks like a run.
    // A resumed run keeps its split, whatever the folders gained meanwhile.
    let split_from = (resume && run.split_csv().exists()).then_some(run);
    let p = prepare(&config, split_from, &mut phases)?;
    std::fs::create_dir_all(run.root()).with_context(|| format!("{}: cannot create the run folder", run.root().display()))?;
    let lock = crate::lock::RunLock::acquire(run)?;
    if !resume {
        if run.checkpoint().exists() {
            bail!("{}: already holds a training run; pass --resume to continue it, or choose another --out", run.root().display());
        }
        let json = serde_json::to_vec_pretty(&config)?;
        shared::atomic::write_atomic(&run.config(), &json).with_context(|| format!("{}: cannot write", run.root().display()))?;
    }
    eprintln!("{}", p.split_table());
    if split_from.is_none() {
        data::split_file::write(&p.dataset, &p.split, &p.groups, &run.split_csv())?;
    }

    let mut state: Option<Checkpoint> = if resume && run.checkpoint().exists() {
        let state: Checkpoint = checkpoint::load(&run.checkpoint())?;
        tracing::info!("resuming: {:?} stage, {} epochs done", state.stage, state.epochs_done);
        Some(state)
    } else {
        None
    };
    let train_classes = p.classes_of(&p.split.train);
    let val_classes = p.classes_of(&p.split.val);
    let labels = Labels { train: &train_classes, val: &val_classes };
    let [channels, spatial, _] = p.feature_dims();
    let n_classes = p.dataset.classes.len();
    let autodiff = p.device.clone().autodiff();

    // Stage 1, linear head: a logistic regression on the pooled cached features, solved outright.
    if config.head == HeadKind::Linear
        && config.freeze_first.is_none()
        && state.as_ref().is_none_or(|s| s.stage == Stage::Head && !s.stage_finished)
    {
        let train_views = phases.time("features", || p.train_views(&p.split.train))?;
        let done = phases.time("train head", || fit_linear_head(&p, &train_views, run))?;
        state = Some(done);
    }

    // Stage 1: the head on cached features (unless training through the trunk from the start).
    if config.freeze_first.is_none() && state.as_ref().is_none_or(|s| s.stage == Stage::Head && !s.stage_finished) {
        let train_views = phases.time("features", || p.train_views(&p.split.train))?;
        let val_features = phases.time("features", || p.clean_features(&p.split.val, "val features"))?;
        let inputs = FeatureInputs {
            train_views: train_views.iter().map(|views| views.iter().map(Vec::as_slice).collect()).collect(),
            eval: val_features.iter().map(Vec::as_slice).collect(),
            dims: p.feature_dims(),
            seed: config.seed,
        };
        autodiff.seed(config.seed);
        let mut head = Head::new(config.head, channels, spatial, n_classes, config.dropout, &autodiff);
        let mut optim = make_optimizer(config.optimizer, config.momentum);
        let start = match state.take() {
            Some(s) => {
                head = head.load_weights(&s.weights.head, &autodiff);
                optim = restore_optimizer(config.optimizer, config.momentum, &s.optimizer)?;
                s
            }
            None => fresh_state(Stage::Head, head.weights(), None),
        };
        let options = FitOptions {
            run,
            stage: Stage::Head,
            epochs: config.epochs,
            patience: config.patience,
            batch_size: config.batch_size,
            lr: config.lr,
            seed: config.seed,
        };
        let done = phases.time("train head", || fit::fit(head, optim, &inputs, &labels, &options, start, &autodiff))?;
        state = Some(done);
    }

    // Stage 2: through the trunk (--freeze-first N, or --finetune top-block after stage 1).
    if config.trains_trunk() && state.as_ref().is_none_or(|s| !(s.stage == Stage::Trunk && s.stage_finished)) {
        let (frozen, lr, epochs) = match config.freeze_first {
            Some(n) => (n, config.lr, config.epochs),
            None => (10, config.finetune_lr, config.finetune_epochs), // block 5 = convolutions 11-13
        };
        let inputs = p.image_inputs(&p.split.train, &p.split.val);
        let mut optim = make_optimizer(config.optimizer, config.momentum);
        let (model, start) = match state.take() {
            Some(s) if s.stage == Stage::Trunk => {
                let records = s.weights.trunk.clone().context("trunk checkpoint without trunk weights")?;
                let head = Head::new(config.head, channels, spatial, n_classes, config.dropout, &autodiff)
                    .load_weights(&s.weights.head, &autodiff);
                optim = restore_optimizer(config.optimizer, config.momentum, &s.optimizer)?;
                (Classifier { trunk: Vgg16Trunk::from_records(&records, &autodiff), head }, s)
            }
            carried => {
                let mut head = Head::new(config.head, channels, spatial, n_classes, config.dropout, &autodiff);
                if carried.is_some() {
                    let best: ModelWeights = checkpoint::load(&run.best())?;
                    head = head.load_weights(&best.head, &autodiff);
                }
                let model = Classifier { trunk: Vgg16Trunk::from_weights(&p.backbone.convs, &autodiff), head };
                let weights = model.weights();
                (model, fresh_state(Stage::Trunk, weights, carried.as_ref()))
            }
        };
        let model = Classifier { trunk: model.trunk.freeze_first(frozen), head: model.head };
        tracing::info!("training through the trunk: convolutions {:?} trainable, lr {lr}", model.trunk.trainable_layers());
        let options = FitOptions {
            run,
            stage: Stage::Trunk,
            epochs,
            patience: config.patience,
            batch_size: config.batch_size,
            lr,
            seed: config.seed,
        };
        let done = phases.time("train trunk", || fit::fit(model, optim, &inputs, &labels, &options, start, &autodiff))?;
        state = Some(done);
    }

    let state = state.context("nothing to train: the run is already complete")?;
    let best: ModelWeights = checkpoint::load(&run.best())?;
    let val = phases.time("evaluate", || p.probabilities(&best, &p.split.val))?;
    let test = if p.split.test.is_empty() { None } else { Some(phases.time("evaluate", || p.probabilities(&best, &p.split.test))?) };
    Ok(TrainOutcome { prepared: p, best, state, val, test, phases, lock })
}
