//! Groups photos that are the same picture (re-encoded, resized, lightly cropped) so that a
//! group never straddles the train/validation boundary: leakage would inflate accuracy.

use image_hasher::ImageHash;

/// Largest pHash Hamming distance (of 64 bits) treated as "the same photo". Unrelated photos
/// sit around 32; re-encodes and resizes at 0-4; light crops up to ~10.
pub const DEFAULT_MAX_DISTANCE: u32 = 10;

/// Returns a group id per hash; equal ids are near-duplicates (transitively).
pub fn group(hashes: &[&ImageHash], max_distance: u32) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..hashes.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..hashes.len() {
        for j in i + 1..hashes.len() {
            if hashes[i].dist(hashes[j]) <= max_distance {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    (0..hashes.len()).map(|i| find(&mut parent, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::scan::perceptual_hasher;
    use image::{DynamicImage, Rgb, RgbImage, imageops};

    fn photo(seed: u32) -> RgbImage {
        RgbImage::from_fn(200, 150, |x, y| {
            let v = (x * (3 + seed) + y * (7 + 2 * seed) + (x * y * seed) / 50) % 256;
            Rgb([v as u8, ((v * seed) % 256) as u8, (255 - v) as u8])
        })
    }

    fn jpeg_round_trip(img: &RgbImage, quality: u8) -> RgbImage {
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(img).unwrap();
        image::load_from_memory(&bytes).unwrap().to_rgb8()
    }

    #[test]
    fn groups_re_encoded_and_resized_copies_but_not_different_photos() {
        let hasher = perceptual_hasher();
        let a = photo(1);
        let b = photo(5);
        let variants = [
            a.clone(),
            jpeg_round_trip(&a, 60),
            imageops::resize(&a, 120, 90, imageops::FilterType::Triangle),
            b.clone(),
            jpeg_round_trip(&b, 50),
        ];
        let hashes: Vec<_> = variants.iter().map(|i| hasher.hash_image(&DynamicImage::ImageRgb8(i.clone()))).collect();
        let refs: Vec<_> = hashes.iter().collect();
        let groups = group(&refs, DEFAULT_MAX_DISTANCE);
        assert_eq!(groups[0], groups[1]);
        assert_eq!(groups[0], groups[2]);
        assert_eq!(groups[3], groups[4]);
        assert_ne!(groups[0], groups[3]);
    }
}
