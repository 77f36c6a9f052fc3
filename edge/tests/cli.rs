//! The `edge` command on generated bundles and images; no camera needed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use image::{Rgb, RgbImage};

mod common;

struct Setup {
    dir: tempfile::TempDir,
    bundle: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::tiny_bundle(dir.path());
    Setup { dir, bundle }
}

fn edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edge")).args(args).env("RUST_LOG", "warn").output().unwrap()
}

fn ok_lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "edge failed ({:?}): {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn write_images(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        RgbImage::from_fn(120, 90, |x, y| Rgb([(x * 2 + i as u32 * 30) as u8, (y * 2) as u8, 90]))
            .save(dir.join(format!("{i:02}.jpg")))
            .unwrap();
    }
}

#[test]
fn file_names_that_are_not_plain_text_are_printed_escaped_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let s = setup();
    let images = s.dir.path().join("odd names");
    write_images(&images, 1);
    let odd = images.join(std::ffi::OsStr::from_bytes(b"a\xffb.jpg"));
    std::fs::rename(images.join("00.jpg"), &odd).unwrap();
    std::fs::copy(&odd, images.join("tab\there.jpg")).unwrap();
    let bundle = s.bundle.to_str().unwrap();
    let lines = ok_lines(&edge(&["classify", "--model", bundle, "--json", images.to_str().unwrap()]));
    let paths: Vec<&str> = lines.iter().map(|l| l["path"].as_str().unwrap()).collect();
    assert!(paths[0].ends_with("a\\xffb.jpg") && paths[1].ends_with("tab\there.jpg"), "{paths:?}");
    let out = edge(&["classify", "--model", bundle, images.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.lines().count() == 2 && text.contains("a\\xffb.jpg"), "{text}");
    // A folder with no image in it is an error naming it, not an empty success.
    let empty = s.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = edge(&["classify", "--model", bundle, empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no image files"));
}

#[test]
fn classify_files_and_folders() {
    let s = setup();
    let images = s.dir.path().join("images");
    write_images(&images, 3);
    let bundle = s.bundle.to_str().unwrap();
    let lines = ok_lines(&edge(&["classify", "--model", bundle, "--json", images.to_str().unwrap()]));
    assert_eq!(lines.len(), 3);
    let threshold = shared::Bundle::read(&s.bundle).unwrap().manifest.open_set.unwrap().threshold as f64;
    for l in &lines {
        assert!(["daffodil", "coltsfoot"].contains(&l["top_label"].as_str().unwrap()));
        let sum: f64 = l["probabilities"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-4);
        // The answer is `unknown` exactly when the open-set score is above the bundle's threshold.
        let unknown = l["unknown_score"].as_f64().unwrap() > threshold;
        assert_eq!(l["label"] == "unknown", unknown, "{l}");
        if !unknown {
            assert_eq!(l["label"], l["top_label"]);
        }
    }
    // A threshold above any score: always a class. A confidence floor of 1: `unsure` unless certain.
    let lenient = ok_lines(&edge(&["classify", "--model", bundle, "--json", "--unknown-threshold", "2", images.to_str().unwrap()]));
    assert!(lenient.iter().all(|l| l["label"] == l["top_label"]), "{lenient:?}");
    let strict = ok_lines(&edge(&[
        "classify",
        "--model",
        bundle,
        "--json",
        "--min-confidence",
        "1",
        "--unknown-threshold",
        "2",
        images.to_str().unwrap(),
    ]));
    assert!(strict.iter().all(|l| l["label"] == "unsure"), "{strict:?}");
    // A score lowered by the head's evidence may be below 0, and so may a threshold, typed as a
    // word of its own; below every score: always `unknown`.
    let refusing = ok_lines(&edge(&["classify", "--model", bundle, "--json", "--unknown-threshold", "-0.201", images.to_str().unwrap()]));
    assert!(refusing.iter().all(|l| l["label"] == "unknown"), "{refusing:?}");
    // A bad file is named and makes the exit status non-zero; the good ones are still printed.
    std::fs::write(images.join("zz_broken.jpg"), b"nope").unwrap();
    let out = edge(&["classify", "--model", bundle, images.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zz_broken.jpg"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
}

#[test]
fn run_synthetic_gives_one_json_line_per_frame_with_sane_timings() {
    let s = setup();
    let lines = ok_lines(&edge(&["run", "--model", s.bundle.to_str().unwrap(), "--source", "synthetic", "--max-frames", "5"]));
    assert_eq!(lines.len(), 5);
    for l in &lines {
        let inference = l["inference_ms"].as_f64().unwrap();
        let latency = l["latency_ms"].as_f64().unwrap();
        assert!(inference > 0.0 && inference < 10_000.0, "{l}");
        assert!(latency >= inference, "{l}");
        assert!(l["preprocess_ms"].as_f64().unwrap() >= 0.0);
        assert!(l["timestamp_ms"].as_u64().unwrap() > 1_600_000_000_000);
    }
    let frames: Vec<u64> = lines.iter().map(|l| l["frame"].as_u64().unwrap()).collect();
    assert!(frames.windows(2).all(|w| w[1] > w[0]), "{frames:?}");
}

#[test]
fn run_dir_skips_corrupt_frames_and_logs_results() {
    let s = setup();
    let images = s.dir.path().join("frames");
    write_images(&images, 4);
    std::fs::write(images.join("02b_corrupt.jpg"), b"\xFF\xD8 torn frame").unwrap();
    let log = s.dir.path().join("results.log");
    let source = format!("dir:{}", images.display());
    let out = edge(&["run", "--model", s.bundle.to_str().unwrap(), "--source", &source, "--log", log.to_str().unwrap()]);
    let lines = ok_lines(&out);
    assert_eq!(lines.len(), 4, "the dir source ends after its 4 good images");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 corrupt"));
    // The log holds the same results; a torn last record is skipped, the rest kept.
    let full = std::fs::read(&log).unwrap();
    std::fs::write(&log, &full[..full.len() - 3]).unwrap();
    let out = edge(&["log", log.to_str().unwrap()]);
    let records = ok_lines(&out);
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["label"], lines[0]["label"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("torn"));
}

#[test]
fn run_reads_an_mjpeg_stream_on_stdin() {
    let s = setup();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["run", "--model", s.bundle.to_str().unwrap(), "--source", "stdin:mjpeg"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for i in 0..3u8 {
            let img = RgbImage::from_pixel(160, 120, Rgb([i * 80, 120, 40]));
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode_image(&img).unwrap();
            stdin.write_all(&jpeg).unwrap();
            stdin.flush().unwrap();
            // Let each frame be classified before the next arrives (newest-frame policy).
            std::thread::sleep(std::time::Duration::from_millis(400));
        }
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(ok_lines(&out).len(), 3);
}

#[test]
fn selftest_passes_on_a_fresh_export_and_fails_on_a_tampered_bundle() {
    let s = setup();
    let out = edge(&["selftest", "--model", s.bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("selftest passed"));

    // Wrong expectations with consistent hashes (the box computes differently from the trainer,
    // as a broken board would look; still probabilities): the box disagrees, exit 3.
    let mut bundle = shared::Bundle::read(&s.bundle).unwrap();
    let expected = &mut bundle.self_checks[0].expected;
    let (high, low) = if expected[0] > expected[1] { (0, 1) } else { (1, 0) };
    expected[high] -= 0.01;
    expected[low] += 0.01;
    let bundle = shared::Bundle::new(bundle.manifest, bundle.onnx, bundle.self_checks);
    let tampered = s.dir.path().join("tampered.bundle");
    bundle.write(&tampered).unwrap();

    // The same change behind the content digest's back: refused as altered before anything runs.
    let mut altered = shared::Bundle::read(&s.bundle).unwrap();
    altered.self_checks[0].expected[0] += 0.01;
    let altered_path = s.dir.path().join("altered.bundle");
    altered.write(&altered_path).unwrap();
    let out = edge(&["selftest", "--model", altered_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("do not match the content digest"));
    let out = edge(&["selftest", "--model", tampered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL"));

    // A damaged ONNX fails the bundle's hash before anything runs.
    let mut bytes = std::fs::read(&s.bundle).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    let damaged = s.dir.path().join("damaged.bundle");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = edge(&["selftest", "--model", damaged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("damaged.bundle") && (err.contains("hash mismatch") || err.contains("corrupt")), "{err}");

    // A truncated bundle is refused with the file named.
    std::fs::write(&damaged, &std::fs::read(&s.bundle).unwrap()[..1000]).unwrap();
    let out = edge(&["bench", "--model", damaged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated or corrupt"));
}

#[test]
fn bench_reports_latency_figures() {
    let s = setup();
    let out = edge(&["bench", "--model", s.bundle.to_str().unwrap(), "--runs", "5", "--warmup", "1", "--json", "--threads", "1"]);
    let r = &ok_lines(&Output { stdout: String::from_utf8_lossy(&out.stdout).replace('\n', "").into_bytes(), ..out })[0];
    assert_eq!(r["runs"], 5);
    assert_eq!(r["threads"], 1);
    assert_eq!(r["input_size"], 64);
    let (min, median, max) = (r["min_ms"].as_f64().unwrap(), r["median_ms"].as_f64().unwrap(), r["max_ms"].as_f64().unwrap());
    assert!(0.0 < min && min <= median && median <= max, "{r}");
    assert!(r["fps"].as_f64().unwrap() > 0.0);
    // The trunk's cost comes from the manifest; the rate is that cost over the median latency.
    let (gmac, rate) = (r["trunk_gmac"].as_f64().unwrap(), r["gmac_per_s"].as_f64().unwrap());
    assert!(gmac > 0.0, "{r}");
    assert!((rate * median / 1000.0 / gmac - 1.0).abs() < 1e-3, "{r}");
    assert!(r.get("profile").is_none(), "no profile unless asked");

    // --profile: the plan's nodes, timed; the convolutions are there and take most of a frame.
    let out = edge(&["bench", "--model", s.bundle.to_str().unwrap(), "--runs", "3", "--warmup", "1", "--json", "--profile"]);
    let r = &ok_lines(&Output { stdout: String::from_utf8_lossy(&out.stdout).replace('\n', "").into_bytes(), ..out })[0];
    let profile = &r["profile"];
    assert_eq!(profile["runs"], 3);
    let nodes = profile["nodes"].as_array().unwrap();
    assert!(nodes.len() >= 13, "at least the 13 convolutions: {profile}");
    let total: f64 = nodes.iter().map(|n| n["ms"].as_f64().unwrap()).sum();
    assert!(total > 0.0, "{profile}");
    let shares: f64 = profile["by_op"].as_array().unwrap().iter().map(|o| o["share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-3, "{profile}");
    // The 13 convolutions run by Winograd's algorithm (shared::runtime::winograd_op), unless
    // FLOWERCAM_CONV=im2col leaves them to tract.
    let nodes_of = |profile: &serde_json::Value, op: &str| {
        profile["by_op"].as_array().unwrap().iter().find(|o| o["op"] == op).map_or(0, |o| o["nodes"].as_u64().unwrap())
    };
    assert_eq!(nodes_of(profile, "WinogradConv3x3"), 13, "{profile}");
    let out = Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["bench", "--model", s.bundle.to_str().unwrap(), "--runs", "2", "--warmup", "1", "--json", "--profile"])
        .env("RUST_LOG", "warn")
        .env("FLOWERCAM_CONV", "im2col")
        .output()
        .unwrap();
    let r = &ok_lines(&Output { stdout: String::from_utf8_lossy(&out.stdout).replace('\n', "").into_bytes(), ..out })[0];
    assert_eq!(nodes_of(&r["profile"], "WinogradConv3x3"), 0, "{r}");
    let text =
        String::from_utf8_lossy(&edge(&["bench", "--model", s.bundle.to_str().unwrap(), "--runs", "2", "--profile"]).stdout).into_owned();
    assert!(text.contains("slowest nodes:") && text.contains("operator"), "{text}");
}

#[test]
fn no_camera_is_a_clear_error() {
    let s = setup();
    let out = edge(&["cameras"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("camera"), "{err}");
    let out = edge(&["run", "--model", s.bundle.to_str().unwrap(), "--source", "camera:0", "--max-frames", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("camera:0"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_sources_and_missing_models_are_named() {
    let s = setup();
    // A source of no known form is bad usage; one of a known form that is not there, an error.
    for bad in ["webcam", "stdin:yuv", "camera:-1", "https://cam/x"] {
        let out = edge(&["run", "--model", s.bundle.to_str().unwrap(), "--source", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--source"), "{bad}");
    }
    let out = edge(&["run", "--model", s.bundle.to_str().unwrap(), "--source", "webcam"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--source webcam: unknown source"));
    // A camera URL's password is never echoed, whatever is wrong with it.
    let out = edge(&["run", "--model", s.bundle.to_str().unwrap(), "--source", "https://u:hunter2@cam/x"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && !stderr.contains("hunter2") && stderr.contains("u:***@cam"), "{stderr}");
    let out = edge(&["run", "--model", s.bundle.to_str().unwrap(), "--source", "dir:/no/such/folder"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/folder"));
    // A source that ends without a frame is an error naming it, not a run that did its job.
    let out = Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["run", "--model", s.bundle.to_str().unwrap(), "--source", "stdin:mjpeg"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ended without a frame"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = edge(&["selftest", "--model", "/no/such.bundle"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such.bundle"));
}

#[test]
fn a_result_log_that_cannot_be_written_stops_and_classifying_goes_on() {
    let s = setup();
    let log = s.dir.path().join("results.log");
    // A file-size limit of a few hundred bytes: the log's writes fail after a few records, as
    // on a full disk (SIGXFSZ ignored, so the write returns the error instead of killing).
    let binary = env!("CARGO_BIN_EXE_edge");
    let script = format!(
        "trap '' XFSZ; ulimit -f 1; exec '{binary}' run --model '{}' --source synthetic --max-frames 40 --quiet --log '{}'",
        s.bundle.display(),
        log.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("the result log stopped, classifying goes on"), "{stderr}");
    assert!(stderr.contains("done: 40 frames classified"), "{stderr}");
    let logged = ok_lines(&edge(&["log", log.to_str().unwrap()])).len();
    assert!((1..40).contains(&logged), "the records written before the failure stay readable: {logged}");
}

#[test]
fn out_of_range_run_and_bench_settings_are_bad_usage() {
    let s = setup();
    let model = s.bundle.to_str().unwrap();
    for bad in [
        &["run", "--max-frames", "0"][..],
        &["run", "--smoothing", "0"],
        &["run", "--mqtt-topic", "a/+"],
        &["bench", "--warmup", "1001"],
        &["bench", "--runs", "0"],
    ] {
        let mut args = bad.to_vec();
        args.extend(["--model", model]);
        let out = edge(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains(bad[1]), "{bad:?}");
    }
}

#[test]
fn ctrl_c_and_systemctl_stop_end_cleanly_and_the_log_is_whole() {
    let s = setup();
    // SIGINT (Ctrl-C) and SIGTERM (`systemctl stop`, every restart and upgrade) alike.
    for signal in ["-INT", "-TERM"] {
        let log = s.dir.path().join(format!("results{signal}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_edge"))
            .args(["run", "--model", s.bundle.to_str().unwrap(), "--source", "synthetic", "--fps", "20", "--log", log.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let status = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{signal} must end the run cleanly: {:?} {stderr}", out.status);
        assert!(stderr.contains("done:"), "{signal}: {stderr}");
        let printed = String::from_utf8_lossy(&out.stdout).lines().count();
        let logged = ok_lines(&edge(&["log", log.to_str().unwrap()])).len();
        assert!(printed >= 1 && logged == printed, "{signal}: {logged} logged vs {printed} printed");
    }
}
