//! The `trainer` command line (clap derive), kept in the library so tests can parse it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use shared::{Convention, HeadKind, Precision, ResizePolicy};

use crate::data::augment::AugmentationPolicy;
use crate::device::{self, Backend, DeviceSpec};
use crate::slim::prune::BlockKeep;
use crate::training::{OptimizerKind, TrainConfig};

/// Fine-tune ImageNet VGG16 on your photos and export a verified ONNX bundle for the edge.
///
/// Exit codes: 0 success, 1 error, 2 bad usage, 3 export refused by the parity gate.
/// Logging: RUST_LOG (default info), on standard error.
#[derive(Parser)]
#[command(name = "trainer", version, about, long_about)]
pub struct Cli {
    /// The largest image (width x height) any command reads, checked from the file's header
    /// before decoding: a small file may declare gigapixels. Larger images are skipped with a
    /// message (`train --strict`: an error).
    #[arg(long, global = true, default_value_t = shared::preprocess::DEFAULT_MAX_PIXELS, value_parser = shared::args::max_pixels)]
    pub max_pixels: u64,
    /// Log lines on standard error: text, or json (one object a line, for log shippers).
    #[arg(long, global = true, default_value = "text")]
    pub log_format: shared::logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train a classifier on a class-folder dataset (DIR/<class>/<image>) and export it.
    Train(Box<TrainArgs>),
    /// Export a finished run's best weights as NAME.onnx and NAME.bundle, after the parity gate.
    Export {
        /// The run folder that `trainer train --out` wrote.
        #[arg(long)]
        run: PathBuf,
        /// Output path without extension: models/NAME writes models/NAME.onnx and models/NAME.bundle.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        precision: PrecisionArg,
        /// Sign the bundle with this secret key (from `trainer keygen`).
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
        /// Print the export summary as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Make an ed25519 key pair for signing bundles: KEY (secret, mode 0600) and KEY.pub (for the
    /// edge's --trusted-keys file). Never overwrites a key.
    Keygen {
        /// The secret key file to write; the public key goes to the same name + .pub.
        #[arg(long, value_name = "KEY")]
        out: PathBuf,
        /// Who signs with it (shown by `trainer inspect` and the edge), e.g. "lab workstation":
        /// one line of printable text, at most 100 characters.
        #[arg(long, value_parser = shared::signing::key_name)]
        name: String,
    },
    /// Score a bundle through tract (the edge's engine) on a class folder: folders named like a
    /// label are scored for accuracy, any other folder (other/, unknown/) must be refused.
    /// Prints accuracy, per-class precision/recall, refusal rates and calibration; --out also
    /// writes report.json, predictions.csv, confusion.png, reliability.png, contact_sheet.png.
    Evaluate(EvaluateArgs),
    /// Write a narrower VGG16 trunk for slow boards: every convolution keeps the fraction --keep
    /// of its filters (those with the largest L1 norm), the next one the matching input channels.
    /// Train on it like on any backbone: `trainer train --backbone SLIM.onnx ...`. Or all in one:
    /// `trainer slim --run RUN --keep F --out RUN2` slims a finished run's backbone, distils it on
    /// the run's photos, trains the run's head on it into RUN2 and exports the bundle.
    Slim(SlimArgs),
    /// Print what a bundle holds (manifest, hashes, self-checks), after verifying it.
    Inspect {
        /// The bundle (`NAME.bundle`).
        bundle: PathBuf,
        /// The manifest, signature and graph check as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct SlimArgs {
    /// The full trunk to slim (the teacher): any backbone `trainer train --backbone` reads.
    #[arg(long, required_unless_present = "run", conflicts_with = "run")]
    pub backbone: Option<PathBuf>,
    /// A finished `trainer train` run: slim its backbone, distil on its photos (unless --data),
    /// at its input size and resize (unless given), then train a head with the run's settings on
    /// the slim trunk into the run folder --out (the trunk is OUT/trunk.onnx) and export the
    /// bundle (to --export-to). `trainer export --run OUT` re-exports it, e.g. as int8 or signed.
    #[arg(long, value_name = "RUN")]
    pub run: Option<PathBuf>,
    /// Input convention of the backbone weights, when the file does not say.
    #[arg(long, conflicts_with = "run")]
    pub backbone_convention: Option<Convention>,
    /// Fraction of each convolution's filters to keep, in [0.0625, 1]: 0.5 costs about a quarter of
    /// the multiply-adds, 0.25 about a sixteenth. Or one fraction per VGG16 block, 5
    /// comma-separated (blocks 4 and 5 alike): e.g. 0.5,0.5,1,1,1 thins the first two blocks,
    /// which do 30% of the work, and keeps the deep ones whole.
    #[arg(long, value_parser = block_keep, value_name = "F | F1,F2,F3,F4,F5")]
    pub keep: BlockKeep,
    /// Photos to distil on: class folders (DIR/<any name>/<image>; the names are not used, no
    /// labels needed), e.g. the training collection and frames a box saved. Repeatable. The slim
    /// trunk then learns to give the full trunk's features on them. Without it: pruned only,
    /// which costs accuracy in the field (BENCHMARKS.md, "Slim trunks"); with --run, the run's
    /// photos. More photos distil better: all of a collection's classes, not only the task's.
    #[arg(long)]
    pub data: Vec<PathBuf>,
    /// Comma-separated class folders of --data to distil on (default: all).
    #[arg(long, value_delimiter = ',', requires = "data")]
    pub classes: Option<Vec<String>>,
    /// Input side: distillation runs at it (train the head at the same --input-size), and the
    /// multiply-add figures are given for it. A multiple of 16 [default: 224, or the run's].
    #[arg(long, value_parser = input_size)]
    pub input_size: Option<u32>,
    /// How photos become squares (as `trainer train --resize`) [default: center-crop, or the run's].
    #[arg(long)]
    pub resize: Option<ResizePolicy>,
    /// Passes over the photos.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: u32,
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-4, value_parser = learning_rate)]
    pub lr: f64,
    /// Keep the read-outs from slim channels to teacher channels fixed at the pruning's
    /// selection (each slim channel reproduces the teacher channel it was cut from) instead of
    /// learning them (FitNets, the default: 93% against 92% on the field set, BENCHMARKS.md).
    #[arg(long)]
    pub fixed_adapters: bool,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// flex or libtorch (as `trainer train --backend`; libtorch when built in, also with --run).
    #[arg(long)]
    pub backend: Option<Backend>,
    /// cpu or cuda:N [default: cpu, or the run's].
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// Feature cache folder for the full trunk's features (shared with `trainer train`; with
    /// --run, the run's).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Continue the distillation of --out from its last completed epoch (its checkpoint is
    /// OUT.distill-checkpoint, written after every epoch); with --run, also the training of the
    /// head in OUT, and a finished OUT/trunk.onnx is kept.
    #[arg(long)]
    pub resume: bool,
    /// The slim trunk to write (ONNX; never overwritten half-written); with --run, the new run
    /// folder.
    #[arg(long)]
    pub out: PathBuf,
    /// With --run: the bundle's path without extension [default: models/<--out's name>].
    // Checked in main: clap drops `requires = "run"` when --backbone (which conflicts with --run) is given.
    #[arg(long)]
    pub export_to: Option<PathBuf>,
    /// Print the report (kept channels, multiply-adds, hashes, losses) as JSON on standard output;
    /// with --run, {"slim": report, "run": the run summary}.
    #[arg(long)]
    pub json: bool,
}

/// A number from the command line (NaN and infinities parse; each option's range refuses them).
fn number(s: &str) -> Result<f64, String> {
    s.trim().parse().map_err(|_| format!("'{s}' is not a number"))
}

/// `--lr`: finite, in (0, 1].
fn learning_rate(s: &str) -> Result<f64, String> {
    let lr = number(s)?;
    if lr.is_finite() && lr > 0.0 && lr <= 1.0 { Ok(lr) } else { Err(format!("{s} is outside (0, 1]")) }
}

/// `--momentum`, `--dropout`: a finite number in [0, 1).
fn fraction_below_one(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if (0.0..1.0).contains(&v) { Ok(v) } else { Err(format!("{s} is outside [0, 1)")) }
}

/// `--val-fraction`, `--test-fraction`: a share of each class, [0, 0.9).
fn share(s: &str) -> Result<f32, String> {
    let v = shared::args::probability(s)?;
    if v < 0.9 { Ok(v) } else { Err(format!("{s} is outside [0, 0.9)")) }
}

/// `--l2`: a finite number above 0.
fn positive(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v.is_finite() && v > 0.0 { Ok(v) } else { Err(format!("{s} must be a finite number above 0")) }
}

/// `--input-size`: what [`shared::Preprocessing::new`] accepts.
fn input_size(s: &str) -> Result<u32, String> {
    let size: u32 = s.trim().parse().map_err(|_| format!("'{s}' is not a whole number"))?;
    shared::Preprocessing::new(size, shared::ResizePolicy::CenterCrop).map(|_| size)
}

/// The smallest `--keep` fraction.
pub const MIN_KEEP: f32 = 1.0 / 16.0;

/// `--keep`: one fraction in [1/16, 1] for every block, or five (blocks 4 and 5 equal).
fn block_keep(s: &str) -> Result<BlockKeep, String> {
    let fraction = |f: &str| -> Result<f32, String> {
        let keep = shared::args::probability(f)?;
        // Below it block 1 keeps fewer than 4 of its 64 filters: a trunk that sees nothing.
        if keep >= MIN_KEEP { Ok(keep) } else { Err(format!("'{f}' is below {MIN_KEEP} (4 of block 1's 64 filters)")) }
    };
    let fractions = s.split(',').map(fraction).collect::<Result<Vec<f32>, String>>()?;
    match fractions[..] {
        [keep] => Ok([keep; 5]),
        [_, _, _, b4, b5] if b4 != b5 => {
            Err(format!("blocks 4 and 5 must keep the same fraction (the open-set descriptor pools both), not {b4} and {b5}"))
        }
        [b1, b2, b3, b4, b5] => Ok([b1, b2, b3, b4, b5]),
        _ => Err(format!("one fraction, or five (one per VGG16 block), not {}", fractions.len())),
    }
}

#[derive(clap::Args)]
pub struct EvaluateArgs {
    /// The bundle to score (NAME.bundle).
    #[arg(long)]
    pub model: PathBuf,
    /// Folder of class folders: DIR/<label>/<image> and e.g. DIR/other/<image>.
    #[arg(long)]
    pub data: PathBuf,
    /// Report folder for report.json, predictions.csv and the PNGs.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Refuse as `unknown` above this open-set score (default: the bundle's calibrated threshold).
    #[arg(long, value_parser = shared::args::score_threshold, allow_hyphen_values = true)]
    pub unknown_threshold: Option<f32>,
    /// Refuse as `unsure` below this top-class probability (default 0: never).
    #[arg(long, default_value_t = 0.0, value_parser = shared::args::probability, allow_hyphen_values = true)]
    pub min_confidence: f32,
    /// Also run every target image through the field-conditions suite and report one accuracy
    /// per condition: off-centre (3/4 of each side at a corner), scale-0.6 (subject at 60%,
    /// mirrored surround), rotate-20 / rotate+20 degrees, brighter (x1.4), darker (x0.6),
    /// low-contrast (x0.5), warm / cool white balance, blur (1.5 px at 224), jpeg-30, frame-4:3,
    /// frame-16:9 and camera-640x480. Costs 15 model runs per target image.
    #[arg(long)]
    pub conditions: bool,
    /// Print the report as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Clone, Copy)]
pub struct PrecisionArg {
    /// Arithmetic of the exported trunk. f32: the trained model to rounding (the parity gate allows
    /// 1e-4 per probability, the same class on every validation image). int8: 8-bit convolutions
    /// calibrated on training images, faster in tract and 3.7x smaller; the gate allows 0.15 per
    /// probability, another class on at most 1% of validation images and at most 1% less accuracy.
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Finetune {
    /// Head only (the trunk stays frozen).
    None,
    /// After the head converges, train VGG16's block 5 (convolutions 11-13) with a low learning rate.
    TopBlock,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Dataset folder: one sub-folder per class, images inside. Repeat it to train on several
    /// (e.g. the collection and the frames a box saved with `edge run --save-frames`): their
    /// class folders are merged by name.
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,
    /// VGG16 ImageNet weights: an ONNX conv trunk (any ONNX whose first 13 Conv layers have
    /// VGG16's shapes), or torchvision-style `features.N.weight` tensors in `.safetensors` or `.pth`.
    #[arg(long)]
    pub backbone: PathBuf,
    /// Run folder: checkpoints, metrics.json, curves.png, confusion.png, predictions.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Comma-separated class folders to use, in this label order (default: all, sorted).
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<String>>,
    /// Input convention of the backbone weights, when the file does not say.
    #[arg(long)]
    pub backbone_convention: Option<Convention>,
    /// Side of the square the network sees; a multiple of 16 (224, 160, 128, 112 ...).
    #[arg(long, default_value_t = 224, value_parser = input_size)]
    pub input_size: u32,
    /// How photos become squares: center-crop (the largest centred square; cameras give 4:3 or
    /// 16:9 frames) or stretch (Keras load_img).
    #[arg(long, default_value = "center-crop")]
    pub resize: ResizePolicy,
    /// linear: blocks 4 and 5 pooled by average and by max, each part L2-normalized -> Dense K, a
    /// logistic regression fitted to convergence (best on photos from other sources). gap: global
    /// average pool -> Dense 256 -> Dense K. flatten: the original recipe's Flatten -> Dense 1024
    /// -> Dropout -> Dense 1024 -> Dense K.
    #[arg(long, default_value = "linear")]
    pub head: HeadKind,
    /// Dropout after the first hidden layer of the gap and flatten heads.
    #[arg(long, default_value_t = 0.5, value_parser = fraction_below_one)]
    pub dropout: f64,
    /// L2 penalty on the linear head's weights (scikit-learn's 1/C): larger is smoother. The
    /// default: 5-fold cross-validation ties from 0.001 to 0.03 at 2 classes; 0.01 keeps the most
    /// photos under the scale-0.6 field condition and is the best calibrated (BENCHMARKS.md).
    #[arg(long, default_value_t = crate::training::config::DEFAULT_L2, value_parser = positive)]
    pub l2: f64,
    /// K-fold cross-validation of the head on the training + validation photos (near-duplicates
    /// kept in one fold; the gap and flatten heads train the epoch count chosen on validation in
    /// each fold, in RUN/cv/fold-K/): its accuracy is reported, and a temperature fitted on its
    /// held-out predictions calibrates the exported probabilities. 0 turns both off. Skipped when
    /// the trunk is trained (--freeze-first, --finetune).
    #[arg(long = "cv", default_value_t = crate::training::config::DEFAULT_CV_FOLDS)]
    pub cv_folds: usize,
    /// Export the head chosen on the training photos. By default, after cross-validation, it is
    /// refitted on training + validation photos (20% more photos; gap and flatten for the chosen
    /// epoch count, in RUN/refit/; the cross-validated accuracy is then the held-out figure, the
    /// validation accuracy is not).
    #[arg(long)]
    pub no_refit: bool,
    /// Train through the trunk with its first N convolutions frozen (0-13), images augmented
    /// on the fly. The original recipe froze Keras `layers[:5]` (input, block1_conv1,
    /// block1_conv2, block1_pool, block2_conv1): that is --freeze-first 3.
    #[arg(long)]
    pub freeze_first: Option<usize>,
    /// Second stage after the head converges.
    #[arg(long, value_enum, default_value = "none")]
    pub finetune: Finetune,
    /// Epochs of the --finetune top-block stage.
    #[arg(long, default_value_t = 5)]
    pub finetune_epochs: u32,
    /// Learning rate of the --finetune top-block stage.
    #[arg(long, default_value_t = 1e-5, value_parser = learning_rate)]
    pub finetune_lr: f64,
    /// Augmented views per photo besides the clean one, each one more trunk pass, cached (frozen
    /// trunk). The default view makes the head hold up when the field frames a flower smaller or
    /// off centre; 0 trains on the clean photos only (one trunk pass a photo, the fastest).
    #[arg(long, default_value_t = 1)]
    pub aug_views: usize,
    /// What the augmented views are (and the on-the-fly augmentation when training through the
    /// trunk): field (the subject smaller, off centre and tilted, as a field camera frames it;
    /// the surround mirrored) or keras (the original recipe: zoom in and out, shift, rotation
    /// 30, edge pixels extended).
    #[arg(long, default_value = "field")]
    pub augmentation: AugmentationPolicy,
    /// adam, or sgd (the original recipe: lr 1e-4, momentum 0.9).
    #[arg(long, default_value = "adam")]
    pub optimizer: OptimizerKind,
    /// Learning rate (default: 1e-3 for adam, 1e-4 for sgd).
    #[arg(long, value_parser = learning_rate)]
    pub lr: Option<f64>,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9, value_parser = fraction_below_one)]
    pub momentum: f64,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Most epochs (per stage).
    #[arg(long, default_value_t = 30)]
    pub epochs: u32,
    /// Stop after this many epochs without a better validation result.
    #[arg(long, default_value_t = 6)]
    pub patience: u32,
    /// Share of each class held out for validation.
    #[arg(long, default_value_t = 0.2, value_parser = share)]
    pub val_fraction: f32,
    /// Share of each class held out for a final test (0: none).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub test_fraction: f32,
    /// Seed of the split, initialization, shuffling and augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Largest perceptual-hash distance (of 64 bits) at which two photos count as the same picture.
    #[arg(long, default_value_t = crate::data::dedup::DEFAULT_MAX_DISTANCE)]
    pub dedup_distance: u32,
    /// Fail on the first unreadable file instead of reporting and skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Fewest usable images a class may have.
    #[arg(long, default_value_t = 5)]
    pub min_images_per_class: usize,
    /// flex (pure Rust, CPU) or libtorch (needs a build with --features tch). Default: libtorch when built in
    /// (faster, and needed for cuda), else flex.
    #[arg(long)]
    pub backend: Option<Backend>,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Feature cache folder (default: $XDG_CACHE_HOME/flowercam/features or ~/.cache/...).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write the feature cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Continue the run in --out from its last completed epoch.
    #[arg(long)]
    pub resume: bool,
    /// Where the bundle goes, without extension (default: models/<name of --out>).
    #[arg(long)]
    pub export_to: Option<PathBuf>,
    /// Skip the export.
    #[arg(long)]
    pub no_export: bool,
    /// Sign the exported bundle with this secret key (from `trainer keygen`); read before
    /// training starts, so a bad key costs nothing.
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// Run the field-conditions suite at the end of training on this many validation photos
    /// (taken from each class in turn): one accuracy per condition (see `trainer evaluate
    /// --help`), by the trained head on the frozen trunk's features. Costs 14 trunk passes per
    /// photo the first time (cached after): about 40 s for 32 photos on 2 CPU cores, seconds on a
    /// GPU. With the default refit the validation photos are in the exported head's fit, so
    /// this measures robustness; `trainer evaluate --conditions` on unseen photos measures
    /// generalisation. 0 (default): skipped.
    #[arg(long, default_value_t = 0, value_name = "PHOTOS")]
    pub conditions: usize,
    #[command(flatten)]
    pub precision: PrecisionArg,
    /// Print the run summary as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

impl TrainArgs {
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            data: self.data.clone(),
            backbone: self.backbone.clone(),
            classes: self.classes.clone(),
            convention: self.backbone_convention,
            input_size: self.input_size,
            resize: self.resize,
            head: self.head,
            dropout: self.dropout,
            l2: self.l2,
            cv_folds: self.cv_folds,
            // A refit repeats the head's fit on cached features: not for a trained trunk.
            refit: self.cv_folds >= 2 && !self.no_refit && self.freeze_first.is_none() && matches!(self.finetune, Finetune::None),
            freeze_first: self.freeze_first,
            finetune_top_block: matches!(self.finetune, Finetune::TopBlock),
            finetune_epochs: self.finetune_epochs,
            finetune_lr: self.finetune_lr,
            aug_views: self.aug_views,
            augmentation: self.augmentation.settings(),
            optimizer: self.optimizer,
            lr: self.lr.unwrap_or(self.optimizer.default_lr()),
            momentum: self.momentum,
            batch_size: self.batch_size,
            epochs: self.epochs,
            patience: self.patience,
            val_fraction: self.val_fraction,
            test_fraction: self.test_fraction,
            seed: self.seed,
            dedup_distance: self.dedup_distance,
            strict: self.strict,
            min_images_per_class: self.min_images_per_class,
            backend: self.backend.unwrap_or(device::default_backend(self.device)),
            device: self.device,
            cache_dir: if self.no_cache { Some(PathBuf::new()) } else { self.cache_dir.clone() },
        }
        .with_absolute_paths()
    }
}
