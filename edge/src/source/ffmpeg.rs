//! `rtsp://...` and `file:PATH` through `ffmpeg`, when it is installed: it decodes whatever the
//! camera or the recording holds (H.264, H.265, MJPEG ...) and writes MJPEG to a pipe that the
//! MJPEG splitter reads. RTSP reconnects with backoff (a new ffmpeg each time); a file plays at
//! its own frame rate (`-re`) once, or forever with `--loop`.

use std::io::Read;
use std::process::{Child, ChildStdout, Command, Stdio};

use super::mjpeg::MjpegStream;
use super::reconnect::Reconnecting;

/// ffmpeg's output: JPEG quality 2 (best) .. 31; 4 keeps detail for the classifier.
const JPEG_QUALITY: &str = "4";

/// ffmpeg's standard output; the process is killed when this is dropped.
struct Piped {
    child: Child,
    stdout: ChildStdout,
}

impl Read for Piped {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stdout.read(buf)
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `ffmpeg` runs here; the error says how to get it.
pub fn check_installed(what: &str) -> anyhow::Result<()> {
    match Command::new("ffmpeg").arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(status) if status.success() => Ok(()),
        _ => anyhow::bail!("--source {what} needs ffmpeg, which is not installed here (Debian/Ubuntu: apt install ffmpeg)"),
    }
}

fn spawn(input_options: &[&str], input: &str) -> anyhow::Result<Box<dyn Read + Send>> {
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(input_options)
        .args(["-i", input, "-an", "-f", "mjpeg", "-q:v", JPEG_QUALITY, "pipe:1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start ffmpeg: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    Ok(Box::new(Piped { child, stdout }))
}

pub fn rtsp(url: &str) -> anyhow::Result<Reconnecting> {
    check_installed("rtsp://")?;
    let name = crate::redact::redact(url);
    let url = url.to_string();
    // TCP: UDP loses packets (and frames) on the Wi-Fi boxes in the field often use.
    Ok(Reconnecting::new(name, Box::new(move || spawn(&["-rtsp_transport", "tcp"], &url))))
}

pub fn file(path: &str, looping: bool) -> anyhow::Result<MjpegStream> {
    check_installed("file:")?;
    // A device or a pipe is no recording (`stdin:mjpeg` reads a pipe); say which it is.
    shared::read::check_file(std::path::Path::new(path), u64::MAX).map_err(|e| anyhow::anyhow!("--source file:{path}: {e}"))?;
    let options: &[&str] = if looping { &["-re", "-stream_loop", "-1"] } else { &["-re"] };
    // ffmpeg's own `file:` protocol: a name with a colon (`12:00.mp4`) is no protocol of its.
    Ok(MjpegStream::new(spawn(options, &format!("file:{path}"))?, format!("file:{path}")))
}
