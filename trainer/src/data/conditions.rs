//! The field-conditions suite: what a field camera does to a photo that a collection's photos
//! rarely show (a flower off centre or smaller in the frame, a tilted camera, dusk and sun,
//! white balance, focus, heavy JPEG, a 4:3 or 16:9 frame, a 640x480 sensor). Each condition is a
//! fixed, deterministic transform of the whole photo, applied before the model's own
//! preprocessing, so one accuracy per condition can be compared between models and runs.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};

use super::augment::{Fill, Warp};

/// One field condition. The names are the spellings in reports and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// The photo as it is: the reference the others are compared with.
    Original,
    /// Three quarters of each side, cut at one of the four corners (which one turns with the
    /// photo's index, so a suite sees all four).
    OffCentre,
    /// The scene shrunk to 60% of the frame, the rest mirrored around it: the subject smaller
    /// and farther away than in any training photo.
    Scale60,
    RotateLeft20,
    RotateRight20,
    /// Every channel x 1.4 (sun, over-exposure).
    Brighter,
    /// Every channel x 0.6 (dusk, shade).
    Darker,
    /// Half the contrast around the photo's mean (haze, a dirty lens).
    LowContrast,
    /// Red x 1.2, blue x 0.8 (tungsten, evening sun).
    Warm,
    /// Red x 0.8, blue x 1.2 (overcast, shade, a camera's wrong white balance).
    Cool,
    /// Gaussian blur of 1.5 pixels at the model's 224 input (out of focus, motion).
    Blur,
    /// Re-encoded as JPEG at quality 30 (a starved video link).
    Jpeg30,
    /// The largest centred 4:3 landscape frame (the edge's camera shape).
    Frame4x3,
    /// The largest centred 16:9 landscape frame.
    Frame16x9,
    /// A 4:3 frame scaled to 640x480, what a USB camera delivers.
    Camera640x480,
}

shared::named_enum!(Condition, "field condition", {
    Condition::Original => "original",
    Condition::OffCentre => "off-centre",
    Condition::Scale60 => "scale-0.6",
    Condition::RotateLeft20 => "rotate-20",
    Condition::RotateRight20 => "rotate+20",
    Condition::Brighter => "brighter",
    Condition::Darker => "darker",
    Condition::LowContrast => "low-contrast",
    Condition::Warm => "warm",
    Condition::Cool => "cool",
    Condition::Blur => "blur",
    Condition::Jpeg30 => "jpeg-30",
    Condition::Frame4x3 => "frame-4:3",
    Condition::Frame16x9 => "frame-16:9",
    Condition::Camera640x480 => "camera-640x480",
});

impl Condition {
    /// Every condition, the original first.
    pub const ALL: [Condition; 15] = [
        Condition::Original,
        Condition::OffCentre,
        Condition::Scale60,
        Condition::RotateLeft20,
        Condition::RotateRight20,
        Condition::Brighter,
        Condition::Darker,
        Condition::LowContrast,
        Condition::Warm,
        Condition::Cool,
        Condition::Blur,
        Condition::Jpeg30,
        Condition::Frame4x3,
        Condition::Frame16x9,
        Condition::Camera640x480,
    ];

    /// A text that changes whenever the transform would (feature-cache keys).
    pub fn fingerprint(self) -> String {
        format!("condition:{}:v1", self.name())
    }

    /// The photo under this condition. `index` is the photo's place in its suite (only
    /// [`Condition::OffCentre`] uses it, to choose the corner). Every condition but the original
    /// works on the photo brought down to [`WORKING_SIDE`] on its shorter side: a camera
    /// frame's detail, and bounded time for a 12-megapixel photo.
    pub fn apply(self, photo: &RgbImage, index: usize) -> RgbImage {
        let working = if self == Condition::Original { None } else { shrink_to(photo, WORKING_SIDE) };
        let photo = working.as_ref().unwrap_or(photo);
        let (w, h) = photo.dimensions();
        match self {
            Condition::Original => photo.clone(),
            Condition::OffCentre => {
                let (cw, ch) = ((w * 3 / 4).max(1), (h * 3 / 4).max(1));
                let (x, y) = match index % 4 {
                    0 => (0, 0),
                    1 => (w - cw, 0),
                    2 => (0, h - ch),
                    _ => (w - cw, h - ch),
                };
                imageops::crop_imm(photo, x, y, cw, ch).to_image()
            }
            Condition::Scale60 => Warp { zoom: [1.0 / 0.6, 1.0 / 0.6], fill: Fill::Mirror, ..Warp::IDENTITY }.apply(photo),
            Condition::RotateLeft20 => Warp { rotation_degrees: -20.0, fill: Fill::Mirror, ..Warp::IDENTITY }.apply(photo),
            Condition::RotateRight20 => Warp { rotation_degrees: 20.0, fill: Fill::Mirror, ..Warp::IDENTITY }.apply(photo),
            Condition::Brighter => scale_channels(photo, [1.4, 1.4, 1.4]),
            Condition::Darker => scale_channels(photo, [0.6, 0.6, 0.6]),
            Condition::LowContrast => low_contrast(photo, 0.5),
            Condition::Warm => scale_channels(photo, [1.2, 1.0, 0.8]),
            Condition::Cool => scale_channels(photo, [0.8, 1.0, 1.2]),
            Condition::Blur => imageops::blur(photo, 1.5 * w.min(h) as f32 / 224.0),
            Condition::Jpeg30 => jpeg_round_trip(photo, 30),
            Condition::Frame4x3 => centred_frame(photo, 4, 3),
            Condition::Frame16x9 => centred_frame(photo, 16, 9),
            Condition::Camera640x480 => imageops::resize(&centred_frame(photo, 4, 3), 640, 480, FilterType::Triangle),
        }
    }
}

/// The shorter side conditions work at (a 640x480 camera frame's).
pub const WORKING_SIDE: u32 = 480;

/// `photo` scaled down so its shorter side is `side`; `None` when it is no larger.
fn shrink_to(photo: &RgbImage, side: u32) -> Option<RgbImage> {
    let (w, h) = photo.dimensions();
    let short = w.min(h);
    if short <= side {
        return None;
    }
    let scale = side as f64 / short as f64;
    let (nw, nh) = (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1));
    Some(imageops::resize(photo, nw, nh, FilterType::Triangle))
}

fn scale_channels(photo: &RgbImage, gains: [f32; 3]) -> RgbImage {
    let mut out = photo.clone();
    for pixel in out.pixels_mut() {
        for (v, g) in pixel.0.iter_mut().zip(gains) {
            *v = (*v as f32 * g).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

fn low_contrast(photo: &RgbImage, factor: f32) -> RgbImage {
    let n = (photo.width() as f64 * photo.height() as f64).max(1.0);
    let mut mean = [0f64; 3];
    for pixel in photo.pixels() {
        for (m, v) in mean.iter_mut().zip(pixel.0) {
            *m += v as f64 / n;
        }
    }
    RgbImage::from_fn(photo.width(), photo.height(), |x, y| {
        let p = photo.get_pixel(x, y).0;
        Rgb(std::array::from_fn(|c| (mean[c] as f32 + (p[c] as f32 - mean[c] as f32) * factor).round().clamp(0.0, 255.0) as u8))
    })
}

fn jpeg_round_trip(photo: &RgbImage, quality: u8) -> RgbImage {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(Cursor::new(&mut bytes), quality)
        .encode_image(photo)
        .expect("encoding an RGB image to memory cannot fail");
    image::load_from_memory(&bytes).expect("a JPEG just encoded decodes").to_rgb8()
}

/// The largest centred crop of aspect `aw:ah`.
fn centred_frame(photo: &RgbImage, aw: u32, ah: u32) -> RgbImage {
    let (w, h) = photo.dimensions();
    let (cw, ch) = if w as u64 * ah as u64 > h as u64 * aw as u64 {
        ((h as u64 * aw as u64 / ah as u64) as u32, h)
    } else {
        (w, (w as u64 * ah as u64 / aw as u64) as u32)
    };
    let (cw, ch) = (cw.max(1), ch.max(1));
    imageops::crop_imm(photo, (w - cw) / 2, (h - ch) / 2, cw, ch).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 100]))
    }

    #[test]
    fn names_parse_back_and_are_unique() {
        let mut names: Vec<&str> = Condition::ALL.iter().map(|c| c.name()).collect();
        for c in Condition::ALL {
            assert_eq!(c.name().parse::<Condition>().unwrap(), c);
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Condition::ALL.len());
    }

    #[test]
    fn every_condition_changes_the_photo_except_the_original() {
        let p = photo(300, 300);
        assert_eq!(Condition::Original.apply(&p, 0), p);
        for c in Condition::ALL.into_iter().skip(1) {
            let out = c.apply(&p, 0);
            assert!(out.width() > 0 && out.height() > 0, "{c}");
            assert_ne!(out, p, "{c} left the photo as it was");
        }
    }

    #[test]
    fn large_photos_are_brought_down_to_the_working_side_first() {
        let big = photo(2000, 1200);
        assert_eq!(Condition::Original.apply(&big, 0).dimensions(), (2000, 1200), "the original is left alone");
        assert_eq!(Condition::Brighter.apply(&big, 0).dimensions(), (800, WORKING_SIDE));
        assert_eq!(Condition::OffCentre.apply(&big, 0).dimensions(), (600, 360));
        assert_eq!(Condition::Darker.apply(&photo(300, 200), 0).dimensions(), (300, 200), "small photos keep their size");
    }

    #[test]
    fn off_centre_cuts_three_quarters_at_each_corner() {
        let p = photo(400, 200);
        let corners: Vec<RgbImage> = (0..4).map(|i| Condition::OffCentre.apply(&p, i)).collect();
        for c in &corners {
            assert_eq!(c.dimensions(), (300, 150));
        }
        assert_eq!(corners[0].get_pixel(0, 0), p.get_pixel(0, 0));
        assert_eq!(corners[1].get_pixel(0, 0), p.get_pixel(100, 0));
        assert_eq!(corners[2].get_pixel(0, 0), p.get_pixel(0, 50));
        assert_eq!(corners[3].get_pixel(299, 149), p.get_pixel(399, 199));
    }

    #[test]
    fn frames_have_their_aspect_and_the_camera_its_size() {
        for (w, h) in [(500, 500), (500, 333), (333, 500), (1000, 300)] {
            let p = photo(w, h);
            let f43 = Condition::Frame4x3.apply(&p, 0);
            assert!((f43.width() as f32 / f43.height() as f32 - 4.0 / 3.0).abs() < 0.02, "{w}x{h}: {:?}", f43.dimensions());
            let f169 = Condition::Frame16x9.apply(&p, 0);
            assert!((f169.width() as f32 / f169.height() as f32 - 16.0 / 9.0).abs() < 0.02, "{w}x{h}: {:?}", f169.dimensions());
            assert!(f43.width() <= w && f43.height() <= h);
            assert_eq!(Condition::Camera640x480.apply(&p, 0).dimensions(), (640, 480));
        }
    }

    #[test]
    fn colour_conditions_move_the_channels_as_named() {
        let p = RgbImage::from_pixel(8, 8, Rgb([100, 100, 100]));
        assert_eq!(Condition::Brighter.apply(&p, 0).get_pixel(0, 0).0, [140, 140, 140]);
        assert_eq!(Condition::Darker.apply(&p, 0).get_pixel(0, 0).0, [60, 60, 60]);
        assert_eq!(Condition::Warm.apply(&p, 0).get_pixel(0, 0).0, [120, 100, 80]);
        assert_eq!(Condition::Cool.apply(&p, 0).get_pixel(0, 0).0, [80, 100, 120]);
        let two = RgbImage::from_fn(2, 1, |x, _| if x == 0 { Rgb([0, 0, 0]) } else { Rgb([200, 200, 200]) });
        let low = Condition::LowContrast.apply(&two, 0);
        assert_eq!(low.get_pixel(0, 0).0, [50, 50, 50]);
        assert_eq!(low.get_pixel(1, 0).0, [150, 150, 150]);
    }

    #[test]
    fn geometric_conditions_keep_the_size_and_the_centre() {
        // A photo with a distinct centre: rotation and zoom-out keep the centre pixel's colour.
        let p =
            RgbImage::from_fn(
                101,
                101,
                |x, y| if (45..=55).contains(&x) && (45..=55).contains(&y) { Rgb([250, 0, 0]) } else { Rgb([0, 0, 250]) },
            );
        for c in [Condition::Scale60, Condition::RotateLeft20, Condition::RotateRight20] {
            let out = c.apply(&p, 0);
            assert_eq!(out.dimensions(), (101, 101), "{c}");
            assert_eq!(out.get_pixel(50, 50).0, [250, 0, 0], "{c}");
        }
        // Zoomed out, the red square is smaller: fewer red pixels.
        let red = |im: &RgbImage| im.pixels().filter(|px| px.0[0] > 128).count();
        assert!(red(&Condition::Scale60.apply(&p, 0)) < red(&p) * 8 / 10);
    }

    #[test]
    fn blur_and_jpeg_smooth_detail() {
        let checker = RgbImage::from_fn(224, 224, |x, y| if (x + y) % 2 == 0 { Rgb([255, 255, 255]) } else { Rgb([0, 0, 0]) });
        let contrast = |im: &RgbImage| im.pixels().map(|p| (p.0[0] as i32 - 128).abs()).sum::<i32>();
        assert!(contrast(&Condition::Blur.apply(&checker, 0)) < contrast(&checker) / 4);
        assert!(contrast(&Condition::Jpeg30.apply(&checker, 0)) < contrast(&checker));
    }
}
