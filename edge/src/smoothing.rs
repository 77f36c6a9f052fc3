//! Averages the model's outputs over the last N frames, so one odd frame does not flip the
//! answer. What the averaged outputs mean as an answer is `shared::answer`'s rule.

use std::collections::VecDeque;

use shared::runtime::Outputs;

pub struct Smoother {
    window: usize,
    recent: VecDeque<Outputs>,
}

impl Smoother {
    pub fn new(window: usize) -> Self {
        Self { window: window.max(1), recent: VecDeque::new() }
    }

    /// Adds a frame's outputs; returns their mean over the window (probabilities and open-set score).
    pub fn push(&mut self, outputs: &Outputs) -> Outputs {
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(outputs.clone());
        let n = self.recent.len() as f32;
        let mut mean = vec![0f32; outputs.probabilities.len()];
        for o in &self.recent {
            for (m, v) in mean.iter_mut().zip(&o.probabilities) {
                *m += v / n;
            }
        }
        let scores: Option<Vec<f32>> = self.recent.iter().map(|o| o.unknown_score).collect();
        Outputs { probabilities: mean, unknown_score: scores.map(|s| s.iter().sum::<f32>() / n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(p: [f32; 2], score: f32) -> Outputs {
        Outputs { probabilities: p.to_vec(), unknown_score: Some(score) }
    }

    #[test]
    fn averages_over_the_window_only() {
        let mut s = Smoother::new(2);
        assert_eq!(s.push(&outputs([1.0, 0.0], 0.2)), outputs([1.0, 0.0], 0.2));
        assert_eq!(s.push(&outputs([0.0, 1.0], 0.4)), outputs([0.5, 0.5], 0.3));
        assert_eq!(s.push(&outputs([0.0, 1.0], 0.4)), outputs([0.0, 1.0], 0.4));
    }

    #[test]
    fn no_score_without_one_in_every_frame() {
        let mut s = Smoother::new(3);
        s.push(&Outputs { probabilities: vec![1.0, 0.0], unknown_score: None });
        assert_eq!(s.push(&outputs([0.0, 1.0], 0.5)).unknown_score, None);
    }
}
