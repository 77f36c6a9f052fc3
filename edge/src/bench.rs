//! `edge bench`: how fast this box classifies, at the model's input size.

use std::time::Instant;

use image::{DynamicImage, Rgb, RgbImage};
use serde::Serialize;

use crate::model::EdgeModel;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub input_size: u32,
    /// The exported trunk's arithmetic: "f32" or "int8".
    pub precision: String,
    pub threads: usize,
    pub warmup: usize,
    pub runs: usize,
    pub min_ms: f32,
    pub median_ms: f32,
    pub p90_ms: f32,
    pub max_ms: f32,
    pub mean_ms: f32,
    /// Inference only, 1000 / mean.
    pub fps: f32,
    /// Resizing a 640x480 RGB frame to the input (median).
    pub preprocess_ms: f32,
    /// JPEG-encoding a 640x480 frame for `/stream.mjpg` (median): what a watcher of the live page
    /// costs per classified frame.
    pub stream_encode_ms: f32,
    /// Peak resident memory of this process (Linux VmHWM), MiB.
    pub peak_memory_mib: Option<f32>,
}

pub fn run(model: &EdgeModel, threads: usize, warmup: usize, runs: usize) -> anyhow::Result<BenchReport> {
    let frame = DynamicImage::ImageRgb8(RgbImage::from_fn(640, 480, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])));
    let input = model.prepare(&frame);
    for _ in 0..warmup {
        model.outputs(&input)?;
    }
    let mut times = Vec::with_capacity(runs);
    let mut prep = Vec::with_capacity(runs);
    let mut encode = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        crate::jpeg::encode(&frame)?;
        encode.push(t.elapsed().as_secs_f32() * 1000.0);
        let t = Instant::now();
        let prepared = model.prepare(&frame);
        prep.push(t.elapsed().as_secs_f32() * 1000.0);
        let t = Instant::now();
        model.outputs(&prepared)?;
        times.push(t.elapsed().as_secs_f32() * 1000.0);
    }
    times.sort_by(f32::total_cmp);
    prep.sort_by(f32::total_cmp);
    encode.sort_by(f32::total_cmp);
    let pick = |q: f32| times[((times.len() - 1) as f32 * q).round() as usize];
    let mean = times.iter().sum::<f32>() / times.len() as f32;
    Ok(BenchReport {
        input_size: model.input_size(),
        precision: model.manifest.precision.to_string(),
        threads,
        warmup,
        runs: times.len(),
        min_ms: times[0],
        median_ms: pick(0.5),
        p90_ms: pick(0.9),
        max_ms: times[times.len() - 1],
        mean_ms: mean,
        fps: 1000.0 / mean,
        preprocess_ms: prep[prep.len() / 2],
        stream_encode_ms: encode[encode.len() / 2],
        peak_memory_mib: peak_memory_mib(),
    })
}

fn peak_memory_mib() -> Option<f32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f32 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
