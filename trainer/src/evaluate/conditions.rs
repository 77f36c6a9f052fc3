//! The field-conditions suite's figures: one accuracy per condition (see
//! [`crate::data::conditions`]), from each photo's answer under it. Plain arithmetic and a table.

use std::fmt::Write as _;

use serde::Serialize;
use shared::answer::Answer;
use shared::compare::argmax;

use crate::data::conditions::Condition;

/// One photo under one condition: its true class and what the model made of it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub class: usize,
    pub probabilities: Vec<f32>,
    /// The answer by the refusal rule; `None` where only the classifier was run (training's suite).
    pub answer: Option<Answer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConditionResult {
    pub condition: String,
    pub images: usize,
    /// Share whose most probable class is the true one.
    pub accuracy: f32,
    /// Share answered with the true class (a refusal counts as wrong); `None` without answers.
    pub answered_correctly: Option<f32>,
    /// Share refused as `unknown` or `unsure`; `None` without answers.
    pub refused: Option<f32>,
}

pub fn tally(condition: Condition, outcomes: &[Outcome]) -> ConditionResult {
    let n = outcomes.len().max(1) as f32;
    let share = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count() as f32 / n;
    let answered = outcomes.iter().all(|o| o.answer.is_some()) && !outcomes.is_empty();
    ConditionResult {
        condition: condition.name().into(),
        images: outcomes.len(),
        accuracy: share(&|o| argmax(&o.probabilities) == o.class),
        answered_correctly: answered.then(|| share(&|o| o.answer == Some(Answer::Class(o.class)))),
        refused: answered.then(|| share(&|o| o.answer.is_some_and(|a| a.is_refusal()))),
    }
}

/// The condition (other than the original) with the lowest accuracy: the figure that counts.
pub fn worst(results: &[ConditionResult]) -> Option<&ConditionResult> {
    let original = Condition::Original.name();
    results.iter().filter(|r| r.condition != original).min_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
}

pub fn table(results: &[ConditionResult]) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "{:<16} {:>7} {:>9} {:>9} {:>8}", "condition", "images", "accuracy", "answered", "refused");
    let percent = |x: Option<f32>| x.map_or("-".into(), |x| format!("{:.1}%", x * 100.0));
    for r in results {
        let _ = writeln!(
            text,
            "{:<16} {:>7} {:>9} {:>9} {:>8}",
            r.condition,
            r.images,
            percent(Some(r.accuracy)),
            percent(r.answered_correctly),
            percent(r.refused)
        );
    }
    if let Some(w) = worst(results) {
        let _ = write!(text, "worst condition: {} at {:.1}%", w.condition, w.accuracy * 100.0);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(class: usize, p0: f32, answer: Option<Answer>) -> Outcome {
        Outcome { class, probabilities: vec![p0, 1.0 - p0], answer }
    }

    #[test]
    fn tally_counts_top_class_answers_and_refusals() {
        let outcomes = [
            outcome(0, 0.9, Some(Answer::Class(0))),
            outcome(0, 0.8, Some(Answer::Unknown)),
            outcome(1, 0.7, Some(Answer::Class(0))),
            outcome(1, 0.1, Some(Answer::Class(1))),
        ];
        let r = tally(Condition::Blur, &outcomes);
        assert_eq!(r.condition, "blur");
        assert_eq!(r.images, 4);
        assert_eq!(r.accuracy, 0.75);
        assert_eq!(r.answered_correctly, Some(0.5));
        assert_eq!(r.refused, Some(0.25));
    }

    #[test]
    fn without_answers_only_accuracy_is_given_and_the_worst_is_found() {
        let a = tally(Condition::Original, &[outcome(0, 0.9, None), outcome(1, 0.2, None)]);
        assert_eq!((a.accuracy, a.answered_correctly, a.refused), (1.0, None, None));
        let b = tally(Condition::Darker, &[outcome(0, 0.9, None), outcome(1, 0.9, None)]);
        assert_eq!(b.accuracy, 0.5);
        let c = tally(Condition::Blur, &[outcome(0, 0.9, None), outcome(1, 0.2, None)]);
        let results = [a, b, c];
        assert_eq!(worst(&results).unwrap().condition, "darker");
        // The original is the reference, never the worst condition, even when it is lowest.
        let low_original = tally(Condition::Original, &[outcome(1, 0.9, None)]);
        assert_eq!(worst(&[low_original, results[2].clone()]).unwrap().condition, "blur");
        let text = table(&results);
        assert!(text.contains("worst condition: darker at 50.0%"), "{text}");
    }
}
