//! `stdin:mjpeg`: a stream of concatenated JPEG frames (what `rpicam-vid --codec mjpeg -o -`
//! and GStreamer's `jpegenc ! fdsink` write), split at the JPEG start/end markers.

use std::io::Read;
use std::time::Instant;

use super::{Event, Frame, FrameSource};

/// Frames larger than this are treated as a broken stream rather than buffered forever.
const MAX_FRAME_BYTES: usize = 32 << 20;

pub struct MjpegStream {
    reader: Box<dyn Read + Send>,
    name: String,
    buffer: Vec<u8>,
    number: u64,
    ended: bool,
}

impl MjpegStream {
    pub fn new(reader: Box<dyn Read + Send>, name: String) -> Self {
        Self { reader, name, buffer: Vec::new(), number: 0, ended: false }
    }

    /// The next complete JPEG in the buffer, if any: bytes from FF D8 to the FF D9 after it.
    fn take_frame(&mut self) -> Option<Vec<u8>> {
        let start = self.buffer.windows(2).position(|w| w == [0xFF, 0xD8])?;
        let end = self.buffer[start + 2..].windows(2).position(|w| w == [0xFF, 0xD9])? + start + 4;
        let frame = self.buffer[start..end].to_vec();
        self.buffer.drain(..end);
        Some(frame)
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
            if self.buffer.len() > MAX_FRAME_BYTES {
                self.buffer.clear();
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
                Event::End => break,
            }
        }
        assert_eq!(kinds, vec!["frame1", "corrupt", "frame2"]);
    }
}
