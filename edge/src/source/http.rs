//! `http://...`: MJPEG over HTTP (`multipart/x-mixed-replace`, or a bare JPEG stream), as IP
//! cameras, ESP32-CAM, mjpg-streamer and `rpicam-vid --listen` serve it; ureq, plain HTTP.
//! Reconnects with backoff; a server that stops sending for `STALL` is a lost connection.

use std::time::Duration;

use super::reconnect::Reconnecting;
use crate::redact::redact;

/// No byte for this long: the connection is taken for dead and reopened.
const STALL: Duration = Duration::from_secs(10);

pub fn open(url: &str) -> anyhow::Result<Reconnecting> {
    let uri: ureq::http::Uri = url.parse().map_err(|e| anyhow::anyhow!("--source {}: not a URL: {e}", redact(url)))?;
    anyhow::ensure!(uri.host().is_some(), "--source {}: no host in the URL", redact(url));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_recv_response(Some(STALL))
        .timeout_per_read(Some(STALL))
        .build()
        .into();
    let name = redact(url);
    let url = url.to_string();
    let label = name.clone();
    Ok(Reconnecting::new(
        name,
        Box::new(move || {
            let response = agent.get(&url).call().map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
            let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
            anyhow::ensure!(
                kind.starts_with("multipart/") || kind.starts_with("image/jpeg") || kind.is_empty(),
                "{label}: not an MJPEG stream (Content-Type: {kind})"
            );
            Ok(Box::new(response.into_body().into_reader()))
        }),
    ))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use image::{Rgb, RgbImage};

    use super::*;
    use crate::source::{Event, FrameSource};

    fn jpeg(shade: u8) -> Vec<u8> {
        let mut bytes = Vec::new();
        RgbImage::from_pixel(32, 24, Rgb([shade, 60, 90]))
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
            .unwrap();
        bytes
    }

    /// Serves `frames` JPEG parts per connection, then cuts the connection, `connections` times.
    fn camera(connections: usize, frames: u8) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for _ in 0..connections {
                let (mut socket, _) = listener.accept().unwrap();
                let mut request = BufReader::new(socket.try_clone().unwrap());
                let mut line = String::new();
                while request.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                write!(socket, "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n").unwrap();
                for i in 0..frames {
                    let part = jpeg(i * 40);
                    write!(socket, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", part.len()).unwrap();
                    socket.write_all(&part).unwrap();
                    socket.write_all(b"\r\n").unwrap();
                }
                // Dropping the socket cuts the stream mid-way, as a camera rebooting would.
            }
        });
        format!("http://{address}/stream")
    }

    fn events(source: &mut dyn FrameSource, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| match source.next().unwrap() {
                Event::Frame(f) => format!("frame{}", f.number),
                Event::Corrupt(why) => format!("corrupt {why}"),
                Event::Lost(_) => "lost".into(),
                Event::End => "end".into(),
            })
            .collect()
    }

    #[test]
    fn reads_multipart_frames_and_reconnects_when_the_connection_drops() {
        let url = camera(2, 3);
        let mut source = open(&url).unwrap();
        assert_eq!(events(&mut source, 8), ["frame1", "frame2", "frame3", "lost", "frame4", "frame5", "frame6", "lost"]);
    }

    #[test]
    fn bad_urls_are_refused_and_passwords_never_shown() {
        assert!(open("http://").is_err());
        let e = open("http://admin:hunter2@/x").map(|_| ()).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
