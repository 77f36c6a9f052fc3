//! The camera-board side of flowercam: load a trainer bundle into tract and classify images
//! from files, a camera, an MJPEG stream or a generated pattern, as fast as the CPU allows.
//!
//! - [`model`]: bundle -> verified, optimized tract model;
//! - [`source`]: frame sources (`synthetic`, `dir:`, `stdin:mjpeg`, `camera:N`);
//! - [`live`]: the capture / inference loop (newest frame wins) and smoothing;
//! - [`frame_result`]: what the loop says about a classified frame;
//! - [`consumers`]: where classified frames go (JSON lines, result log, status line, systemd);
//! - [`http`]: the live page, stream, status, health and metrics (`run --http`); [`jpeg`]: frames to JPEG;
//! - [`cli`], [`config`]: the command line, and the config file that holds `run`'s options;
//! - [`events`]: what changed, to an MQTT broker or a web hook; [`backoff`]: waits between retries;
//! - [`resultlog`]: the append-only binary result log that survives power loss;
//! - [`swap`]: a new model checked off the loop and taken between two frames; [`trial`]: first
//!   tried in a child process, when no trusted key vouches for it; [`last_good`]: the model to
//!   start on when the model path's fails;
//! - [`bench`], [`selftest`]: what a technician runs on a box; [`fleet`]: `edge status` of a box;
//! - [`path_text`]: a file's name printed exactly, whatever bytes it holds; [`throttle`]: a
//!   warning at most once a period.

pub mod backoff;
pub mod bench;
pub mod cli;
pub mod config;
pub mod consumers;
pub mod events;
pub mod fleet;
pub mod frame_result;
pub mod http;
pub mod jpeg;
pub mod last_good;
pub mod live;
pub mod model;
pub mod path_text;
pub mod redact;
pub mod resultlog;
pub mod selftest;
pub mod smoothing;
pub mod source;
pub mod swap;
pub mod throttle;
pub mod trial;

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
