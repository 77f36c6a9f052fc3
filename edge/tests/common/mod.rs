//! Helpers shared by the edge's integration tests: a tiny random bundle, and `edge run --http`
//! started on a free loopback port.

#![allow(dead_code)] // each test file uses its own part of this

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A random 2-class bundle (daffodil, coltsfoot) at 64 px, copied into `dir`: fast, and a real
/// tract graph from the trainer's exporter (`tests/fixtures/README.md`).
pub fn tiny_bundle(dir: &Path) -> PathBuf {
    fixture_bundle(dir, "tiny.bundle")
}

/// A checked-in test bundle (`tests/fixtures/NAME`) copied into `dir`, where a test may change it.
pub fn fixture_bundle(dir: &Path, name: &str) -> PathBuf {
    let copy = dir.join(name);
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name), &copy).unwrap();
    copy
}

/// A running `edge run --http 127.0.0.1:0 ...`, killed when dropped.
pub struct Served {
    pub child: Child,
    pub address: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` (an `edge run ... --http 127.0.0.1:0` with RUST_LOG=info) with `args`, and
/// waits for the "live page: http://ADDR/" line on its standard error.
pub fn serve(mut command: Command, args: &[&str]) -> Served {
    let mut child = command.args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("edge ended before serving").unwrap();
        if let Some(rest) = line.split("live page: http://").nth(1) {
            break rest.trim_end_matches('/').to_string();
        }
    };
    // Keep draining standard error so the program never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Served { child, address }
}
