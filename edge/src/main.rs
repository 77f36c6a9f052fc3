//! `edge`: classify images and live camera frames with a trainer bundle, on the board.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use edge::model::{self, EdgeModel};
use edge::source::{self, SourceOptions};
use edge::{bench, live, resultlog, selftest};
use shared::answer::Thresholds;

/// Classify images and live camera frames with a flowercam bundle, using tract.
///
/// Exit codes: 0 success, 1 error, 2 bad usage, 3 selftest mismatch.
/// Logging: RUST_LOG (default info), on standard error.
#[derive(Parser)]
#[command(name = "edge", version, about, long_about)]
struct Cli {
    /// Threads for inference (default: all cores).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// The largest image or frame (width x height) read, checked from its header before
    /// decoding: a 700-byte JPEG may declare 20000x20000 and ask for gigabytes.
    #[arg(long, global = true, default_value_t = shared::preprocess::DEFAULT_MAX_PIXELS, value_parser = clap::value_parser!(u64).range(1..))]
    max_pixels: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify image files or folders; one line (or JSON line) per image.
    Classify {
        #[arg(long)]
        model: PathBuf,
        /// Image files, or folders of images.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        refusal: RefusalArgs,
        #[arg(long)]
        json: bool,
    },
    /// The live loop: classify frames from a source, newest frame first, one JSON line each.
    Run {
        #[arg(long)]
        model: PathBuf,
        /// camera:N, dir:PATH, stdin:mjpeg (e.g. `rpicam-vid --codec mjpeg -o - |`), or synthetic.
        #[arg(long, default_value = "camera:0")]
        source: String,
        /// Pace dir: and synthetic sources, or ask the camera for this frame rate.
        #[arg(long, value_parser = shared::args::frames_per_second)]
        fps: Option<f32>,
        /// Start a dir: source over at its end.
        #[arg(long = "loop")]
        looping: bool,
        /// Camera resolution (WIDTHxHEIGHT) requested; the closest the camera offers is used.
        #[arg(long, default_value = "640x480", value_parser = shared::args::resolution)]
        resolution: (u32, u32),
        /// Camera frame format: mjpeg or yuyv.
        #[arg(long, default_value = "mjpeg")]
        camera_format: String,
        /// Stop after this many classified frames.
        #[arg(long)]
        max_frames: Option<u64>,
        /// Average probabilities and open-set scores over this many frames for `smoothed_label`.
        #[arg(long, default_value_t = 5)]
        smoothing: usize,
        #[command(flatten)]
        refusal: RefusalArgs,
        /// Append results to this binary log (read it with `edge log FILE`).
        #[arg(long)]
        log: Option<PathBuf>,
        /// Seconds between status lines on standard error.
        #[arg(long, default_value_t = 5.0, value_parser = shared::args::seconds)]
        status_every: f32,
    },
    /// List cameras and their formats.
    Cameras,
    /// Measure inference latency and frames per second at the model's input size.
    Bench {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        #[arg(long)]
        json: bool,
    },
    /// Check this box computes what the trainer computed, on the bundle's stored images.
    Selftest {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print a result log as JSON lines; a torn last record (power loss) is reported and skipped.
    Log { file: PathBuf },
}

/// When the answer is `unknown` or `unsure` instead of a class.
#[derive(clap::Args)]
struct RefusalArgs {
    /// Answer `unknown` (none of the trained classes) above this open-set score. Default: the
    /// threshold the trainer calibrated and stored in the bundle; raise it to refuse less.
    #[arg(long, value_parser = shared::args::score_threshold)]
    unknown_threshold: Option<f32>,
    /// Answer `unsure` below this probability of the best class (default 0: never).
    #[arg(long, default_value_t = 0.0, value_parser = shared::args::probability)]
    min_confidence: f32,
}

enum Outcome {
    Ok,
    SelftestFailed,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shared::preprocess::set_max_pixels(cli.max_pixels);
    shared::logging::init();
    let threads = cli.threads.map_or_else(model::available_threads, usize::from);
    model::set_threads(threads);
    match run(cli.command, threads) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::SelftestFailed) => ExitCode::from(3),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(command: Command, threads: usize) -> anyhow::Result<Outcome> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        Command::Classify { model, paths, refusal, json } => {
            let model = EdgeModel::load(&model)?;
            let thresholds = Thresholds::for_model(&model.manifest, refusal.unknown_threshold, refusal.min_confidence);
            let mut failed = 0;
            for path in expand(&paths)? {
                let result = shared::preprocess::decode_file(&path)
                    .map_err(anyhow::Error::from)
                    .and_then(|img| model.predict(&model.prepare(&img), &thresholds));
                match result {
                    Ok(p) if json => {
                        let mut line = serde_json::to_value(&p)?;
                        line["path"] = serde_json::json!(path);
                        writeln!(out, "{line}")?
                    }
                    Ok(p) => {
                        let score = p.unknown_score.map_or(String::new(), |s| format!("\tunknown_score {s:.4}"));
                        writeln!(out, "{}\t{}\t{:.4}{score}", path.display(), p.label, p.probability)?
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {e:#}");
                    }
                }
            }
            anyhow::ensure!(failed == 0, "{failed} file(s) could not be classified");
        }
        Command::Run { model, source, fps, looping, resolution, camera_format, max_frames, smoothing, refusal, log, status_every } => {
            let model = EdgeModel::load(&model)?;
            let thresholds = Thresholds::for_model(&model.manifest, refusal.unknown_threshold, refusal.min_confidence);
            let (width, height) = resolution;
            let options = SourceOptions { fps, looping, width, height, camera_format };
            let source = source::open(&source, &options)?;
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))?;
            let live_options =
                live::LiveOptions { max_frames, smoothing, thresholds, status_every: Duration::from_secs_f32(status_every), log };
            let stats = live::run(&model, source, &live_options, stop, &mut out)?;
            eprintln!(
                "done: {} frames classified in {:.1}s ({:.1} fps), {} captured, {} dropped, {} corrupt",
                stats.classified, stats.seconds, stats.fps, stats.captured, stats.dropped, stats.corrupt
            );
        }
        Command::Cameras => {
            #[cfg(feature = "camera")]
            for line in source::camera::list()? {
                writeln!(out, "{line}")?;
            }
            #[cfg(not(feature = "camera"))]
            anyhow::bail!("this edge build has no camera support (built without the `camera` feature)");
        }
        Command::Bench { model, warmup, runs, json } => {
            let model = EdgeModel::load(&model)?;
            let r = bench::run(&model, threads, warmup, runs as usize)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
            } else {
                writeln!(
                    out,
                    "input {}x{} {}, {} thread(s), {} runs after {} warm-up\nlatency ms: min {:.1}, median {:.1}, p90 {:.1}, max {:.1}, mean {:.1}\nfps {:.2} (inference only); preprocess 640x480 -> input {:.2} ms; peak memory {}",
                    r.input_size,
                    r.input_size,
                    r.precision,
                    r.threads,
                    r.runs,
                    r.warmup,
                    r.min_ms,
                    r.median_ms,
                    r.p90_ms,
                    r.max_ms,
                    r.mean_ms,
                    r.fps,
                    r.preprocess_ms,
                    r.peak_memory_mib.map_or("n/a".into(), |m| format!("{m:.0} MiB"))
                )?;
            }
        }
        Command::Selftest { model, json } => {
            let model = EdgeModel::load(&model)?;
            let report = selftest::run(&model)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                for c in &report.checks {
                    writeln!(
                        out,
                        "{} {}: expected {}, got {}, max |diff| {:.2e}",
                        if c.passed { "ok  " } else { "FAIL" },
                        c.name,
                        c.label,
                        c.predicted,
                        c.max_abs_diff
                    )?;
                }
                writeln!(
                    out,
                    "selftest {}: max |diff| {:.2e} (tolerance {})",
                    if report.passed { "passed" } else { "FAILED" },
                    report.max_abs_diff,
                    report.tolerance
                )?;
            }
            if !report.passed {
                return Ok(Outcome::SelftestFailed);
            }
        }
        Command::Log { file } => {
            let contents = resultlog::read(&file)?;
            for r in &contents.records {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            }
            if contents.torn_bytes > 0 {
                eprintln!("note: skipped a torn last record ({} bytes) at the end of {}", contents.torn_bytes, file.display());
            }
        }
    }
    Ok(Outcome::Ok)
}

/// Files as given; folders expanded to their files, sorted.
fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(source::dir::image_files(path)?);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}
