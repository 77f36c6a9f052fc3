//! `camera:N`: live capture through nokhwa (V4L2 on Linux). A camera that disappears is
//! reopened with backoff while the program keeps running.

use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Instant;

use image::DynamicImage;
use nokhwa::Camera;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{ApiBackend, CameraFormat, CameraIndex, RequestedFormat, RequestedFormatType, Resolution};

use super::{Event, Frame, FrameSource, SourceOptions, decode};
use crate::backoff::Backoff;

/// nokhwa's `Camera` must stay on the thread that opened it, so a camera thread owns it and
/// hands frames over a one-slot channel.
pub struct CameraSource {
    frames: Receiver<anyhow::Result<Event>>,
    description: String,
}

struct CameraWorker {
    index: u32,
    format: CameraFormat,
    camera: Option<Camera>,
    number: u64,
}

fn open_camera(index: u32, format: CameraFormat) -> anyhow::Result<Camera> {
    let request = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(format));
    let mut camera = Camera::new(CameraIndex::Index(index), request)
        .map_err(|e| anyhow::anyhow!("camera:{index}: cannot open: {e} (see `edge cameras`)"))?;
    camera.open_stream().map_err(|e| anyhow::anyhow!("camera:{index}: cannot start streaming: {e}"))?;
    Ok(camera)
}

impl CameraSource {
    /// Opens the camera on its own thread; fails at once, with the reason, if it cannot.
    pub fn open(index: u32, options: &SourceOptions) -> anyhow::Result<Self> {
        let format = CameraFormat::new(
            Resolution::new(options.width, options.height),
            decode::frame_format(&options.camera_format)?,
            options.fps.map_or(30, |f| f.round() as u32),
        );
        let (ready_tx, ready_rx) = sync_channel::<anyhow::Result<String>>(1);
        let (frames_tx, frames) = sync_channel(1);
        std::thread::Builder::new().name(format!("camera{index}")).spawn(move || {
            let camera = match open_camera(index, format) {
                Ok(camera) => camera,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(format!("camera:{index} {} ({})", camera.info().human_name(), camera.camera_format())));
            let mut worker = CameraWorker { index, format, camera: Some(camera), number: 0 };
            while frames_tx.send(worker.next()).is_ok() {}
        })?;
        let description = ready_rx.recv().map_err(|_| anyhow::anyhow!("camera:{index}: the camera thread stopped"))??;
        Ok(Self { frames, description })
    }
}

impl FrameSource for CameraSource {
    fn next(&mut self) -> anyhow::Result<Event> {
        self.frames.recv().map_err(|_| anyhow::anyhow!("the camera thread stopped"))?
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

impl CameraWorker {
    /// Reopens the camera, with [`Backoff`] between tries.
    fn reconnect(&mut self) -> Camera {
        let mut backoff = Backoff::new();
        loop {
            match open_camera(self.index, self.format) {
                Ok(camera) => {
                    tracing::warn!("camera:{}: reconnected", self.index);
                    return camera;
                }
                Err(e) => backoff.pause(&e),
            }
        }
    }

    fn next(&mut self) -> anyhow::Result<Event> {
        let camera = match self.camera.as_mut() {
            Some(c) => c,
            None => {
                let c = self.reconnect();
                self.camera.insert(c)
            }
        };
        let started = Instant::now();
        let buffer = match camera.frame() {
            Ok(buffer) => buffer,
            Err(e) => {
                self.camera = None;
                return Ok(Event::Lost(format!("camera:{}: capture failed: {e}", self.index)));
            }
        };
        Ok(match decode::to_rgb(&buffer) {
            Ok(rgb) => {
                self.number += 1;
                Event::Frame(Frame {
                    number: self.number,
                    captured_at: started,
                    timestamp_ms: crate::unix_ms(),
                    image: DynamicImage::ImageRgb8(rgb),
                    capture_ms: started.elapsed().as_secs_f32() * 1000.0,
                })
            }
            Err(e) => Event::Corrupt(e.to_string()),
        })
    }
}

/// `edge cameras`: one line per camera with its formats; an error when there is none.
pub fn list() -> anyhow::Result<Vec<String>> {
    let cameras = nokhwa::query(ApiBackend::Auto).map_err(|e| anyhow::anyhow!("cannot list cameras: {e}"))?;
    anyhow::ensure!(
        !cameras.is_empty(),
        "no cameras found (no /dev/video* device is usable). Check the cable, `ls /dev/video*`, and that this user is in the `video` group; a Raspberry Pi CSI camera needs `rpicam-vid --codec mjpeg -o - | edge run --source stdin:mjpeg`"
    );
    let mut lines = Vec::new();
    for info in cameras {
        let mut line = format!("{}: {} ({})", info.index(), info.human_name(), info.description());
        if let CameraIndex::Index(i) = info.index() {
            let request = RequestedFormat::new::<RgbFormat>(RequestedFormatType::None);
            if let Ok(mut camera) = Camera::new(CameraIndex::Index(*i), request)
                && let Ok(formats) = camera.compatible_camera_formats()
            {
                for f in formats {
                    line += &format!("\n    {f}");
                }
            }
        }
        lines.push(line);
    }
    Ok(lines)
}
