//! What a run tells its user: metrics.json's summary, per-image predictions, and plots.

pub mod plots;
pub mod summary;

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::training::prepare::Prepared;

/// `predictions.csv`: per validation image, the true class, the predicted one, probabilities.
pub fn write_predictions_csv(p: &Prepared, items: &[usize], probabilities: &[Vec<f32>], path: &Path) -> anyhow::Result<()> {
    let mut out = String::from("image,true,predicted,confidence");
    for class in &p.dataset.classes {
        let _ = write!(out, ",{}", probability_column(class));
    }
    out.push('\n');
    for (&i, probs) in items.iter().zip(probabilities) {
        let s = &p.dataset.samples[i];
        let predicted = crate::training::fit::argmax(probs);
        let _ = write!(
            out,
            "{},{},{},{:.6}",
            csv_field(&s.name),
            csv_field(&p.dataset.classes[s.class]),
            csv_field(&p.dataset.classes[predicted]),
            probs[predicted]
        );
        for v in probs {
            let _ = write!(out, ",{v:.6}");
        }
        out.push('\n');
    }
    shared::atomic::write_atomic(path, out.as_bytes()).with_context(|| format!("{}: cannot write", path.display()))
}

/// `confusion[true][predicted]` counts.
pub fn confusion(classes: usize, truth: &[usize], probabilities: &[Vec<f32>]) -> Vec<Vec<u32>> {
    let mut m = vec![vec![0u32; classes]; classes];
    for (&t, p) in truth.iter().zip(probabilities) {
        m[t][crate::training::fit::argmax(p)] += 1;
    }
    m
}

/// The CSV header field of a class's probability column: `p_<label>`, quoted as a whole when the
/// label needs it (a comma in a label must not add a column).
pub fn probability_column(label: &str) -> String {
    csv_field(&format!("p_{label}"))
}

/// One CSV field, quoted when it must be (RFC 4180).
pub fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) { format!("\"{}\"", field.replace('"', "\"\"")) } else { field.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_with_a_comma_or_quote_stays_one_header_field() {
        assert_eq!(probability_column("daffodil"), "p_daffodil");
        assert_eq!(probability_column("colts,foot"), "\"p_colts,foot\"");
        assert_eq!(probability_column("a\"b"), "\"p_a\"\"b\"");
    }
}
