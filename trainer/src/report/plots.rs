//! PNG pictures: training curves and the confusion matrix.

use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

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

/// A heat-map of `matrix[true][predicted]` with the counts written in.
pub fn confusion(classes: &[String], matrix: &[Vec<u32>], path: &Path) -> anyhow::Result<()> {
    ensure_font();
    let k = classes.len();
    let cell = (520 / k.max(1)).clamp(24, 120) as i32;
    let (label_w, top) = (150, 60);
    let size = (label_w + cell as u32 * k as u32 + 20, top + cell as u32 * k as u32 + 150);
    let tmp = shared::atomic::temp_path(path).with_extension("png");
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let font = ("sans-serif", (cell / 3).clamp(10, 18)).into_font();
        root.draw(&Text::new("confusion matrix (rows: true, columns: predicted)", (10, 15), ("sans-serif", 16).into_font()))
            .map_err(|e| anyhow!("{e}"))?;
        for (t, row) in matrix.iter().enumerate() {
            let total = row.iter().sum::<u32>().max(1) as f64;
            for (p, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let (x, y) = (label_w as i32 + p as i32 * cell, top as i32 + t as i32 * cell);
                let color =
                    if t == p { RGBColor(0, 100, 200).mix(0.15 + 0.85 * share) } else { RGBColor(220, 50, 30).mix(0.1 + 0.9 * share) };
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], color.filled())).map_err(|e| anyhow!("{e}"))?;
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], BLACK.stroke_width(1))).map_err(|e| anyhow!("{e}"))?;
                root.draw(&Text::new(count.to_string(), (x + cell / 3, y + cell / 3), font.clone())).map_err(|e| anyhow!("{e}"))?;
            }
            root.draw(&Text::new(classes[t].clone(), (5, top as i32 + t as i32 * cell + cell / 3), font.clone()))
                .map_err(|e| anyhow!("{e}"))?;
        }
        for (p, name) in classes.iter().enumerate() {
            let x = label_w as i32 + p as i32 * cell + cell / 3;
            let style = font.clone().transform(FontTransform::Rotate90);
            root.draw(&Text::new(name.clone(), (x, top as i32 + k as i32 * cell + 5), style)).map_err(|e| anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}
