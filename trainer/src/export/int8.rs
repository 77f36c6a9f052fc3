//! An int8 trunk as data: the encodings and weights that [`super::quantize`] computes and
//! [`super::graph`] writes as QLinearConv. Its own module so that the graph builder and the
//! quantizer (which builds graphs to calibrate) both depend on it, and not on each other.

/// A uint8 tensor's encoding: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: u8,
}

impl QuantParams {
    /// The encoding that covers `[min, max]`, widened to include 0 (exactly representable, as
    /// zero padding and ReLU need).
    pub fn covering(min: f32, max: f32) -> Self {
        let (min, max) = (min.min(0.0), max.max(0.0));
        let scale = if max > min { (max - min) / 255.0 } else { 1.0 };
        QuantParams { scale, zero_point: (-min / scale).round().clamp(0.0, 255.0) as u8 }
    }
}

/// One convolution ready for QLinearConv.
#[derive(Debug, Clone)]
pub struct QuantizedConv {
    pub out_channels: usize,
    pub in_channels: usize,
    /// `[out, in, 3, 3]`, symmetric: `real = weight_scale * q`.
    pub weight: Vec<i8>,
    pub weight_scale: f32,
    /// At scale `input.scale * weight_scale`.
    pub bias: Vec<i32>,
    /// Encoding of the (ReLU'd) output.
    pub output: QuantParams,
}

#[derive(Debug, Clone)]
pub struct QuantizedTrunk {
    /// Encoding of the normalized input image.
    pub input: QuantParams,
    pub convs: Vec<QuantizedConv>,
}
