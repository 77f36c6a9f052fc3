//! Where frames come from. `--source` takes `synthetic`, `dir:PATH`, `stdin:mjpeg`, `camera:N`,
//! `http://...` (MJPEG), and with ffmpeg installed `rtsp://...` and `file:PATH` (recordings).

#[cfg(feature = "camera")]
pub mod camera;
#[cfg(feature = "camera")]
pub mod decode;
pub mod dir;
pub mod ffmpeg;
pub mod http;
pub mod mjpeg;
pub mod reconnect;
pub mod synthetic;

use std::path::Path;
use std::time::{Duration, Instant};

use image::DynamicImage;
use shared::usage::UsageError;

/// One captured frame, decoded to RGB at the source's resolution.
pub struct Frame {
    pub number: u64,
    pub captured_at: Instant,
    pub timestamp_ms: u64,
    pub image: DynamicImage,
    /// Time spent getting and decoding this frame.
    pub capture_ms: f32,
}

pub enum Event {
    Frame(Frame),
    /// A frame that could not be decoded: skipped and counted.
    Corrupt(String),
    /// The source was lost (a camera unplugged, a stream cut) and is being reopened.
    Lost(String),
    /// The source has no more frames.
    End,
}

pub trait FrameSource: Send {
    fn next(&mut self) -> anyhow::Result<Event>;
    fn describe(&self) -> String;
    /// A live source (camera, stream, paced files) runs at its own rate and the newest frame
    /// wins; a non-live one (files as fast as they come) hands over every frame, in order.
    fn is_live(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Frames per second to pace `dir:` and `synthetic` at (None: as fast as possible).
    pub fps: Option<f32>,
    /// Start `dir:` again at the end.
    pub looping: bool,
    /// Requested camera resolution and frame format (`mjpeg` or `yuyv`).
    pub width: u32,
    pub height: u32,
    pub camera_format: String,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self { fps: None, looping: false, width: 640, height: 480, camera_format: "mjpeg".into() }
    }
}

/// `--source`, checked for its form before anything is opened (a wrong one is bad usage, exit
/// 2, in `run` and in `config --check`); whether the camera, folder or stream is there is learnt
/// when it is opened. The message shows a URL without its password (clap would echo it whole).
pub fn check_spec(spec: &str) -> Result<(), UsageError> {
    let bad = |why: &str| Err(UsageError(format!("--source {}: {why}", crate::redact::redact(spec))));
    if spec.starts_with("https://") {
        return bad("https is not supported (cameras on a local network serve plain http; put a proxy in front otherwise)");
    }
    if let Some(index) = spec.strip_prefix("camera:") {
        return if index.parse::<u32>().is_ok() { Ok(()) } else { bad("the camera index must be a number from 0 (camera:0)") };
    }
    if let Some(path) = spec.strip_prefix("dir:").or_else(|| spec.strip_prefix("file:")) {
        return if path.is_empty() { bad("a path must follow the colon") } else { Ok(()) };
    }
    if spec.starts_with("http://") || spec.starts_with("rtsp://") {
        return if crate::redact::has_unencoded_userinfo(spec) { bad(crate::redact::UNENCODED_USERINFO) } else { Ok(()) };
    }
    if spec == "synthetic" || spec == "stdin:mjpeg" {
        return Ok(());
    }
    bad("unknown source (expected camera:N, http://..., rtsp://..., file:PATH, stdin:mjpeg, dir:PATH or synthetic)")
}

pub fn open(spec: &str, options: &SourceOptions) -> anyhow::Result<Box<dyn FrameSource>> {
    check_spec(spec)?;
    if spec == "synthetic" {
        return Ok(Box::new(synthetic::Synthetic::new(options.width, options.height, options.fps)));
    }
    if let Some(path) = spec.strip_prefix("dir:") {
        return Ok(Box::new(dir::DirSource::open(path.as_ref(), options.fps, options.looping)?));
    }
    if spec == "stdin:mjpeg" {
        return Ok(Box::new(mjpeg::MjpegStream::new(Box::new(std::io::stdin()), "stdin".into())));
    }
    if spec.starts_with("http://") {
        return Ok(Box::new(http::open(spec)?));
    }
    if spec.starts_with("rtsp://") {
        return Ok(Box::new(ffmpeg::rtsp(spec)?));
    }
    if let Some(path) = spec.strip_prefix("file:") {
        if is_still_photo(path.as_ref()) {
            return Ok(Box::new(dir::DirSource::photo(path.as_ref(), options.fps, options.looping)));
        }
        return Ok(Box::new(ffmpeg::file(path, options.looping)?));
    }
    // check_spec lets no other form through than camera:N.
    let index = spec.strip_prefix("camera:").and_then(|i| i.parse::<u32>().ok());
    open_camera(index.ok_or_else(|| anyhow::anyhow!("--source {}: no such source", crate::redact::redact(spec)))?, options)
}

#[cfg(feature = "camera")]
fn open_camera(index: u32, options: &SourceOptions) -> anyhow::Result<Box<dyn FrameSource>> {
    Ok(Box::new(camera::CameraSource::open(index, options)?))
}

#[cfg(not(feature = "camera"))]
fn open_camera(_index: u32, _options: &SourceOptions) -> anyhow::Result<Box<dyn FrameSource>> {
    anyhow::bail!("this edge build has no camera support (built without the `camera` feature)")
}

/// Sleeps so that successive frames are `1/fps` apart.
pub struct Pacer {
    pub interval: Option<Duration>,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(fps: Option<f32>) -> Self {
        Self { interval: fps.filter(|f| *f > 0.0).map(|f| Duration::from_secs_f32(1.0 / f)), next: None }
    }

    pub fn wait(&mut self) {
        let Some(interval) = self.interval else { return };
        let now = Instant::now();
        if let Some(next) = self.next
            && next > now
        {
            std::thread::sleep(next - now);
        }
        self.next = Some(self.next.map_or(now, |n| n.max(now - interval)) + interval);
    }
}

/// A still photo by its first bytes (JPEG, PNG, WebP, BMP, TIFF), which `file:` reads itself:
/// through ffmpeg `--loop` played a photo's one frame once. An animated PNG is a recording.
fn is_still_photo(path: &Path) -> bool {
    use image::ImageFormat::{Bmp, Jpeg, Png, Tiff, WebP};
    let mut head = [0u8; 256];
    let Ok(read) = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)) else { return false };
    let head = &head[..read];
    match image::guess_format(head) {
        Ok(Png) => !head.windows(4).any(|w| w == b"acTL"),
        Ok(Jpeg | WebP | Bmp | Tiff) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_of_the_wrong_form_is_bad_usage() {
        for good in ["camera:0", "camera:2", "synthetic", "stdin:mjpeg", "dir:frames", "file:a.mp4", "http://cam/stream", "rtsp://cam/1"] {
            assert!(check_spec(good).is_ok(), "{good}");
        }
        for bad in ["bogus", "stdin:yuv", "camera:-1", "camera:", "dir:", "file:", "https://cam/x", "ftp://cam"] {
            assert!(check_spec(bad).is_err(), "{bad} accepted");
        }
        assert!(!check_spec("https://u:hunter2@cam/x").unwrap_err().0.contains("hunter2"));
        for slashed in ["http://localhost:18701/x@127.0.0.1:18700/cam", "rtsp://us/er:secret@127.0.0.1/h"] {
            let e = check_spec(slashed).unwrap_err().0;
            assert!(e.contains("is written %2F") && !e.contains("secret") && !e.contains("18701/x"), "{e}");
        }
        assert!(check_spec("http://u:se%2Fcret@cam/x").is_ok());
    }
}
