//! int8 export: the trunk's 13 convolutions in 8 bits, which tract runs faster than float32.
//!
//! Activations are uint8 with a per-tensor scale measured on training images (min/max
//! calibration: the largest value each ReLU produced); weights are int8, symmetric, one scale
//! per layer; biases int32 at `input_scale * weight_scale`, as QLinearConv requires.
//!
//! One weight scale per layer rather than per output channel: per-channel scales move the
//! probabilities less, but tract then leaves its fast int8 path (552 ms instead of 356 ms at 224
//! on one thread here; f32: 674 ms), which defeats the purpose. Cross-layer equalization
//! ([`equalize`]) first evens out the channels' weight ranges, which buys per-channel's accuracy
//! at per-layer speed (daffodil/coltsfoot: max |diff| 1.9e-3 against 1.3e-2 without it).
//! Every ReLU output has zero point 0, so saturation at 0 is the ReLU itself. Preprocessing, the
//! head and Softmax stay float32: they cost nothing next to the trunk.

use anyhow::Context;
use image::RgbImage;
use shared::Normalization;
use tract_onnx::pb::tensor_proto::DataType;

use super::graph::{self, GraphBuilder};
use super::int8::{QuantParams, QuantizedConv, QuantizedTrunk};
use crate::backbone::ConvWeights;

/// Training images used to measure activation ranges; more changes the ranges very little.
pub const CALIBRATION_IMAGES: usize = 32;

/// Observed value ranges: the normalized input, then each ReLU output.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranges {
    pub input: (f32, f32),
    pub activations: Vec<f32>,
}

/// Runs the float32 preprocessing + trunk in tract on `images` and records each tensor's range.
pub fn calibrate(convs: &[ConvWeights], normalization: &Normalization, size: usize, images: &[&RgbImage]) -> anyhow::Result<Ranges> {
    use rayon::prelude::*;
    anyhow::ensure!(!images.is_empty(), "int8 calibration needs at least one training image");
    let mut g = GraphBuilder::default();
    let x = graph::preprocessing(&mut g, shared::ONNX_INPUT, normalization);
    let (_, activations) = graph::trunk_f32(&mut g, x.clone(), convs);
    let taps: Vec<&str> = std::iter::once(x.as_str()).chain(activations.iter().map(String::as_str)).collect();
    let outputs: Vec<_> = taps.iter().map(|t| (*t, DataType::Float, &[][..])).collect();
    let s = Some(size);
    let proto = g.finish((shared::ONNX_INPUT, DataType::Uint8, &[None, s, s, Some(3)]), &outputs, vec![], "int8 calibration");
    let model = shared::runtime::Graph::load(prost::Message::encode_to_vec(&proto), size as u32).context("int8 calibration graph")?;

    let bar = crate::progress::bar(images.len() as u64, "int8 calibration");
    let per_image = images
        .par_iter()
        .map(|image| {
            let outs = model.run(image)?;
            bar.inc(1);
            Ok(outs
                .iter()
                .map(|v| v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x))))
                .collect::<Vec<(f32, f32)>>())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    bar.finish_and_clear();
    let merged = per_image
        .into_iter()
        .reduce(|a, b| a.iter().zip(&b).map(|(x, y)| (x.0.min(y.0), x.1.max(y.1))).collect())
        .expect("at least one image");
    Ok(Ranges { input: merged[0], activations: merged[1..].iter().map(|r| r.1).collect() })
}

/// Cross-layer equalization (Nagel et al., "Data-Free Quantization", 2019): for each pair of
/// consecutive convolutions, output channel `i` of the first is divided by `s_i` and input
/// channel `i` of the second multiplied by it. ReLU and max-pool commute with a positive scale,
/// so the float function is unchanged, while `s_i = sqrt(r1_i / r2_i)` (r: the channel's largest
/// |weight| in each layer) gives both layers the same per-channel ranges, which one scale per
/// layer then quantizes well. A few sweeps converge.
pub fn equalize(convs: &[ConvWeights]) -> Vec<ConvWeights> {
    let mut convs = convs.to_vec();
    for _ in 0..EQUALIZATION_SWEEPS {
        for k in 0..convs.len().saturating_sub(1) {
            let (head, tail) = convs.split_at_mut(k + 1);
            let (first, second) = (&mut head[k], &mut tail[0]);
            let per_out = first.in_channels * 9;
            for i in 0..first.out_channels {
                let r1 = first.weight[i * per_out..(i + 1) * per_out].iter().fold(0f32, |m, v| m.max(v.abs()));
                let r2 = (0..second.out_channels)
                    .flat_map(|o| second.weight[(o * second.in_channels + i) * 9..][..9].iter())
                    .fold(0f32, |m, v| m.max(v.abs()));
                if r1 <= 0.0 || r2 <= 0.0 {
                    continue; // a dead channel: nothing to balance
                }
                let s = (r1 / r2).sqrt();
                first.weight[i * per_out..(i + 1) * per_out].iter_mut().for_each(|v| *v /= s);
                first.bias[i] /= s;
                for o in 0..second.out_channels {
                    second.weight[(o * second.in_channels + i) * 9..][..9].iter_mut().for_each(|v| *v *= s);
                }
            }
        }
    }
    convs
}

const EQUALIZATION_SWEEPS: usize = 4;

/// The trunk's weights in int8 with the encodings `ranges` call for.
pub fn quantize(convs: &[ConvWeights], ranges: &Ranges) -> QuantizedTrunk {
    let input = QuantParams::covering(ranges.input.0, ranges.input.1);
    let mut previous = input;
    let convs = convs
        .iter()
        .zip(&ranges.activations)
        .map(|(w, &max)| {
            let q = quantize_conv(w, previous, QuantParams::covering(0.0, max));
            previous = q.output;
            q
        })
        .collect();
    QuantizedTrunk { input, convs }
}

fn quantize_conv(w: &ConvWeights, input: QuantParams, output: QuantParams) -> QuantizedConv {
    let largest = w.weight.iter().fold(0f32, |m, v| m.max(v.abs()));
    let weight_scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
    let weight = w.weight.iter().map(|v| (v / weight_scale).round().clamp(-127.0, 127.0) as i8).collect();
    let bias_scale = input.scale as f64 * weight_scale as f64;
    let bias = w.bias.iter().map(|&b| (b as f64 / bias_scale).round() as i32).collect();
    QuantizedConv { out_channels: w.out_channels, in_channels: w.in_channels, weight, weight_scale, bias, output }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::*;

    /// What a runtime does with an encoding (the product only writes encodings; tract applies them).
    impl QuantParams {
        fn quantize(&self, x: f32) -> u8 {
            (x / self.scale + self.zero_point as f32).round().clamp(0.0, 255.0) as u8
        }

        fn dequantize(&self, q: u8) -> f32 {
            self.scale * (q as f32 - self.zero_point as f32)
        }
    }

    #[test]
    fn encodings_cover_their_range_and_hold_zero_exactly() {
        let q = QuantParams::covering(-100.0, 155.0);
        assert_eq!(q.scale, 1.0);
        assert_eq!(q.zero_point, 100);
        assert_eq!(q.dequantize(q.quantize(0.0)), 0.0);
        assert_eq!(q.quantize(-1000.0), 0, "saturates");
        let relu = QuantParams::covering(0.0, 51.0);
        assert_eq!((relu.zero_point, relu.quantize(-3.0)), (0, 0), "negative ReLU inputs saturate to 0");
        assert!((relu.dequantize(relu.quantize(25.1)) - 25.1).abs() <= relu.scale / 2.0 + 1e-5);
    }

    #[test]
    fn equalization_keeps_the_function_and_evens_out_channel_ranges() {
        use crate::backbone::Vgg16Weights;
        let mut trunk = Vgg16Weights::random(3, 1.0 / 16.0, shared::Convention::Caffe).convs;
        // Make one channel of the first layer 50x larger than the rest, as trained layers often are.
        let per_out = trunk[0].in_channels * 9;
        trunk[0].weight[..per_out].iter_mut().for_each(|v| *v *= 50.0);
        trunk[0].bias[0] *= 50.0;
        let equalized = equalize(&trunk);
        let spread = |w: &ConvWeights| {
            let r: Vec<f32> = w.weight.chunks(w.in_channels * 9).map(|c| c.iter().fold(0f32, |m, v| m.max(v.abs()))).collect();
            r.iter().cloned().fold(0f32, f32::max) / r.iter().cloned().fold(f32::INFINITY, f32::min)
        };
        assert!(spread(&equalized[0]) < spread(&trunk[0]) / 5.0, "{} vs {}", spread(&equalized[0]), spread(&trunk[0]));

        // The same function: run both float trunks in tract on one image.
        let run = |convs: &[ConvWeights]| {
            let mut g = GraphBuilder::default();
            let (out, _) = graph::trunk_f32(&mut g, "x".into(), convs);
            let proto = g.finish(
                ("x", DataType::Float, &[Some(1), Some(3), Some(32), Some(32)]),
                &[(&out.features, DataType::Float, &[])],
                vec![],
                "",
            );
            let model =
                tract_onnx::onnx().model_for_read(&mut &prost::Message::encode_to_vec(&proto)[..]).unwrap().into_runnable().unwrap();
            let x =
                tract_ndarray::Array4::from_shape_fn((1, 3, 32, 32), |(_, c, y, x)| ((c * 7 + y * 3 + x) % 11) as f32 - 5.0).into_tensor();
            model.run(tvec!(x.into())).unwrap()[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect::<Vec<f32>>()
        };
        let (before, after) = (run(&trunk), run(&equalized));
        let scale = before.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = before.iter().zip(&after).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.0 && diff <= scale * 1e-4, "equalization changed the output by {diff} (of {scale})");
    }

    #[test]
    fn weights_and_biases_round_trip_within_half_a_step() {
        let w = ConvWeights {
            out_channels: 2,
            in_channels: 1,
            weight: (0..18).map(|i| (i as f32 - 9.0) * 0.01).collect(),
            bias: vec![0.5, -0.25],
        };
        let input = QuantParams { scale: 0.5, zero_point: 10 };
        let q = quantize_conv(&w, input, QuantParams::covering(0.0, 1.0));
        let s = q.weight_scale;
        assert_eq!(q.weight.iter().map(|v| v.unsigned_abs()).max(), Some(127), "the largest weight uses the full range");
        for (qv, v) in q.weight.iter().zip(&w.weight) {
            assert!((*qv as f32 * s - v).abs() <= s / 2.0 + 1e-7);
        }
        for (qb, b) in q.bias.iter().zip(&w.bias) {
            assert!((*qb as f32 * input.scale * s - b).abs() <= input.scale * s / 2.0 + 1e-6);
        }
    }
}
