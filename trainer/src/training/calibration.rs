//! Cross-validation figures and temperature scaling (Guo et al. 2017) fitted on its
//! out-of-fold predictions: every photo is scored by a model that never saw it (nor its
//! near-duplicates), which is what 32 validation photos cannot give.

use super::fit::softmax;
use super::logistic::LogisticProblem;
use shared::CrossValidation;
use shared::compare::argmax;

/// One sample for cross-validation: its views' pooled features (the first is the clean view,
/// the only one scored), class and fold.
pub struct Sample<'a> {
    pub views: Vec<&'a [f32]>,
    pub class: usize,
    pub fold: usize,
}

/// Fits one logistic regression per fold on the other folds' views; returns every sample's
/// out-of-fold logits (clean view), in order.
/// The folds are independent fits and run side by side.
pub fn out_of_fold_logits(samples: &[Sample], n_classes: usize, folds: usize, l2: f64) -> anyhow::Result<Vec<Vec<f32>>> {
    use rayon::prelude::*;
    let fits = (0..folds)
        .into_par_iter()
        .map(|fold| {
            let (mut rows, mut classes) = (Vec::new(), Vec::new());
            for s in samples.iter().filter(|s| s.fold != fold) {
                for view in &s.views {
                    rows.push(*view);
                    classes.push(s.class);
                }
            }
            LogisticProblem { features: &rows, classes: &classes, n_classes, l2 }.fit()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut logits = vec![Vec::new(); samples.len()];
    for (fold, fit) in fits.iter().enumerate() {
        for i in (0..samples.len()).filter(|&i| samples[i].fold == fold) {
            logits[i] = fit.logits(samples[i].views[0]);
        }
    }
    Ok(logits)
}

/// The samples of `views` (clean view first) with their `classes`, in `fold_of` each one's fold.
pub fn samples<'a>(views: &[Vec<&'a [f32]>], classes: &[usize], fold_of: &[usize]) -> Vec<Sample<'a>> {
    views.iter().zip(classes).zip(fold_of).map(|((views, &class), &fold)| Sample { views: views.clone(), class, fold }).collect()
}

/// Out-of-fold logits averaged over `draws` draws of `k` folds (`fold_of(draw)` each draw's
/// folds): every photo scored by heads that never saw it, less dependent on which photos
/// happened to share its fold.
pub fn averaged_out_of_fold_logits(
    views: &[Vec<&[f32]>],
    classes: &[usize],
    n_classes: usize,
    k: usize,
    l2: f64,
    draws: u64,
    fold_of: impl Fn(u64) -> Vec<usize>,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut sum = vec![vec![0f32; n_classes]; views.len()];
    for draw in 0..draws {
        let logits = out_of_fold_logits(&samples(views, classes, &fold_of(draw)), n_classes, k, l2)?;
        for (total, l) in sum.iter_mut().zip(logits) {
            total.iter_mut().zip(l).for_each(|(t, v)| *t += v);
        }
    }
    Ok(sum.into_iter().map(|l| l.into_iter().map(|v| v / draws.max(1) as f32).collect()).collect())
}

/// Accuracy of the out-of-fold `logits` within each of `folds` folds (`fold_of` each sample's).
pub fn fold_accuracy(logits: &[Vec<f32>], classes: &[usize], fold_of: &[usize], folds: usize) -> Vec<f32> {
    (0..folds)
        .map(|fold| {
            let held_out: Vec<usize> = (0..logits.len()).filter(|&i| fold_of[i] == fold).collect();
            let right = held_out.iter().filter(|&&i| argmax(&logits[i]) == classes[i]).count();
            right as f32 / held_out.len().max(1) as f32
        })
        .collect()
}

/// `softmax(logits / t)`: the probabilities of a head whose last layer is divided by `t`, as the
/// exported one is.
pub fn tempered_probabilities(logits: &[f32], t: f32) -> Vec<f32> {
    softmax(&logits.iter().map(|v| v / t).collect::<Vec<_>>())
}

/// Mean negative log-likelihood of `classes` under `softmax(logits / t)`.
pub fn nll(logits: &[Vec<f32>], classes: &[usize], t: f32) -> f64 {
    let total: f64 = logits.iter().zip(classes).map(|(l, &c)| -(tempered_probabilities(l, t)[c].max(1e-30) as f64).ln()).sum();
    total / logits.len().max(1) as f64
}

/// The temperature in [0.05, 20] that minimizes [`nll`]: golden-section search on log t (the
/// NLL is unimodal in t for fixed logits).
pub fn fit_temperature(logits: &[Vec<f32>], classes: &[usize]) -> f32 {
    let f = |log_t: f64| nll(logits, classes, log_t.exp() as f32);
    let (mut a, mut b) = (0.05f64.ln(), 20f64.ln());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - ratio * (b - a), a + ratio * (b - a));
    for _ in 0..80 {
        if f(c) <= f(d) {
            b = d;
        } else {
            a = c;
        }
        c = b - ratio * (b - a);
        d = a + ratio * (b - a);
    }
    ((a + b) / 2.0).exp() as f32
}

/// Top-class confidence and correctness of each prediction, for the calibration error.
pub fn confidences(logits: &[Vec<f32>], classes: &[usize], t: f32) -> Vec<(f32, bool)> {
    logits
        .iter()
        .zip(classes)
        .map(|(l, &c)| {
            let p = tempered_probabilities(l, t);
            let top = argmax(&p);
            (p[top], top == c)
        })
        .collect()
}

/// The cross-validation's figures from every sample's out-of-fold `logits`: mean and spread
/// of the fold accuracies, and the temperature fitted on those logits with the calibration error
/// before and after it.
pub fn summarize(logits: &[Vec<f32>], classes: &[usize], fold_accuracy: Vec<f32>) -> CrossValidation {
    use crate::evaluate::metrics::{RELIABILITY_BINS, calibration};
    let folds = fold_accuracy.len();
    let temperature = fit_temperature(logits, classes);
    let mean = fold_accuracy.iter().sum::<f32>() / folds.max(1) as f32;
    let spread = (fold_accuracy.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / folds.max(1) as f32).sqrt();
    CrossValidation {
        folds,
        mean_accuracy: mean,
        spread,
        fold_accuracy,
        temperature,
        ece_before: calibration(&confidences(logits, classes, 1.0), RELIABILITY_BINS).0,
        ece_after: calibration(&confidences(logits, classes, temperature), RELIABILITY_BINS).0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits whose true class is right with probability about sigmoid(1) ~ 0.73 at t = 1 but
    /// stated as 4x too confident: the fitted temperature must undo the factor 4.
    #[test]
    fn temperature_undoes_a_known_overconfidence() {
        // 100 samples: logit margin 4 (true 0.98 at t = 1); 73 right, 27 wrong -> the NLL-optimal
        // margin is logit(0.73) = 0.995, so t = 4 / 0.995.
        let mut logits = Vec::new();
        let mut classes = Vec::new();
        for i in 0..100 {
            logits.push(vec![4.0, 0.0]);
            classes.push(usize::from(i >= 73));
        }
        let t = fit_temperature(&logits, &classes);
        let expected = 4.0 / (0.73f32 / 0.27).ln();
        assert!((t - expected).abs() < 1e-3, "t = {t}, expected {expected}");
        assert!(nll(&logits, &classes, t) < nll(&logits, &classes, 1.0));
    }

    #[test]
    fn out_of_fold_predictions_never_see_their_own_fold() {
        // Class = sign of the feature, except one mislabelled point per fold would be memorized
        // by a model that saw it; out of fold it must be predicted by its neighbours instead.
        let rows: Vec<Vec<f32>> = (0..20).map(|i| vec![if i < 10 { -1.0 - i as f32 * 0.1 } else { 1.0 + i as f32 * 0.1 }]).collect();
        let mut classes: Vec<usize> = (0..20).map(|i| usize::from(i >= 10)).collect();
        classes[0] = 1; // mislabelled
        let samples: Vec<Sample> =
            rows.iter().enumerate().map(|(i, r)| Sample { views: vec![r.as_slice()], class: classes[i], fold: i % 4 }).collect();
        let logits = out_of_fold_logits(&samples, 2, 4, 0.1).unwrap();
        let fold_of: Vec<usize> = samples.iter().map(|s| s.fold).collect();
        let acc = fold_accuracy(&logits, &classes, &fold_of, 4);
        assert_eq!(argmax(&logits[0]), 0, "the mislabelled point is predicted from the others");
        assert_eq!(acc.len(), 4);
        assert!(acc[0] < 1.0 && acc[1..].iter().all(|&a| a == 1.0), "{acc:?}");
    }

    #[test]
    fn averaged_logits_are_the_mean_over_the_draws_of_folds() {
        let rows: Vec<Vec<f32>> = (0..12).map(|i| vec![i as f32 - 5.5, (i % 3) as f32]).collect();
        let views: Vec<Vec<&[f32]>> = rows.iter().map(|r| vec![r.as_slice()]).collect();
        let classes: Vec<usize> = (0..12).map(|i| usize::from(i >= 6)).collect();
        let draws = [(0..12).map(|i| i % 3).collect::<Vec<_>>(), (0..12).map(|i| (i / 2) % 3).collect()];
        let single = |d: usize| out_of_fold_logits(&samples(&views, &classes, &draws[d]), 2, 3, 0.1).unwrap();
        let (first, second) = (single(0), single(1));
        assert_ne!(first, second, "two draws of folds, two sets of held-out logits");
        let one = averaged_out_of_fold_logits(&views, &classes, 2, 3, 0.1, 1, |d| draws[d as usize].clone()).unwrap();
        assert_eq!(one, first);
        let both = averaged_out_of_fold_logits(&views, &classes, 2, 3, 0.1, 2, |d| draws[d as usize].clone()).unwrap();
        for ((b, f), s) in both.iter().zip(&first).zip(&second) {
            for k in 0..2 {
                assert!((b[k] - (f[k] + s[k]) / 2.0).abs() < 1e-5, "{b:?} {f:?} {s:?}");
            }
        }
    }
}
