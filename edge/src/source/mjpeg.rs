//! `stdin:mjpeg`: a stream of concatenated JPEG frames (what `rpicam-vid --codec mjpeg -o -`
//! and GStreamer's `jpegenc ! fdsink` write), split by following each frame's JPEG segments: an
//! EXIF thumbnail (a whole JPEG inside an APP1 segment) has an end marker of its own, which a
//! scan for the first FF D9 would take for the frame's.

use std::io::Read;
use std::time::Instant;

use super::{Event, Frame, FrameSource};

/// Frames larger than this are treated as a broken stream rather than buffered forever.
const MAX_FRAME_BYTES: usize = 32 << 20;

pub struct MjpegStream {
    reader: Box<dyn Read + Send>,
    name: String,
    buffer: Vec<u8>,
    /// Bytes dropped since the last start of image: no frame boundary in MAX_FRAME_BYTES of
    /// them is said (an H.264 stream piped in by mistake, say).
    skipped: usize,
    /// How far the pending frame at the start of `buffer` was walked: a frame that arrives in
    /// many reads is walked once, not once per read (a frame that never ends cost seconds).
    walk: Walk,
    number: u64,
    ended: bool,
}

impl MjpegStream {
    pub fn new(reader: Box<dyn Read + Send>, name: String) -> Self {
        Self { reader, name, buffer: Vec::new(), skipped: 0, walk: Walk::default(), number: 0, ended: false }
    }

    /// The next complete JPEG in the buffer, if any: bytes from FF D8 to its end of image.
    fn take_frame(&mut self) -> Option<Vec<u8>> {
        let Some(start) = self.buffer.windows(2).position(|w| w == [0xFF, 0xD8]) else {
            // Nothing before a start of image is ever used: dropping it now keeps a stream of
            // noise from being scanned again on every read. The last byte may be half a marker.
            let noise = self.buffer.len().saturating_sub(1);
            self.buffer.drain(..noise);
            self.skipped += noise;
            return None;
        };
        self.skipped = 0;
        if start > 0 {
            // The pending frame always starts the buffer, so the walk's positions stay valid.
            self.buffer.drain(..start);
            self.walk = Walk::default();
        }
        let end = match frame_end(&self.buffer, &mut self.walk) {
            FrameEnd::At(n) => n,
            FrameEnd::NeedMore => return None,
            // Not a well-formed JPEG: cut at the next end marker; the decoder names the damage.
            FrameEnd::Malformed => {
                let from = self.walk.cut_search.unwrap_or(2);
                match self.buffer[from..].windows(2).position(|w| w == [0xFF, 0xD9]) {
                    Some(at) => from + at + 2,
                    None => {
                        // Searched up to the last byte, which may be the FF of the marker.
                        self.walk.cut_search = Some(self.buffer.len().saturating_sub(1).max(2));
                        return None;
                    }
                }
            }
        };
        let frame = self.buffer[..end].to_vec();
        self.buffer.drain(..end);
        self.walk = Walk::default();
        Some(frame)
    }
}

/// Where [`frame_end`] stopped in the frame at the start of the buffer, to go on from there.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Walk {
    /// The next byte to read: a marker, or entropy-coded data when `in_entropy`.
    pos: usize,
    in_entropy: bool,
    /// For a malformed frame: where the search for its end marker goes on.
    cut_search: Option<usize>,
}

impl Default for Walk {
    fn default() -> Self {
        Self { pos: 2, in_entropy: false, cut_search: None }
    }
}

enum FrameEnd {
    /// The frame is this many bytes long (end marker included, or cut where the next frame starts).
    At(usize),
    NeedMore,
    Malformed,
}

/// Walks the segments of the JPEG that starts `bytes` (with FF D8), from where `walk` stopped:
/// marker segments are skipped by their length fields (so nothing inside them, a thumbnail
/// included, is read as a marker), and entropy-coded data after a start of scan runs to the next
/// FF that is neither stuffing (FF 00) nor a restart marker (FF D0-D7).
fn frame_end(bytes: &[u8], walk: &mut Walk) -> FrameEnd {
    loop {
        if walk.in_entropy {
            loop {
                let Some(offset) = bytes.get(walk.pos..).and_then(|rest| rest.iter().position(|&b| b == 0xFF)) else {
                    // No FF in what came so far: none of it needs reading again.
                    walk.pos = walk.pos.max(bytes.len());
                    return FrameEnd::NeedMore;
                };
                walk.pos += offset;
                match bytes.get(walk.pos + 1) {
                    None => return FrameEnd::NeedMore,
                    Some(0x00 | 0xD0..=0xD7 | 0xFF) => walk.pos += 1,
                    Some(_) => break,
                }
            }
            walk.in_entropy = false;
        }
        let mut pos = walk.pos;
        let Some(&first) = bytes.get(pos) else { return FrameEnd::NeedMore };
        if first != 0xFF {
            return FrameEnd::Malformed;
        }
        // Any number of FF fill bytes may precede a marker.
        while bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos + 1) else { return FrameEnd::NeedMore };
        match marker {
            0xD9 => return FrameEnd::At(pos + 2),
            0x01 | 0xD0..=0xD7 => walk.pos = pos + 2,
            // A new start of image: this frame was cut short (the decoder will say so).
            0xD8 => return FrameEnd::At(pos),
            0x00 => return FrameEnd::Malformed,
            _ => {
                let Some(length) = bytes.get(pos + 2..pos + 4) else { return FrameEnd::NeedMore };
                let length = u16::from_be_bytes([length[0], length[1]]) as usize;
                if length < 2 {
                    return FrameEnd::Malformed;
                }
                walk.pos = pos + 2 + length;
                // Entropy-coded data follows a start of scan, up to the next real marker.
                walk.in_entropy = marker == 0xDA;
            }
        }
    }
}

impl FrameSource for MjpegStream {
    fn next(&mut self) -> anyhow::Result<Event> {
        let started = Instant::now();
        loop {
            if let Some(jpeg) = self.take_frame() {
                return Ok(match shared::preprocess::decode_bytes(&jpeg) {
                    Ok(image) => {
                        self.number += 1;
                        Event::Frame(Frame {
                            number: self.number,
                            captured_at: Instant::now(),
                            timestamp_ms: crate::unix_ms(),
                            image,
                            capture_ms: started.elapsed().as_secs_f32() * 1000.0,
                        })
                    }
                    Err(e) => Event::Corrupt(format!("{}: frame after #{}: {e}", self.name, self.number)),
                });
            }
            if self.ended {
                return Ok(Event::End);
            }
            if self.buffer.len() + self.skipped > MAX_FRAME_BYTES {
                self.buffer.clear();
                self.skipped = 0;
                self.walk = Walk::default();
                return Ok(Event::Corrupt(format!("{}: no JPEG frame boundary in {MAX_FRAME_BYTES} bytes", self.name)));
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.reader.read(&mut chunk).map_err(|e| anyhow::anyhow!("{}: read error: {e}", self.name))?;
            if n == 0 {
                self.ended = true;
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    fn describe(&self) -> String {
        format!("{} (MJPEG)", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn jpeg(shade: u8) -> Vec<u8> {
        let img = RgbImage::from_pixel(16, 8, Rgb([shade, 100, 50]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out).encode_image(&img).unwrap();
        out
    }

    #[test]
    fn splits_frames_and_counts_a_corrupt_one() {
        let mut stream = Vec::new();
        stream.extend(jpeg(10));
        stream.extend(b"\xFF\xD8garbage that is no jpeg\xFF\xD9");
        stream.extend(jpeg(200));
        let mut source = MjpegStream::new(Box::new(std::io::Cursor::new(stream)), "test".into());
        let mut kinds = Vec::new();
        loop {
            match source.next().unwrap() {
                Event::Frame(f) => kinds.push(format!("frame{}", f.number)),
                Event::Corrupt(_) => kinds.push("corrupt".into()),
                Event::Lost(why) => panic!("a byte stream is never lost and reopened: {why}"),
                Event::End => break,
            }
        }
        assert_eq!(kinds, vec!["frame1", "corrupt", "frame2"]);
    }

    /// `jpeg(shade)` with an EXIF APP1 segment that carries a whole JPEG thumbnail.
    fn jpeg_with_thumbnail(shade: u8) -> Vec<u8> {
        let main = jpeg(shade);
        let thumbnail = jpeg(255 - shade);
        // "Exif\0\0", then a little-endian TIFF header with one empty IFD, then the thumbnail.
        let mut payload = b"Exif\0\0II*\0\x08\0\0\0\0\0\0\0\0\0".to_vec();
        payload.extend(&thumbnail);
        let mut out = main[..2].to_vec();
        out.extend([0xFF, 0xE1]);
        out.extend(((payload.len() + 2) as u16).to_be_bytes());
        out.extend(payload);
        out.extend(&main[2..]);
        out
    }

    fn events(stream: Vec<u8>, chunk: usize) -> Vec<String> {
        /// Hands out at most `chunk` bytes per read, as a pipe may.
        struct Trickle(std::io::Cursor<Vec<u8>>, usize);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.1);
                self.0.read(&mut buf[..n])
            }
        }
        let mut source = MjpegStream::new(Box::new(Trickle(std::io::Cursor::new(stream), chunk)), "test".into());
        let mut kinds = Vec::new();
        loop {
            match source.next().unwrap() {
                Event::Frame(f) => kinds.push(format!("frame{} {}", f.number, f.image.to_rgb8().get_pixel(0, 0).0[0] / 50)),
                Event::Corrupt(why) => kinds.push(format!("corrupt {why}")),
                Event::Lost(why) => panic!("a byte stream is never lost and reopened: {why}"),
                Event::End => break,
            }
        }
        kinds
    }

    #[test]
    fn a_frame_with_an_exif_thumbnail_is_one_frame() {
        let mut stream = jpeg_with_thumbnail(10);
        stream.extend(jpeg(200));
        stream.extend(jpeg_with_thumbnail(120));
        // Whole, and arriving a few bytes at a time: the same three frames, the main image each
        // time (shade / 50: 0, 4, 2), never the thumbnail.
        for chunk in [1 << 16, 7, 1] {
            assert_eq!(events(stream.clone(), chunk), vec!["frame1 0", "frame2 4", "frame3 2"], "reads of {chunk} bytes");
        }
    }

    /// Noise between frames is dropped as it comes (it used to be scanned again on every read:
    /// 64 MB of it took 6 s), and 40 MB of it with no frame (an H.264 stream piped in by
    /// mistake) is said once, then the frames after it come through.
    #[test]
    fn megabytes_of_noise_are_said_once_and_frames_after_them_read() {
        let noise: Vec<u8> = (0..40u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 & 0xFE).collect();
        let mut stream = jpeg(10);
        stream.extend(&noise);
        stream.extend(jpeg(200));
        let got = events(stream, 1 << 16);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!((got[0].as_str(), got[2].as_str()), ("frame1 0", "frame2 4"));
        assert!(got[1].starts_with("corrupt test: no JPEG frame boundary"), "{}", got[1]);
    }

    #[test]
    fn a_frame_cut_short_and_followed_by_another_is_counted_corrupt() {
        // Cut in its image data (the bulk of any real frame; a cut inside a header segment is
        // skipped over by the segment's length and surfaces as a corrupt frame later on).
        let whole = jpeg(10);
        let mut stream = whole[..whole.len() - 6].to_vec();
        stream.extend(jpeg(200));
        let got = events(stream, 1 << 16);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("corrupt") && got[0].contains("truncated"), "{got:?}");
        assert_eq!(got[1], "frame1 4", "the frame after the cut one is whole");
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        /// A piece of a stream: a whole JPEG, one with an EXIF thumbnail, a JPEG cut short,
        /// random bytes, or a lone marker.
        #[derive(Debug, Clone)]
        enum Piece {
            Jpeg(u8),
            WithThumbnail(u8),
            Cut(u8, prop::sample::Index),
            Noise(Vec<u8>),
            Marker(u8),
        }

        fn piece() -> impl Strategy<Value = Piece> {
            prop_oneof![
                any::<u8>().prop_map(Piece::Jpeg),
                any::<u8>().prop_map(Piece::WithThumbnail),
                (any::<u8>(), any::<prop::sample::Index>()).prop_map(|(s, i)| Piece::Cut(s, i)),
                proptest::collection::vec(any::<u8>(), 0..64).prop_map(Piece::Noise),
                prop::sample::select(vec![0xD8u8, 0xD9, 0xE1, 0xDA, 0x00, 0xFF]).prop_map(Piece::Marker),
            ]
        }

        fn bytes(piece: &Piece) -> Vec<u8> {
            match piece {
                Piece::Jpeg(s) => jpeg(*s),
                Piece::WithThumbnail(s) => jpeg_with_thumbnail(*s),
                Piece::Cut(s, at) => {
                    let j = jpeg(*s);
                    j[..at.index(j.len())].to_vec()
                }
                Piece::Noise(n) => n.clone(),
                Piece::Marker(m) => vec![0xFF, *m],
            }
        }

        /// (frames, corrupt) until the end; at most `limit` events.
        fn run(stream: Vec<u8>, limit: usize) -> (usize, usize) {
            let mut source = MjpegStream::new(Box::new(std::io::Cursor::new(stream)), "fuzz".into());
            let (mut frames, mut corrupt) = (0, 0);
            for _ in 0..limit {
                match source.next() {
                    Ok(Event::Frame(_)) => frames += 1,
                    Ok(Event::Corrupt(_)) => corrupt += 1,
                    Ok(Event::End) | Err(_) => break,
                    Ok(Event::Lost(_)) => panic!("a byte stream is never lost"),
                }
            }
            (frames, corrupt)
        }

        proptest! {
            #![proptest_config(testkit::fuzz_config())]

            /// Any mix of frames, cut frames, noise and stray markers: the splitter never panics
            /// and always reaches the end.
            #[test]
            fn any_stream_is_split_without_panic(pieces in proptest::collection::vec(piece(), 0..8), chunk in 1usize..64) {
                let stream: Vec<u8> = pieces.iter().flat_map(bytes).collect();
                let limit = stream.len() + 2;
                let (frames, corrupt) = run(stream.clone(), limit);
                prop_assert!(frames + corrupt < limit, "the stream did not end");
                // A frame walked across many reads (resumed where the last read ended) splits as
                // one read whole.
                prop_assert_eq!(events(stream.clone(), 1 << 16), events(stream, chunk));
            }

            /// A stream of whole frames (thumbnails in some) gives every one of them, none corrupt.
            #[test]
            fn whole_frames_all_come_through(shades in proptest::collection::vec((any::<u8>(), any::<bool>()), 0..6)) {
                let stream: Vec<u8> = shades.iter().flat_map(|&(s, t)| if t { jpeg_with_thumbnail(s) } else { jpeg(s) }).collect();
                prop_assert_eq!(run(stream, 100), (shades.len(), 0));
            }
        }
    }
}
