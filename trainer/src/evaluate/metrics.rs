//! The figures of an evaluation, from each image's true folder and the model's outputs: plain
//! arithmetic, no I/O, unit-tested.

use serde::Serialize;
use shared::answer::{Answer, UNKNOWN, UNSURE};
use shared::compare::argmax;

/// One scored image.
#[derive(Debug, Clone)]
pub struct Scored {
    /// Index of the true class among the model's labels; `None` for an image that must be refused.
    pub target: Option<usize>,
    /// Index of the image's folder among [`Metrics::folders`].
    pub folder: usize,
    pub probabilities: Vec<f32>,
    pub unknown_score: Option<f32>,
    pub answer: Answer,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassMetrics {
    pub label: String,
    pub images: usize,
    /// Of the images answered with this label (any folder), the share that are this class.
    pub precision: Option<f32>,
    /// Of this class's images, the share answered with this label.
    pub recall: Option<f32>,
    /// Of this class's images, the share refused (`unknown` or `unsure`).
    pub refused: Option<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReliabilityBin {
    pub from: f32,
    pub to: f32,
    pub images: usize,
    pub mean_confidence: f32,
    pub accuracy: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub target_images: usize,
    pub other_images: usize,
    /// On the target folders: share whose most probable class is the true one (refusals aside).
    /// `None` (JSON null) without a target folder, as are the other figures on targets: a
    /// folder of things to refuse says nothing of accuracy, and a 0 would read as a bad model.
    pub accuracy: Option<f32>,
    /// On the target folders: share answered with the true class (a refusal counts as wrong).
    pub answered_correctly: Option<f32>,
    /// Share of target images refused (`unknown` or `unsure`): the cost of the refusal rule.
    pub target_refused: Option<f32>,
    /// Share of images in non-target folders refused: what the refusal rule is for; `None`
    /// without such a folder.
    pub other_refused: Option<f32>,
    /// Area under the ROC curve of the open-set score, target vs other images (0.5: no better
    /// than chance); `None` without both kinds of image or without a score.
    pub open_set_auroc: Option<f32>,
    pub per_class: Vec<ClassMetrics>,
    /// Rows: the folders; columns: [`Metrics::answers`].
    pub folders: Vec<String>,
    pub answers: Vec<String>,
    pub confusion: Vec<Vec<u32>>,
    /// Expected calibration error of the most probable class on target images (10 bins).
    pub ece: Option<f32>,
    pub reliability: Vec<ReliabilityBin>,
}

pub const RELIABILITY_BINS: usize = 10;

/// `count` of `of`, as a share; `None` of nothing.
fn share(count: usize, of: usize) -> Option<f32> {
    (of > 0).then(|| count as f32 / of as f32)
}

pub fn compute(labels: &[String], folders: &[String], scored: &[Scored]) -> Metrics {
    let k = labels.len();
    let targets: Vec<&Scored> = scored.iter().filter(|s| s.target.is_some()).collect();
    let others: Vec<&Scored> = scored.iter().filter(|s| s.target.is_none()).collect();
    let top_right = targets.iter().filter(|s| Some(argmax(&s.probabilities)) == s.target).count();
    let answered_right = targets.iter().filter(|s| s.target.map(Answer::Class) == Some(s.answer)).count();
    let per_class = (0..k)
        .map(|c| {
            let of_class: Vec<&&Scored> = targets.iter().filter(|s| s.target == Some(c)).collect();
            let answered_c = scored.iter().filter(|s| s.answer == Answer::Class(c)).count();
            let right = of_class.iter().filter(|s| s.answer == Answer::Class(c)).count();
            ClassMetrics {
                label: labels[c].clone(),
                images: of_class.len(),
                precision: share(right, answered_c),
                recall: share(right, of_class.len()),
                refused: share(of_class.iter().filter(|s| s.answer.is_refusal()).count(), of_class.len()),
            }
        })
        .collect();
    let answers: Vec<String> = labels.iter().cloned().chain([UNKNOWN.to_string(), UNSURE.to_string()]).collect();
    let mut confusion = vec![vec![0u32; k + 2]; folders.len()];
    for s in scored {
        let column = match s.answer {
            Answer::Class(c) => c,
            Answer::Unknown => k,
            Answer::Unsure => k + 1,
        };
        confusion[s.folder][column] += 1;
    }
    let confidences: Vec<(f32, bool)> =
        targets.iter().map(|s| (s.probabilities[argmax(&s.probabilities)], Some(argmax(&s.probabilities)) == s.target)).collect();
    let (ece, reliability) = calibration(&confidences, RELIABILITY_BINS);
    let open_set_auroc = {
        let score = |s: &&Scored| s.unknown_score;
        let t: Option<Vec<f32>> = targets.iter().map(score).collect();
        let o: Option<Vec<f32>> = others.iter().map(score).collect();
        match (t, o) {
            (Some(t), Some(o)) if !t.is_empty() && !o.is_empty() => Some(auroc(&o, &t)),
            _ => None,
        }
    };
    Metrics {
        target_images: targets.len(),
        other_images: others.len(),
        accuracy: share(top_right, targets.len()),
        answered_correctly: share(answered_right, targets.len()),
        target_refused: share(targets.iter().filter(|s| s.answer.is_refusal()).count(), targets.len()),
        other_refused: share(others.iter().filter(|s| s.answer.is_refusal()).count(), others.len()),
        open_set_auroc,
        per_class,
        folders: folders.to_vec(),
        answers,
        confusion,
        ece: (!targets.is_empty()).then_some(ece),
        reliability,
    }
}

/// Expected calibration error over `bins` equal-width confidence bins, and the bins themselves:
/// `sum_b |b| / n * |accuracy(b) - mean confidence(b)|` (Guo et al. 2017).
pub fn calibration(confidence_correct: &[(f32, bool)], bins: usize) -> (f32, Vec<ReliabilityBin>) {
    let n = confidence_correct.len();
    let mut out: Vec<ReliabilityBin> = (0..bins)
        .map(|b| ReliabilityBin {
            from: b as f32 / bins as f32,
            to: (b + 1) as f32 / bins as f32,
            images: 0,
            mean_confidence: 0.0,
            accuracy: 0.0,
        })
        .collect();
    for &(confidence, correct) in confidence_correct {
        let b = ((confidence * bins as f32) as usize).min(bins - 1);
        out[b].images += 1;
        out[b].mean_confidence += confidence;
        out[b].accuracy += f32::from(u8::from(correct));
    }
    let mut ece = 0.0;
    for bin in &mut out {
        if bin.images > 0 {
            bin.mean_confidence /= bin.images as f32;
            bin.accuracy /= bin.images as f32;
            ece += bin.images as f32 / n as f32 * (bin.accuracy - bin.mean_confidence).abs();
        }
    }
    (ece, out)
}

/// Probability that a random `positive` scores above a random `negative` (ties count half).
pub fn auroc(positive: &[f32], negative: &[f32]) -> f32 {
    let mut wins = 0.0f64;
    for &p in positive {
        for &q in negative {
            wins += if p > q {
                1.0
            } else if p == q {
                0.5
            } else {
                0.0
            };
        }
    }
    (wins / (positive.len() * negative.len()).max(1) as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(target: Option<usize>, folder: usize, p: [f32; 2], score: f32, answer: Answer) -> Scored {
        Scored { target, folder, probabilities: p.to_vec(), unknown_score: Some(score), answer }
    }

    #[test]
    fn counts_accuracy_refusals_precision_and_confusion() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let folders = vec!["a".to_string(), "b".to_string(), "other".to_string()];
        let images = vec![
            scored(Some(0), 0, [0.9, 0.1], 0.1, Answer::Class(0)),
            scored(Some(0), 0, [0.2, 0.8], 0.2, Answer::Class(1)),
            scored(Some(1), 1, [0.3, 0.7], 0.9, Answer::Unknown),
            scored(Some(1), 1, [0.1, 0.9], 0.1, Answer::Class(1)),
            scored(None, 2, [0.6, 0.4], 0.8, Answer::Unknown),
            scored(None, 2, [0.1, 0.9], 0.3, Answer::Class(1)),
        ];
        let m = compute(&labels, &folders, &images);
        assert_eq!((m.target_images, m.other_images), (4, 2));
        assert_eq!(m.accuracy, Some(0.75), "argmax right on 3 of 4 targets");
        assert_eq!(m.answered_correctly, Some(0.5), "the refused b counts as wrong");
        assert_eq!(m.target_refused, Some(0.25));
        assert_eq!(m.other_refused, Some(0.5));
        assert_eq!(m.per_class[1].precision, Some(1.0 / 3.0), "b answered 3 times (one a, one other), right once");
        assert_eq!(m.per_class[1].recall, Some(0.5));
        assert_eq!(m.per_class[0].precision, Some(1.0));
        assert_eq!(m.confusion, vec![vec![1, 1, 0, 0], vec![0, 1, 1, 0], vec![0, 1, 1, 0]]);
        assert_eq!(m.answers, ["a", "b", "unknown", "unsure"]);
        // Unknown scores: others {0.8, 0.3} vs targets {0.1, 0.2, 0.9, 0.1}: 0.8 beats 3, 0.3 beats 3.
        assert_eq!(m.open_set_auroc, Some(6.0 / 8.0));
    }

    #[test]
    fn figures_of_a_kind_of_image_absent_are_none_not_zero() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let only_others = [scored(None, 0, [0.6, 0.4], 0.8, Answer::Unknown)];
        let m = compute(&labels, &["other".to_string()], &only_others);
        assert_eq!((m.accuracy, m.answered_correctly, m.target_refused, m.ece), (None, None, None, None));
        assert_eq!((m.other_refused, m.open_set_auroc), (Some(1.0), None));
        assert_eq!((m.per_class[0].precision, m.per_class[0].recall, m.per_class[0].refused), (None, None, None));
        let only_targets = [scored(Some(0), 0, [0.9, 0.1], 0.1, Answer::Class(0))];
        let m = compute(&labels, &["a".to_string()], &only_targets);
        assert_eq!((m.accuracy, m.other_refused), (Some(1.0), None));
    }

    #[test]
    fn calibration_error_of_known_bins() {
        // Bin 0.9-1.0: confidence 0.95 twice, one right -> |0.5 - 0.95| = 0.45, weight 2/4.
        // Bin 0.6-0.7: confidence 0.65 twice, both right -> |1 - 0.65| = 0.35, weight 2/4.
        let (ece, bins) = calibration(&[(0.95, true), (0.95, false), (0.65, true), (0.65, true)], 10);
        assert!((ece - (0.5 * 0.45 + 0.5 * 0.35)).abs() < 1e-6, "{ece}");
        assert_eq!(bins[9].images, 2);
        assert_eq!(bins[6].accuracy, 1.0);
        let (perfect, _) = calibration(&[(1.0, true), (1.0, true)], 10);
        assert_eq!(perfect, 0.0, "confidence 1.0 lands in the last bin");
    }

    #[test]
    fn auroc_extremes_and_ties() {
        assert_eq!(auroc(&[0.9, 0.8], &[0.1, 0.2]), 1.0);
        assert_eq!(auroc(&[0.1], &[0.9]), 0.0);
        assert_eq!(auroc(&[0.5], &[0.5]), 0.5);
    }
}
