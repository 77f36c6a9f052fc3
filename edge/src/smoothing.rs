//! Averages class probabilities over the last N frames, so one odd frame does not flip the
//! answer; below `min_confidence` the answer is `unsure`.

use std::collections::VecDeque;

pub const UNSURE: &str = "unsure";

pub struct Smoother {
    window: usize,
    recent: VecDeque<Vec<f32>>,
}

impl Smoother {
    pub fn new(window: usize) -> Self {
        Self { window: window.max(1), recent: VecDeque::new() }
    }

    /// Adds a frame's probabilities; returns the mean over the window.
    pub fn push(&mut self, probabilities: &[f32]) -> Vec<f32> {
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(probabilities.to_vec());
        let mut mean = vec![0f32; probabilities.len()];
        for p in &self.recent {
            for (m, v) in mean.iter_mut().zip(p) {
                *m += v / self.recent.len() as f32;
            }
        }
        mean
    }
}

/// The label to report: the most likely class, or `unsure` below `min_confidence`.
pub fn decide<'a>(labels: &'a [String], probabilities: &[f32], min_confidence: f32) -> (&'a str, f32) {
    let i = shared::compare::argmax(probabilities);
    let p = probabilities[i];
    if p < min_confidence { (UNSURE, p) } else { (labels[i].as_str(), p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_over_the_window_only() {
        let mut s = Smoother::new(2);
        assert_eq!(s.push(&[1.0, 0.0]), vec![1.0, 0.0]);
        assert_eq!(s.push(&[0.0, 1.0]), vec![0.5, 0.5]);
        assert_eq!(s.push(&[0.0, 1.0]), vec![0.0, 1.0]);
    }

    #[test]
    fn unsure_below_threshold() {
        let labels = vec!["a".to_string(), "b".to_string()];
        assert_eq!(decide(&labels, &[0.55, 0.45], 0.6).0, UNSURE);
        assert_eq!(decide(&labels, &[0.2, 0.8], 0.6), ("b", 0.8));
    }
}
