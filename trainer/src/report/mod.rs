//! What a run tells its user: the split, metrics.json, per-image predictions, and plots.

pub mod plots;
pub mod summary;

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::training::job::Prepared;

/// Prints the split per class, and how many near-duplicate groups were kept together.
pub fn print_split(p: &Prepared) {
    let mut table = String::new();
    let _ = writeln!(table, "{:<20} {:>6} {:>6} {:>6}", "class", "train", "val", "test");
    let count = |items: &[usize], class: usize| items.iter().filter(|&&i| p.dataset.samples[i].class == class).count();
    for (c, name) in p.dataset.classes.iter().enumerate() {
        let _ =
            writeln!(table, "{:<20} {:>6} {:>6} {:>6}", name, count(&p.split.train, c), count(&p.split.val, c), count(&p.split.test, c));
    }
    let _ = write!(
        table,
        "{:<20} {:>6} {:>6} {:>6}   ({} skipped file(s), {} near-duplicate photo(s) kept with their group)",
        "total",
        p.split.train.len(),
        p.split.val.len(),
        p.split.test.len(),
        p.dataset.skipped.len(),
        p.near_duplicates_grouped()
    );
    eprintln!("{table}");
}

/// `split.csv`: every image, its class, split and near-duplicate group.
pub fn write_split_csv(p: &Prepared, path: &Path) -> anyhow::Result<()> {
    let mut out = String::from("image,class,split,group\n");
    for (name, items) in [("train", &p.split.train), ("val", &p.split.val), ("test", &p.split.test)] {
        for &i in items.iter() {
            let s = &p.dataset.samples[i];
            let group = &p.dataset.samples[p.groups[i]].name;
            let _ = writeln!(out, "{},{},{name},{}", csv(&s.name), csv(&p.dataset.classes[s.class]), csv(group));
        }
    }
    shared::atomic::write_atomic(path, out.as_bytes()).with_context(|| format!("{}: cannot write", path.display()))
}

/// `predictions.csv`: per validation image, the true class, the predicted one, probabilities.
pub fn write_predictions_csv(p: &Prepared, items: &[usize], probabilities: &[Vec<f32>], path: &Path) -> anyhow::Result<()> {
    let mut out = String::from("image,true,predicted,confidence");
    for class in &p.dataset.classes {
        let _ = write!(out, ",p_{}", csv(class));
    }
    out.push('\n');
    for (&i, probs) in items.iter().zip(probabilities) {
        let s = &p.dataset.samples[i];
        let predicted = crate::training::fit::argmax(probs);
        let _ = write!(
            out,
            "{},{},{},{:.6}",
            csv(&s.name),
            csv(&p.dataset.classes[s.class]),
            csv(&p.dataset.classes[predicted]),
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

fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n']) { format!("\"{}\"", field.replace('"', "\"\"")) } else { field.to_string() }
}
