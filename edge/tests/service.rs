//! `edge run` as a service (issue 10): the HTTP server (status, health, metrics, stream, token),
//! systemd's notify protocol against a socket the test opens, the config file, and logs fit for
//! files and journald. Every request goes to loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{serve, tiny_bundle};
use image::{Rgb, RgbImage};

mod common;

fn edge() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge"));
    command.env("RUST_LOG", "info").env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC");
    command
}

fn output(args: &[&str]) -> Output {
    edge().args(args).output().unwrap()
}

struct Reply {
    status: u16,
    body: String,
}

fn get(address: &str, path: &str, headers: &[&str]) -> Reply {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{extra}\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {text}"));
    let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    Reply { status, body }
}

fn json(address: &str, path: &str) -> serde_json::Value {
    let reply = get(address, path, &[]);
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", reply.body))
}

/// Polls until `ready` holds, for at most `limit`.
fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `edge run` on synthetic frames with the HTTP server on loopback, once it is healthy.
fn healthy_box(model: &Path) -> common::Served {
    let s = serve(
        edge(),
        &["run", "--model", model.to_str().unwrap(), "--source", "synthetic", "--fps", "20", "--quiet", "--http", "127.0.0.1:0"],
    );
    wait_for(Duration::from_secs(30), "a healthy box", || get(&s.address, "/healthz", &[]).status == 200);
    s
}

#[test]
fn serves_status_latest_health_metrics_and_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = tiny_bundle(dir.path());
    let s = healthy_box(&bundle);

    let status = json(&s.address, "/api/status");
    assert_eq!(status["model"]["labels"], serde_json::json!(["daffodil", "coltsfoot"]));
    let threshold = shared::Bundle::read(&bundle).unwrap().manifest.open_set.unwrap().threshold;
    assert_eq!(status["model"]["unknown_threshold"].as_f64().map(|t| t as f32), Some(threshold), "the threshold in force: {status}");
    assert_eq!(status["model"]["hash"].as_str().unwrap().len(), 64);
    assert_eq!(status["model"]["convolutions_left_for_memory"], 0, "every convolution had room: {status}");
    assert_eq!(status["source_state"], "streaming");
    assert!(status["classified"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["healthy"], true);

    let latest = json(&s.address, "/api/latest");
    assert_eq!(latest["probabilities"].as_array().unwrap().len(), 2);
    assert!(latest["frame"].as_u64().unwrap() >= 1);
    wait_for(Duration::from_secs(10), "a later frame", || json(&s.address, "/api/latest")["frame"] != latest["frame"]);
    wait_for(Duration::from_secs(10), "a frame rate", || json(&s.address, "/api/status")["fps"].as_f64().unwrap() > 1.0);

    let metrics = get(&s.address, "/metrics", &[]);
    assert_eq!(metrics.status, 200);
    for name in [
        "flowercam_frames_classified_total",
        "flowercam_inference_seconds_bucket",
        "flowercam_model_info{",
        "flowercam_answers_total{label=",
    ] {
        assert!(metrics.body.contains(name), "{name} missing from /metrics:\n{}", metrics.body);
    }

    let page = get(&s.address, "/", &[]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/stream.mjpg") && page.body.contains("/api/status"));
    let history = json(&s.address, "/api/history");
    let points = history.as_array().unwrap();
    assert!(!points.is_empty() && points.iter().all(|p| p["p"].as_array().unwrap().len() == 2), "{history}");
    assert_eq!(get(&s.address, "/nothing-here", &[]).status, 404);
}

/// Clients that open a connection and send half a request, or nothing, are closed after the
/// header timeout (10 s), and hundreds of them at once (more than the connection cap) neither
/// keep the box from answering once they are gone nor hold its file descriptors.
#[test]
fn half_sent_requests_are_closed_and_cannot_exhaust_the_box() {
    let dir = tempfile::tempdir().unwrap();
    let s = healthy_box(&tiny_bundle(dir.path()));
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(&s.address).unwrap()).collect();
    for (i, client) in slow.iter_mut().enumerate() {
        if i % 2 == 0 {
            client.write_all(b"GET /api/status HTTP/1.1\r\nHost: x\r\n").unwrap();
        }
        client.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    }
    for client in &mut slow {
        let mut buf = [0u8; 256];
        // Closed by the box: end of stream or a reset, never a read timeout.
        match client.read(&mut buf) {
            Ok(n) => assert!(
                n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => assert!(e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut, "still open: {e}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(35), "closed within the header timeout: {:?}", started.elapsed());
    assert_eq!(get(&s.address, "/healthz", &[]).status, 200, "the box answers again");
}

/// Reads from a multipart MJPEG response until `count` whole JPEG parts have arrived.
fn read_jpeg_parts(stream: &mut TcpStream, count: usize) -> Vec<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 65536];
    loop {
        let parts = jpeg_parts(&bytes);
        if parts.len() >= count {
            return parts;
        }
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "the stream ended");
        bytes.extend_from_slice(&buffer[..n]);
    }
}

/// The parts of a multipart body whose Content-Length bytes have all arrived (searched as bytes:
/// JPEG data is no text).
fn jpeg_parts(bytes: &[u8]) -> Vec<Vec<u8>> {
    let find = |from: usize, what: &[u8]| bytes[from..].windows(what.len()).position(|w| w == what).map(|p| from + p);
    let mut parts = Vec::new();
    let mut at = 0;
    while let Some(found) = find(at, b"Content-Length: ") {
        let start = found + "Content-Length: ".len();
        let Some(end) = find(start, b"\r\n") else { break };
        let len: usize = std::str::from_utf8(&bytes[start..end]).unwrap().parse().unwrap();
        let body = end + 4;
        if bytes.len() < body + len {
            break;
        }
        parts.push(bytes[body..body + len].to_vec());
        at = body + len;
    }
    parts
}

fn open_stream(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(stream, "GET /stream.mjpg HTTP/1.1\r\nHost: {address}\r\n\r\n").unwrap();
    stream
}

#[test]
fn the_stream_sends_jpegs_to_at_most_max_clients_and_a_stalled_one_never_stops_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let s = serve(
        edge(),
        &[
            "run",
            "--model",
            model.to_str().unwrap(),
            "--source",
            "synthetic",
            "--fps",
            "15",
            "--quiet",
            "--http",
            "127.0.0.1:0",
            "--http-max-clients",
            "2",
        ],
    );
    let mut watcher = open_stream(&s.address);
    let parts = read_jpeg_parts(&mut watcher, 2);
    let frame = image::load_from_memory(&parts[1]).expect("a part is a JPEG");
    assert_eq!((frame.width(), frame.height()), (640, 480));

    // A second client that connects and never reads: allowed (2 at most), and the loop goes on.
    let _stalled = open_stream(&s.address);
    std::thread::sleep(Duration::from_millis(300));
    let third = get(&s.address, "/stream.mjpg", &[]);
    assert_eq!(third.status, 503, "a third watcher is over --http-max-clients 2: {}", third.body);
    let before = json(&s.address, "/api/status")["classified"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let status = json(&s.address, "/api/status");
    assert!(status["classified"].as_u64().unwrap() >= before + 10, "the loop slowed with a stalled client: {status}");
    assert_eq!(status["stream_clients"], 2);

    // A watcher that leaves frees its place.
    drop(watcher);
    wait_for(Duration::from_secs(10), "a freed place", || json(&s.address, "/api/status")["stream_clients"] == 1);
}

#[test]
fn a_token_guards_every_endpoint_and_public_addresses_need_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let model = model.to_str().unwrap();
    let refused = output(&["run", "--model", model, "--source", "synthetic", "--http", "0.0.0.0:0"]);
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a loopback address"));

    // A base64 token (`openssl rand -base64`): its `+ / =` travel percent-encoded in a URL.
    let token = "s3+cr/et=";
    let s = serve(
        edge(),
        &["run", "--model", model, "--source", "synthetic", "--fps", "10", "--quiet", "--http", "127.0.0.1:0", "--http-token", token],
    );
    for path in ["/", "/api/status", "/api/latest", "/healthz", "/metrics", "/stream.mjpg"] {
        assert_eq!(get(&s.address, path, &[]).status, 401, "{path} without the token");
        assert_eq!(get(&s.address, &format!("{path}?token=wrong"), &[]).status, 401, "{path} with a wrong token");
    }
    assert_eq!(get(&s.address, "/api/status", &[&format!("Authorization: Bearer {token}")]).status, 200);
    assert_eq!(get(&s.address, "/api/status", &[&format!("Authorization: bearer {token}")]).status, 200, "the scheme's case is free");
    assert_eq!(get(&s.address, "/?token=s3%2Bcr%2Fet%3D", &[]).status, 200, "percent-encoded, as the page sends it");
    assert_eq!(get(&s.address, "/?token=s3+cr/et=", &[]).status, 401, "a bare + is a space in a query, as browsers read it");
    assert_eq!(get(&s.address, "/?token=wrong&token=s3%2Bcr%2Fet%3D", &[]).status, 401, "the first token= counts");
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = output(&["run", "--model", model.to_str().unwrap(), "--source", "synthetic", "--http", &address]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("--http {address}: cannot listen")), "{err}");
}

fn jpeg(i: u32) -> Vec<u8> {
    let frame = RgbImage::from_fn(160, 120, |x, y| Rgb([((x + i * 7) % 256) as u8, (y * 2) as u8, 90]));
    let mut bytes = Vec::new();
    frame.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg).unwrap();
    bytes
}

/// The datagrams received so far, each split into its `KEY=value` lines.
fn drain(socket: &UnixDatagram) -> Vec<String> {
    let mut messages = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buffer) {
        messages.extend(String::from_utf8_lossy(&buffer[..n]).lines().map(String::from));
    }
    messages
}

#[test]
fn a_stalled_source_turns_healthz_503_and_stops_the_watchdog_pings() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut command = edge();
    command.env("NOTIFY_SOCKET", &socket_path).env("WATCHDOG_USEC", "200000").stdin(Stdio::piped());
    let last_good = dir.path().join("last-good.bundle");
    let mut s = serve(
        command,
        &[
            "run",
            "--model",
            model.to_str().unwrap(),
            "--last-good",
            last_good.to_str().unwrap(),
            "--source",
            "stdin:mjpeg",
            "--quiet",
            "--http",
            "127.0.0.1:0",
            "--stale-after",
            "1",
        ],
    );
    let mut stdin = s.child.stdin.take().unwrap();
    // Frames at 20 fps for a second and a half, then nothing: the pipe stays open, the source stalls.
    for i in 0..30 {
        stdin.write_all(&jpeg(i)).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let while_streaming = drain(&socket);
    assert!(while_streaming.iter().any(|m| m == "READY=1"), "{while_streaming:?}");
    // The first model's trial (--last-good) may take up to --check-timeout (120 s): asked for first.
    assert_eq!(while_streaming.first().map(String::as_str), Some("EXTEND_TIMEOUT_USEC=240000000"), "{while_streaming:?}");
    let pings = while_streaming.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(pings >= 3, "a ping every 100 ms while frames are classified: {while_streaming:?}");
    assert!(while_streaming.iter().any(|m| m.starts_with("STATUS=") && m.contains("fps")), "{while_streaming:?}");

    let started = Instant::now();
    wait_for(Duration::from_secs(5), "/healthz to turn 503", || get(&s.address, "/healthz", &[]).status == 503);
    assert!(started.elapsed() < Duration::from_millis(2500), "503 within --stale-after (1 s) of the stall");
    let health = get(&s.address, "/healthz", &[]);
    assert!(health.body.starts_with("stale: no frame classified for"), "{}", health.body);
    drain(&socket);
    std::thread::sleep(Duration::from_millis(800));
    let after = drain(&socket);
    assert!(!after.iter().any(|m| m == "WATCHDOG=1"), "pings must stop with the frames: {after:?}");

    // Frames again: healthy again, pings again.
    stdin.write_all(&jpeg(99)).unwrap();
    stdin.write_all(&jpeg(100)).unwrap();
    stdin.flush().unwrap();
    wait_for(Duration::from_secs(5), "/healthz to recover", || get(&s.address, "/healthz", &[]).status == 200);
    drop(stdin);
}

#[test]
fn a_config_file_sets_run_options_and_typed_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let config = dir.path().join("edge.toml");
    std::fs::write(&config, format!("model = {:?}\nsource = \"synthetic\"\nmax-frames = 3\nsmoothing = 2\n", model.to_str().unwrap()))
        .unwrap();
    let out = output(&["run", "--config", config.to_str().unwrap(), "--max-frames", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "--max-frames 2 typed wins over the file's 3");

    std::fs::write(&config, "model = \"m.bundle\"\nsmothing = 2\n").unwrap();
    let out = output(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("edge.toml:2: unknown key 'smothing'"), "{err}");

    let check = output(&["config", "--check", config.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2));
    std::fs::write(&config, "model = \"m.bundle\"\nhttp-token = \"s3cret\"\nquiet = true\nsmoothing = 3\n").unwrap();
    let check = output(&["config", "--check", config.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success() && said.contains("  --http-token ***\n") && !said.contains("s3cret"), "{said}");
    assert!(said.contains("  --quiet\n") && said.contains("  --smoothing 3\n"), "one option a line, switches alone: {said}");

    let default = output(&["config", "--print-default"]);
    assert!(default.status.success());
    assert!(String::from_utf8_lossy(&default.stdout).contains("#stale-after = 10"));
    assert_eq!(output(&["run", "--source", "synthetic"]).status.code(), Some(2), "no model anywhere is bad usage");
}

#[test]
fn logs_have_no_colour_codes_in_a_file_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let model = model.to_str().unwrap();
    let text = output(&["run", "--model", model, "--source", "synthetic", "--max-frames", "2"]);
    let err = String::from_utf8_lossy(&text.stderr);
    assert!(text.status.success() && err.contains("source: synthetic"), "{err}");
    assert!(!err.contains('\u{1b}'), "escape codes in a piped log: {err:?}");

    let json = output(&["--log-format", "json", "run", "--model", model, "--source", "synthetic", "--max-frames", "2"]);
    let err = String::from_utf8_lossy(&json.stderr);
    let logged: Vec<serde_json::Value> = err.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        logged.iter().any(|l| l["level"] == "INFO" && l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("source: synthetic"))),
        "{err}"
    );
    // Every line is JSON, the closing `done:` summary and a command's error included.
    assert_eq!(logged.len(), err.lines().count(), "lines that are not JSON: {err}");
    assert!(logged.iter().any(|l| l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("done: 2 frames"))), "{err}");
    let failed = output(&["--log-format", "json", "run", "--model", "/no/such.bundle", "--source", "synthetic"]);
    let err = String::from_utf8_lossy(&failed.stderr);
    let last: serde_json::Value = serde_json::from_str(err.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(last["level"], "ERROR", "{err}");
    assert!(last["fields"]["message"].as_str().unwrap().contains("/no/such.bundle"), "{err}");
}

/// An MJPEG camera on loopback that serves `frames` parts per connection and then cuts it.
fn flaky_camera(frames: u32) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (n, socket) in listener.incoming().enumerate() {
            let Ok(mut socket) = socket else { continue };
            let mut request = BufReader::new(socket.try_clone().unwrap());
            let mut line = String::new();
            while request.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let _ = write!(socket, "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n");
            for i in 0..frames {
                let part = jpeg(n as u32 * 10 + i);
                let _ = write!(socket, "--f\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", part.len());
                let _ = socket.write_all(&part);
                let _ = socket.write_all(b"\r\n");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    format!("http://{address}/video")
}

#[test]
fn an_http_camera_that_drops_the_connection_is_reconnected() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let url = flaky_camera(4);
    let out = output(&["run", "--model", model.to_str().unwrap(), "--source", &url, "--max-frames", "10"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let frames: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["frame"].as_u64().unwrap())
        .collect();
    assert_eq!(frames.len(), 10);
    assert!(frames.windows(2).all(|w| w[1] > w[0]), "frame numbers rise across reconnects: {frames:?}");
    assert!(err.contains("source lost") && err.contains("the stream ended"), "{err}");
    let reconnects: u64 = err.split(" reconnects").next().and_then(|s| s.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(reconnects >= 2, "10 frames at 4 a connection need 2 reconnects at least: {err}");
}

#[test]
fn recordings_play_through_ffmpeg_and_its_absence_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let clip = dir.path().join("clip.avi");
    let made = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=20", "-t", "1", "-c:v", "mjpeg"])
        .arg(&clip)
        .status()
        .expect("ffmpeg is needed for this test: scripts/setup.sh --tests installs it");
    assert!(made.success());
    let source = format!("file:{}", clip.display());
    let out = output(&["run", "--model", model.to_str().unwrap(), "--source", &source]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let frames = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!((15..=20).contains(&frames), "a 1 s clip at 20 fps, played at its own rate: {frames} frames");
    // --loop plays a clip over, and shows a still photo for ever (through ffmpeg it played one
    // frame); a photo is read by the edge itself, whatever its name says (a PNG named .jpg, a
    // colon), and needs no ffmpeg.
    let photo = dir.path().join("12:00 still.jpg");
    image::RgbImage::from_pixel(64, 48, image::Rgb([200, 180, 20])).save_with_format(&photo, image::ImageFormat::Png).unwrap();
    let still = format!("file:{}", photo.display());
    for looped in [&source, &still] {
        let out = output(&["run", "--model", model.to_str().unwrap(), "--source", looped, "--loop", "--max-frames", "30"]);
        assert!(out.status.success(), "{looped}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 30, "{looped}");
    }
    let once = edge().args(["run", "--model", model.to_str().unwrap(), "--source", &still]).env("PATH", dir.path()).output().unwrap();
    assert!(once.status.success(), "{}", String::from_utf8_lossy(&once.stderr));
    assert_eq!(String::from_utf8_lossy(&once.stdout).lines().count(), 1, "one photo, one frame without --loop");
    // A recording whose name holds a colon is no ffmpeg protocol.
    let colon_clip = dir.path().join("12:00.avi");
    std::fs::copy(&clip, &colon_clip).unwrap();
    let out = output(&["run", "--model", model.to_str().unwrap(), "--source", &format!("file:{}", colon_clip.display())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() >= 15);

    // A device or a missing file is named as what it is.
    for (path, said) in [("/dev/zero", "not a regular file"), ("/nonexistent/clip.avi", "No such file")] {
        let out = output(&["run", "--model", model.to_str().unwrap(), "--source", &format!("file:{path}")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("--source file:{path}: {said}")), "{err}");
    }

    let no_ffmpeg = edge().args(["run", "--model", model.to_str().unwrap(), "--source", &source]).env("PATH", dir.path()).output().unwrap();
    assert_eq!(no_ffmpeg.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_ffmpeg.stderr).contains("needs ffmpeg, which is not installed"));
}

#[test]
fn a_reader_that_goes_ends_the_run_quietly() {
    // `edge run ... | head -3`: the loop ends with success and says nothing of a broken pipe.
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let mut child = edge()
        .args(["run", "--model", model.to_str().unwrap(), "--source", "synthetic"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        assert!(lines.next().unwrap().unwrap().starts_with('{'));
    }
    drop(lines);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("Broken pipe") && !err.contains("ERROR"), "{err}");
}

/// Every file under `dir`, recursively, with its size.
fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.clone(), entry.metadata().unwrap().len()));
        }
    }
    out
}

#[test]
fn saved_frames_land_in_answer_folders_within_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let saved = dir.path().join("saved");
    // A threshold below every score: every frame is refused as unknown, so every frame is saved.
    let args = ["run", "--model", model.to_str().unwrap(), "--source", "synthetic", "--max-frames", "60", "--unknown-threshold", "-0.201"];
    let out = output(&[&args[..], &["--save-frames", saved.to_str().unwrap(), "--save-when", "unknown", "--save-cap", "1MB"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let files = files_under(&saved);
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let largest = files.iter().map(|(_, n)| *n).max().unwrap();
    assert!(total <= (1 << 20) + largest, "the cap (1MB) holds to within one file: {total} bytes");
    assert!(files.len() < 120, "older frames were deleted: {} files", files.len());
    for (path, _) in &files {
        assert_eq!(path.parent().unwrap().file_name().unwrap(), "unknown", "{}", path.display());
        let ext = path.extension().unwrap().to_str().unwrap();
        assert!(ext == "jpg" || ext == "json", "no temporaries left: {}", path.display());
        if ext == "jpg" {
            image::open(path).expect("a whole JPEG");
            let sidecar: serde_json::Value = serde_json::from_slice(&std::fs::read(path.with_extension("json")).unwrap()).unwrap();
            assert_eq!(sidecar["label"], "unknown");
            assert_eq!(sidecar["saved_because"], serde_json::json!(["unknown"]));
            assert_eq!(sidecar["model_sha256"].as_str().unwrap().len(), 64);
        }
    }

    // The cap deletes only what a saver wrote: a person's files in DIR (big ones, in a class
    // folder of their own name, or behind a symlinked folder) are neither counted nor deleted.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir_all(saved.join("unknown")).unwrap();
    std::fs::create_dir_all(saved.join("notes")).unwrap();
    std::fs::create_dir_all(&theirs).unwrap();
    let big = vec![7u8; 3 << 20];
    let keep =
        [saved.join("notes/thesis.pdf"), saved.join("unknown/1_2.jpg"), saved.join("unknown/holiday.jpg"), theirs.join("precious.bin")];
    for path in &keep {
        std::fs::write(path, &big).unwrap();
    }
    std::os::unix::fs::symlink(&theirs, saved.join("link")).unwrap();
    let out = output(&[&args[..], &["--save-frames", saved.to_str().unwrap(), "--save-when", "unknown", "--save-cap", "1MB"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for path in &keep {
        assert_eq!(std::fs::metadata(path).map(|m| m.len()).ok(), Some(3 << 20), "{} was left alone", path.display());
    }
    let ours: u64 = files_under(&saved.join("unknown")).iter().filter(|(p, _)| p.to_str().unwrap().contains("_0000")).map(|(_, n)| n).sum();
    assert!(ours > 0 && ours <= (1 << 20) + largest, "its own frames still kept within the cap: {ours} bytes");

    // A folder it cannot write (here: a file in the way) stops the saving, not the classifying.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir_all(&blocked).unwrap();
    std::fs::write(blocked.join("unknown"), "not a folder").unwrap();
    let out = output(&[&args[..], &["--save-frames", blocked.to_str().unwrap()]].concat());
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 60, "every frame still classified");
    assert!(String::from_utf8_lossy(&out.stderr).contains("saving stopped, classifying goes on"));

    // An answer folder that is a symlink is not written through: its frames would escape the cap
    // on the next start, which does not follow symlinks.
    let linked = dir.path().join("linked");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink(&theirs, linked.join("unknown")).unwrap();
    let out = output(&[&args[..], &["--save-frames", linked.to_str().unwrap()]].concat());
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 60, "every frame still classified");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("is a symlink; its frames are not saved").count(), 1, "said once: {stderr}");
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 1, "nothing written behind the symlink");
}

#[test]
fn edge_status_reads_a_box_and_its_exit_code_says_healthy_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let mut command = edge();
    command.stdin(Stdio::piped());
    let mut s = serve(
        command,
        &[
            "run",
            "--model",
            model.to_str().unwrap(),
            "--source",
            "stdin:mjpeg",
            "--quiet",
            "--http",
            "127.0.0.1:0",
            "--http-token",
            "t0k",
            "--stale-after",
            "1",
        ],
    );
    let mut stdin = s.child.stdin.take().unwrap();
    for i in 0..3 {
        stdin.write_all(&jpeg(i)).unwrap();
    }
    stdin.flush().unwrap();
    let url = format!("http://{}", s.address);
    wait_for(Duration::from_secs(10), "a classified frame", || {
        edge().args(["status", "--url", &url, "--token", "t0k"]).output().unwrap().status.success()
    });
    let line = edge().args(["status", "--url", &url]).env("FLOWERCAM_HTTP_TOKEN", "t0k").output().unwrap();
    let text = String::from_utf8_lossy(&line.stdout);
    assert!(line.status.success() && text.contains("healthy") && text.contains("model tiny"), "{text}");
    // The live page's address, token and all, as an operator copies it from the browser.
    let page = edge().args(["status", "--url", &format!("{url}/?token=t0k")]).output().unwrap();
    let text = String::from_utf8_lossy(&page.stdout);
    assert!(page.status.success() && text.contains("healthy") && !text.contains("t0k"), "{text}");
    let json = edge().args(["status", "--url", &url, "--token", "t0k", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(status["captured"], 3, "{status}");

    // The source stalls: unhealthy, exit 4. No token: refused, exit 1, saying why.
    std::thread::sleep(Duration::from_millis(1500));
    let stale = edge().args(["status", "--url", &url, "--token", "t0k"]).output().unwrap();
    assert_eq!(stale.status.code(), Some(4), "{}", String::from_utf8_lossy(&stale.stdout));
    assert!(String::from_utf8_lossy(&stale.stdout).contains("UNHEALTHY"));
    let no_token = edge().args(["status", "--url", &url]).output().unwrap();
    assert_eq!(no_token.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("wants a token"));
    drop(stdin);
}

/// Something else at the URL that answers without end: read up to a bound, then refused.
#[test]
fn status_reads_a_bounded_answer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let _ = client.read(&mut [0; 4096]);
        let mut sent = 0usize;
        let _ = client.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"healthy\": \"");
        // Until the client hangs up (or 64 MB, should it never).
        while sent < 64 << 20 && client.write_all(&[b'x'; 65536]).is_ok() {
            sent += 65536;
        }
        sent
    });
    let out = edge().args(["status", "--url", &url]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not a flowercam edge's status"), "{err}");
    let sent = sent.join().unwrap();
    assert!(sent < 16 << 20, "the client read {sent} bytes before giving up");
}
