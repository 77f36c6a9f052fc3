//! The parity gate: the exported graph, run by tract (the edge's engine), must reproduce the
//! trainer's probabilities on every validation image before the export is allowed to exist.

use std::fmt::Write as _;

use image::RgbImage;
use shared::runtime::{Graph, Outputs};
use shared::{GateRule, ParityReport};

use shared::compare::{argmax, max_abs_diff};

pub struct Gate {
    pub report: ParityReport,
    /// tract's outputs per image.
    pub tract: Vec<Outputs>,
}

#[derive(Debug, thiserror::Error)]
#[error("export parity gate failed: the model would not answer as it was trained\n{details}")]
pub struct ParityFailure {
    pub details: String,
}

/// Runs each validation image `(name, true class, image)` in tract and holds the outputs to
/// `rule` against `expected` (the trainer's probabilities) and `expected_scores` (the trainer's
/// open-set scores, when the graph computes them).
pub fn check(
    model: &Graph,
    images: &[(String, usize, &RgbImage)],
    expected: &[Vec<f32>],
    expected_scores: Option<&[f32]>,
    rule: GateRule,
) -> anyhow::Result<Gate> {
    use rayon::prelude::*;
    let bar = crate::progress::bar(images.len() as u64, "parity check");
    // One image per core at a time: tract's plan is shareable, its runs independent.
    let tract = images
        .par_iter()
        .map(|(_, _, image)| {
            let out = model.classify(image);
            bar.inc(1);
            out
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    bar.finish_and_clear();
    let outputs = tract;
    let tract: Vec<Vec<f32>> = outputs.iter().map(|o| o.probabilities.clone()).collect();
    let classes: Vec<usize> = images.iter().map(|(_, class, _)| *class).collect();
    let mut report = compare(&tract, expected, &classes, rule.tolerance);
    if let Some(expected_scores) = expected_scores {
        let got: Vec<f32> = outputs.iter().map(|o| o.unknown_score.unwrap_or(f32::NAN)).collect();
        let diff = max_abs_diff(&got, expected_scores);
        report.unknown_score_max_abs_diff = Some(diff);
        if diff > rule.tolerance {
            return Err(ParityFailure {
                details: format!(
                    "the open-set score differs by {diff:.3e} (tolerance {}): tract {got:?}, trainer {expected_scores:?}",
                    rule.tolerance
                ),
            }
            .into());
        }
    }
    let trainer_accuracy = accuracy(expected, &classes);
    let drop = trainer_accuracy - report.accuracy;
    if !rule.admits(report.max_abs_diff, report.argmax_agreement, drop) {
        let disagree = tract.iter().zip(expected).filter(|(t, e)| argmax(t) != argmax(e)).count();
        let mut details = format!(
            "max |diff| {:.3e} (tolerance {}), mean {:.3e}; {disagree} of {} images with a different class (at most {:.0}% allowed); \
             validation accuracy {:.4} against the trainer's {:.4} (at most {} less allowed)\nworst images:\n",
            report.max_abs_diff,
            rule.tolerance,
            report.mean_abs_diff,
            images.len(),
            (1.0 - rule.min_class_agreement) * 100.0,
            report.accuracy,
            trainer_accuracy,
            rule.max_accuracy_drop,
        );
        let mut worst: Vec<(usize, f32)> = tract.iter().zip(expected).map(|(t, e)| max_abs_diff(t, e)).enumerate().collect();
        worst.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (i, diff) in worst.into_iter().take(5) {
            let _ = writeln!(details, "  {}: |diff| {diff:.3e}, tract {:?}, trainer {:?}", images[i].0, tract[i], expected[i]);
        }
        return Err(ParityFailure { details }.into());
    }
    Ok(Gate { report, tract: outputs })
}

/// Share of `outputs` whose top class is the true one.
fn accuracy(outputs: &[Vec<f32>], classes: &[usize]) -> f32 {
    outputs.iter().zip(classes).filter(|(p, class)| argmax(p) == **class).count() as f32 / classes.len().max(1) as f32
}

/// The gate's figures for tract's outputs against the trainer's, with the true `classes`.
pub fn compare(tract: &[Vec<f32>], expected: &[Vec<f32>], classes: &[usize], tolerance: f32) -> ParityReport {
    let mut max = 0f32;
    let (mut sum, mut count) = (0f64, 0usize);
    let mut agree = 0;
    for (t, e) in tract.iter().zip(expected) {
        max = max.max(max_abs_diff(t, e));
        for (x, y) in t.iter().zip(e) {
            sum += (x - y).abs() as f64;
            count += 1;
        }
        agree += usize::from(argmax(t) == argmax(e));
    }
    ParityReport {
        images: tract.len() as u32,
        max_abs_diff: max,
        mean_abs_diff: (sum / count.max(1) as f64) as f32,
        argmax_agreement: agree as f32 / tract.len().max(1) as f32,
        accuracy: accuracy(tract, classes),
        tolerance,
        unknown_score_max_abs_diff: None,
    }
}
