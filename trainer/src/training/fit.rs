//! The epoch loop shared by both stages: shuffle, step, validate, keep the best, checkpoint,
//! stop early.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
pub use shared::compare::argmax;

use super::checkpoint::{self, Checkpoint, EpochRecord, Stage};
use crate::model::weights::ModelWeights;
use crate::model::{Classifier, Head, to_vec};
use crate::run_folder::RunFolder;

/// A network the loop can train: inputs `[N, ...]` as a 4-D tensor, logits out.
pub trait Network: burn::module::Module + Clone {
    fn logits(&self, input: Tensor<4>) -> Tensor<2>;
    fn weights(&self) -> ModelWeights;
}

impl Network for Head {
    fn logits(&self, input: Tensor<4>) -> Tensor<2> {
        self.forward(input)
    }
    fn weights(&self) -> ModelWeights {
        ModelWeights { head_kind: self.kind(), trunk: None, head: self.to_weights() }
    }
}

impl Network for Classifier {
    fn logits(&self, input: Tensor<4>) -> Tensor<2> {
        self.forward(input)
    }
    fn weights(&self) -> ModelWeights {
        ModelWeights { head_kind: self.head.kind(), trunk: Some(self.trunk.to_records()), head: self.head.to_weights() }
    }
}

/// Where a stage's inputs come from (cached features, or images augmented on the fly).
pub trait Inputs {
    /// Input for training items `items` in `epoch` (may differ per epoch: augmentation).
    fn train(&self, items: &[usize], epoch: u32, device: &Device) -> Tensor<4>;
    /// The fixed input for evaluation items.
    fn eval(&self, items: &[usize], device: &Device) -> Tensor<4>;
}

pub struct FitOptions<'a> {
    /// The run folder, where checkpoints go.
    pub run: &'a RunFolder,
    pub stage: Stage,
    pub epochs: u32,
    pub patience: u32,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
}

/// Class of each training / validation item.
pub struct Labels<'a> {
    pub train: &'a [usize],
    pub val: &'a [usize],
}

/// Runs (or continues, from `state`) a stage; returns its final checkpoint. The best weights
/// are in `run/best.bin` at every moment.
pub fn fit<M: Network>(
    mut model: M,
    mut optim: ModuleOptimizer,
    inputs: &dyn Inputs,
    labels: &Labels,
    options: &FitOptions,
    mut state: Checkpoint,
    device: &Device,
) -> anyhow::Result<Checkpoint> {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let plain = device.clone().inner();
    let bar = crate::progress::bar(
        options.epochs as u64,
        match options.stage {
            Stage::Head => "training head",
            Stage::Trunk => "training trunk",
        },
    );
    bar.set_position(state.epochs_done as u64);
    while state.epochs_done < options.epochs && !state.stage_finished {
        if state.best.is_some() && state.epochs_since_best >= options.patience {
            tracing::info!("early stop: no better validation result for {} epochs", options.patience);
            break;
        }
        let epoch = state.epochs_done + 1;
        let started = Instant::now();
        // Dropout draws from the backend's generator, whose state no checkpoint can hold: seeded
        // afresh from (seed, stage, epoch) at each epoch, a resumed run draws what an
        // uninterrupted one draws, and ends identical to it.
        device.seed(options.seed ^ ((epoch as u64) << 20) ^ ((options.stage as u64) << 40) ^ 0xd50f0);
        let mut order: Vec<usize> = (0..labels.train.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(options.seed ^ (epoch as u64) << 20 ^ options.stage as u64));
        let (mut loss_sum, mut correct) = (0f64, 0usize);
        for batch in order.chunks(options.batch_size) {
            let targets: Vec<i64> = batch.iter().map(|&i| labels.train[i] as i64).collect();
            let y = Tensor::<1, Int>::from_data(burn::tensor::TensorData::new(targets.clone(), [batch.len()]), device);
            let logits = model.logits(inputs.train(batch, epoch, device));
            let loss = loss_fn.forward(logits.clone(), y);
            correct += count_correct(&to_vec(logits.detach()), &targets);
            loss_sum += to_vec(loss.clone().detach())[0] as f64 * batch.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(options.lr, model, grads);
        }
        let n = labels.train.len().max(1) as f32;
        let val = evaluate(&model.valid(), inputs, labels.val, options.batch_size, &plain);
        let record = EpochRecord {
            stage: options.stage,
            epoch,
            train_loss: (loss_sum / n as f64) as f32,
            train_accuracy: correct as f32 / n,
            val_loss: val.loss,
            val_accuracy: val.accuracy,
            seconds: started.elapsed().as_secs_f32(),
        };
        // A fold or a refit has no validation photos: its line says nothing of them.
        let judged = if labels.val.is_empty() {
            String::new()
        } else {
            format!(" | val loss {:.4} acc {:.3}", record.val_loss, record.val_accuracy)
        };
        tracing::info!(
            "{} epoch {epoch}: train loss {:.4} acc {:.3}{judged} | {:.1}s",
            options.stage.name(),
            record.train_loss,
            record.train_accuracy,
            record.seconds
        );
        let improved = state.best.is_none_or(|b| better(&record, &state.history[b]));
        state.history.push(record);
        state.epochs_done = epoch;
        state.weights = model.weights();
        if improved {
            state.best = Some(state.history.len() - 1);
            state.epochs_since_best = 0;
            checkpoint::save(&options.run.best(), &state.weights)?;
        } else {
            state.epochs_since_best += 1;
        }
        state.optimizer = optim.into_bytes().map_err(|e| anyhow::anyhow!("saving optimizer state: {e:?}"))?.to_vec();
        checkpoint::save(&options.run.checkpoint(), &state)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    state.stage_finished = true;
    checkpoint::save(&options.run.checkpoint(), &state)?;
    Ok(state)
}

/// Higher validation accuracy wins; on a tie, lower validation loss.
fn better(a: &EpochRecord, b: &EpochRecord) -> bool {
    a.val_accuracy > b.val_accuracy || (a.val_accuracy == b.val_accuracy && a.val_loss < b.val_loss)
}

pub struct Evaluation {
    pub loss: f32,
    pub accuracy: f32,
    pub probabilities: Vec<Vec<f32>>,
}

/// Probabilities, mean cross-entropy and accuracy over `classes.len()` evaluation items.
pub fn evaluate<M: Network>(model: &M, inputs: &dyn Inputs, classes: &[usize], batch_size: usize, device: &Device) -> Evaluation {
    let items: Vec<usize> = (0..classes.len()).collect();
    let mut probabilities = Vec::with_capacity(items.len());
    for batch in items.chunks(batch_size.max(1)) {
        let logits = to_vec(model.logits(inputs.eval(batch, device)));
        let k = logits.len() / batch.len();
        probabilities.extend(logits.chunks_exact(k).map(softmax));
    }
    summarize(probabilities, classes)
}

pub fn summarize(probabilities: Vec<Vec<f32>>, classes: &[usize]) -> Evaluation {
    let n = classes.len().max(1) as f32;
    // `+ 0.0` turns -ln(1) = -0.0 into 0.0, so a perfect fit does not print as "-0.0000".
    let loss = probabilities.iter().zip(classes).map(|(p, &c)| -(p[c].max(1e-12)).ln()).sum::<f32>() / n + 0.0;
    let correct = probabilities.iter().zip(classes).filter(|(p, c)| argmax(p) == **c).count();
    Evaluation { loss, accuracy: correct as f32 / n, probabilities }
}

pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

fn count_correct(logits: &[f32], targets: &[i64]) -> usize {
    let k = logits.len() / targets.len().max(1);
    logits.chunks_exact(k).zip(targets).filter(|(l, t)| argmax(l) as i64 == **t).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_and_argmax() {
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&p), 1);
        let s = summarize(vec![vec![0.9, 0.1], vec![0.2, 0.8]], &[0, 0]);
        assert_eq!(s.accuracy, 0.5);
    }
}
