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

use std::time::{Duration, Instant};

use image::DynamicImage;

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

/// `--source`, checked for its form when the command line is read (a wrong one is bad usage,
/// exit 2); whether the camera, folder or stream is there is learnt when it is opened.
pub fn parse_spec(spec: &str) -> Result<String, String> {
    let expected = "expected camera:N, http://..., rtsp://..., file:PATH, stdin:mjpeg, dir:PATH or synthetic";
    let redacted = crate::redact::redact(spec);
    if spec.starts_with("https://") {
        return Err(format!(
            "'{redacted}': https is not supported (cameras on a local network serve plain http; put a proxy in front otherwise)"
        ));
    }
    if let Some(index) = spec.strip_prefix("camera:") {
        return match index.parse::<u32>() {
            Ok(_) => Ok(spec.to_string()),
            Err(_) => Err(format!("'{spec}': the camera index must be a number from 0 (camera:0)")),
        };
    }
    let path_after = |prefix: &str| spec.strip_prefix(prefix).map(str::is_empty);
    match (path_after("dir:"), path_after("file:")) {
        (Some(true), _) | (_, Some(true)) => return Err(format!("'{spec}': a path must follow the colon")),
        (Some(false), _) | (_, Some(false)) => return Ok(spec.to_string()),
        _ => {}
    }
    if spec == "synthetic" || spec == "stdin:mjpeg" || spec.starts_with("http://") || spec.starts_with("rtsp://") {
        return Ok(spec.to_string());
    }
    Err(format!("unknown source '{redacted}' ({expected})"))
}

pub fn open(spec: &str, options: &SourceOptions) -> anyhow::Result<Box<dyn FrameSource>> {
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
        return Ok(Box::new(ffmpeg::file(path, options.looping)?));
    }
    if spec.starts_with("https://") {
        anyhow::bail!(
            "--source {}: https is not supported (cameras on a local network serve plain http; put a proxy in front otherwise)",
            crate::redact::redact(spec)
        );
    }
    if let Some(index) = spec.strip_prefix("camera:") {
        let index: u32 = index.parse().map_err(|_| anyhow::anyhow!("--source {spec}: camera index must be a number"))?;
        return open_camera(index, options);
    }
    anyhow::bail!(
        "unknown --source '{}' (expected camera:N, http://..., rtsp://..., file:PATH, stdin:mjpeg, dir:PATH or synthetic)",
        crate::redact::redact(spec)
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_of_the_wrong_form_is_bad_usage() {
        for good in ["camera:0", "camera:2", "synthetic", "stdin:mjpeg", "dir:frames", "file:a.mp4", "http://cam/stream", "rtsp://cam/1"] {
            assert_eq!(parse_spec(good).as_deref(), Ok(good));
        }
        for bad in ["bogus", "stdin:yuv", "camera:-1", "camera:", "dir:", "file:", "https://cam/x", "ftp://cam"] {
            assert!(parse_spec(bad).is_err(), "{bad} accepted");
        }
        assert!(!parse_spec("https://u:hunter2@cam/x").unwrap_err().contains("hunter2"));
    }
}
