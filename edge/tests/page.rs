//! The live page in a real browser (issue 10): Debian's chromium, headless, loads `/` from
//! `edge run --source synthetic --http 127.0.0.1:PORT`, and the rendered DOM must show an answer
//! and a frame rate that change over time. It saves a screenshot beside the test binaries.
//! chromium is required (`scripts/setup.sh --tests` installs it): without it this test fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Served, serve, tiny_bundle};

mod common;

const CHROMIUM: &str = "chromium";

/// The edge on a free loopback port (with `--http-token` if given), once a frame is classified.
fn start_edge(model: &Path, token: Option<&str>) -> Served {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge"));
    command.env("RUST_LOG", "info");
    let mut args =
        vec!["run", "--model", model.to_str().unwrap(), "--source", "synthetic", "--fps", "8", "--quiet", "--http", "127.0.0.1:0"];
    args.extend(token.map(|t| ["--http-token", t]).into_iter().flatten());
    let served = serve(command, &args);
    let started = Instant::now();
    while !healthy(&served.address, token) {
        assert!(started.elapsed() < Duration::from_secs(30), "no frame classified");
        std::thread::sleep(Duration::from_millis(100));
    }
    served
}

fn healthy(address: &str, token: Option<&str>) -> bool {
    let mut stream = TcpStream::connect(address).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply.starts_with("HTTP/1.1 200")
}

/// Headless chromium, as a sandboxed CI machine lets it run, with a fresh profile.
fn chromium(profile: &Path, args: &[&str]) -> String {
    let out = Command::new(CHROMIUM)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {CHROMIUM} ({e}): install it with scripts/setup.sh --tests (Debian's chromium package)"));
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the element with this id in a dumped DOM.
fn text_of(dom: &str, id: &str) -> String {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    let open = start + dom[start..].find('>').unwrap() + 1;
    let close = open + dom[open..].find("</").unwrap();
    dom[open..close].to_string()
}

#[test]
fn the_live_page_shows_the_answer_and_frame_rate_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let edge = start_edge(&model, None);
    let url = format!("http://{}/", edge.address);
    // Virtual time lets the page's polling run for 3 s of page time before the DOM is dumped.
    let dump = |profile: &str| chromium(&dir.path().join(profile), &["--virtual-time-budget=3000", "--dump-dom", &url]);

    let first = dump("p1");
    let label = text_of(&first, "label");
    assert!(["daffodil (p ", "coltsfoot (p ", "unknown (p "].iter().any(|l| label.starts_with(l)), "answer shown: {label:?}");
    let fps: f32 = text_of(&first, "fps").parse().unwrap_or_else(|_| panic!("fps shown: {:?}", text_of(&first, "fps")));
    assert!(fps > 1.0, "fps {fps}");
    assert!(text_of(&first, "health").starts_with("ok: last frame classified"), "{}", text_of(&first, "health"));
    assert!(text_of(&first, "model").contains("daffodil / coltsfoot"));
    assert!(!text_of(&first, "model").contains("slowed"), "every convolution had room: {}", text_of(&first, "model"));
    assert!(text_of(&first, "source").contains("streaming"));

    std::thread::sleep(Duration::from_millis(500));
    let second = dump("p2");
    let frames: Vec<u64> = [&first, &second].iter().map(|d| text_of(d, "frame").parse().unwrap()).collect();
    assert!(frames[1] > frames[0], "the page follows the frames: {frames:?}");

    let shot: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("live-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &dir.path().join("p3"),
        &["--virtual-time-budget=3000", "--window-size=1100,720", &format!("--screenshot={}", shot.display()), &url],
    );
    let png = image::open(&shot).expect("a screenshot");
    assert_eq!((png.width(), png.height()), (1100, 720));
    eprintln!("screenshot: {}", shot.display());
}

/// A label is the bundle's to choose, and a bundle may come from anywhere: the page shows it as
/// text. One written as HTML with a script in it (a class folder named so, say) must not run
/// in the operator's browser, where it could read the page's token.
#[test]
fn a_label_written_as_html_is_shown_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = r#"<img src=x onerror="document.body.dataset.pwned=1">"#;
    let tiny = shared::Bundle::read(&tiny_bundle(dir.path())).unwrap();
    let mut manifest = tiny.manifest.clone();
    let renamed = manifest.labels[0].clone();
    manifest.labels[0] = hostile.to_string();
    let mut checks = tiny.self_checks.clone();
    checks.iter_mut().filter(|c| c.label == renamed).for_each(|c| c.label = hostile.to_string());
    let model = dir.path().join("hostile.bundle");
    shared::Bundle::new(manifest, tiny.onnx.clone(), checks).write(&model).unwrap();
    let edge = start_edge(&model, None);
    let dom = chromium(&dir.path().join("p"), &["--virtual-time-budget=3000", "--dump-dom", &format!("http://{}/", edge.address)]);
    assert!(!dom.contains("data-pwned"), "the label's script ran");
    assert!(text_of(&dom, "model").contains("&lt;img src=x onerror="), "the label shown as text: {}", text_of(&dom, "model"));
    assert!(dom.contains("■ &lt;img src=x"), "the legend shows it as text too");
}

/// A base64 token (`openssl rand -base64 24` holds `+`, `/` and `=`): the page opened with it
/// percent-encoded must get its own polls through, as the operator's browser sends them.
#[test]
fn the_page_works_with_a_token_that_needs_encoding_in_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_bundle(dir.path());
    let edge = start_edge(&model, Some("Zm9v+YmFy/YmF6="));
    let url = format!("http://{}/?token=Zm9v%2BYmFy%2FYmF6%3D", edge.address);
    let dom = chromium(&dir.path().join("p"), &["--virtual-time-budget=3000", "--dump-dom", &url]);
    assert!(text_of(&dom, "health").starts_with("ok: last frame classified"), "the page's status polls: {}", text_of(&dom, "health"));
    assert!(text_of(&dom, "frame").parse::<u64>().is_ok(), "the page's latest-result polls: {}", text_of(&dom, "frame"));
}
