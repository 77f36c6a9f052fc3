//! WebP's container, checked before its decoder sees a byte of it.
//!
//! The `image` crate hands its allocation limits to the JPEG and PNG decoders but not to WebP's
//! (image 0.25 / image-webp 0.2): that decoder allocates what a chunk declares (an EXIF chunk of
//! 4 GB in a 60-byte file aborted the process on a board), and decodes a bitstream at its own
//! declared size before comparing it with the canvas. So [`check`] walks the RIFF chunks first:
//! each must lie within the file, an animation is refused (a photo is one frame), and every size
//! the file declares (the canvas, each bitstream) must be the same and within the pixel limit.

use std::fmt;

/// Why a WebP file is refused before decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The container is not what the format says (the reason).
    Malformed(String),
    /// A declared size above the pixel limit.
    TooLarge { width: u32, height: u32 },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(reason) => f.write_str(reason),
            Refusal::TooLarge { width, height } => write!(f, "declares {width}x{height} pixels"),
        }
    }
}

fn malformed(reason: impl Into<String>) -> Refusal {
    Refusal::Malformed(reason.into())
}

fn u24(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], 0])
}

/// The width and height a chunk's payload declares, for the chunks that declare one.
fn declared_size(fourcc: &[u8], payload: &[u8]) -> Result<Option<(u32, u32)>, Refusal> {
    let short = || malformed(format!("its {} chunk is too short to say its size", String::from_utf8_lossy(fourcc).trim_end()));
    Ok(match fourcc {
        // Extended format: flags, 3 reserved bytes, canvas width - 1 and height - 1 in 24 bits.
        b"VP8X" => {
            let header = payload.get(..10).ok_or_else(short)?;
            if header[0] & 0x02 != 0 {
                return Err(malformed("it is animated (a photo is one frame)"));
            }
            Some((u24(&header[4..7]) + 1, u24(&header[7..10]) + 1))
        }
        // Lossy: a 3-byte frame tag, the start code 9d 01 2a, then width and height in 14 bits.
        b"VP8 " => {
            let header = payload.get(..10).ok_or_else(short)?;
            if header[3..6] != [0x9d, 0x01, 0x2a] {
                return Err(malformed("its VP8 bitstream does not start with a key frame"));
            }
            let side = |b: &[u8]| u32::from(u16::from_le_bytes([b[0], b[1]]) & 0x3fff);
            Some((side(&header[6..8]), side(&header[8..10])))
        }
        // Lossless: the signature 0x2f, then width - 1 and height - 1 in 14 bits each.
        b"VP8L" => {
            let header = payload.get(..5).ok_or_else(short)?;
            if header[0] != 0x2f {
                return Err(malformed("its VP8L bitstream has no signature"));
            }
            let bits = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
            Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        b"ANIM" | b"ANMF" => return Err(malformed("it is animated (a photo is one frame)")),
        _ => None,
    })
}

/// Checks a WebP file's container (see the module): every chunk within the file, no animation,
/// one size declared throughout, at most `max_pixels`.
pub fn check(bytes: &[u8], max_pixels: u64) -> Result<(), Refusal> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return Err(malformed("no RIFF/WEBP header"));
    }
    let riff_end = (u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize).saturating_add(8);
    if riff_end > bytes.len() {
        return Err(malformed(format!("it declares {riff_end} bytes and has {} (cut short?)", bytes.len())));
    }
    let (mut at, mut size, mut bitstream) = (12, None, false);
    while at < riff_end {
        let header = bytes
            .get(at..at + 8)
            .filter(|_| at + 8 <= riff_end)
            .ok_or_else(|| malformed(format!("a chunk header cut short at byte {at}")))?;
        let (fourcc, length) = (&header[..4], u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize);
        let end = (at + 8).saturating_add(length);
        if end > riff_end {
            return Err(malformed(format!(
                "its {} chunk declares {length} bytes, past the end of the file",
                String::from_utf8_lossy(fourcc).trim_end()
            )));
        }
        if let Some((width, height)) = declared_size(fourcc, &bytes[at + 8..end])? {
            if u64::from(width) * u64::from(height) > max_pixels {
                return Err(Refusal::TooLarge { width, height });
            }
            if size.is_some_and(|s| s != (width, height)) {
                return Err(malformed("its canvas and its bitstream declare different sizes"));
            }
            size = Some((width, height));
            bitstream |= fourcc != b"VP8X";
        }
        // Chunks are padded to an even length.
        at = end + (length & 1);
    }
    if !bitstream {
        return Err(malformed("it has no image bitstream"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use testkit::webp::{chunk, riff, vp8, vp8l, vp8x};

    use super::*;

    const LIMIT: u64 = 50_000_000;

    #[test]
    fn a_still_webp_within_the_limit_passes() {
        assert_eq!(check(&riff(&[vp8l(40, 30)]), LIMIT), Ok(()));
        assert_eq!(check(&riff(&[vp8(640, 480)]), LIMIT), Ok(()));
        // Extended, with metadata chunks of odd length (padded) around the bitstream.
        let extended = riff(&[vp8x(0x08, 640, 480), chunk(b"ICCP", &[1, 2, 3]), vp8(640, 480), chunk(b"EXIF", &[0; 5])]);
        assert_eq!(check(&extended, LIMIT), Ok(()));
        // What the image crate's own encoder writes.
        let mut encoded = Vec::new();
        image::RgbImage::new(7, 5).write_to(&mut std::io::Cursor::new(&mut encoded), image::ImageFormat::WebP).unwrap();
        assert_eq!(check(&encoded, LIMIT), Ok(()));
    }

    #[test]
    fn a_chunk_past_the_end_is_refused_before_anything_is_allocated() {
        // The EXIF chunk that asked image-webp for 4 GB.
        let mut huge_exif = chunk(b"EXIF", &[]);
        huge_exif[4..8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let file = riff(&[vp8x(0x08, 1, 1), vp8l(1, 1), huge_exif]);
        let e = check(&file, LIMIT).unwrap_err().to_string();
        assert!(e.contains("EXIF chunk declares 4294967280 bytes, past the end"), "{e}");
        // A file cut short, and one whose RIFF size says more than it has.
        let whole = riff(&[vp8l(40, 30)]);
        assert!(check(&whole[..whole.len() - 3], LIMIT).unwrap_err().to_string().contains("cut short"));
        let mut longer = whole.clone();
        longer[4..8].copy_from_slice(&1000u32.to_le_bytes());
        assert!(check(&longer, LIMIT).is_err());
        assert!(check(b"RIFF\x04\x00\x00\x00WEBP", LIMIT).unwrap_err().to_string().contains("no image bitstream"));
        assert!(check(b"RIFF", LIMIT).is_err());
    }

    #[test]
    fn sizes_are_checked_from_every_declaration() {
        assert_eq!(check(&riff(&[vp8l(16384, 16384)]), LIMIT), Err(Refusal::TooLarge { width: 16384, height: 16384 }));
        assert_eq!(check(&riff(&[vp8(16383, 16383)]), LIMIT), Err(Refusal::TooLarge { width: 16383, height: 16383 }));
        // A small canvas around a bitstream that declares 268 megapixels: the decoder would
        // have decoded the bitstream at its own size first.
        assert_eq!(check(&riff(&[vp8x(0, 64, 64), vp8(16383, 16383)]), LIMIT), Err(Refusal::TooLarge { width: 16383, height: 16383 }));
        assert!(check(&riff(&[vp8x(0, 64, 64), vp8(64, 48)]), LIMIT).unwrap_err().to_string().contains("different sizes"));
        assert_eq!(check(&riff(&[vp8x(0, 16_000_000, 16), vp8l(1, 1)]), LIMIT), Err(Refusal::TooLarge { width: 16_000_000, height: 16 }));
    }

    #[test]
    fn animations_are_refused() {
        let e = check(&riff(&[vp8x(0x02, 64, 64), chunk(b"ANIM", &[0; 6])]), LIMIT).unwrap_err().to_string();
        assert!(e.contains("animated"), "{e}");
        assert!(check(&riff(&[vp8l(8, 8), chunk(b"ANMF", &[0; 16])]), LIMIT).unwrap_err().to_string().contains("animated"));
    }
}
