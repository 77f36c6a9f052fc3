//! What `trainer evaluate` writes and prints: `report.json`, `predictions.csv`, `confusion.png`,
//! `reliability.png`, `contact_sheet.png`, and a human summary.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use shared::compare::argmax;

use super::Report;
use crate::report::{csv_field, plots};

pub const REPORT_JSON: &str = "report.json";
pub const PREDICTIONS_CSV: &str = "predictions.csv";
pub const CONFUSION_PNG: &str = "confusion.png";
pub const RELIABILITY_PNG: &str = "reliability.png";
pub const CONTACT_SHEET_PNG: &str = "contact_sheet.png";
/// Every file a report folder gets, for messages.
pub const FILES: [&str; 5] = [REPORT_JSON, PREDICTIONS_CSV, CONFUSION_PNG, RELIABILITY_PNG, CONTACT_SHEET_PNG];

#[derive(Serialize)]
struct JsonReport<'a> {
    model: &'a Path,
    data: &'a Path,
    labels: &'a [String],
    thresholds: &'a shared::answer::Thresholds,
    #[serde(flatten)]
    metrics: &'a super::metrics::Metrics,
    skipped: &'a [crate::data::scan::Skipped],
    /// `--conditions`: one row per field condition, on the target images.
    #[serde(skip_serializing_if = "Option::is_none")]
    conditions: Option<&'a [super::conditions::ConditionResult]>,
}

pub fn json(report: &Report) -> anyhow::Result<String> {
    let value = JsonReport {
        model: &report.model,
        data: &report.data,
        labels: &report.labels,
        thresholds: &report.thresholds,
        metrics: &report.metrics,
        skipped: &report.skipped,
        conditions: report.conditions.as_deref(),
    };
    Ok(serde_json::to_string_pretty(&value)?)
}

/// One row per image: where it came from, what the box would answer, and every output.
pub fn csv(report: &Report) -> String {
    let mut out = String::from("path,folder,expected,answer,top_label,top_probability,unknown_score");
    for label in &report.labels {
        let _ = write!(out, ",{}", crate::report::probability_column(label));
    }
    out.push('\n');
    for i in &report.images {
        let top = argmax(&i.outputs.probabilities);
        let expected = i.target.map_or(shared::answer::UNKNOWN, |t| report.labels[t].as_str());
        let _ = write!(
            out,
            "{},{},{},{},{},{:.6},{}",
            csv_field(&i.path.display().to_string()),
            csv_field(&i.folder),
            csv_field(expected),
            csv_field(i.answer.label(&report.labels)),
            csv_field(&report.labels[top]),
            i.outputs.probabilities[top],
            i.outputs.unknown_score.map_or(String::new(), |s| format!("{s:.6}")),
        );
        for p in &i.outputs.probabilities {
            let _ = write!(out, ",{p:.6}");
        }
        out.push('\n');
    }
    out
}

/// Writes every file of the report into `dir` (created if needed), each atomically.
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let put = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        shared::atomic::write_atomic(&path, bytes).with_context(|| format!("{}: cannot write", path.display()))
    };
    put(REPORT_JSON, json(report)?.as_bytes())?;
    put(PREDICTIONS_CSV, csv(report).as_bytes())?;
    let m = &report.metrics;
    // Right: a label's folder answered with that label; any other folder refused.
    let right = |row: usize, column: usize| {
        let (folder, answer) = (&m.folders[row], &m.answers[column]);
        if report.labels.contains(folder) { answer == folder } else { !report.labels.contains(answer) }
    };
    plots::confusion(&m.folders, &m.answers, &m.confusion, &right, &dir.join(CONFUSION_PNG))?;
    plots::reliability(&m.reliability, m.ece, &dir.join(RELIABILITY_PNG))?;
    // The images a person should look at: targets answered wrongly or refused, others accepted.
    let notable: Vec<(&image::RgbImage, String)> = report
        .images
        .iter()
        .filter(|i| match i.target {
            Some(t) => i.answer != shared::answer::Answer::Class(t),
            None => !i.answer.is_refusal(),
        })
        .map(|i| {
            let name = i.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let score = i.outputs.unknown_score.map_or(String::new(), |s| format!(" u{s:.2}"));
            let top = argmax(&i.outputs.probabilities);
            (&i.thumbnail, format!("{}: {} {:.2}{score}|{name}", i.folder, i.answer.label(&report.labels), i.outputs.probabilities[top]))
        })
        .collect();
    plots::contact_sheet(&notable, super::THUMBNAIL, &dir.join(CONTACT_SHEET_PNG))?;
    Ok(())
}

/// A share as a percentage, or `-` where there was nothing to take it of.
fn maybe_percent(x: Option<f32>) -> String {
    x.map_or("-".into(), |x| format!("{:.1}%", x * 100.0))
}

pub fn human(report: &Report) -> String {
    let m = &report.metrics;
    let mut text = String::new();
    let threshold = report.thresholds.unknown.map_or("none".into(), |t| shared::text::fixed(t, 4));
    let _ = writeln!(
        text,
        "{}: {} images ({} to classify, {} to refuse), {} skipped; unknown threshold {threshold}, min confidence {}",
        report.data.display(),
        m.target_images + m.other_images,
        m.target_images,
        m.other_images,
        report.skipped.len(),
        report.thresholds.min_confidence
    );
    let right = m.accuracy.map_or(0, |a| (a * m.target_images as f32).round() as usize);
    let _ = writeln!(
        text,
        "accuracy {} ({right} of {}); answered correctly {}; refused: {} of targets, {} of others; ECE {}{}",
        maybe_percent(m.accuracy),
        m.target_images,
        maybe_percent(m.answered_correctly),
        maybe_percent(m.target_refused),
        maybe_percent(m.other_refused),
        m.ece.map_or("-".into(), |e| format!("{e:.3}")),
        m.open_set_auroc.map_or(String::new(), |a| format!("; open-set AUROC {a:.3}"))
    );
    let _ = writeln!(text, "{:<20} {:>7} {:>10} {:>8} {:>8}", "class", "images", "precision", "recall", "refused");
    for c in &m.per_class {
        let _ = writeln!(
            text,
            "{:<20} {:>7} {:>10} {:>8} {:>8}",
            c.label,
            c.images,
            maybe_percent(c.precision),
            maybe_percent(c.recall),
            maybe_percent(c.refused)
        );
    }
    let _ = writeln!(text, "answers per folder ({}):", m.answers.join(", "));
    for (folder, row) in m.folders.iter().zip(&m.confusion) {
        let cells: Vec<String> = row.iter().map(u32::to_string).collect();
        let _ = writeln!(text, "  {:<18} {}", folder, cells.join(" "));
    }
    if let Some(conditions) = &report.conditions {
        let _ = writeln!(text, "field conditions (target images; see `trainer evaluate --help`):");
        let _ = writeln!(text, "{}", super::conditions::table(conditions));
    }
    text.trim_end().to_string()
}
