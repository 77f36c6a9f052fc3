//! A new model while `edge run` keeps classifying: uploaded (`POST /api/model`), written over
//! the model path, or refused (not a bundle, tampered, no token), and SIGHUP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "t0ken";

fn edge() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge"));
    command.env("RUST_LOG", "info").env("NO_COLOR", "1");
    command
}

/// One HTTP request; (status, body).
fn request(address: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n", body.len())
        .unwrap();
    stream.write_all(body).unwrap();
    let mut text = Vec::new();
    stream.read_to_end(&mut text).unwrap();
    let text = String::from_utf8_lossy(&text).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {text}"));
    (status, text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string()))
}

fn status(address: &str) -> Value {
    serde_json::from_str(&request(address, "GET", "/api/status", Some(TOKEN), b"").1).unwrap()
}

fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A second model: three classes, other weights.
fn other_bundle(dir: &Path) -> std::path::PathBuf {
    common::fixture_bundle(dir, "three_classes.bundle")
}

#[test]
fn uploads_and_new_files_are_checked_then_swapped_in_and_bad_ones_never_replace_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let first = common::tiny_bundle(dir.path());
    let second = other_bundle(dir.path());
    let model = dir.path().join("model.bundle");
    std::fs::copy(&first, &model).unwrap();
    let mut command = edge();
    command
        .args(["run", "--source", "synthetic", "--fps", "30", "--quiet", "--http", "127.0.0.1:0", "--http-token", TOKEN, "--model"])
        .arg(&model);
    let served = common::serve(command, &[]);
    let address = served.address.clone();
    wait_for(Duration::from_secs(20), "frames", || status(&address)["classified"].as_u64() > Some(3));
    let first_hash = status(&address)["model"]["hash"].as_str().unwrap().to_string();

    // Not a bundle, and a tampered one: refused with the reason, the first model stays.
    let (code, body) = request(&address, "POST", "/api/model", Some(TOKEN), b"not a bundle");
    assert_eq!(code, 422, "{body}");
    let mut tampered = std::fs::read(&second).unwrap();
    let n = tampered.len();
    tampered[n / 2] ^= 0x5a;
    let (code, body) = request(&address, "POST", "/api/model", Some(TOKEN), &tampered);
    assert_eq!(code, 422, "{body}");
    let why: Value = serde_json::from_str(&body).unwrap();
    let said = why["error"].as_str().unwrap();
    assert!(said.starts_with("upload: ") && !said.contains("model.bundle"), "named as the upload, not by the box's path: {why}");
    // The loop hears of the refusal between two frames.
    wait_for(Duration::from_secs(10), "the refusal in the status", || status(&address)["last_swap"]["swapped"] == false);
    assert_eq!(status(&address)["model"]["hash"], first_hash.as_str());
    assert_eq!(std::fs::read(&model).unwrap(), std::fs::read(&first).unwrap(), "the model path still holds the good model");
    // Without the token: refused before anything is read.
    assert_eq!(request(&address, "POST", "/api/model", None, b"x").0, 401);

    // A good upload: swapped in while frames go on, and written to the model path.
    let before = status(&address)["classified"].as_u64().unwrap();
    let (code, body) = request(&address, "POST", "/api/model", Some(TOKEN), &std::fs::read(&second).unwrap());
    assert_eq!(code, 200, "{body}");
    let swapped: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(swapped["swapped"]["labels"].as_array().unwrap().len(), 3);
    wait_for(Duration::from_secs(10), "the new model's frames", || {
        let now = status(&address);
        now["model"]["labels"].as_array().map(Vec::len) == Some(3) && now["latest"]["probabilities"].as_array().map(Vec::len) == Some(3)
    });
    let now = status(&address);
    assert_eq!(now["last_swap"]["swapped"], true, "{now}");
    // Each model answers by its own calibrated threshold (no --unknown-threshold here).
    let own = |b: &Path| shared::Bundle::read(b).unwrap().manifest.open_set.unwrap().threshold;
    assert_ne!(own(&first), own(&second));
    assert_eq!(now["model"]["unknown_threshold"].as_f64().map(|t| t as f32), Some(own(&second)), "{now}");
    assert!(now["classified"].as_u64().unwrap() > before, "the loop went on");
    assert_eq!(std::fs::read(&model).unwrap(), std::fs::read(&second).unwrap(), "the upload is the model a restart runs");
    let metrics = request(&address, "GET", "/metrics", Some(TOKEN), b"").1;
    assert!(
        metrics.contains(&format!("hash=\"{first_hash}\"")) && metrics.contains("labels=\"daffodil,coltsfoot,dandelion\"} 1"),
        "{metrics}"
    );
    // The same bytes again: no new model, said at once, nothing swapped.
    let swaps = status(&address)["last_swap"].clone();
    let (code, body) = request(&address, "POST", "/api/model", Some(TOKEN), &std::fs::read(&second).unwrap());
    assert_eq!((code, body.as_str()), (200, r#"{"already_running":true}"#));
    assert_eq!(status(&address)["last_swap"], swaps, "no swap");

    // The first model written over the model path (a copy, then a rename): picked up.
    let staged = dir.path().join("staged.bundle");
    std::fs::copy(&first, &staged).unwrap();
    std::fs::rename(&staged, &model).unwrap();
    // An upload in the second before the watcher takes that file: refused, the file not
    // written over unread (the running model's bytes would have been put back in its place).
    let (code, body) = request(&address, "POST", "/api/model", Some(TOKEN), &std::fs::read(&second).unwrap());
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("not checked yet"), "{body}");
    assert!(same(&model, &first), "the file put there stays");
    wait_for(Duration::from_secs(15), "the file's model", || status(&address)["model"]["hash"] == first_hash.as_str());

    // SIGHUP asks for a look at the file; it does not stop the box.
    let pid = served.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let classified = status(&address)["classified"].as_u64().unwrap();
    wait_for(Duration::from_secs(10), "frames after SIGHUP", || status(&address)["classified"].as_u64() > Some(classified + 5));
}

#[test]
fn uploads_need_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::tiny_bundle(dir.path());
    let mut command = edge();
    command.args(["run", "--source", "synthetic", "--fps", "10", "--quiet", "--http", "127.0.0.1:0", "--model"]).arg(&bundle);
    let served = common::serve(command, &[]);
    let (code, body) = request(&served.address, "POST", "/api/model", None, &std::fs::read(&bundle).unwrap());
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("--http-token"), "{body}");
}

/// Uploads are read one at a time (each may be 256 MiB): a second one while the first is still
/// arriving is answered 409 at once, and the first is then checked as usual.
#[test]
fn a_second_upload_waits_its_turn() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::tiny_bundle(dir.path());
    let mut command = edge();
    command
        .args(["run", "--source", "synthetic", "--fps", "10", "--quiet", "--http", "127.0.0.1:0", "--http-token", TOKEN, "--model"])
        .arg(&bundle);
    let served = common::serve(command, &[]);
    let address = served.address.clone();
    wait_for(Duration::from_secs(20), "frames", || status(&address)["classified"].as_u64() > Some(1));
    let mut slow = TcpStream::connect(&address).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(slow, "POST /api/model HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 20\r\n\r\nnot a").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (code, body) = request(&address, "POST", "/api/model", Some(TOKEN), &std::fs::read(&bundle).unwrap());
    assert_eq!(code, 409, "{body}");
    slow.write_all(b" bundle, not at all").unwrap();
    let mut reply = String::new();
    slow.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 422"), "{reply}");
    let (code, body) = request(&address, "POST", "/api/model", Some(TOKEN), &std::fs::read(&bundle).unwrap());
    assert_eq!(code, 200, "the slot is free again: {body}");
    // Declared larger than any bundle: refused before a byte of it is read.
    let mut huge = TcpStream::connect(&address).unwrap();
    huge.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(huge, "POST /api/model HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 300000000\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = huge.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    // Sent in chunks, it declares no length: refused as too large once past the limit, all the same.
    let mut chunked = TcpStream::connect(&address).unwrap();
    chunked.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(chunked, "POST /api/model HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..(edge::swap::MAX_UPLOAD >> 20) + 1 {
        write!(chunked, "{:x}\r\n", chunk.len()).unwrap();
        if chunked.write_all(&chunk).and_then(|()| chunked.write_all(b"\r\n")).is_err() {
            break; // answered and closed already
        }
    }
    let mut reply = String::new();
    let _ = chunked.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
}

/// Without trusted keys a new bundle is tried in a child process first (`trial.rs`): a trial that
/// fails or dies (here: an upload of 150 MB, a bundle with junk after it, in a trial's address
/// space of 200 MB, where the running model's trial fit; as a crafted graph would exhaust it)
/// refuses the bundle, and the box and its model go on.
#[test]
fn a_trial_that_dies_refuses_the_bundle_and_the_box_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::tiny_bundle(dir.path());
    let mut command = edge();
    command
        .args(["run", "--source", "synthetic", "--fps", "30", "--quiet", "--http", "127.0.0.1:0", "--http-token", TOKEN])
        .args(["--check-memory", "200MB", "--model"])
        .arg(&bundle);
    let served = common::serve(command, &[]);
    let address = served.address.clone();
    wait_for(Duration::from_secs(20), "frames", || status(&address)["classified"].as_u64() > Some(1));
    let hash = status(&address)["model"]["hash"].clone();
    let mut heavy = std::fs::read(other_bundle(dir.path())).unwrap();
    heavy.resize(150 << 20, 0);
    let (code, body) = request(&address, "POST", "/api/model", Some(TOKEN), &heavy);
    assert_eq!(code, 422, "{body}");
    let why: Value = serde_json::from_str(&body).unwrap();
    let said = why["error"].as_str().unwrap();
    assert!(
        said.starts_with("upload: ") && said.contains("its trial") && said.contains("--check-memory") && !said.contains("Usage"),
        "named, and tried: {why}"
    );
    assert!(!said.contains(dir.path().to_str().unwrap()), "the box's paths are not the sender's business: {why}");
    let classified = status(&address)["classified"].as_u64().unwrap();
    wait_for(Duration::from_secs(10), "frames after the refusal", || status(&address)["classified"].as_u64() > Some(classified + 3));
    assert_eq!(status(&address)["model"]["hash"], hash, "the running model stays");
    assert_eq!(request(&address, "GET", "/healthz", Some(TOKEN), b"").0, 200);
}

/// Whether two files hold the same bytes (without printing megabytes when they do not).
fn same(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

/// A live box on synthetic frames with the page and uploads, keeping its last good model.
fn serve_with_last_good(model: &Path, last_good: &Path) -> common::Served {
    let mut command = edge();
    command
        .args(["run", "--source", "synthetic", "--fps", "30", "--quiet", "--http", "127.0.0.1:0", "--http-token", TOKEN])
        .arg("--model")
        .arg(model)
        .arg("--last-good")
        .arg(last_good);
    common::serve(command, &[])
}

/// `--last-good`: each model that passed is kept; a box restarted on a model file that fails its
/// checks (here: one moved over the model path, refused live, still there at the restart) starts
/// on the last good model, says why in its status, and takes a good file again as usual. Without a
/// last good model, the same start is an error naming the file.
#[test]
fn a_box_restarted_on_a_refused_model_comes_back_on_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (common::tiny_bundle(dir.path()), other_bundle(dir.path()));
    let (model, last_good) = (dir.path().join("model.bundle"), dir.path().join("last-good.bundle"));
    std::fs::copy(&first, &model).unwrap();
    let start = || serve_with_last_good(&model, &last_good);
    let served = start();
    let address = served.address.clone();
    wait_for(Duration::from_secs(20), "frames", || status(&address)["classified"].as_u64() > Some(1));
    assert!(same(&last_good, &first), "the first model is kept");
    let (code, body) = request(&address, "POST", "/api/model", Some(TOKEN), &std::fs::read(&second).unwrap());
    assert_eq!(code, 200, "{body}");
    assert!(same(&last_good, &second), "a model swapped in is kept");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert!(answer["swapped"]["hash"].is_string() && answer.get("not_kept").is_none(), "kept: nothing to say: {answer}");
    wait_for(Duration::from_secs(10), "the upload's model", || status(&address)["model"]["labels"].as_array().map(Vec::len) == Some(3));
    let second_hash = status(&address)["model"]["hash"].as_str().unwrap().to_string();

    // A damaged bundle moved over the model path: refused live, but the file stays there.
    let mut damaged = std::fs::read(&first).unwrap();
    let n = damaged.len();
    damaged[n / 3] ^= 0x5a;
    let staged = dir.path().join("staged.bundle");
    std::fs::write(&staged, &damaged).unwrap();
    std::fs::rename(&staged, &model).unwrap();
    wait_for(Duration::from_secs(15), "the refusal", || status(&address)["last_swap"]["swapped"] == false);
    assert!(same(&last_good, &second), "a refused model is not kept");
    drop(served);

    // The restart meets the damaged file and starts on the last good model, saying why.
    let served = start();
    let address = served.address.clone();
    wait_for(Duration::from_secs(20), "frames", || status(&address)["classified"].as_u64() > Some(1));
    let now = status(&address);
    assert_eq!(now["model"]["hash"], second_hash.as_str(), "{now}");
    assert_eq!(now["last_swap"]["swapped"], false, "{now}");
    let detail = now["last_swap"]["detail"].as_str().unwrap();
    assert!(detail.contains("model.bundle") && detail.contains("the last good model runs"), "{detail}");
    assert_eq!(detail.matches("model.bundle").count(), 1, "the file named once: {detail}");
    assert!(std::fs::read(&model).unwrap() == damaged, "the model path is the site's: left as it was");
    // The running model uploaded: nothing to swap, but the file a restart meets is mended.
    let (code, body) = request(&address, "POST", "/api/model", Some(TOKEN), &std::fs::read(&second).unwrap());
    assert_eq!((code, body.as_str()), (200, r#"{"already_running":true}"#));
    assert!(same(&model, &second), "the model path holds the running model again");

    // A good model moved over the model path is taken as usual, and kept.
    std::fs::copy(&first, &staged).unwrap();
    std::fs::rename(&staged, &model).unwrap();
    wait_for(Duration::from_secs(15), "the good file's model", || status(&address)["last_swap"]["swapped"] == true);
    assert_eq!(status(&address)["model"]["labels"].as_array().map(Vec::len), Some(2));
    wait_for(Duration::from_secs(5), "the good file kept", || same(&last_good, &first));
    drop(served);

    // No last good model: the damaged file stops the start, named, with exit 1.
    std::fs::write(&model, &damaged).unwrap();
    std::fs::remove_file(&last_good).unwrap();
    let out = edge()
        .args(["run", "--source", "synthetic", "--max-frames", "1", "--model"])
        .arg(&model)
        .arg("--last-good")
        .arg(&last_good)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("model.bundle") && said.contains("no last good model"), "{said}");
}

/// A copy that cannot be written (here the `--last-good` path is a folder, which no rename
/// replaces, root or not) leaves the model running and says so in `/api/status` and `/metrics`,
/// from the start and after a swap, until a copy succeeds (here on SIGHUP, with no new model).
#[test]
fn a_model_that_cannot_be_kept_shows_in_the_status_until_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (common::tiny_bundle(dir.path()), other_bundle(dir.path()));
    let (model, last_good) = (dir.path().join("model.bundle"), dir.path().join("last-good.bundle"));
    std::fs::copy(&first, &model).unwrap();
    std::fs::create_dir(&last_good).unwrap();
    let served = serve_with_last_good(&model, &last_good);
    let address = served.address.clone();
    wait_for(Duration::from_secs(20), "frames", || status(&address)["classified"].as_u64() > Some(1));
    let now = status(&address);
    let problem = now["last_good_problem"].as_str().unwrap_or_else(|| panic!("no problem shown: {now}"));
    assert!(problem.contains("cannot keep the running model") && problem.contains("last-good.bundle"), "{problem}");
    assert_eq!(now["model"]["labels"].as_array().map(Vec::len), Some(2), "the model runs all the same: {now}");
    let metrics = request(&address, "GET", "/metrics", Some(TOKEN), b"").1;
    assert!(metrics.contains("flowercam_last_good_problem 1"), "{metrics}");

    // A swap is offered to the copy too: the problem now names the uploaded bundle, and the
    // upload's answer says it (the model runs, but a restart would not come back on it).
    let (code, body) = request(&address, "POST", "/api/model", Some(TOKEN), &std::fs::read(&second).unwrap());
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["swapped"]["labels"].as_array().map(Vec::len), Some(3), "{answer}");
    let not_kept = answer["not_kept"].as_str().unwrap_or_else(|| panic!("the answer does not say it was not kept: {answer}"));
    assert!(not_kept.contains("cannot keep") && not_kept.contains("last-good.bundle"), "{not_kept}");
    let first_problem = problem.to_string();
    wait_for(Duration::from_secs(10), "the upload's problem", || {
        status(&address)["last_good_problem"].as_str().is_some_and(|p| p != first_problem && p.contains("cannot keep"))
    });
    assert_eq!(status(&address)["model"]["labels"].as_array().map(Vec::len), Some(3));

    // Once the copy can be written, SIGHUP (`systemctl reload`) keeps the running model, with no
    // new one, and the status clears.
    std::fs::remove_dir(&last_good).unwrap();
    let pid = served.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    wait_for(Duration::from_secs(10), "the status cleared", || status(&address)["last_good_problem"].is_null());
    assert!(same(&last_good, &second), "the running model kept now");
    let metrics = request(&address, "GET", "/metrics", Some(TOKEN), b"").1;
    assert!(metrics.contains("flowercam_last_good_problem 0"), "{metrics}");
}

/// With `--last-good`, the first model is tried as a new one is: a trial that dies (an address
/// space too small for any model) refuses it at the start, as it would refuse it live. A model
/// that passed on this box (the last good one) is not tried again at a restart, and a start by
/// hand (no `--last-good`) loads its model directly: both stay quick.
#[test]
fn the_first_model_is_tried_like_a_new_one_unless_it_passed_here_before() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::tiny_bundle(dir.path());
    let last_good = dir.path().join("last-good.bundle");
    let start = |extra: &[&str]| {
        edge().args(["run", "--source", "synthetic", "--max-frames", "1", "--model"]).arg(&bundle).args(extra).output().unwrap()
    };
    let with_last_good = ["--last-good", last_good.to_str().unwrap()];
    let out = start(&[&with_last_good[..], &["--check-memory", "30MB"]].concat());
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("tiny.bundle") && said.contains("--check-memory") && said.contains("no last good model"), "{said}");
    let out = start(&with_last_good);
    assert!(out.status.success(), "within the default bounds: {}", String::from_utf8_lossy(&out.stderr));
    assert!(same(&bundle, &last_good), "it passed, and is kept");
    let out = start(&[&with_last_good[..], &["--check-memory", "30MB"]].concat());
    assert!(out.status.success(), "the last good model is not tried again: {}", String::from_utf8_lossy(&out.stderr));
    let out = start(&["--check-memory", "30MB"]);
    assert!(out.status.success(), "a start by hand loads its model directly: {}", String::from_utf8_lossy(&out.stderr));
    // The model itself, under another name, is no last good model: it would skip its trial.
    let link = dir.path().join("link.bundle");
    std::os::unix::fs::symlink(&bundle, &link).unwrap();
    let out = start(&["--last-good", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another file than --model"));
}
