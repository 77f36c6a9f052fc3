//! A stream of JPEG frames that is reopened, with backoff, whenever it ends or fails: network
//! cameras (`http://`) and `ffmpeg` (`rtsp://`) drop connections, and a box on a post must ride
//! that out. A drop is one `Lost` event (counted as a reconnect; `/healthz` goes stale if it
//! lasts); the first connection is tried the same way, so a box may start before its camera.

use std::io::Read;
use std::time::{Duration, Instant};

use super::mjpeg::MjpegStream;
use super::{Event, FrameSource};
use crate::backoff::Backoff;

/// A connection that ends sooner than this counts as a failed one: the next waits.
const SHORT_CONNECTION: Duration = Duration::from_secs(1);

pub type Opener = Box<dyn FnMut() -> anyhow::Result<Box<dyn Read + Send>> + Send>;

pub struct Reconnecting {
    name: String,
    open: Opener,
    stream: Option<MjpegStream>,
    backoff: Backoff,
    /// The last connection ended before giving a frame, or within [`SHORT_CONNECTION`]: wait
    /// before the next (a server that accepts and hangs up at once, or a snapshot URL that
    /// serves one JPEG a request, is not hammered).
    fruitless: bool,
    /// When the current connection was made.
    connected_at: Instant,
    /// Frames delivered over every connection: numbers keep rising across reconnects.
    delivered: u64,
}

impl Reconnecting {
    /// `name` is what messages call the source (without secrets); `open` connects once.
    pub fn new(name: String, open: Opener) -> Self {
        Self { name, open, stream: None, backoff: Backoff::new(), fruitless: false, connected_at: Instant::now(), delivered: 0 }
    }

    /// Connects, with [`Backoff`] between failed tries, until it succeeds.
    fn connect(&mut self) -> MjpegStream {
        if self.fruitless {
            self.backoff.pause(&anyhow::anyhow!("{}: the last connection gave no frame or ended at once", self.name));
        }
        loop {
            match (self.open)() {
                Ok(reader) => return MjpegStream::new(reader, self.name.clone()),
                Err(e) => self.backoff.pause(&e),
            }
        }
    }
}

impl FrameSource for Reconnecting {
    fn next(&mut self) -> anyhow::Result<Event> {
        let stream = match self.stream.as_mut() {
            Some(stream) => stream,
            None => {
                let stream = self.connect();
                self.fruitless = true;
                self.connected_at = Instant::now();
                self.stream.insert(stream)
            }
        };
        let lost = match stream.next() {
            Ok(Event::Frame(mut frame)) => {
                // The waits start short again only once a connection has held: a server that
                // gives one frame a connection is asked less and less often.
                if self.connected_at.elapsed() >= SHORT_CONNECTION {
                    self.backoff.reset();
                }
                // Said at the first frame, not when the opener returns: an ffmpeg started for a
                // camera that is not there has "opened" too.
                if std::mem::take(&mut self.fruitless) {
                    tracing::info!("{}: connected, frames arriving", self.name);
                }
                self.delivered += 1;
                frame.number = self.delivered;
                return Ok(Event::Frame(frame));
            }
            Ok(Event::End) => format!("{}: the stream ended", self.name),
            Ok(Event::Lost(why)) => why,
            Ok(Event::Corrupt(why)) => return Ok(Event::Corrupt(why)),
            Err(e) => format!("{e:#}"),
        };
        self.stream = None;
        if self.connected_at.elapsed() < SHORT_CONNECTION {
            self.fruitless = true;
        }
        Ok(Event::Lost(lost))
    }

    fn describe(&self) -> String {
        format!("{} (MJPEG, reconnecting)", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One small JPEG, as a snapshot URL serves it.
    fn jpeg() -> Vec<u8> {
        let mut bytes = Vec::new();
        image::RgbImage::from_pixel(16, 16, image::Rgb([200, 180, 20]))
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
            .unwrap();
        bytes
    }

    #[test]
    fn a_server_that_gives_one_frame_a_connection_is_asked_less_and_less_often() {
        let frame = jpeg();
        let source = Reconnecting::new(
            "snapshot".into(),
            Box::new(move || Ok(Box::new(std::io::Cursor::new(frame.clone())) as Box<dyn Read + Send>)),
        );
        let mut source = source;
        let started = Instant::now();
        let mut frames = 0;
        while frames < 3 {
            if let Event::Frame(_) = source.next().unwrap() {
                frames += 1;
            }
        }
        // Three connections: waits of 0.5 and 1 s before the second and third (it was none).
        assert!(started.elapsed() >= Duration::from_millis(1500), "{:?}", started.elapsed());
    }
}
