//! The fit-trunk phase: training through the trunk on images augmented on the fly, either from
//! the start (`--freeze-first N`) or after the head stage (`--finetune top-block`).

use anyhow::Context;

use super::checkpoint::{self, Checkpoint, Stage};
use super::fit::{self, FitOptions, Labels, Network};
use super::optimizer;
use super::prepare::Prepared;
use crate::model::weights::ModelWeights;
use crate::model::{Classifier, Head, Vgg16Trunk};
use crate::run_folder::RunFolder;

/// Convolutions kept frozen by `--finetune top-block`: block 5 is convolutions 11-13.
const TOP_BLOCK_FROZEN: usize = 10;

/// Trains (or resumes training) through the trunk. `state` is the run's checkpoint so far: a
/// trunk stage to resume, the finished head stage whose best head it starts from, or `None`.
pub fn fit(p: &Prepared, state: Option<Checkpoint>, run: &RunFolder) -> anyhow::Result<Checkpoint> {
    let config = &p.config;
    let (frozen, lr, epochs) = match config.freeze_first {
        Some(n) => (n, config.lr, config.epochs),
        None => (TOP_BLOCK_FROZEN, config.finetune_lr, config.finetune_epochs),
    };
    let n_classes = p.dataset.classes.len();
    let autodiff = p.device.clone().autodiff();
    let new_head = || Head::new(config.head, p.feature_dims(), n_classes, config.dropout, &autodiff);
    let mut optim = optimizer::make(config.optimizer, config.momentum);
    let (model, start) = match state {
        Some(s) if s.stage == Stage::Trunk => {
            let records = s.weights.trunk.clone().context("trunk checkpoint without trunk weights")?;
            let head = new_head().load_weights(&s.weights.head, &autodiff);
            optim = optimizer::restore(config.optimizer, config.momentum, &s.optimizer)?;
            (Classifier { trunk: Vgg16Trunk::from_records(&records, &autodiff), head }, s)
        }
        carried => {
            let mut head = new_head();
            if carried.is_some() {
                let best: ModelWeights = checkpoint::load(&run.best())?;
                head = head.load_weights(&best.head, &autodiff);
            }
            let model = Classifier { trunk: Vgg16Trunk::from_weights(&p.backbone.convs, &autodiff), head };
            let weights = model.weights();
            (model, Checkpoint::fresh(Stage::Trunk, weights, carried.as_ref()))
        }
    };
    let model = Classifier { trunk: model.trunk.freeze_first(frozen), head: model.head };
    tracing::info!("training through the trunk: convolutions {:?} trainable, lr {lr}", model.trunk.trainable_layers());
    let inputs = p.image_inputs(&p.split.train, &p.split.val);
    let (train_classes, val_classes) = (p.classes_of(&p.split.train), p.classes_of(&p.split.val));
    let labels = Labels { train: &train_classes, val: &val_classes };
    let options =
        FitOptions { run, stage: Stage::Trunk, epochs, patience: config.patience, batch_size: config.batch_size, lr, seed: config.seed };
    fit::fit(model, optim, &inputs, &labels, &options, start, &autodiff)
}
