//! `edge selftest`: re-run the validation images stored in the bundle and compare with the
//! probabilities recorded at export. What a technician runs on a freshly installed box.

use image::RgbImage;
use serde::Serialize;

use shared::compare::{agrees, argmax, max_abs_diff};

use crate::model::EdgeModel;

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub label: String,
    pub predicted: String,
    pub max_abs_diff: f32,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SelftestReport {
    pub checks: Vec<CheckResult>,
    pub max_abs_diff: f32,
    pub tolerance: f32,
    pub passed: bool,
}

pub fn run(model: &EdgeModel) -> anyhow::Result<SelftestReport> {
    anyhow::ensure!(!model.self_checks.is_empty(), "the bundle holds no self-check images");
    let s = model.input_size();
    // The export's own tolerance: 1e-4 for float32, looser for an int8 graph.
    let tolerance = model.manifest.parity.tolerance;
    let mut checks = Vec::new();
    for check in &model.self_checks {
        let image =
            RgbImage::from_raw(s, s, check.rgb.clone()).ok_or_else(|| anyhow::anyhow!("self-check '{}' has the wrong size", check.name))?;
        let outputs = model.outputs(&image)?;
        let got = outputs.probabilities;
        // The open-set score is held to the same tolerance as the probabilities.
        let score_diff = match (outputs.unknown_score, check.expected_unknown_score) {
            (Some(a), Some(b)) => max_abs_diff(&[a], &[b]),
            (None, None) => 0.0,
            _ => f32::INFINITY,
        };
        let diff = max_abs_diff(&got, &check.expected).max(score_diff);
        let passed = agrees(&got, &check.expected, tolerance) && score_diff <= tolerance;
        checks.push(CheckResult {
            name: check.name.clone(),
            label: check.label.clone(),
            predicted: model.manifest.labels[argmax(&got)].clone(),
            max_abs_diff: diff,
            passed,
        });
    }
    let max_abs_diff = checks.iter().map(|c| c.max_abs_diff).fold(0f32, f32::max);
    let passed = checks.iter().all(|c| c.passed);
    Ok(SelftestReport { checks, max_abs_diff, tolerance, passed })
}

impl SelftestReport {
    /// Why a bundle whose self-check failed is refused (a live swap, a trial), in one line.
    pub fn refusal(&self) -> String {
        let failed: Vec<&str> = self.checks.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
        format!(
            "self-check failed on this device: {} of {} images (max |diff| {:.2e}, tolerance {}): {}",
            failed.len(),
            self.checks.len(),
            self.max_abs_diff,
            self.tolerance,
            failed.join(", ")
        )
    }
}
