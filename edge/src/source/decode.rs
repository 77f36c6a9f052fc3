//! Camera buffers (MJPEG, YUYV, ...) to RGB, through nokhwa's decoders. Kept apart from the
//! capture so it can be tested with recorded buffers: no camera exists on CI machines.

use image::RgbImage;
use nokhwa::Buffer;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{FrameFormat, Resolution};

/// Decodes one captured buffer to an RGB image.
pub fn to_rgb(buffer: &Buffer) -> anyhow::Result<RgbImage> {
    let decoded =
        buffer.decode_image::<RgbFormat>().map_err(|e| anyhow::anyhow!("cannot decode {} frame: {e}", buffer.source_frame_format()))?;
    let (w, h) = decoded.dimensions();
    // nokhwa uses an older `image`; the pixels are the same row-major RGB bytes.
    RgbImage::from_raw(w, h, decoded.into_raw()).ok_or_else(|| anyhow::anyhow!("decoded frame has the wrong size"))
}

/// Parses `--camera-format`.
pub fn frame_format(name: &str) -> anyhow::Result<FrameFormat> {
    match name.to_ascii_lowercase().as_str() {
        "mjpeg" | "mjpg" => Ok(FrameFormat::MJPEG),
        "yuyv" | "yuy2" => Ok(FrameFormat::YUYV),
        "nv12" => Ok(FrameFormat::NV12),
        "gray" => Ok(FrameFormat::GRAY),
        other => anyhow::bail!("unknown camera format '{other}' (expected mjpeg, yuyv, nv12 or gray)"),
    }
}

/// Wraps raw bytes as nokhwa would hand them over from the camera.
pub fn buffer(width: u32, height: u32, bytes: &[u8], format: FrameFormat) -> Buffer {
    Buffer::new(Resolution::new(width, height), bytes, format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn picture() -> RgbImage {
        RgbImage::from_fn(64, 48, |x, y| {
            if x < 32 {
                Rgb([220, 40, 30])
            } else if y < 24 {
                Rgb([30, 200, 40])
            } else {
                Rgb([20, 40, 210])
            }
        })
    }

    fn close(a: &RgbImage, b: &RgbImage, tolerance: i32) -> bool {
        a.pixels().zip(b.pixels()).all(|(p, q)| p.0.iter().zip(q.0).all(|(x, y)| (*x as i32 - y as i32).abs() <= tolerance))
    }

    #[test]
    fn decodes_a_recorded_mjpeg_frame() {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&picture()).unwrap();
        let rgb = to_rgb(&buffer(64, 48, &jpeg, FrameFormat::MJPEG)).unwrap();
        assert_eq!(rgb.dimensions(), (64, 48));
        // Away from the colour edges, JPEG at quality 95 is within a few levels.
        assert!(close(
            &image::imageops::crop_imm(&rgb, 4, 4, 20, 16).to_image(),
            &image::imageops::crop_imm(&picture(), 4, 4, 20, 16).to_image(),
            12
        ));
    }

    #[test]
    fn decodes_a_recorded_yuyv_frame() {
        // BT.601 full-range YUYV, as a webcam sends it: Y0 U Y1 V per two pixels.
        let img = picture();
        let mut yuyv = Vec::new();
        for y in 0..48 {
            for x in (0..64).step_by(2) {
                let yuv = |p: Rgb<u8>| {
                    let (r, g, b) = (p.0[0] as f32, p.0[1] as f32, p.0[2] as f32);
                    (0.299 * r + 0.587 * g + 0.114 * b, -0.169 * r - 0.331 * g + 0.5 * b + 128.0, 0.5 * r - 0.419 * g - 0.081 * b + 128.0)
                };
                let (y0, u, v) = yuv(*img.get_pixel(x, y));
                let (y1, _, _) = yuv(*img.get_pixel(x + 1, y));
                yuyv.extend([y0, u, y1, v].map(|c| c.round().clamp(0.0, 255.0) as u8));
            }
        }
        let rgb = to_rgb(&buffer(64, 48, &yuyv, FrameFormat::YUYV)).unwrap();
        assert_eq!(rgb.dimensions(), (64, 48));
        assert!(close(&rgb, &img, 24), "YUYV decode drifted too far from the source colours");
    }

    #[test]
    fn a_corrupt_mjpeg_frame_is_an_error_not_a_panic() {
        assert!(to_rgb(&buffer(64, 48, b"\xFF\xD8 broken", FrameFormat::MJPEG)).is_err());
    }
}
