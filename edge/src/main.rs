//! `edge`: classify images and live camera frames with a trainer bundle, on the board.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use edge::cli::{Cli, Command, RunArgs};
use edge::consumers::Consumer;
use edge::consumers::events::Events;
use edge::consumers::frame_saver::FrameSaver;
use edge::consumers::json_lines::JsonLines;
use edge::consumers::result_log::LogWriter;
use edge::consumers::status_line::StatusLine;
use edge::consumers::systemd::Systemd;
use edge::events::EventSink;
use edge::events::mqtt::{Mqtt, MqttOptions};
use edge::events::webhook::Webhook;
use edge::http::HttpOptions;
use edge::last_good::LastGood;
use edge::model::{self, EdgeModel};
use edge::source::{self, SourceOptions};
use edge::swap::{self, Candidate, Start, SwapOptions, Swapper};
use edge::trial::{self, Trial};
use edge::{bench, config, live, resultlog, selftest};
use shared::answer::Thresholds;
use shared::signing::TrustedKeys;
use shared::usage::UsageError;

enum Outcome {
    Ok,
    SelftestFailed,
    Unhealthy,
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    shared::preprocess::set_max_pixels(cli.max_pixels);
    shared::logging::init(cli.log_format);
    let threads = cli.threads.map_or_else(model::available_threads, usize::from);
    model::set_threads(threads);
    let trusted = match cli.trusted_keys.as_deref().map(TrustedKeys::read).transpose() {
        Ok(trusted) => trusted,
        Err(e) => {
            shared::logging::error(&format!("{e:#}"));
            return ExitCode::from(2);
        }
    };
    match run(cli.command, threads, trusted.as_ref()) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::SelftestFailed) => ExitCode::from(3),
        Ok(Outcome::Unhealthy) => ExitCode::from(4),
        // `edge classify DIR | head`: the reader had what it wanted.
        Err(e) if shared::stdout::reader_gone(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            shared::logging::error(&format!("{e:#}"));
            ExitCode::from(2)
        }
        Err(e) => {
            shared::logging::error(&format!("{e:#}"));
            ExitCode::from(1)
        }
    }
}

/// The command line, with `run --config FILE`'s options put before the typed ones.
fn parse() -> Result<Cli, UsageError> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| e.exit());
    let Command::Run(run) = &cli.command else { return Ok(cli) };
    let Some(file) = &run.config else { return Ok(cli) };
    let merged = config::merge(&args, file)?;
    Ok(Cli::try_parse_from(&merged).unwrap_or_else(|e| e.exit()))
}

fn run(command: Command, threads: usize, trusted: Option<&TrustedKeys>) -> anyhow::Result<Outcome> {
    // A reader that goes (`| head`) ends the command quietly: see main.
    let mut out = shared::stdout::Guarded(std::io::stdout().lock());
    match command {
        Command::Classify { model, paths, refusal, json } => {
            let model = EdgeModel::load(&model, trusted)?;
            let thresholds = Thresholds::for_model(&model.manifest, refusal.unknown_threshold, refusal.min_confidence);
            let mut failed = 0;
            for path in expand(&paths)? {
                let result = shared::preprocess::decode_file(&path)
                    .map_err(anyhow::Error::from)
                    .and_then(|img| model.predict(&model.prepare(&img), &thresholds));
                match result {
                    Ok(p) if json => {
                        let mut line = serde_json::to_value(&p)?;
                        line["path"] = serde_json::json!(edge::path_text::for_json(&path));
                        writeln!(out, "{line}")?
                    }
                    Ok(p) => {
                        let score = p.unknown_score.map_or(String::new(), |s| format!("\tunknown_score {}", shared::text::fixed(s, 4)));
                        writeln!(out, "{}\t{}\t{:.4}{score}", edge::path_text::escaped(&path), p.label, p.probability)?
                    }
                    Err(e) => {
                        failed += 1;
                        shared::logging::error(&format!("{e:#}"));
                    }
                }
            }
            anyhow::ensure!(failed == 0, "{failed} file(s) could not be classified");
        }
        Command::Run(args) => {
            drop(out);
            run_live(*args, threads, trusted)?;
        }
        Command::CheckBundle { memory, name } => trial::check_from_stdin(memory, &name)?,
        Command::Config { print_default: _, check: Some(file) } => {
            let settings = config::options_in(&file)?;
            writeln!(out, "{}: ok; it sets:", file.display())?;
            for setting in settings {
                // A secret is never printed, nor a password in a URL.
                let value = match setting.value {
                    Some(_) if ["--http-token", "--webhook-secret"].contains(&setting.flag.as_str()) => " ***".to_string(),
                    Some(v) => format!(" {}", edge::redact::redact(&v)),
                    None => String::new(),
                };
                writeln!(out, "  {}{value}", setting.flag)?;
            }
        }
        Command::Config { .. } => write!(out, "{}", config::default_file())?,
        Command::Status { url, token, json } => {
            let status = edge::fleet::fetch(&url, token.as_deref())?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&status.json)?)?;
            } else {
                writeln!(out, "{}", edge::fleet::summary(&url, &status))?;
            }
            if !status.healthy {
                return Ok(Outcome::Unhealthy);
            }
        }
        Command::Cameras => {
            #[cfg(feature = "camera")]
            for line in source::camera::list()? {
                writeln!(out, "{line}")?;
            }
            #[cfg(not(feature = "camera"))]
            anyhow::bail!("this edge build has no camera support (built without the `camera` feature)");
        }
        Command::Bench { model, warmup, runs, profile, json } => {
            let model = EdgeModel::load(&model, trusted)?;
            let r = bench::run(&model, threads, warmup as usize, runs as usize, profile)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
            } else {
                writeln!(
                    out,
                    "input {}x{} {}, {} thread(s), {} runs after {} warm-up\nlatency ms: min {:.1}, median {:.1}, p90 {:.1}, max {:.1}, mean {:.1}\nfps {:.2} (inference only); trunk {:.2} GMAC per frame, {:.1} GMAC/s\npreprocess 640x480 -> input {:.2} ms; stream JPEG 640x480 {:.2} ms; peak memory {}",
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
                    r.trunk_gmac,
                    r.gmac_per_s,
                    r.preprocess_ms,
                    r.stream_encode_ms,
                    r.peak_memory_mib.map_or("n/a".into(), |m| format!("{m:.0} MiB"))
                )?;
                if let Some(profile) = &r.profile {
                    write!(out, "{}", profile.table(10))?;
                }
            }
        }
        Command::Selftest { model, json } => {
            let model = EdgeModel::load(&model, trusted)?;
            let report = selftest::run(&model)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                for c in &report.checks {
                    writeln!(
                        out,
                        // The label is the photo's class; what is checked is the answer against the trainer's.
                        "{} {}: labelled {}, answered {}, max |diff| {:.2e} from the trainer's answer",
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
            for entry in resultlog::Records::open(&file)? {
                match entry? {
                    resultlog::Entry::Record(r) => writeln!(out, "{}", serde_json::to_string(&r)?)?,
                    resultlog::Entry::Damaged { offset, bytes } => {
                        shared::logging::say(&format!("note: skipped {bytes} damaged bytes at offset {} of {}", offset + 8, file.display()))
                    }
                    resultlog::Entry::Torn { bytes } => {
                        shared::logging::say(&format!("note: skipped a torn last record ({bytes} bytes) at the end of {}", file.display()))
                    }
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

/// `edge run`: the live loop and the consumers its flags ask for.
fn run_live(args: RunArgs, threads: usize, trusted: Option<&TrustedKeys>) -> anyhow::Result<()> {
    // Its form is bad usage (exit 2), found before the model loads.
    source::check_spec(&args.source)?;
    let model_path =
        args.model.clone().ok_or_else(|| UsageError("edge run needs --model (or `model = ...` in the --config file)".into()))?;
    let last_good = args.last_good.clone().map(LastGood::new);
    if let Some(last_good) = &last_good {
        if last_good.is(&model_path) {
            return Err(UsageError("--last-good must be another file than --model (it is the model to fall back on)".into()).into());
        }
        last_good.check_folder().map_err(UsageError)?;
    }
    // What a write cut short by a power cut (an upload, a copy) left beside the model and its copy.
    for path in std::iter::once(model_path.as_path()).chain(last_good.as_ref().map(LastGood::path)) {
        let removed = shared::atomic::remove_stale_temporaries(path);
        if removed > 0 {
            tracing::info!("removed {removed} unfinished copies beside {}", path.display());
        }
    }
    let trial =
        Trial { exe: trial::own_binary()?, threads, memory: args.check_memory, timeout: Duration::from_secs_f32(args.check_timeout) };
    let http = args.http.map(|listen| HttpOptions {
        listen,
        token: args.http_token.clone(),
        max_clients: usize::from(args.http_max_clients),
        stale_after: Duration::from_secs_f32(args.stale_after),
        upload_wait: trial.upload_wait(),
    });
    if let Some(http) = &http {
        http.check()?;
    }
    let options = SwapOptions {
        model_path: model_path.clone(),
        trusted: trusted.cloned(),
        unknown_threshold: args.refusal.unknown_threshold,
        min_confidence: args.refusal.min_confidence,
        trial,
        last_good,
    };
    let watch = swap::Watch::begin(&model_path)?;
    if options.last_good.is_some() {
        // Its trial may take up to --check-timeout before the first frame's READY.
        edge::consumers::systemd::extend_start(Duration::from_secs_f32(args.check_timeout) + Duration::from_secs(120));
    }
    // The first model, or (with --last-good) the last good one when it fails its checks.
    let start = swap::first_model(&options)?;
    let watch = if start.refused() { watch.retry_after(swap::RETRY_REFUSED_START) } else { watch };
    let Start { candidate, sha, notes } = start;
    let Candidate { model, thresholds, info } = candidate;
    // A new bundle at the model path, SIGHUP, or an upload: checked, then swapped in.
    let swapper = Swapper::start(options, watch, sha, notes)?;
    let (width, height) = args.resolution;
    let options = SourceOptions { fps: args.fps, looping: args.looping, width, height, camera_format: args.camera_format.clone() };
    let source = source::open(&args.source, &options)?;

    let mut consumers: Vec<Box<dyn Consumer>> = Vec::new();
    if !args.quiet {
        consumers.push(Box::new(JsonLines::new(shared::stdout::guarded())));
    }
    if let Some(log) = &args.log {
        consumers.push(Box::new(LogWriter::open(log)?));
    }
    if let Some(dir) = &args.save_frames {
        let saver = FrameSaver::open(dir, args.save_when.clone(), args.save_cap, model.manifest.labels.clone(), model.onnx_sha256.clone())?;
        consumers.push(Box::new(saver));
    }
    consumers.push(Box::new(StatusLine::new(Duration::from_secs_f32(args.status_every))));
    if let Some(systemd) = Systemd::from_env() {
        consumers.push(Box::new(systemd));
    }
    let events = event_sinks(&args, &model.manifest.name)?;
    if !events.is_empty() {
        consumers.push(Box::new(Events::new(Duration::from_secs_f32(args.stale_after), events)));
    }
    let _server = match http {
        Some(http) => {
            let uploads = Some(swapper.requests.clone());
            let (server, feed) = edge::http::start(http, info, source.describe(), uploads)?;
            consumers.push(Box::new(feed));
            Some(server)
        }
        None => None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // Ctrl-C, and SIGTERM from `systemctl stop` (and every restart and upgrade): a clean stop,
    // with the outbox's last events, the result log synced and MQTT told. A second one while the
    // stop is under way ends the process at once.
    // (`stop` is also set by the loop itself when it ends; only a signal arms the second one.)
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&signalled))?;
        signal_hook::flag::register(signal, Arc::clone(&signalled))?;
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    let live_options = live::LiveOptions { max_frames: args.max_frames, smoothing: args.smoothing, thresholds, swaps: Some(swapper.swaps) };
    let stats = live::run(Box::new(model), source, &live_options, &mut consumers, stop)?;
    shared::logging::say(&format!(
        "done: {} frames classified in {:.1}s ({:.1} fps), {} captured, {} dropped, {} corrupt, {} reconnects",
        stats.classified, stats.seconds, stats.fps, stats.captured, stats.dropped, stats.corrupt, stats.reconnects
    ));
    // A source that ended without one frame (a file ffmpeg cannot read, stdin closed) is an
    // error naming it, not a success.
    anyhow::ensure!(
        stats.classified > 0 || signalled.load(Ordering::Relaxed),
        "--source {}: it ended without a frame to classify ({} corrupt)",
        edge::redact::redact(&args.source),
        stats.corrupt
    );
    Ok(())
}

/// The receivers of events that `--mqtt` and `--webhook` ask for.
fn event_sinks(args: &RunArgs, model_name: &str) -> anyhow::Result<Vec<Box<dyn EventSink>>> {
    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    let outbox = args.outbox as usize;
    if let Some(url) = &args.mqtt {
        let options = MqttOptions {
            url: url.clone(),
            id: args.mqtt_id.clone().unwrap_or_else(edge::events::mqtt::default_box_id),
            topic_root: args.mqtt_topic.clone(),
            outbox,
            model_name: model_name.to_string(),
        };
        sinks.push(Box::new(Mqtt::start(options)?));
    }
    if let Some(url) = &args.webhook {
        sinks.push(Box::new(Webhook::start(url, args.webhook_secret.clone(), outbox)?));
    }
    Ok(sinks)
}

/// Files as given; folders expanded to their files, sorted.
fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = source::dir::image_files(path)?;
            anyhow::ensure!(!found.is_empty(), "{}: no image files in the folder (sub-folders are not read)", path.display());
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}
