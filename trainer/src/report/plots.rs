//! PNG pictures: training curves and the confusion matrix.

use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use image::RgbImage;

use crate::evaluate::metrics::ReliabilityBin;
use crate::training::checkpoint::EpochRecord;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bundled font: no system font library needed on a fresh machine.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// A named line: which value of each epoch, in which colour.
type Series = (&'static str, fn(&EpochRecord) -> f32, RGBColor);

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    epochs: f32,
    top: f32,
    history: &[EpochRecord],
    series: [Series; 2],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.5f32..epochs + 0.5, 0f32..top)
        .map_err(|e| anyhow!("{e}"))?;
    chart.configure_mesh().x_desc("epoch").draw().map_err(|e| anyhow!("{e}"))?;
    for (name, value, color) in series {
        let points: Vec<(f32, f32)> = history.iter().enumerate().map(|(i, r)| ((i + 1) as f32, value(r))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(|e| anyhow!("{e}"))?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Two panels: loss and accuracy per epoch, train and validation.
pub fn curves(history: &[EpochRecord], path: &Path) -> anyhow::Result<()> {
    ensure_font();
    let tmp = shared::atomic::temp_path(path).with_extension("png");
    {
        let root = BitMapBackend::new(&tmp, (1000, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let (left, right) = root.split_horizontally(500);
        let epochs = history.len().max(1) as f32;
        let max_loss = history.iter().flat_map(|r| [r.train_loss, r.val_loss]).fold(0.1f32, f32::max) * 1.1;
        let loss: [Series; 2] = [("train", |r| r.train_loss, BLUE), ("validation", |r| r.val_loss, RED)];
        let accuracy: [Series; 2] = [("train", |r| r.train_accuracy, BLUE), ("validation", |r| r.val_accuracy, RED)];
        panel(&left, "loss", epochs, max_loss, history, loss)?;
        panel(&right, "accuracy", epochs, 1.0, history, accuracy)?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}

/// A heat-map of `matrix[row][column]` with the counts written in; a cell that `right(row,
/// column)` says is a right answer is blue, any other red.
pub fn confusion(
    rows: &[String],
    columns: &[String],
    matrix: &[Vec<u32>],
    right: &dyn Fn(usize, usize) -> bool,
    path: &Path,
) -> anyhow::Result<()> {
    ensure_font();
    let k = rows.len().max(columns.len());
    let cell = (520 / k.max(1)).clamp(24, 120) as i32;
    let (label_w, top) = (150, 60);
    let size = (label_w + cell as u32 * columns.len() as u32 + 20, top + cell as u32 * rows.len() as u32 + 150);
    let tmp = shared::atomic::temp_path(path).with_extension("png");
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let font = ("sans-serif", (cell / 3).clamp(10, 18)).into_font();
        root.draw(&Text::new("confusion matrix (rows: true, columns: answered)", (10, 15), ("sans-serif", 16).into_font()))
            .map_err(|e| anyhow!("{e}"))?;
        for (t, row) in matrix.iter().enumerate() {
            let total = row.iter().sum::<u32>().max(1) as f64;
            for (p, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let (x, y) = (label_w as i32 + p as i32 * cell, top as i32 + t as i32 * cell);
                let color =
                    if right(t, p) { RGBColor(0, 100, 200).mix(0.15 + 0.85 * share) } else { RGBColor(220, 50, 30).mix(0.1 + 0.9 * share) };
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], color.filled())).map_err(|e| anyhow!("{e}"))?;
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], BLACK.stroke_width(1))).map_err(|e| anyhow!("{e}"))?;
                root.draw(&Text::new(count.to_string(), (x + cell / 3, y + cell / 3), font.clone())).map_err(|e| anyhow!("{e}"))?;
            }
            root.draw(&Text::new(rows[t].clone(), (5, top as i32 + t as i32 * cell + cell / 3), font.clone()))
                .map_err(|e| anyhow!("{e}"))?;
        }
        for (p, name) in columns.iter().enumerate() {
            let x = label_w as i32 + p as i32 * cell + cell / 3;
            let style = font.clone().transform(FontTransform::Rotate90);
            root.draw(&Text::new(name.clone(), (x, top as i32 + rows.len() as i32 * cell + 5), style)).map_err(|e| anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}

/// Reliability diagram: per confidence bin, the accuracy (bars) against the diagonal of perfect
/// calibration, with the number of images per bin; `ece` is `None` without target images (the
/// bars are then empty).
pub fn reliability(bins: &[ReliabilityBin], ece: Option<f32>, path: &Path) -> anyhow::Result<()> {
    let ece = ece.map_or("-, no target images".into(), |e| format!("{e:.3}"));
    ensure_font();
    let tmp = shared::atomic::temp_path(path).with_extension("png");
    {
        let root = BitMapBackend::new(&tmp, (560, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("reliability (ECE {ece})"), ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f32..1f32, 0f32..1f32)
            .map_err(|e| anyhow!("{e}"))?;
        chart.configure_mesh().x_desc("confidence (top class probability)").y_desc("accuracy").draw().map_err(|e| anyhow!("{e}"))?;
        let bars = bins
            .iter()
            .filter(|b| b.images > 0)
            .map(|b| Rectangle::new([(b.from + 0.005, 0.0), (b.to - 0.005, b.accuracy)], RGBColor(0, 100, 200).mix(0.7).filled()));
        chart.draw_series(bars).map_err(|e| anyhow!("{e}"))?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], RED.stroke_width(2))).map_err(|e| anyhow!("{e}"))?;
        let counts = bins
            .iter()
            .filter(|b| b.images > 0)
            .map(|b| Text::new(b.images.to_string(), (b.from + 0.02, (b.accuracy + 0.06).min(0.97)), ("sans-serif", 13).into_font()));
        chart.draw_series(counts).map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}

/// A grid of thumbnails (`side` pixels), each with a caption of up to two lines split at `|`.
/// With nothing to show it still writes a small picture saying so.
pub fn contact_sheet(images: &[(&RgbImage, String)], side: u32, path: &Path) -> anyhow::Result<()> {
    ensure_font();
    let columns = 6u32;
    let (cell_w, cell_h) = (side + 110, side + 34);
    let rows = (images.len() as u32).div_ceil(columns).max(1);
    let (width, height) = (columns * cell_w, rows * cell_h + 30);
    let mut canvas = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (n, (thumbnail, _)) in images.iter().enumerate() {
        let (x, y) = ((n as u32 % columns) * cell_w + 55, (n as u32 / columns) * cell_h + 30);
        image::imageops::overlay(&mut canvas, *thumbnail, x as i64, y as i64);
    }
    let tmp = shared::atomic::temp_path(path).with_extension("png");
    {
        let mut buffer = canvas.into_raw();
        {
            let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
            let title = if images.is_empty() {
                "nothing to show: every image answered as it should"
            } else {
                "wrong or refused targets, accepted others"
            };
            root.draw(&Text::new(title, (8, 6), ("sans-serif", 16).into_font())).map_err(|e| anyhow!("{e}"))?;
            for (n, (_, caption)) in images.iter().enumerate() {
                let (x, y) = ((n as u32 % columns) * cell_w + 4, (n as u32 / columns) * cell_h + 30 + side + 2);
                for (line, text) in caption.split('|').take(2).enumerate() {
                    let text: String = text.chars().take(34).collect();
                    root.draw(&Text::new(text, (x as i32, y as i32 + line as i32 * 14), ("sans-serif", 11).into_font()))
                        .map_err(|e| anyhow!("{e}"))?;
                }
            }
            root.present().map_err(|e| anyhow!("{e}"))?;
        }
        let picture = RgbImage::from_raw(width, height, buffer).context("contact sheet buffer")?;
        picture.save_with_format(&tmp, image::ImageFormat::Png).with_context(|| format!("{}: cannot write", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}
