//! Two phases of a run on the frozen trunk: the features the head trains on ([`HeadData::of`],
//! cached trunk passes) and the head's fit on them ([`fit`]). Each has one input and one
//! output, so that a cross-validation fold or a refit is the same phases on other photos.

use std::time::Instant;

use shared::HeadKind;

use super::checkpoint::{self, Checkpoint, EpochRecord, Stage};
use super::fit::{self, FitOptions, Labels, Network};
use super::inputs::FeatureInputs;
use super::optimizer;
use super::prepare::Prepared;
use crate::model::Head;
use crate::model::weights::ModelWeights;
use crate::run_folder::RunFolder;

/// The features phase's output: trunk feature maps of some photos, in the order asked.
pub struct HeadData {
    /// Per training photo: its clean view, then its `--aug-views` augmented views.
    pub train_views: Vec<Vec<Vec<f32>>>,
    pub train_classes: Vec<usize>,
    /// The clean view of each photo the fit is judged on.
    pub val: Vec<Vec<f32>>,
    pub val_classes: Vec<usize>,
}

impl HeadData {
    /// The features phase: every view of the `train` photos and the clean view of the `val` ones
    /// (indices into the dataset), from the cache where possible.
    pub fn of(p: &Prepared, train: &[usize], val: &[usize]) -> anyhow::Result<Self> {
        let val_features = if val.is_empty() { Vec::new() } else { p.clean_features(val, "val features")? };
        Ok(Self {
            train_views: p.train_views(train)?,
            train_classes: p.classes_of(train),
            val: val_features,
            val_classes: p.classes_of(val),
        })
    }

    pub fn train(&self) -> Photos<'_> {
        Photos {
            views: self.train_views.iter().map(|v| v.iter().map(Vec::as_slice).collect()).collect(),
            classes: self.train_classes.clone(),
        }
    }

    pub fn val(&self) -> Photos<'_> {
        Photos { views: self.val.iter().map(|v| vec![v.as_slice()]).collect(), classes: self.val_classes.clone() }
    }
}

/// Photos as a fit sees them: each one's views (the clean one first) and its class.
#[derive(Clone, Default)]
pub struct Photos<'a> {
    pub views: Vec<Vec<&'a [f32]>>,
    pub classes: Vec<usize>,
}

impl<'a> Photos<'a> {
    /// The photos at `keep`, in that order.
    pub fn subset(&self, keep: &[usize]) -> Photos<'a> {
        Photos { views: keep.iter().map(|&i| self.views[i].clone()).collect(), classes: keep.iter().map(|&i| self.classes[i]).collect() }
    }

    /// The clean view of each photo.
    pub fn clean(&self) -> Vec<&'a [f32]> {
        self.views.iter().map(|v| v[0]).collect()
    }
}

/// How long a gradient head trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Up to `--epochs`, stopping after `--patience` epochs without a better validation result;
    /// the best epoch's weights are the result.
    ChooseOnValidation,
    /// Exactly this many epochs, no validation photos: a fold or a refit repeating the epoch
    /// count chosen on validation. The last epoch's weights are the result.
    Epochs(u32),
}

/// What the fit-head phase takes: photos to fit on and to judge by, how long, where its
/// checkpoints go, and that folder's checkpoint to resume from.
pub struct HeadFit<'a> {
    pub train: Photos<'a>,
    pub val: Photos<'a>,
    pub schedule: Schedule,
    pub run: &'a RunFolder,
    pub resume: Option<Checkpoint>,
}

impl<'a> HeadFit<'a> {
    /// A fixed-epoch fit on `train` with no validation photos (a fold or the refit), resumed
    /// from what `run` already holds.
    pub fn fixed(train: Photos<'a>, epochs: u32, run: &'a RunFolder) -> anyhow::Result<Self> {
        Ok(Self { train, val: Photos::default(), schedule: Schedule::Epochs(epochs), run, resume: Checkpoint::in_folder(run)? })
    }
}

/// The fit-head phase. The result's `weights` are what the fit produced; the run folder's
/// `best.bin` holds the chosen weights.
pub fn fit(p: &Prepared, job: HeadFit) -> anyhow::Result<Checkpoint> {
    let root = job.run.root();
    std::fs::create_dir_all(root).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", root.display()))?;
    if let Some(done) = job.resume.as_ref().filter(|s| s.stage_finished) {
        return Ok(done.clone());
    }
    match p.config.head {
        HeadKind::Linear => fit_linear(p, &job),
        HeadKind::Gap | HeadKind::Flatten => fit_by_gradient(p, job),
    }
}

/// The `linear` head: a logistic regression on the normalized descriptor of every view (its
/// [`crate::model::head::HeadInput`]), solved outright (no epochs), recorded as one finished head
/// stage.
fn fit_linear(p: &Prepared, job: &HeadFit) -> anyhow::Result<Checkpoint> {
    let (train, val, run) = (&job.train, &job.val, job.run);
    let started = Instant::now();
    let n_classes = p.dataset.classes.len();
    let (mut rows, mut classes) = (Vec::new(), Vec::new());
    for (views, &class) in train.views.iter().zip(&train.classes) {
        for &view in views {
            rows.push(view);
            classes.push(class);
        }
    }
    let fit = super::logistic::LogisticProblem { features: &rows, classes: &classes, n_classes, l2: p.config.l2 }.fit()?;
    tracing::debug!(
        "linear head: logistic regression on {} views of {} photos, l2 {}, {} L-BFGS iterations, gradient {:.1e}",
        rows.len(),
        train.views.len(),
        p.config.l2,
        fit.iterations,
        fit.gradient_max
    );
    // Fresh Burn parameter ids, so a --finetune stage after this one keys its optimizer correctly.
    let mut head = Head::new(HeadKind::Linear, p.feature_dims(), n_classes, 0.0, &p.device).to_weights();
    head[0].weight = fit.weight;
    head[0].bias = fit.bias;
    let weights = ModelWeights { head_kind: HeadKind::Linear, trunk: None, head };
    // Training figures on the clean view of each photo.
    let on_train = fit::summarize(p.head_logits(&weights, &train.clean()).iter().map(|l| fit::softmax(l)).collect(), &train.classes);
    let on_val = p.evaluate_features(&weights, &val.clean(), &val.classes);
    let mut state = Checkpoint::fresh(Stage::Head, weights, None);
    state.history.push(EpochRecord {
        stage: Stage::Head,
        epoch: 1,
        train_loss: on_train.loss,
        train_accuracy: on_train.accuracy,
        val_loss: on_val.loss,
        val_accuracy: on_val.accuracy,
        seconds: started.elapsed().as_secs_f32(),
    });
    state.best = Some(0);
    state.epochs_done = 1;
    state.stage_finished = true;
    checkpoint::save(&run.best(), &state.weights)?;
    checkpoint::save(&run.checkpoint(), &state)?;
    Ok(state)
}

/// The `gap` and `flatten` heads: epochs of Adam or SGD on the cached views, one view of each
/// photo drawn per epoch.
fn fit_by_gradient(p: &Prepared, job: HeadFit) -> anyhow::Result<Checkpoint> {
    let HeadFit { train, val, schedule, run, resume } = job;
    let config = &p.config;
    let n_classes = p.dataset.classes.len();
    let autodiff = p.device.clone().autodiff();
    let inputs = FeatureInputs { train_views: train.views.clone(), eval: val.clean(), dims: p.head_dims(), seed: config.seed };
    autodiff.seed(config.seed);
    let mut head = Head::new(config.head, p.feature_dims(), n_classes, config.dropout, &autodiff);
    let mut optim = optimizer::make(config.optimizer, config.momentum);
    let start = match resume {
        Some(s) => {
            head = head.load_weights(&s.weights.head, &autodiff);
            optim = optimizer::restore(config.optimizer, config.momentum, &s.optimizer)?;
            s
        }
        None => Checkpoint::fresh(Stage::Head, head.weights(), None),
    };
    let (epochs, patience) = match schedule {
        Schedule::ChooseOnValidation => (config.epochs, config.patience),
        Schedule::Epochs(n) => (n, u32::MAX),
    };
    let options = FitOptions { run, stage: Stage::Head, epochs, patience, batch_size: config.batch_size, lr: config.lr, seed: config.seed };
    let labels = Labels { train: &train.classes, val: &val.classes };
    fit::fit(head, optim, &inputs, &labels, &options, start, &autodiff)
}
