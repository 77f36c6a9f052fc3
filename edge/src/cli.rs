//! The `edge` command line (clap derive), in the library so that tests and the config file
//! reader see the same definition.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Classify images and live camera frames with a flowercam bundle, using tract.
///
/// Exit codes: 0 success, 1 error, 2 bad usage, 3 selftest mismatch, 4 a box unhealthy (status).
/// Logging: RUST_LOG (default info), on standard error. The model's 3x3 convolutions run by
/// Winograd's algorithm on x86-64 and aarch64, within half the memory free when it loads (the
/// rest stay tract's, and the log says so); FLOWERCAM_CONV=im2col leaves them all to tract's own
/// kernels (less memory), FLOWERCAM_CONV=winograd asks for it elsewhere (32-bit Arm).
#[derive(Parser)]
#[command(name = "edge", version, about, long_about, args_override_self = true)]
pub struct Cli {
    /// Threads for inference (default: all cores).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// The largest image or frame (width x height) read, checked from its header before
    /// decoding: a 700-byte JPEG may declare 20000x20000 and ask for gigabytes.
    #[arg(long, global = true, default_value_t = shared::preprocess::DEFAULT_MAX_PIXELS, value_parser = shared::args::max_pixels)]
    pub max_pixels: u64,
    /// Log lines on standard error: text, or json (one object a line, for log shippers).
    #[arg(long, global = true, default_value = "text")]
    pub log_format: shared::logging::LogFormat,
    /// Run only bundles signed by one of these keys (public-key lines from `trainer keygen`'s
    /// KEY.pub). Without it any intact bundle runs, and the log says it is unverified.
    #[arg(long, global = true, value_name = "FILE")]
    pub trusted_keys: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommand whose options a config file may hold.
pub const RUN: &str = "run";

#[derive(Subcommand)]
pub enum Command {
    /// Classify image files or folders; one line (or JSON line) per image.
    Classify {
        /// The model bundle (`NAME.bundle`, as the trainer wrote it).
        #[arg(long)]
        model: PathBuf,
        /// Image files, or folders of images.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        refusal: RefusalArgs,
        /// One JSON object a line, with every probability and the most probable class.
        #[arg(long)]
        json: bool,
    },
    /// The live loop: classify frames from a source, newest frame first, one JSON line each.
    Run(Box<RunArgs>),
    /// Print a commented default config file for `run --config`, or check one.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["print_default", "check"])))]
    Config {
        /// Print every `run` option with its default, commented out.
        #[arg(long)]
        print_default: bool,
        /// Check a config file: say what is wrong (file, line, key), or print the options it sets.
        #[arg(long, value_name = "FILE")]
        check: Option<PathBuf>,
    },
    /// List cameras and their formats.
    Cameras,
    /// A running box's status (its /api/status): one line, or the JSON; exit 4 when unhealthy.
    Status {
        /// The box's HTTP address, e.g. http://10.0.0.7:8080.
        #[arg(long)]
        url: String,
        /// The box's --http-token.
        #[arg(long, env = "FLOWERCAM_HTTP_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The box's status as JSON, as /api/status gives it.
        #[arg(long)]
        json: bool,
    },
    /// Measure inference latency and frames per second at the model's input size.
    Bench {
        /// The model bundle (`NAME.bundle`, as the trainer wrote it).
        #[arg(long)]
        model: PathBuf,
        /// Untimed runs first (caches, thread start-up).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=1000))]
        warmup: u32,
        /// Timed runs.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        runs: u32,
        /// Also time each node of tract's plan (as many runs again): the time per operator kind
        /// and the slowest nodes, to see where a frame's time goes on this box.
        #[arg(long)]
        profile: bool,
        /// The figures as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check this box computes what the trainer computed, on the bundle's stored images.
    Selftest {
        /// The model bundle (`NAME.bundle`, as the trainer wrote it).
        #[arg(long)]
        model: PathBuf,
        /// Each self-check's result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a result log as JSON lines; a torn last record (power loss) or a damaged stretch
    /// inside is reported and skipped, and the records after it are printed.
    Log {
        /// The result log (`run --log FILE`).
        file: PathBuf,
    },
    /// Internal: a live box's trial of a new bundle (see `run --check-memory`): read it from
    /// standard input, load it and run its self-check within an address space of MEMORY bytes.
    #[command(name = crate::trial::SUBCOMMAND, hide = true)]
    CheckBundle {
        #[arg(long)]
        memory: u64,
        /// What the refusal calls the bundle.
        #[arg(long)]
        name: String,
    },
}

/// `edge run`'s options. Each may also be a key of the `--config` file (the flag's name without
/// the dashes: `unknown-threshold = 0.3`); flags on the command line win over the file.
#[derive(clap::Args)]
pub struct RunArgs {
    /// A TOML file of these options (see `edge config --print-default`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The bundle to run (required, here or in the config file).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// camera:N; http://HOST/PATH (an MJPEG camera); rtsp://... and file:PATH (a recording),
    /// both through ffmpeg; stdin:mjpeg (e.g. `rpicam-vid --codec mjpeg -o - |`); dir:PATH; or
    /// synthetic. Network sources reconnect with backoff.
    // Checked by `source::check_spec` when `run` starts, not by clap, which would echo a
    // password in an http:// or rtsp:// URL.
    #[arg(long, default_value = "camera:0")]
    pub source: String,
    /// Pace dir:, synthetic and file:PHOTO sources, or ask the camera for this frame rate.
    #[arg(long, value_parser = shared::args::frames_per_second)]
    pub fps: Option<f32>,
    /// Start a dir: or file: source over at its end (a photo: shown for ever).
    #[arg(long = "loop")]
    pub looping: bool,
    /// Camera resolution (WIDTHxHEIGHT) requested; the closest the camera offers is used.
    #[arg(long, default_value = "640x480", value_parser = shared::args::resolution)]
    pub resolution: (u32, u32),
    /// Camera frame format: mjpeg or yuyv.
    #[arg(long, default_value = "mjpeg")]
    pub camera_format: String,
    /// Stop after this many classified frames.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_frames: Option<u64>,
    /// Average probabilities and open-set scores over this many frames for `smoothed_label`
    /// (1: no smoothing).
    #[arg(long, default_value_t = 5, value_parser = smoothing)]
    pub smoothing: usize,
    #[command(flatten)]
    pub refusal: RefusalArgs,
    /// No JSON line per frame on standard output (under systemd the journal would get one a
    /// frame); the log, the HTTP server and the status lines still work.
    #[arg(long)]
    pub quiet: bool,
    /// Append results to this binary log (read it with `edge log FILE`).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Save chosen frames as JPEG + JSON in DIR/<answer>/, a class-folder tree for re-labelling
    /// and retraining (move the wrong ones into the right class folder).
    #[arg(long, value_name = "DIR")]
    pub save_frames: Option<PathBuf>,
    /// Which frames --save-frames keeps: any of unknown, unsure, change (the smoothed answer
    /// changed), every:N; comma-separated.
    #[arg(long, default_value = "unknown,unsure", value_parser = crate::consumers::frame_saver::parse_save_when)]
    pub save_when: crate::consumers::frame_saver::SaveRules,
    /// The most --save-frames may hold (e.g. 500MB, 2GB); the oldest files go first.
    #[arg(long, default_value = "1GB", value_parser = shared::args::size)]
    pub save_cap: u64,
    /// Without --trusted-keys, a new bundle (a changed model file, an upload, and with
    /// --last-good the one it starts with unless it is the last good one) is first loaded and
    /// self-checked in a child process with this much address space (e.g. 2GB), so that one
    /// crafted to ask for too much memory cannot take the box down with it.
    #[arg(long, default_value = "4GB", value_parser = shared::args::size)]
    pub check_memory: u64,
    /// The most seconds that trial (see --check-memory) may take; a bundle that takes longer is
    /// refused.
    #[arg(long, default_value_t = 120.0, value_parser = shared::args::seconds)]
    pub check_timeout: f32,
    /// Keep a copy of each model that passed its checks in this file (e.g.
    /// /var/lib/flowercam/models/last-good.bundle), check the bundle at --model at the start as
    /// a new one is checked, and start on the copy when it fails (damaged, refused by its trial or
    /// self-check, unsigned): a box restarted on a bad model file comes back on the model it ran
    /// before, and says why. Unset: nothing kept, and the model is loaded without a trial.
    #[arg(long, value_name = "FILE")]
    pub last_good: Option<PathBuf>,
    /// Seconds between status lines on standard error.
    #[arg(long, default_value_t = 5.0, value_parser = shared::args::seconds)]
    pub status_every: f32,
    /// Serve the live page, stream, status, health and metrics on this address (e.g.
    /// 127.0.0.1:8080). Anything but loopback needs --http-token.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// The token every HTTP request must carry (Authorization: Bearer TOKEN, or ?token=TOKEN).
    /// Better in the config file (mode 0600) than on a command line that `ps` shows.
    #[arg(long, value_name = "TOKEN")]
    pub http_token: Option<String>,
    /// The most clients watching /stream.mjpg at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub http_max_clients: u16,
    /// /healthz answers 503, and a source_stale event goes out, when no frame was classified
    /// for this many seconds.
    #[arg(long, default_value_t = 10.0, value_parser = shared::args::seconds)]
    pub stale_after: f32,
    /// Publish events (the answer changed, unknown/unsure began or ended, the source went stale
    /// or came back, the model was swapped) to this MQTT broker: mqtt://[user[:password]@]host[:port].
    /// Retained availability with a last will, and Home Assistant discovery.
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// This box's name in the MQTT topics and in Home Assistant (default: the host name).
    #[arg(long, value_name = "ID", value_parser = crate::events::mqtt::parse_box_id)]
    pub mqtt_id: Option<String>,
    /// The first level of the MQTT topics: <ROOT>/<ID>/{events,state,availability}.
    #[arg(long, value_name = "ROOT", default_value = "flowercam", value_parser = crate::events::mqtt::parse_topic_root)]
    pub mqtt_topic: String,
    /// POST each event's JSON to this URL (http://).
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Sign web hook posts: X-Flowercam-Signature: sha256=HMAC-SHA256(SECRET, body). Better in
    /// the config file (mode 0600) than on a command line that `ps` shows.
    #[arg(long, value_name = "SECRET")]
    pub webhook_secret: Option<String>,
    /// Events each receiver (MQTT, web hook) holds while it is away; beyond it the oldest are
    /// dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub outbox: u32,
}

/// When the answer is `unknown` or `unsure` instead of a class.
#[derive(clap::Args)]
pub struct RefusalArgs {
    /// Answer `unknown` (none of the trained classes) above this open-set score. Default: the
    /// threshold the trainer calibrated and stored in the bundle; raise it to refuse less.
    #[arg(long, value_parser = shared::args::score_threshold, allow_hyphen_values = true)]
    pub unknown_threshold: Option<f32>,
    /// Answer `unsure` below this probability of the best class (default 0: never).
    #[arg(long, default_value_t = 0.0, value_parser = shared::args::probability, allow_hyphen_values = true)]
    pub min_confidence: f32,
}

/// `--smoothing`: 1 to 1000 frames.
fn smoothing(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("'{s}': a number of frames from 1 (no smoothing) to 1000")),
    }
}
