//! Everything that defines a training run; saved as `run.json` so that `--resume` and
//! `trainer export` reproduce the run exactly.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use shared::{Convention, HeadKind, ResizePolicy};

use crate::data::augment::Augmentation;
use crate::device::{Backend, DeviceSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    Adam,
    /// The original recipe: SGD, momentum 0.9.
    Sgd,
}

shared::named_enum!(OptimizerKind, "optimizer", serde, {
    OptimizerKind::Adam => "adam",
    OptimizerKind::Sgd => "sgd",
});

impl OptimizerKind {
    /// Adam 1e-3 converges a fresh head in a few epochs; SGD 1e-4 is the original recipe's.
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerKind::Adam => 1e-3,
            OptimizerKind::Sgd => 1e-4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The dataset folders, merged by class name (runs made before repeatable `--data` hold one path).
    #[serde(deserialize_with = "one_or_many")]
    pub data: Vec<PathBuf>,
    pub backbone: PathBuf,
    pub classes: Option<Vec<String>>,
    pub convention: Option<Convention>,
    pub input_size: u32,
    pub resize: ResizePolicy,
    pub head: HeadKind,
    pub dropout: f64,
    /// L2 penalty of the `linear` head's logistic regression (scikit-learn's 1 / C).
    #[serde(default = "default_l2")]
    pub l2: f64,
    /// Folds of the `linear` head's cross-validation (0: none, and no temperature scaling).
    #[serde(default = "default_cv_folds")]
    pub cv_folds: usize,
    /// Fit the exported `linear` head on the training and validation photos (cross-validation,
    /// not the validation split, is then the held-out figure).
    #[serde(default)]
    pub refit: bool,
    /// Train through the trunk with its first N convolutions frozen (None: trunk fully frozen,
    /// head trained on cached features).
    pub freeze_first: Option<usize>,
    /// After the head converges, a second stage training block 5 (the top 3 convolutions).
    pub finetune_top_block: bool,
    pub finetune_epochs: u32,
    pub finetune_lr: f64,
    pub aug_views: usize,
    pub augmentation: Augmentation,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub batch_size: usize,
    pub epochs: u32,
    pub patience: u32,
    pub val_fraction: f32,
    pub test_fraction: f32,
    pub seed: u64,
    pub dedup_distance: u32,
    pub strict: bool,
    pub min_images_per_class: usize,
    pub backend: Backend,
    pub device: DeviceSpec,
    pub cache_dir: Option<PathBuf>,
}

pub const DEFAULT_L2: f64 = 1e-2;

/// The largest first layer of a `flatten` head: half the edge's 1 GB bundle limit (the trunk,
/// the open-set references and the rest of the head share the other half).
pub const MAX_FLATTEN_HEAD_BYTES: u64 = shared::bundle::MAX_BUNDLE_BYTES / 2;

/// The float32 weights of a `flatten` head's first layer (VGG16's 512 channels at 1/32 of the
/// input side, flattened, into 1024 units).
fn flatten_head_bytes(input_size: u32) -> u64 {
    let side = u64::from(input_size / 32);
    512 * side * side * 1024 * 4
}

/// The most `--aug-views`: 16 more trunk passes a photo is already 17x the feature time.
pub const MAX_AUG_VIEWS: usize = 16;

fn default_l2() -> f64 {
    DEFAULT_L2
}

pub const DEFAULT_CV_FOLDS: usize = 5;

fn default_cv_folds() -> usize {
    DEFAULT_CV_FOLDS
}

impl TrainConfig {
    /// The same settings with the data, backbone and cache paths absolute (relative ones taken
    /// from the working folder): run.json is read by `--resume` and `trainer export` from any
    /// folder. An empty cache path (`--no-cache`) stays empty.
    pub fn with_absolute_paths(mut self) -> Self {
        let absolute = crate::paths::absolute;
        self.data = self.data.iter().map(|d| absolute(d)).collect();
        self.backbone = absolute(&self.backbone);
        self.cache_dir = self.cache_dir.map(|c| if c.as_os_str().is_empty() { c } else { absolute(&c) });
        self
    }

    /// Whether any stage trains through the trunk (slow on a CPU; features are not cached).
    pub fn trains_trunk(&self) -> bool {
        self.freeze_first.is_some() || self.finetune_top_block
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(n) = self.freeze_first
            && n >= 13
        {
            return Err(format!(
                "--freeze-first {n}: VGG16 has 13 convolutions, so nothing of the trunk would train; without --freeze-first the head trains on cached features"
            ));
        }
        if self.finetune_top_block && self.finetune_epochs == 0 {
            return Err("--finetune-epochs 0 trains nothing in the --finetune stage; leave out --finetune instead".into());
        }
        if self.aug_views > MAX_AUG_VIEWS {
            return Err(format!("--aug-views {}: each view is one more trunk pass per photo; at most {MAX_AUG_VIEWS}", self.aug_views));
        }
        if self.head == HeadKind::Flatten && flatten_head_bytes(self.input_size) > MAX_FLATTEN_HEAD_BYTES {
            return Err(format!(
                "--head flatten at --input-size {}: its first layer alone would be {} MB, more than a bundle may hold beside the trunk; use --head linear or gap, or a smaller input",
                self.input_size,
                flatten_head_bytes(self.input_size) >> 20
            ));
        }
        if self.dedup_distance > 64 {
            return Err(format!("--dedup-distance {}: the perceptual hash has 64 bits", self.dedup_distance));
        }
        if let Some(twice) = first_repeated(&self.data) {
            return Err(format!("--data {} is given twice: its photos would count twice", twice.display()));
        }
        if !(0.0..1.0).contains(&self.val_fraction) || self.val_fraction <= 0.0 {
            return Err(format!("--val-fraction {} must be between 0 and 1", self.val_fraction));
        }
        if self.val_fraction + self.test_fraction >= 0.9 {
            return Err("validation and test fractions leave too little to train on".into());
        }
        if self.batch_size == 0 || self.epochs == 0 {
            return Err("--batch-size and --epochs must be at least 1".into());
        }
        if !(self.l2.is_finite() && self.l2 > 0.0) {
            return Err(format!("--l2 {} must be a positive number", self.l2));
        }
        if self.cv_folds == 1 {
            return Err("--cv 1: cross-validation needs at least 2 folds (0 turns it off)".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("--dropout {} must be in [0, 1)", self.dropout));
        }
        if let Some(classes) = &self.classes {
            let mut seen = std::collections::BTreeSet::new();
            if let Some(twice) = classes.iter().find(|c| !seen.insert(c.as_str())) {
                return Err(format!("--classes names '{twice}' twice; each class is one folder, named once"));
            }
            if classes.iter().any(|c| c.trim().is_empty()) {
                return Err("--classes has an empty name (a stray comma?)".into());
            }
            if classes.len() < 2 {
                return Err(format!("--classes names {} class; a classifier needs at least 2", classes.len()));
            }
        }
        Ok(())
    }
}

/// The first of `paths` that names the same folder as an earlier one (`data` and `./data/`
/// are one).
fn first_repeated(paths: &[PathBuf]) -> Option<&PathBuf> {
    let mut seen = std::collections::BTreeSet::new();
    paths.iter().find(|p| !seen.insert(crate::paths::resolved(p)))
}

/// A path or a list of paths: `data` in run.json, before and after `--data` became repeatable.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(path) => vec![path],
        OneOrMany::Many(paths) => paths,
    })
}
