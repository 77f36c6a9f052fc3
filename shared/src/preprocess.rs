//! The single preprocessing definition: photo -> RGB -> resized square -> network tensor.
//!
//! The trainer builds its training tensors with [`Preprocessing::prepare`] and
//! [`Normalization::to_chw`]; the exporter bakes the same [`Normalization`] constants into the ONNX
//! graph, whose input is the RGB square that [`Preprocessing::prepare`] makes; the edge calls
//! [`Preprocessing::prepare`] on every frame. There is no second copy of any of this.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
use serde::{Deserialize, Serialize};

/// The resampling filter for every resize. Bilinear: cheap on a board, and as good as any
/// other for a network that was trained on the same filter.
pub const RESIZE_FILTER: FilterType = FilterType::Triangle;

/// How a photo of any shape becomes a square of `input_size` pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizePolicy {
    /// Scale each axis to the square, ignoring the aspect ratio (Keras `load_img(target_size)`).
    Stretch,
    /// Scale the shorter side to the square, then cut the centre (torchvision's eval recipe).
    CenterCrop,
}

crate::named_enum!(ResizePolicy, "resize policy", serde, {
    ResizePolicy::Stretch => "stretch",
    ResizePolicy::CenterCrop => "center-crop",
});

/// Why an image could not be turned into network input.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: cannot read: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("{path}: empty file")]
    Empty { path: PathBuf },
    #[error("{path}: not a readable image: {cause}")]
    Decode { path: PathBuf, cause: image::ImageError },
    #[error("{path}: image has no pixels ({width}x{height})")]
    NoPixels { path: PathBuf, width: u32, height: u32 },
    #[error("{path}: {width}x{height} is {megapixels:.1} megapixels, above the limit of {max_pixels} pixels (--max-pixels)", megapixels = *width as f64 * *height as f64 / 1e6)]
    TooLarge { path: PathBuf, width: u32, height: u32, max_pixels: u64 },
    #[error("{path}: {width}x{height} needs {} MB to decode, and {} MB of memory is free", needed >> 20, free >> 20)]
    NotEnoughMemory { path: PathBuf, width: u32, height: u32, needed: u64, free: u64 },
    #[error("{path}: truncated JPEG: no end-of-image marker after the image data (an interrupted copy or download?)")]
    Truncated { path: PathBuf },
    #[error("{path}: not a readable WebP: {reason}")]
    BadWebp { path: PathBuf, reason: String },
}

/// The default of [`set_max_pixels`]: 50 megapixels, above what phones and cameras save by
/// default (12-50); a phone's full-resolution 108 or 200 megapixel mode needs `--max-pixels`.
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

/// The most `--max-pixels` may be set to: a gigapixel (3 GB as RGB).
pub const LARGEST_MAX_PIXELS: u64 = 1_000_000_000;

static MAX_PIXELS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(DEFAULT_MAX_PIXELS);

/// The largest image (width x height) any decode accepts, checked from the header before a byte
/// of pixels is allocated: a 700-byte file may declare 20000x20000 and ask for gigabytes. Set once
/// by each program from its `--max-pixels`; one setting for every path that reads an image.
pub fn set_max_pixels(max_pixels: u64) {
    MAX_PIXELS.store(max_pixels, std::sync::atomic::Ordering::Relaxed);
}

pub fn max_pixels() -> u64 {
    MAX_PIXELS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A JPEG's image data ends with an end-of-image marker (FF D9) after its last start-of-scan
/// (FF DA). Inside scan data an FF byte is always followed by 00 or a restart marker, so a file
/// cut anywhere after its headers has no FF D9 after the last FF DA. (The decoder itself pads a
/// cut file with gray and reports no error.)
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let marker = |m: u8| bytes.windows(2).rposition(|w| w == [0xFF, m]);
    match (marker(0xDA), marker(0xD9)) {
        (Some(scan), Some(end)) => end > scan,
        (None, _) => true, // no scan at all: the decoder reports what is missing
        (Some(_), None) => false,
    }
}

/// Decodes an image file (any format the `image` crate reads, detected from content), applying
/// its EXIF orientation, so a portrait phone photo is upright as its owner saw it.
pub fn decode_file(path: &Path) -> Result<DynamicImage, ImageError> {
    decode_bytes(&read_image_file(path)?).map_err(|e| e.at(path))
}

/// An image file's bytes: a regular file no larger than the largest image [`max_pixels`] admits
/// could be (8 bytes a pixel, and room for metadata), refused before it is read.
pub fn read_image_file(path: &Path) -> Result<Vec<u8>, ImageError> {
    let limit = max_pixels().saturating_mul(8).saturating_add(64 << 20);
    crate::read::read_file(path, limit).map_err(|cause| ImageError::Read { path: path.into(), cause })
}

/// Decodes an in-memory image (a JPEG frame from a camera, say); errors name `<memory>`.
pub fn decode_bytes(bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    let path = PathBuf::from("<memory>");
    if bytes.is_empty() {
        return Err(ImageError::Empty { path });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|cause| ImageError::Decode { path: path.clone(), cause: image::ImageError::IoError(cause) })?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(ImageError::Truncated { path });
    }
    let max_pixels = max_pixels();
    if reader.format() == Some(image::ImageFormat::WebP) {
        crate::webp::check(bytes, max_pixels).map_err(|refusal| match refusal {
            crate::webp::Refusal::TooLarge { width, height } => ImageError::TooLarge { path: path.clone(), width, height, max_pixels },
            crate::webp::Refusal::Malformed(reason) => ImageError::BadWebp { path: path.clone(), reason },
        })?;
    }
    let decode = || -> Result<Result<DynamicImage, ImageError>, image::ImageError> {
        let mut limits = image::Limits::default();
        // Decoded pixels (up to 4 bytes each for RGBA) plus the decoder's own working room.
        limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(64 << 20));
        let mut reader = reader;
        reader.limits(limits);
        let mut decoder = reader.into_decoder()?;
        let (width, height) = decoder.dimensions();
        if width as u64 * height as u64 > max_pixels {
            return Ok(Err(ImageError::TooLarge { path: path.clone(), width, height, max_pixels }));
        }
        // The decoded pixels, a rotated copy (EXIF orientation) and the RGB copy: a failed
        // allocation would abort the process, so an image that cannot fit in the memory free,
        // less what the decodes running beside it hold, is refused here, as an error for it.
        let needed = decoder.total_bytes().saturating_mul(2).saturating_add(width as u64 * height as u64 * 3);
        let reservation = Reservation::new(needed);
        if let Some(free) = crate::runtime::memory::available().map(|free| free.saturating_sub(reservation.others))
            && needed > free
        {
            return Ok(Err(ImageError::NotEnoughMemory { path: path.clone(), width, height, needed, free }));
        }
        let orientation = decoder.orientation()?;
        let mut image = DynamicImage::from_decoder(decoder)?;
        image.apply_orientation(orientation);
        Ok(Ok(if image.color().has_alpha() { DynamicImage::ImageRgb8(over_white(&image)) } else { image }))
    };
    let image = decode().map_err(|cause| ImageError::Decode { path: path.clone(), cause })??;
    if image.width() == 0 || image.height() == 0 {
        return Err(ImageError::NoPixels { path, width: image.width(), height: image.height() });
    }
    Ok(image)
}

/// Bytes held by the decodes under way (the trainer decodes one photo per core).
static DECODING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One decode's share of [`DECODING`], from its check to its end.
struct Reservation {
    bytes: u64,
    /// What the other decodes held when this one began.
    others: u64,
}

impl Reservation {
    fn new(bytes: u64) -> Self {
        let others = DECODING.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        Self { bytes, others }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        DECODING.fetch_sub(self.bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An image with transparency as a viewer shows it, over white. The colour under a transparent
/// pixel is whatever the file kept there (black for most cut-outs, the original photo for some
/// editors): the model is to see what the person who chose the photo saw.
fn over_white(image: &DynamicImage) -> RgbImage {
    let rgba = image.as_rgba8().map_or_else(|| std::borrow::Cow::Owned(image.to_rgba8()), std::borrow::Cow::Borrowed);
    let blended = rgba.pixels().flat_map(|pixel| {
        let [r, g, b, a] = pixel.0.map(u32::from);
        [r, g, b].map(|c| ((c * a + 255 * (255 - a) + 127) / 255) as u8)
    });
    RgbImage::from_raw(rgba.width(), rgba.height(), blended.collect()).expect("3 values for each pixel")
}

impl ImageError {
    /// The same error naming `at` (a decode of bytes read from that file names `<memory>`).
    pub fn at(self, at: &Path) -> Self {
        let path = at.to_path_buf();
        match self {
            ImageError::Read { cause, .. } => ImageError::Read { path, cause },
            ImageError::Empty { .. } => ImageError::Empty { path },
            ImageError::Decode { cause, .. } => ImageError::Decode { path, cause },
            ImageError::NoPixels { width, height, .. } => ImageError::NoPixels { path, width, height },
            ImageError::TooLarge { width, height, max_pixels, .. } => ImageError::TooLarge { path, width, height, max_pixels },
            ImageError::NotEnoughMemory { width, height, needed, free, .. } => {
                ImageError::NotEnoughMemory { path, width, height, needed, free }
            }
            ImageError::Truncated { .. } => ImageError::Truncated { path },
            ImageError::BadWebp { reason, .. } => ImageError::BadWebp { path, reason },
        }
    }

    /// What went wrong, without the file's name: for a report that names the file once.
    pub fn reason(&self) -> String {
        let text = self.to_string();
        let path = match self {
            ImageError::Read { path, .. }
            | ImageError::Empty { path }
            | ImageError::Decode { path, .. }
            | ImageError::NoPixels { path, .. }
            | ImageError::TooLarge { path, .. }
            | ImageError::NotEnoughMemory { path, .. }
            | ImageError::Truncated { path }
            | ImageError::BadWebp { path, .. } => path,
        };
        text.strip_prefix(&format!("{}: ", path.display())).unwrap_or(&text).to_string()
    }
}

/// The longest side [`ResizePolicy::CenterCrop`] scales, in multiples of the shorter one.
const MAX_CROP_ASPECT: u32 = 4;

/// The largest input side a bundle or `--input-size` may ask for: VGG16 at 1024 px is 21 times
/// the work of 224 px already, and a larger side only serves to exhaust a board's memory.
pub const MAX_INPUT_SIZE: u32 = 1024;

/// Geometry: how any photo becomes the `input_size` x `input_size` RGB square the model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preprocessing {
    pub input_size: u32,
    pub resize: ResizePolicy,
}

impl Preprocessing {
    /// VGG16's trunk halves the image five times (rounding down), leaving `side / 32` feature
    /// cells per axis; sides that are multiples of 16 (112, 160, 224...) keep that predictable.
    pub fn new(input_size: u32, resize: ResizePolicy) -> Result<Self, String> {
        if !(32..=MAX_INPUT_SIZE).contains(&input_size) || !input_size.is_multiple_of(16) {
            return Err(format!("input size {input_size} must be a multiple of 16 from 32 to {MAX_INPUT_SIZE} (e.g. 112, 160, 224)"));
        }
        Ok(Self { input_size, resize })
    }

    /// The square RGB image the exported model takes as input.
    pub fn prepare(&self, image: &DynamicImage) -> RgbImage {
        match image {
            DynamicImage::ImageRgb8(rgb) => self.prepare_rgb(rgb),
            other => self.prepare_rgb(&other.to_rgb8()),
        }
    }

    pub fn prepare_rgb(&self, rgb: &RgbImage) -> RgbImage {
        let s = self.input_size;
        if rgb.dimensions() == (s, s) {
            return rgb.clone();
        }
        match self.resize {
            ResizePolicy::Stretch => imageops::resize(rgb, s, s, RESIZE_FILTER),
            ResizePolicy::CenterCrop => {
                // A strip such as 1 x 65535 would be scaled to 224 x 14.7 million pixels (10 GB)
                // before the crop. Its ends beyond MAX_CROP_ASPECT never reach the square, so they
                // are cut first: a photo up to 4:1 prepares exactly as before, a wider one gives
                // the same centre square up to the resize's rounding.
                let (w, h) = rgb.dimensions();
                let kept = w.max(h).min(w.min(h).saturating_mul(MAX_CROP_ASPECT));
                if kept < w.max(h) {
                    let (cw, ch) = if w > h { (kept, h) } else { (w, kept) };
                    return self.prepare_rgb(&imageops::crop_imm(rgb, (w - cw) / 2, (h - ch) / 2, cw, ch).to_image());
                }
                let scale = s as f64 / w.min(h) as f64;
                let (sw, sh) = (((w as f64 * scale).round() as u32).max(s), ((h as f64 * scale).round() as u32).max(s));
                let scaled = imageops::resize(rgb, sw, sh, RESIZE_FILTER);
                imageops::crop_imm(&scaled, (sw - s) / 2, (sh - s) / 2, s, s).to_image()
            }
        }
    }

    /// Decode a file and prepare it.
    pub fn load(&self, path: &Path) -> Result<RgbImage, ImageError> {
        Ok(self.prepare(&decode_file(path)?))
    }

    /// A stable text that changes whenever the prepared pixels would (feature-cache keys).
    pub fn fingerprint(&self) -> String {
        format!("size={};resize={};filter=triangle;exif=applied;alpha=white;v1", self.input_size, self.resize)
    }
}

/// The input convention of an ImageNet backbone: which channel order and scaling its weights
/// were trained with. Using the wrong one costs accuracy silently, so it travels in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// Keras "caffe": BGR, 0-255, minus the ImageNet mean per channel, no scaling.
    Caffe,
    /// torchvision: RGB, scaled to 0-1, minus mean, divided by std.
    Torchvision,
}

crate::named_enum!(Convention, "input convention", serde, {
    Convention::Caffe => "caffe",
    Convention::Torchvision => "torchvision",
});

impl Convention {
    /// The per-channel arithmetic, expressed on the 0-255 scale of the RGB square.
    pub fn normalization(self) -> Normalization {
        match self {
            Convention::Caffe => Normalization { source_channels: [2, 1, 0], mean: [103.939, 116.779, 123.68], std: [1.0, 1.0, 1.0] },
            Convention::Torchvision => Normalization {
                source_channels: [0, 1, 2],
                mean: [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0],
                std: [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0],
            },
        }
    }
}

/// Network channel `c` = (RGB channel `source_channels[c]` - `mean[c]`) / `std[c]`, on 0-255.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub source_channels: [usize; 3],
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// The tensor the network sees for one image: channels-first f32, `3 * h * w` values.
    /// The exported graph computes exactly this, in this order of operations, from the RGB bytes.
    pub fn to_chw(&self, rgb: &RgbImage) -> Vec<f32> {
        let (w, h) = rgb.dimensions();
        let plane = (w * h) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, pixel) in rgb.pixels().enumerate() {
            for c in 0..3 {
                let x = pixel.0[self.source_channels[c]] as f32;
                out[c * plane + i] = (x - self.mean[c]) / self.std[c];
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn a_reason_is_the_error_without_its_file_name() {
        let e = ImageError::Empty { path: "a: b/c.jpg".into() };
        assert_eq!((e.to_string().as_str(), e.reason().as_str()), ("a: b/c.jpg: empty file", "empty file"));
        let e = decode_file(Path::new("/nonexistent/x.jpg")).unwrap_err();
        assert!(e.reason().starts_with("cannot read: "), "{e}");
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 77]))
    }

    #[test]
    fn input_size_must_be_a_multiple_of_16() {
        assert!(Preprocessing::new(224, ResizePolicy::Stretch).is_ok());
        assert!(Preprocessing::new(112, ResizePolicy::Stretch).is_ok());
        assert!(Preprocessing::new(100, ResizePolicy::Stretch).is_err());
        assert!(Preprocessing::new(16, ResizePolicy::Stretch).is_err());
        assert!(Preprocessing::new(0, ResizePolicy::Stretch).is_err());
        assert!(Preprocessing::new(MAX_INPUT_SIZE, ResizePolicy::Stretch).is_ok());
        assert!(Preprocessing::new(MAX_INPUT_SIZE + 16, ResizePolicy::Stretch).is_err());
        assert!(Preprocessing::new(99_984, ResizePolicy::Stretch).is_err());
    }

    /// A strip of 1 x 65535 pixels would be scaled to 224 x 14.7 million before the crop (10 GB);
    /// its far ends are cut first. Up to 4:1 nothing changes: the crop-first result of a 4:1 image
    /// equals the plain one, since nothing is cut.
    #[test]
    fn center_crop_of_an_extreme_strip_stays_small() {
        let p = Preprocessing::new(224, ResizePolicy::CenterCrop).unwrap();
        for (w, h) in [(1, 65535), (65535, 1), (3, 20000)] {
            assert_eq!(p.prepare_rgb(&gradient(w, h)).dimensions(), (224, 224), "{w}x{h}");
        }
        // The middle survives: a strip red at its ends and green in its middle fifth.
        let strip = RgbImage::from_fn(4000, 100, |x, _| if (1800..2200).contains(&x) { Rgb([0, 255, 0]) } else { Rgb([255, 0, 0]) });
        let square = Preprocessing::new(32, ResizePolicy::CenterCrop).unwrap().prepare_rgb(&strip);
        assert_eq!(square.get_pixel(16, 16).0, [0, 255, 0]);
        assert_eq!(square.get_pixel(0, 16).0, [0, 255, 0], "4000x100 keeps its middle 400x100; the square is its centre 100x100");
    }

    #[test]
    fn both_policies_give_the_square() {
        for policy in [ResizePolicy::Stretch, ResizePolicy::CenterCrop] {
            let p = Preprocessing::new(64, policy).unwrap();
            for (w, h) in [(500, 375), (375, 500), (64, 64), (33, 200)] {
                assert_eq!(p.prepare_rgb(&gradient(w, h)).dimensions(), (64, 64), "{policy} {w}x{h}");
            }
        }
    }

    #[test]
    fn center_crop_keeps_the_middle_and_stretch_keeps_the_edges() {
        // A wide image whose left and right thirds are red and the middle green.
        let img = RgbImage::from_fn(300, 100, |x, _| if (100..200).contains(&x) { Rgb([0, 255, 0]) } else { Rgb([255, 0, 0]) });
        let crop = Preprocessing::new(32, ResizePolicy::CenterCrop).unwrap().prepare_rgb(&img);
        // Away from the blended boundary column: crop pixel 4 is source x ~ 112 (green).
        assert_eq!(crop.get_pixel(4, 16).0, [0, 255, 0]);
        let stretch = Preprocessing::new(32, ResizePolicy::Stretch).unwrap().prepare_rgb(&img);
        assert_eq!(stretch.get_pixel(0, 16).0, [255, 0, 0]);
    }

    #[test]
    fn caffe_is_bgr_minus_mean() {
        let img = RgbImage::from_pixel(2, 1, Rgb([10, 20, 30]));
        let t = Convention::Caffe.normalization().to_chw(&img);
        assert_eq!(t.len(), 6);
        assert_eq!(t[0], 30.0 - 103.939); // blue plane first
        assert_eq!(t[2], 20.0 - 116.779);
        assert_eq!(t[4], 10.0 - 123.68);
    }

    #[test]
    fn torchvision_is_rgb_scaled() {
        let img = RgbImage::from_pixel(1, 1, Rgb([255, 0, 128]));
        let t = Convention::Torchvision.normalization().to_chw(&img);
        assert!((t[0] - (1.0 - 0.485) / 0.229).abs() < 1e-5);
        assert!((t[1] - (0.0 - 0.456) / 0.224).abs() < 1e-5);
    }

    #[test]
    fn decode_errors_say_what_is_wrong() {
        assert!(matches!(decode_bytes(b""), Err(ImageError::Empty { .. })));
        let err = decode_bytes(b"this is not an image").unwrap_err();
        assert!(matches!(err, ImageError::Decode { .. }), "{err}");
        let err = decode_file(Path::new("/no/such/file.jpg")).unwrap_err();
        assert!(err.to_string().contains("/no/such/file.jpg"), "{err}");
    }

    fn jpeg_of(img: &RgbImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Jpeg).unwrap();
        bytes
    }

    #[test]
    fn a_cut_jpeg_is_an_error_not_a_gray_padded_image() {
        let bytes = jpeg_of(&gradient(120, 90));
        assert!(decode_bytes(&bytes).is_ok());
        for cut in [bytes.len() - 2, bytes.len() * 2 / 3, bytes.len() / 2] {
            let err = decode_bytes(&bytes[..cut]).unwrap_err();
            assert!(matches!(err, ImageError::Truncated { .. }) || matches!(err, ImageError::Decode { .. }), "cut at {cut}: {err}");
        }
        assert!(matches!(decode_bytes(&bytes[..bytes.len() - 2]), Err(ImageError::Truncated { .. })));
        // Trailing bytes after the end marker (some cameras add them) are fine.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0u8; 16]);
        assert!(decode_bytes(&padded).is_ok());
    }

    #[test]
    fn an_image_above_the_pixel_limit_is_refused_from_its_header() {
        // A PNG header declaring 40000 x 40000: refused before any pixel is allocated.
        let small = {
            let mut b = Vec::new();
            gradient(4, 4).write_to(&mut Cursor::new(&mut b), image::ImageFormat::Png).unwrap();
            b
        };
        let mut huge = small.clone();
        // IHDR's width and height sit at bytes 16..24 (after the 8-byte signature, length, "IHDR").
        huge[16..20].copy_from_slice(&40000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&40000u32.to_be_bytes());
        // The chunk's CRC-32 covers its type and data (bytes 12..29).
        let crc = !huge[12..29]
            .iter()
            .fold(!0u32, |crc, &byte| (0..8).fold(crc ^ byte as u32, |c, _| if c & 1 == 1 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 }));
        huge[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = decode_bytes(&huge).unwrap_err();
        assert!(matches!(err, ImageError::TooLarge { width: 40000, height: 40000, .. }), "{err}");
        assert!(err.to_string().contains("1600.0 megapixels"), "{err}");
        assert!(decode_bytes(&small).is_ok());
    }

    #[test]
    fn decodes_a_png_round_trip() {
        let img = gradient(40, 30);
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
        let back = decode_bytes(&bytes).unwrap().to_rgb8();
        assert_eq!(back, img);
    }

    /// WebP, what many web pages serve photos as: decoded whole, a cut file is an error, and a
    /// header declaring 16384 x 16384 pixels is refused before any is decoded.
    #[test]
    fn decodes_a_webp_and_refuses_a_cut_or_huge_one() {
        let img = gradient(40, 30);
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::WebP).unwrap();
        assert_eq!(&bytes[8..16], b"WEBPVP8L", "a lossless WebP");
        assert_eq!(decode_bytes(&bytes).unwrap().to_rgb8(), img);
        for cut in [bytes.len() - 1, bytes.len() / 2, 24] {
            let err = decode_bytes(&bytes[..cut]).unwrap_err();
            assert!(matches!(err, ImageError::BadWebp { .. } | ImageError::Decode { .. }), "cut at {cut}: {err}");
        }
        // VP8L's header after its 0x2f signature: width - 1 and height - 1 in 14 bits each.
        let mut huge = bytes.clone();
        let side = 16384u32;
        let dims = (side - 1) | ((side - 1) << 14) | (u32::from_le_bytes(huge[21..25].try_into().unwrap()) & !((1 << 28) - 1));
        huge[21..25].copy_from_slice(&dims.to_le_bytes());
        let err = decode_bytes(&huge).unwrap_err();
        assert!(matches!(err, ImageError::TooLarge { width: 16384, height: 16384, .. }), "{err}");
        // What the container check refuses reaches the user named (more in `crate::webp`).
        let err = decode_bytes(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(err.to_string().contains("not a readable WebP: ") && err.to_string().contains("cut short"), "{err}");
    }

    /// A cut-out with transparency reaches the model as a viewer shows it, over white, whatever
    /// colour the file kept under its transparent pixels; opaque pixels are untouched.
    #[test]
    fn transparent_pixels_are_white() {
        let mut cut_out = image::RgbaImage::from_pixel(4, 2, image::Rgba([0, 0, 0, 0]));
        cut_out.put_pixel(1, 0, image::Rgba([250, 200, 10, 255]));
        cut_out.put_pixel(2, 0, image::Rgba([10, 20, 30, 0]));
        cut_out.put_pixel(3, 0, image::Rgba([0, 100, 200, 128]));
        let mut png = Vec::new();
        DynamicImage::ImageRgba8(cut_out).write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let decoded = decode_bytes(&png).unwrap();
        let DynamicImage::ImageRgb8(rgb) = &decoded else { panic!("{:?}", decoded.color()) };
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255], "transparent black");
        assert_eq!(rgb.get_pixel(1, 0).0, [250, 200, 10], "opaque");
        assert_eq!(rgb.get_pixel(2, 0).0, [255, 255, 255], "transparent, another colour kept under it");
        assert_eq!(rgb.get_pixel(3, 0).0, [127, 177, 227], "half: halfway to white");
        // 16 bits a channel with alpha too.
        let deep = image::ImageBuffer::<image::Rgba<u16>, _>::from_pixel(2, 2, image::Rgba([0, 0, 0, 0]));
        let mut png = Vec::new();
        DynamicImage::ImageRgba16(deep).write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        assert_eq!(decode_bytes(&png).unwrap().to_rgb8().get_pixel(1, 1).0, [255, 255, 255]);
    }

    #[test]
    fn conventions_parse_and_print() {
        for c in [Convention::Caffe, Convention::Torchvision] {
            assert_eq!(c.name().parse::<Convention>().unwrap(), c);
        }
        assert!("keras".parse::<Convention>().is_err());
    }
}
