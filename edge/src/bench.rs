//! `edge bench`: how fast this box classifies, at the model's input size.

use std::time::Instant;

use image::{DynamicImage, Rgb, RgbImage};
use serde::Serialize;

use shared::runtime::NodeTime;

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
    /// The trunk's multiply-adds per frame (from the manifest), and how many billions of them
    /// this box does per second at the median latency: what to compare boards and trunks by.
    pub trunk_gmac: f32,
    pub gmac_per_s: f32,
    /// Resizing a 640x480 RGB frame to the input (median).
    pub preprocess_ms: f32,
    /// JPEG-encoding a 640x480 frame for `/stream.mjpg` (median): what a watcher of the live page
    /// costs per classified frame.
    pub stream_encode_ms: f32,
    /// Peak resident memory of this process (Linux VmHWM), MiB.
    pub peak_memory_mib: Option<f32>,
    /// `--profile`: where a frame's time goes, per operator kind and per node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

/// A frame's time per operator kind (largest first) and per node (in the plan's order).
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub runs: usize,
    pub by_op: Vec<OpTime>,
    pub nodes: Vec<NodeTime>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpTime {
    pub op: String,
    pub nodes: usize,
    pub ms: f32,
    /// Share of the profiled time.
    pub share: f32,
}

impl Profile {
    pub fn of(nodes: Vec<NodeTime>, runs: usize) -> Self {
        let total: f32 = nodes.iter().map(|n| n.ms).sum::<f32>().max(f32::MIN_POSITIVE);
        let mut by_op: Vec<OpTime> = Vec::new();
        for node in &nodes {
            match by_op.iter_mut().find(|o| o.op == node.op) {
                Some(o) => {
                    o.nodes += 1;
                    o.ms += node.ms;
                }
                None => by_op.push(OpTime { op: node.op.clone(), nodes: 1, ms: node.ms, share: 0.0 }),
            }
        }
        by_op.iter_mut().for_each(|o| o.share = o.ms / total);
        by_op.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Self { runs, by_op, nodes }
    }

    /// The per-operator table, then the `top` slowest nodes.
    pub fn table(&self, top: usize) -> String {
        use std::fmt::Write as _;
        let mut text =
            format!("profile (median of {} runs per node):\n{:<32} {:>5} {:>9} {:>6}\n", self.runs, "operator", "nodes", "ms", "share");
        for o in &self.by_op {
            let _ = writeln!(text, "{:<32} {:>5} {:>9.2} {:>5.1}%", o.op, o.nodes, o.ms, o.share * 100.0);
        }
        let mut slowest: Vec<&NodeTime> = self.nodes.iter().collect();
        slowest.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        let _ = writeln!(text, "slowest nodes:");
        for n in slowest.into_iter().take(top) {
            let _ = writeln!(text, "{:<48} {:<24} {:>9.2}", n.node, n.op, n.ms);
        }
        text
    }
}

/// Times `runs` classifications after `warmup` ones; with `profile`, then as many runs again
/// timed node by node.
pub fn run(model: &EdgeModel, threads: usize, warmup: usize, runs: usize, profile: bool) -> anyhow::Result<BenchReport> {
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
    let trunk_gmac = model.manifest.backbone.macs as f32 / 1e9;
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
        trunk_gmac,
        gmac_per_s: trunk_gmac / (pick(0.5) / 1000.0),
        preprocess_ms: prep[prep.len() / 2],
        stream_encode_ms: encode[encode.len() / 2],
        peak_memory_mib: peak_memory_mib(),
        profile: if profile { Some(Profile::of(model.profile(&input, runs.max(1))?, runs.max(1))) } else { None },
    })
}

fn peak_memory_mib() -> Option<f32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f32 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_adds_up_per_operator_largest_first() {
        let node = |node: &str, op: &str, ms: f32| NodeTime { node: node.into(), op: op.into(), ms };
        let p = Profile::of(vec![node("conv1", "Conv", 3.0), node("pool1", "MaxPool", 1.0), node("conv2", "Conv", 4.0)], 5);
        assert_eq!(p.by_op.len(), 2);
        assert_eq!((p.by_op[0].op.as_str(), p.by_op[0].nodes, p.by_op[0].ms), ("Conv", 2, 7.0));
        assert!((p.by_op[0].share - 0.875).abs() < 1e-6 && (p.by_op[1].share - 0.125).abs() < 1e-6);
        let table = p.table(1);
        assert!(table.contains("conv2") && !table.contains("conv1 "), "{table}");
    }
}
