//! Hostile and unlucky inputs to `edge` (issue 12): each gets a clear error naming what is wrong,
//! a bad option value exits 2 naming the option, and nothing panics (exit 101) or aborts.

use std::path::Path;
use std::process::{Command, Output};

use image::{Rgb, RgbImage};

mod common;

fn edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edge")).args(args).env("RUST_LOG", "warn").output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn jpeg(path: &Path) -> Vec<u8> {
    RgbImage::from_fn(160, 120, |x, y| Rgb([(x * 3 % 256) as u8, (y * 2) as u8, 90])).save(path).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn out_of_range_numbers_exit_2_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_bundle(dir.path());
    let model = model.to_str().unwrap();
    let run = ["run", "--model", model, "--source", "synthetic", "--max-frames", "1"];
    for (flag, value) in [
        ("--fps", "1e-30"),
        ("--fps", "NaN"),
        ("--status-every", "inf"),
        ("--resolution", "0x0"),
        ("--min-confidence", "NaN"),
        ("--unknown-threshold", "inf"),
        ("--unknown-threshold", "-0.5"),
        ("--min-confidence", "-0.1"),
        ("--threads", "0"),
        ("--max-pixels", "0"),
    ] {
        let out = edge(&[&run[..], &[flag, value]].concat());
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {}", stderr(&out));
        assert!(stderr(&out).contains(flag), "{flag} {value}: {}", stderr(&out));
    }
    let out = edge(&["bench", "--model", model, "--runs", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // In range, the same command runs.
    let out = edge(&[&run[..], &["--fps", "50", "--status-every", "1", "--resolution", "64x48"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_device_or_a_folder_is_not_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    for model in ["/dev/zero", dir.path().to_str().unwrap()] {
        let out = edge(&["selftest", "--model", model]);
        assert_eq!(out.status.code(), Some(1), "{model}: {}", stderr(&out));
        assert!(stderr(&out).contains(model) && stderr(&out).contains("not a regular file"), "{model}: {}", stderr(&out));
    }
}

#[test]
fn cut_and_oversized_images_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_bundle(dir.path());
    let whole = jpeg(&dir.path().join("whole.jpg"));
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &whole[..whole.len() * 2 / 3]).unwrap();
    let out = edge(&["classify", "--model", model.to_str().unwrap(), cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cut.jpg") && stderr(&out).contains("truncated"), "{}", stderr(&out));

    // 160 x 120 is 19200 pixels: above a limit of 10000, below the default.
    let whole_path = dir.path().join("whole.jpg");
    let out = edge(&["classify", "--max-pixels", "10000", "--model", model.to_str().unwrap(), whole_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("whole.jpg") && stderr(&out).contains("--max-pixels"), "{}", stderr(&out));
    let out = edge(&["classify", "--model", model.to_str().unwrap(), whole_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Raised past a gigapixel, one 700-byte file could ask for more memory than any box has.
    let out = edge(&["classify", "--max-pixels", "1000000001", "--model", model.to_str().unwrap(), whole_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--max-pixels"), "{}", stderr(&out));
}

#[test]
fn a_graph_that_does_not_answer_the_manifest_labels_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = shared::Bundle::read(&common::tiny_bundle(dir.path())).unwrap();
    // Three labels for a graph that answers two, made with consistent hashes (as a buggy exporter
    // would): the load checks the graph against the labels.
    b.manifest.labels.push("tulip".into());
    let b = shared::Bundle::new(b.manifest, b.onnx, Vec::new());
    let crafted = dir.path().join("crafted.bundle");
    b.write(&crafted).unwrap();
    let image = dir.path().join("a.jpg");
    jpeg(&image);
    let out = edge(&["classify", "--model", crafted.to_str().unwrap(), image.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("crafted.bundle") && stderr(&out).contains("3 labels"), "{}", stderr(&out));
}
