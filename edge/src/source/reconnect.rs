//! A stream of JPEG frames that is reopened, with backoff, whenever it ends or fails: network
//! cameras (`http://`) and `ffmpeg` (`rtsp://`) drop connections, and a box on a post must ride
//! that out. A drop is one `Lost` event (counted as a reconnect; `/healthz` goes stale if it
//! lasts); the first connection is tried the same way, so a box may start before its camera.

use std::io::Read;
use std::time::Duration;

use super::mjpeg::MjpegStream;
use super::{Event, FrameSource};

const FIRST_WAIT: Duration = Duration::from_millis(500);
const LONGEST_WAIT: Duration = Duration::from_secs(10);

pub type Opener = Box<dyn FnMut() -> anyhow::Result<Box<dyn Read + Send>> + Send>;

pub struct Reconnecting {
    name: String,
    open: Opener,
    stream: Option<MjpegStream>,
    wait: Duration,
    /// Frames delivered over every connection: numbers keep rising across reconnects.
    delivered: u64,
}

impl Reconnecting {
    /// `name` is what messages call the source (without secrets); `open` connects once.
    pub fn new(name: String, open: Opener) -> Self {
        Self { name, open, stream: None, wait: FIRST_WAIT, delivered: 0 }
    }

    /// Connects, retrying with waits of 0.5 s, 1 s, 2 s ... (at most 10 s) until it succeeds.
    fn connect(&mut self) -> MjpegStream {
        loop {
            match (self.open)() {
                Ok(reader) => {
                    tracing::info!("{}: connected", self.name);
                    return MjpegStream::new(reader, self.name.clone());
                }
                Err(e) => {
                    tracing::warn!("{e:#}; retrying in {:.1}s", self.wait.as_secs_f32());
                    std::thread::sleep(self.wait);
                    self.wait = (self.wait * 2).min(LONGEST_WAIT);
                }
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
                self.stream.insert(stream)
            }
        };
        let lost = match stream.next() {
            Ok(Event::Frame(mut frame)) => {
                self.wait = FIRST_WAIT;
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
        Ok(Event::Lost(lost))
    }

    fn describe(&self) -> String {
        format!("{} (MJPEG, reconnecting)", self.name)
    }
}
