//! What a model's outputs mean as an answer: a class, `unknown` (the open-set score says the
//! image is like nothing trained on) or `unsure` (the best class is below a confidence floor).
//! The edge answers by this rule and `trainer evaluate` scores by it, so the report describes
//! what the box will say.

use serde::{Deserialize, Serialize};

use crate::compare::argmax;

/// The label printed when the open-set score is above its threshold.
pub const UNKNOWN: &str = "unknown";
/// The label printed when the best class's probability is below `min_confidence`.
pub const UNSURE: &str = "unsure";

/// When an answer is withheld.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Refuse as `unknown` when the open-set score is above this (`None`: never).
    pub unknown: Option<f32>,
    /// Refuse as `unsure` when the best probability is below this (0: never).
    pub min_confidence: f32,
}

impl Thresholds {
    /// The model's own open-set threshold unless `unknown` overrides it (`--unknown-threshold`);
    /// none for a model without an open-set score, whose override is said to be ignored. An
    /// override is said beside the model's own threshold and score (a box keeps it across model
    /// swaps, and scores differ between methods), and warned when no score can be below it.
    pub fn for_model(manifest: &crate::Manifest, unknown: Option<f32>, min_confidence: f32) -> Self {
        match (unknown, &manifest.open_set) {
            (Some(limit), None) => {
                tracing::warn!("--unknown-threshold {limit} is ignored: the model has no open-set score to compare it with")
            }
            (Some(limit), Some(o)) if limit < o.method.lowest_score() => tracing::warn!(
                "--unknown-threshold {limit} is below every score of this model's open-set method ({}, at least {}): every answer \
                 will be unknown (the model's own threshold: {:.4})",
                o.method,
                o.method.lowest_score(),
                o.threshold
            ),
            (Some(limit), Some(o)) => tracing::info!(
                "unknown threshold {limit} (--unknown-threshold) instead of the model's own {:.4} ({} score)",
                o.threshold,
                o.method
            ),
            (None, _) => {}
        }
        Self { unknown: manifest.open_set.as_ref().map(|o| unknown.unwrap_or(o.threshold)), min_confidence }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Class(usize),
    Unknown,
    Unsure,
}

impl Answer {
    /// `unknown` comes first: an image like nothing trained on has no meaningful best class.
    pub fn of(probabilities: &[f32], unknown_score: Option<f32>, thresholds: &Thresholds) -> Self {
        if let (Some(score), Some(limit)) = (unknown_score, thresholds.unknown)
            && (score > limit || score.is_nan())
        {
            return Answer::Unknown;
        }
        let best = argmax(probabilities);
        if probabilities.get(best).is_none_or(|&p| p < thresholds.min_confidence || p.is_nan()) {
            return Answer::Unsure;
        }
        Answer::Class(best)
    }

    pub fn label<'a>(&self, labels: &'a [String]) -> &'a str {
        match self {
            Answer::Class(i) => labels[*i].as_str(),
            Answer::Unknown => UNKNOWN,
            Answer::Unsure => UNSURE,
        }
    }

    pub fn is_refusal(&self) -> bool {
        !matches!(self, Answer::Class(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_before_unsure_before_class() {
        let t = Thresholds { unknown: Some(0.5), min_confidence: 0.6 };
        assert_eq!(Answer::of(&[0.9, 0.1], Some(0.7), &t), Answer::Unknown);
        assert_eq!(Answer::of(&[0.55, 0.45], Some(0.2), &t), Answer::Unsure);
        assert_eq!(Answer::of(&[0.1, 0.9], Some(0.5), &t), Answer::Class(1), "at the threshold: accepted");
        assert_eq!(Answer::of(&[0.1, 0.9], Some(f32::NAN), &t), Answer::Unknown);
        assert_eq!(Answer::of(&[f32::NAN, f32::NAN], None, &t), Answer::Unsure);
        let never = Thresholds { unknown: None, min_confidence: 0.0 };
        assert_eq!(Answer::of(&[0.5, 0.5], Some(9.0), &never), Answer::Class(0));
        let labels = vec!["a".to_string(), "b".to_string()];
        assert_eq!(Answer::Unknown.label(&labels), "unknown");
        assert_eq!(Answer::Class(1).label(&labels), "b");
    }

    #[test]
    fn an_unknown_threshold_applies_only_to_a_model_with_an_open_set_score() {
        let mut manifest = crate::bundle::tests::sample_manifest();
        assert_eq!(Thresholds::for_model(&manifest, Some(0.3), 0.0).unknown, None, "nothing to compare it with");
        manifest.open_set = Some(crate::manifest::OpenSet {
            method: crate::manifest::OpenSetMethod::KnnCosine,
            references: 4,
            threshold: 0.25,
            target_acceptance: 0.975,
        });
        assert_eq!(Thresholds::for_model(&manifest, None, 0.0).unknown, Some(0.25), "the model's own");
        assert_eq!(Thresholds::for_model(&manifest, Some(0.3), 0.0).unknown, Some(0.3), "overridden");
    }
}
