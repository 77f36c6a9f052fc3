//! Random views of a training photo, applied to the prepared RGB square, as Keras applies its
//! ImageDataGenerator to the loaded target-size image. Two policies (`--augmentation`):
//! - `keras`, the original recipe: horizontal flip, zoom 0.3 in and out per axis, width/height
//!   shift 0.3, rotation 30 degrees, "nearest" fill (edge pixels extend outward);
//! - `field`, what a field camera's framing does: the subject smaller (one zoom factor for both
//!   axes, outward only, so it keeps its shape and is never cut), off centre, tilted, mirrored;
//!   the surround is the photo mirrored at its edges (texture goes on, no streaks).

use image::{Rgb, RgbImage};
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augmentation {
    pub horizontal_flip: bool,
    /// Each axis is scaled by a factor drawn from [1 - zoom, 1 + zoom]; with `smaller_subject`,
    /// both by one factor from [1, 1 + zoom].
    pub zoom: f32,
    /// Shift of up to this fraction of the side, per axis.
    pub shift: f32,
    pub rotation_degrees: f32,
    /// The `field` policy: zoom outward only, one factor for both axes, mirrored surround.
    #[serde(default)]
    pub smaller_subject: bool,
}

/// Which views `--aug-views` draws (the module's doc says what each does; the command line
/// sets the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AugmentationPolicy {
    Keras,
    Field,
}

shared::named_enum!(AugmentationPolicy, "augmentation", {
    AugmentationPolicy::Keras => "keras",
    AugmentationPolicy::Field => "field",
});

impl AugmentationPolicy {
    pub fn settings(self) -> Augmentation {
        match self {
            AugmentationPolicy::Keras => Augmentation::default(),
            // The subject at 59-100% of the frame (the field-conditions suite's scale-0.6 is
            // 60%), up to 15% off centre, tilted up to 20 degrees either way.
            AugmentationPolicy::Field => {
                Augmentation { horizontal_flip: true, zoom: 0.7, shift: 0.15, rotation_degrees: 20.0, smaller_subject: true }
            }
        }
    }
}

/// The `keras` policy's settings.
impl Default for Augmentation {
    fn default() -> Self {
        Self { horizontal_flip: true, zoom: 0.3, shift: 0.3, rotation_degrees: 30.0, smaller_subject: false }
    }
}

impl Augmentation {
    /// One random view of `image`. Bilinear sampling; outside the source the nearest edge pixel
    /// (`keras`) or the mirrored photo (`field`).
    pub fn apply(&self, image: &RgbImage, rng: &mut impl Rng) -> RgbImage {
        let (w, h) = image.dimensions();
        let flip = self.horizontal_flip && rng.random_bool(0.5);
        let (zoom, fill) = if self.smaller_subject {
            let factor = 1.0 + rng.random_range(0.0..=self.zoom);
            ([factor, factor], Fill::Mirror)
        } else {
            ([1.0 + rng.random_range(-self.zoom..=self.zoom), 1.0 + rng.random_range(-self.zoom..=self.zoom)], Fill::Nearest)
        };
        let warp = Warp {
            flip,
            zoom,
            shift: [rng.random_range(-self.shift..=self.shift) * w as f32, rng.random_range(-self.shift..=self.shift) * h as f32],
            rotation_degrees: rng.random_range(-self.rotation_degrees..=self.rotation_degrees),
            fill,
        };
        warp.apply(image)
    }
}

/// What a warp shows where it samples outside the source image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The nearest edge pixel, extended outward (Keras's "nearest").
    Nearest,
    /// The image mirrored at its edges (Keras's "reflect"): texture goes on, no streaks.
    Mirror,
}

/// One affine view of an image of the same size: rotate about the centre, scale each axis by
/// `zoom` (above 1 shows more of the scene, smaller), shift by `shift` pixels, then mirror if
/// `flip`. Bilinear sampling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warp {
    pub flip: bool,
    pub zoom: [f32; 2],
    pub shift: [f32; 2],
    pub rotation_degrees: f32,
    pub fill: Fill,
}

impl Warp {
    pub const IDENTITY: Warp = Warp { flip: false, zoom: [1.0, 1.0], shift: [0.0, 0.0], rotation_degrees: 0.0, fill: Fill::Nearest };

    pub fn apply(&self, image: &RgbImage) -> RgbImage {
        let (w, h) = image.dimensions();
        let (sin, cos) = self.rotation_degrees.to_radians().sin_cos();
        let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        RgbImage::from_fn(w, h, |x, y| {
            // Inverse map: output pixel -> source position (rotate, zoom, then shift).
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let sx = (cos * dx - sin * dy) * self.zoom[0] + cx + self.shift[0];
            let sy = (sin * dx + cos * dy) * self.zoom[1] + cy + self.shift[1];
            let sx = if self.flip { w as f32 - 1.0 - sx } else { sx };
            let (sx, sy) = match self.fill {
                Fill::Nearest => (sx, sy),
                Fill::Mirror => (mirror(sx, w), mirror(sy, h)),
            };
            sample_bilinear_clamped(image, sx, sy)
        })
    }
}

/// `v` reflected into [0, size - 1] (repeatedly, for positions far outside).
fn mirror(v: f32, size: u32) -> f32 {
    let last = (size - 1) as f32;
    if last <= 0.0 {
        return 0.0;
    }
    let period = 2.0 * last;
    let m = v.rem_euclid(period);
    if m > last { period - m } else { m }
}

fn sample_bilinear_clamped(image: &RgbImage, x: f32, y: f32) -> Rgb<u8> {
    let (w, h) = image.dimensions();
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |xx, yy| image.get_pixel(xx, yy).0;
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    let mut out = [0u8; 3];
    for ch in 0..3 {
        let top = a[ch] as f32 * (1.0 - fx) + b[ch] as f32 * fx;
        let bottom = c[ch] as f32 * (1.0 - fx) + d[ch] as f32 * fx;
        out[ch] = (top * (1.0 - fy) + bottom * fy).round() as u8;
    }
    Rgb(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn picture() -> RgbImage {
        RgbImage::from_fn(32, 32, |x, y| Rgb([(x * 8) as u8, (y * 8) as u8, 100]))
    }

    #[test]
    fn identity_settings_keep_the_image() {
        let none = Augmentation { horizontal_flip: false, zoom: 0.0, shift: 0.0, rotation_degrees: 0.0, smaller_subject: false };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(none.apply(&picture(), &mut rng), picture());
    }

    #[test]
    fn seeded_and_varied() {
        let aug = Augmentation::default();
        let a = aug.apply(&picture(), &mut ChaCha8Rng::seed_from_u64(1));
        let b = aug.apply(&picture(), &mut ChaCha8Rng::seed_from_u64(1));
        let c = aug.apply(&picture(), &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.dimensions(), (32, 32));
    }

    #[test]
    fn flip_only_mirrors() {
        let flip = Augmentation { horizontal_flip: true, zoom: 0.0, shift: 0.0, rotation_degrees: 0.0, smaller_subject: false };
        let img = picture();
        // Across seeds, every output is either the image or its mirror, and both occur.
        let mut seen = (false, false);
        for seed in 0..16 {
            let out = flip.apply(&img, &mut ChaCha8Rng::seed_from_u64(seed));
            if out == img {
                seen.0 = true;
            } else {
                assert_eq!(out, image::imageops::flip_horizontal(&img));
                seen.1 = true;
            }
        }
        assert_eq!(seen, (true, true));
    }

    #[test]
    fn field_views_shrink_the_subject_and_keep_its_shape() {
        // A bright square in the middle of a dark picture: under `field` views (no shift, tilt
        // or flip) it never grows, shrinks by up to 1 / 1.7, and stays square.
        let square =
            RgbImage::from_fn(64, 64, |x, y| if (16..48).contains(&x) && (16..48).contains(&y) { Rgb([255; 3]) } else { Rgb([0; 3]) });
        let field = Augmentation { shift: 0.0, rotation_degrees: 0.0, horizontal_flip: false, ..AugmentationPolicy::Field.settings() };
        let mut smallest = 32;
        for seed in 0..24 {
            let view = field.apply(&square, &mut ChaCha8Rng::seed_from_u64(seed));
            let bright_in = |row: u32| (0..64).filter(|&x| view.get_pixel(x, row).0[0] > 128).count() as u32;
            let bright_down = |col: u32| (0..64).filter(|&y| view.get_pixel(col, y).0[0] > 128).count() as u32;
            let (across, down) = (bright_in(32), bright_down(32));
            assert!((32 * 10 / 17 - 1..=33).contains(&across), "seed {seed}: {across} px across");
            assert!(across.abs_diff(down) <= 1, "seed {seed}: one zoom for both axes ({across} x {down})");
            smallest = smallest.min(across);
        }
        assert!(smallest < 24, "the subject does get smaller ({smallest} px)");
        assert_eq!("field".parse::<AugmentationPolicy>().unwrap().settings(), AugmentationPolicy::Field.settings());
        assert!("zoom".parse::<AugmentationPolicy>().unwrap_err().contains("keras or field"));
    }

    #[test]
    fn the_identity_warp_keeps_the_image_and_mirror_fill_reflects() {
        assert_eq!(Warp::IDENTITY.apply(&picture()), picture());
        // Shifted by a whole image width with mirror fill: the mirror image.
        let shifted = Warp { shift: [31.0, 0.0], fill: Fill::Mirror, ..Warp::IDENTITY }.apply(&picture());
        assert_eq!(shifted, image::imageops::flip_horizontal(&picture()));
        assert_eq!(mirror(-1.0, 10), 1.0);
        assert_eq!(mirror(10.0, 10), 8.0);
        assert_eq!(mirror(4.5, 10), 4.5);
    }
}
