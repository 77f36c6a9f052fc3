//! Events against real receivers on loopback: Debian's `mosquitto` as the broker (killed and
//! restarted mid-run, and down at the start), and a small HTTP receiver as the web hook.
//! `scripts/setup.sh --tests` installs mosquitto; without it these tests fail, they never skip.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::{Rgb, RgbImage};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

fn edge() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge"));
    command.env("RUST_LOG", "info").env("NO_COLOR", "1");
    command
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A mosquitto on a loopback port. It keeps sessions across a restart (stopped with SIGTERM, it
/// saves them), so the test's subscriber misses nothing while either side is away; the box
/// itself uses clean sessions and owes nothing to that.
struct Broker {
    port: u16,
    config: PathBuf,
    child: Option<Child>,
}

impl Broker {
    fn new(dir: &Path) -> Self {
        let port = free_port();
        let config = dir.join("mosquitto.conf");
        let store = dir.join("mosquitto-store/");
        std::fs::create_dir_all(&store).unwrap();
        let settings =
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n", store.display());
        std::fs::write(&config, settings).unwrap();
        Broker { port, config, child: None }
    }

    fn start(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is needed for this test (scripts/setup.sh --tests installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM: mosquitto saves its sessions and stops.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Everything published under `flowercam/#` and `homeassistant/#`, as (topic, payload, retain),
/// collected by a client with a lasting session (QoS 1: the broker queues for it while it is
/// away) that reconnects whenever the broker comes back.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, String, bool)>>>);

impl Received {
    fn subscribe(port: u16) -> Self {
        let received = Received::default();
        let sink = received.clone();
        let mut options = MqttOptions::new("test-subscriber", "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(false);
        let (client, mut connection) = Client::new(options, 16);
        std::thread::spawn(move || {
            for notification in connection.iter() {
                match notification {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client.try_subscribe("flowercam/#", QoS::AtLeastOnce).unwrap();
                        client.try_subscribe("homeassistant/#", QoS::AtLeastOnce).unwrap();
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        sink.0.lock().unwrap().push((p.topic.clone(), String::from_utf8_lossy(&p.payload).into_owned(), p.retain))
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        received
    }

    /// Waits until the subscription is in place (a message to a probe topic comes back).
    fn wait_subscribed(&self, port: u16) {
        wait_for(Duration::from_secs(10), "the subscriber", || {
            let (probe, mut connection) = Client::new(MqttOptions::new("probe", "127.0.0.1", port), 4);
            let _ = probe.try_publish("flowercam/probe", QoS::AtLeastOnce, false, "x");
            for _ in 0..4 {
                let _ = connection.recv_timeout(Duration::from_millis(100));
            }
            !self.on("flowercam/probe").is_empty()
        });
    }

    fn on(&self, topic: &str) -> Vec<String> {
        self.0.lock().unwrap().iter().filter(|(t, _, _)| t == topic).map(|(_, p, _)| p.clone()).collect()
    }

    fn events(&self) -> Vec<Value> {
        self.on("flowercam/box1/events").iter().map(|p| serde_json::from_str(p).unwrap()).collect()
    }
}

/// The events the edge logged (`event: {json}` lines on standard error), as they happen.
#[derive(Clone, Default)]
struct Logged(Arc<Mutex<Vec<String>>>);

impl Logged {
    fn collect(child: &mut Child) -> Self {
        let logged = Logged::default();
        let lines = Arc::clone(&logged.0);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        logged
    }

    fn events(&self) -> Vec<Value> {
        let lines = self.0.lock().unwrap();
        lines.iter().filter_map(|l| l.split("event: ").nth(1)).map(|j| serde_json::from_str(j).unwrap()).collect()
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn jpeg(colour: [u8; 3]) -> Vec<u8> {
    let mut bytes = Vec::new();
    RgbImage::from_pixel(96, 72, Rgb(colour)).write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg).unwrap();
    bytes
}

/// Two frames and an --unknown-threshold between their open-set scores: the tiny random model
/// answers a class for the first and `unknown` for the second.
fn class_and_unknown_frames(dir: &Path, bundle: &Path) -> (Vec<u8>, Vec<u8>, String) {
    let colours: Vec<[u8; 3]> = (0..12u8).map(|i| [i.wrapping_mul(47), 255 - i * 20, i.wrapping_mul(91)]).collect();
    for (i, colour) in colours.iter().enumerate() {
        std::fs::write(dir.join(format!("c{i:02}.jpg")), jpeg(*colour)).unwrap();
    }
    let out = edge()
        .args(["classify", "--json", "--model"])
        .arg(bundle)
        .arg(dir.join("c00.jpg"))
        .args((1..12).map(|i| dir.join(format!("c{i:02}.jpg"))))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let scores: Vec<f32> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["unknown_score"].as_f64().unwrap() as f32)
        .collect();
    let low = (0..12).min_by(|a, b| scores[*a].total_cmp(&scores[*b])).unwrap();
    let high = (0..12).max_by(|a, b| scores[*a].total_cmp(&scores[*b])).unwrap();
    assert!(scores[high] > scores[low], "the tiny model gives every colour the same open-set score: {scores:?}");
    let threshold = (scores[low] + scores[high]) / 2.0;
    (jpeg(colours[low]), jpeg(colours[high]), format!("{threshold}"))
}

/// `edge run` on MJPEG fed through its standard input, answering each frame alone
/// (`--smoothing 1`), with `args` and the model: the child, its logged events, its input.
fn start_box(bundle: &Path, args: &[&str]) -> (Child, Logged, ChildStdin) {
    let mut child = edge()
        .args(["run", "--source", "stdin:mjpeg", "--smoothing", "1", "--quiet"])
        .args(args)
        .arg("--model")
        .arg(bundle)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logged = Logged::collect(&mut child);
    let stdin = child.stdin.take().unwrap();
    (child, logged, stdin)
}

fn send(stdin: &mut ChildStdin, frame: &[u8], pause_ms: u64) {
    stdin.write_all(frame).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(pause_ms));
}

/// The identity of an event: what a duplicate (QoS 1 allows some) shares with its original.
fn key(e: &Value) -> (String, u64, Option<u64>) {
    (e["event"].as_str().unwrap().to_string(), e["timestamp_ms"].as_u64().unwrap(), e["frame"].as_u64())
}

/// A tiny model with its class and unknown frames, a running broker, and a subscriber on it.
struct Setup {
    dir: tempfile::TempDir,
    bundle: PathBuf,
    class_frame: Vec<u8>,
    unknown_frame: Vec<u8>,
    threshold: String,
    broker: Broker,
    received: Received,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::tiny_bundle(dir.path());
    let (class_frame, unknown_frame, threshold) = class_and_unknown_frames(dir.path(), &bundle);
    let mut broker = Broker::new(dir.path());
    broker.start();
    let received = Received::subscribe(broker.port);
    received.wait_subscribed(broker.port);
    Setup { dir, bundle, class_frame, unknown_frame, threshold, broker, received }
}

#[test]
fn every_event_reaches_the_broker_across_a_restart_with_availability_and_discovery() {
    let Setup { dir: _dir, bundle, class_frame, unknown_frame, threshold, mut broker, received } = setup();

    let url = broker.url();
    let (mut child, logged, mut stdin) =
        start_box(&bundle, &["--stale-after", "0.6", "--unknown-threshold", &threshold, "--mqtt", &url, "--mqtt-id", "box1"]);
    wait_for(Duration::from_secs(10), "online", || received.on("flowercam/box1/availability").contains(&"online".to_string()));

    // Broker up: a class, unknown, the class again, then a quiet spell.
    for frame in [&class_frame, &class_frame, &unknown_frame, &unknown_frame, &class_frame] {
        send(&mut stdin, frame, 60);
    }
    std::thread::sleep(Duration::from_millis(1200));
    // Broker down: back, unknown, stale, back, the class, stale.
    broker.stop();
    send(&mut stdin, &unknown_frame, 60);
    std::thread::sleep(Duration::from_millis(1200));
    send(&mut stdin, &class_frame, 60);
    std::thread::sleep(Duration::from_millis(1200));
    // Broker back: back, unknown, the class.
    broker.start();
    for frame in [&unknown_frame, &class_frame] {
        send(&mut stdin, frame, 60);
    }
    // A damaged bundle over the model path: refused, a model event (not an answer).
    let mut damaged = std::fs::read(&bundle).unwrap();
    let n = damaged.len();
    damaged[n / 3] ^= 0x5a;
    std::fs::write(&bundle, &damaged).unwrap();
    wait_for(Duration::from_secs(15), "the refusal", || logged.events().iter().any(|e| e["event"] == "model_rejected"));
    wait_for(Duration::from_secs(30), "every logged event at the subscriber", || {
        let got: std::collections::HashSet<_> = received.events().iter().map(key).collect();
        let want = logged.events();
        !want.is_empty() && want.iter().all(|e| got.contains(&key(e)))
    });
    drop(stdin);
    assert!(child.wait().unwrap().success(), "{}", logged.text());

    let want = logged.events();
    let kinds: Vec<&str> = want.iter().map(|e| e["event"].as_str().unwrap()).collect();
    for kind in ["label_changed", "unknown_began", "unknown_ended", "source_stale", "source_back", "model_rejected"] {
        assert!(kinds.contains(&kind), "no {kind} among {kinds:?}");
    }
    // In order, each once, apart from QoS 1 re-sends of unacknowledged ones.
    let got = received.events();
    let mut firsts = Vec::new();
    for e in &got {
        if !firsts.contains(&key(e)) {
            firsts.push(key(e));
        }
    }
    assert_eq!(firsts, want.iter().map(key).collect::<Vec<_>>(), "{}", logged.text());
    assert!(got.len() - firsts.len() <= 2, "{} duplicates", got.len() - firsts.len());
    let event = want.iter().find(|e| e["event"] == "unknown_began").unwrap();
    assert_eq!(event["label"], "unknown");
    assert!(event["probability"].is_number() && event["frame"].is_number() && event["unknown_score"].is_number());

    // Availability: online at each connection, offline at the clean stop; discovery each time.
    wait_for(Duration::from_secs(10), "offline", || {
        received.on("flowercam/box1/availability").last().map(String::as_str) == Some("offline")
    });
    let availability = received.on("flowercam/box1/availability");
    assert!(availability.iter().filter(|a| *a == "online").count() >= 2, "{availability:?}");
    let discovery = received.on("homeassistant/sensor/flowercam_box1/answer/config");
    assert!(discovery.len() >= 2, "discovery again after the restart: {discovery:?}");
    let config: Value = serde_json::from_str(&discovery[0]).unwrap();
    assert_eq!(config["state_topic"], "flowercam/box1/state");
    // The retained state is the answer (Home Assistant's sensor), not the model event after it.
    let state: Value = serde_json::from_str(received.on("flowercam/box1/state").last().unwrap()).unwrap();
    assert_eq!(want.last().unwrap()["event"], "model_rejected");
    let answer = want.iter().rev().find(|e| e["event"] != "model_rejected").unwrap();
    assert_eq!(key(&state), key(answer), "the state topic holds the latest event about the answer");
}

#[test]
fn a_broker_down_at_the_start_gets_the_newest_events_within_the_outbox_bound() {
    // The subscriber's session is made, then the broker goes down before the box starts.
    let Setup { dir: _dir, bundle, class_frame, unknown_frame, threshold, mut broker, received } = setup();
    broker.stop();
    let url = broker.url();
    let (mut child, logged, mut stdin) =
        start_box(&bundle, &["--outbox", "3", "--unknown-threshold", &threshold, "--mqtt", &url, "--mqtt-id", "box1"]);
    // Seven changes while no broker runs; the box keeps classifying.
    for i in 0..7 {
        send(&mut stdin, if i % 2 == 0 { &class_frame } else { &unknown_frame }, 80);
    }
    wait_for(Duration::from_secs(10), "7 events logged", || logged.events().len() == 7);
    broker.start();
    wait_for(Duration::from_secs(30), "3 events delivered", || received.events().len() >= 3);
    drop(stdin);
    assert!(child.wait().unwrap().success(), "{}", logged.text());
    let want: Vec<_> = logged.events()[4..].iter().map(key).collect();
    let got: Vec<_> = received.events().iter().map(key).collect();
    assert_eq!(got, want, "the newest 3 of 7, in order");
    let text = logged.text();
    assert!(text.contains("4 event(s) were dropped"), "{text}");
}

/// The requests a receiver got: (head, body) each.
type Requests = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A web hook receiver: answers `statuses` in turn (then 200), or never answers when `hang`.
/// Records each request's headers and body.
fn receiver(statuses: Vec<u16>, hang: bool) -> (String, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            seen.lock().unwrap().push((head, body));
            if hang {
                std::thread::sleep(Duration::from_secs(60));
                continue;
            }
            let status = statuses.next().unwrap_or(200);
            let moved = if (300..400).contains(&status) { "Location: /moved\r\n" } else { "" };
            let _ = write!(stream, "HTTP/1.1 {status} X\r\n{moved}Content-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, requests)
}

#[test]
fn web_hook_posts_are_signed_and_retried_after_a_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::tiny_bundle(dir.path());
    let (class_frame, unknown_frame, threshold) = class_and_unknown_frames(dir.path(), &bundle);
    let (url, requests) = receiver(vec![503], false);
    let (mut child, logged, mut stdin) =
        start_box(&bundle, &["--webhook", &url, "--webhook-secret", "s3cret", "--unknown-threshold", &threshold]);
    for frame in [&class_frame, &unknown_frame, &class_frame] {
        send(&mut stdin, frame, 80);
    }
    wait_for(Duration::from_secs(20), "4 posts (one refused with 503, then 3)", || requests.lock().unwrap().len() >= 4);
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let requests = requests.lock().unwrap();
    let bodies: Vec<Value> = requests[1..].iter().map(|(_, b)| serde_json::from_slice(b).unwrap()).collect();
    assert_eq!(bodies.iter().map(key).collect::<Vec<_>>(), logged.events().iter().map(key).collect::<Vec<_>>());
    assert_eq!(requests[0].1, requests[1].1, "the refused post is sent again");
    for (head, body) in requests.iter() {
        let signature = head.lines().find_map(|l| l.strip_prefix("x-flowercam-signature: ").or(l.strip_prefix("X-Flowercam-Signature: ")));
        assert_eq!(signature, Some(edge::events::webhook::signature(b"s3cret", body).as_str()), "{head}");
    }
    assert!(!logged.text().contains("s3cret"), "the secret is never logged");
}

/// A hook that answers with a redirect: not followed (a GET without the event would have
/// counted as delivered), the event dropped and the move said, naming where it points.
#[test]
fn a_web_hook_that_redirects_is_said_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::tiny_bundle(dir.path());
    let (class_frame, unknown_frame, threshold) = class_and_unknown_frames(dir.path(), &bundle);
    let (url, requests) = receiver(vec![302], false);
    let (mut child, logged, mut stdin) = start_box(&bundle, &["--webhook", &url, "--unknown-threshold", &threshold]);
    for frame in [&class_frame, &unknown_frame] {
        send(&mut stdin, frame, 80);
    }
    wait_for(Duration::from_secs(20), "2 posts", || requests.lock().unwrap().len() >= 2);
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let stderr = logged.text();
    let requests = requests.lock().unwrap();
    assert!(requests.iter().all(|(head, _)| head.starts_with("POST /hook ")), "only posts, no redirect followed: {requests:?}");
    assert!(stderr.contains("HTTP 302 Found, moved to /moved: give that URL as --webhook"), "{stderr}");
}

#[test]
fn a_web_hook_that_hangs_never_holds_up_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::tiny_bundle(dir.path());
    let (url, requests) = receiver(vec![], true);
    let out = edge()
        .args(["run", "--source", "synthetic", "--fps", "50", "--max-frames", "100", "--smoothing", "1", "--quiet"])
        .args(["--min-confidence", "0.999", "--webhook", &url, "--model"])
        .arg(&bundle)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("done: 100 frames classified"), "{stderr}");
    assert!(!requests.lock().unwrap().is_empty(), "the hook was called");
}

/// `--last-good` whose copy cannot be written (a folder at its path, which no rename replaces,
/// root or not): `model_not_kept`, naming the copy, reaches the broker and the web hook alike, and
/// once the copy can be written (SIGHUP, `systemctl reload`) so does `model_kept`. The answers
/// go on meanwhile.
#[test]
fn a_model_not_kept_and_kept_again_reaches_the_broker_and_the_web_hook() {
    let Setup { dir, bundle, class_frame, threshold, broker, received, .. } = setup();
    let last_good = dir.path().join("last-good.bundle");
    std::fs::create_dir(&last_good).unwrap();
    let (hook, requests) = receiver(vec![], false);
    let copy = last_good.to_str().unwrap();
    let args = ["--unknown-threshold", &threshold, "--mqtt", &broker.url(), "--mqtt-id", "box1", "--webhook", &hook, "--last-good", copy];
    let (mut child, logged, mut stdin) = start_box(&bundle, &args);
    let published = |kind: &str| received.events().into_iter().find(|e| e["event"] == kind);
    let posted = |kind: &str| {
        let requests = requests.lock().unwrap();
        requests.iter().filter_map(|(_, body)| serde_json::from_slice::<Value>(body).ok()).find(|e| e["event"] == kind)
    };
    send(&mut stdin, &class_frame, 60);
    wait_for(Duration::from_secs(30), "model_not_kept at the broker and the hook", || {
        published("model_not_kept").is_some() && posted("model_not_kept").is_some()
    });
    for event in [published("model_not_kept").unwrap(), posted("model_not_kept").unwrap()] {
        let detail = event["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("cannot keep") && detail.contains("last-good.bundle"), "{event}");
    }
    assert!(published("model_kept").is_none(), "not kept yet");

    std::fs::remove_dir(&last_good).unwrap();
    assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
    send(&mut stdin, &class_frame, 60);
    wait_for(Duration::from_secs(30), "model_kept at the broker and the hook", || {
        published("model_kept").is_some() && posted("model_kept").is_some()
    });
    assert_eq!(std::fs::read(&last_good).unwrap(), std::fs::read(&bundle).unwrap(), "the running model is the copy now");
    drop(stdin);
    assert!(child.wait().unwrap().success(), "{}", logged.text());
    let kinds: Vec<String> = logged.events().iter().map(|e| e["event"].as_str().unwrap().to_string()).collect();
    assert!(kinds.contains(&"label_changed".to_string()), "the answers went on: {kinds:?}");
}
