//! Taking a new model without stopping. A new bundle comes from the model path (changed on disk,
//! seen within `WATCH_EVERY`, or on SIGHUP) or from an upload (`POST /api/model`). A worker
//! thread, never the loop, checks it: integrity, the signature when `--trusted-keys` is set (a
//! trial in a child process when it is not: [`crate::trial`]), and the bundle's self-check
//! images on this device. Only a model that passes goes to the loop,
//! which takes it between two frames; anything else is refused, logged, and the running model
//! stays. An accepted upload replaces the file at the model path (atomically), so a restart
//! runs it too. With `--last-good`, each model that passed is kept, the first model goes through
//! the same checks, and a start whose model fails them runs the last good one ([`first_model`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, SystemTime};

use shared::answer::Thresholds;
use shared::signing::TrustedKeys;

use crate::last_good::LastGood;
use crate::model::{EdgeModel, ModelInfo};

/// How often the model path is looked at.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);
/// The largest upload taken: a float32 VGG16 bundle is ~60 MB.
pub const MAX_UPLOAD: usize = 256 << 20;

/// A model that passed every check, ready to take over.
pub struct Candidate {
    pub model: EdgeModel,
    pub thresholds: Thresholds,
    pub info: ModelInfo,
}

/// What the loop hears from the worker.
pub enum Swap {
    Ready(Box<Candidate>),
    Rejected {
        from: String,
        why: String,
    },
    /// With `--last-good`: the running model was offered to the copy, and `problem` says why it
    /// could not be kept (a full or read-only disk), `None` when the copy holds it. A box whose
    /// copy is stale would come back on an older model after a restart on a bad file.
    Kept {
        problem: Option<String>,
    },
}

/// Asks the worker for a check.
pub enum Request {
    /// The file at the model path changed, or SIGHUP.
    Reload,
    /// An uploaded bundle; the reply says whether it was taken (or why not).
    /// `slot` is the HTTP server's one upload place, freed when this request is done with.
    Upload { bytes: Vec<u8>, reply: Sender<Result<UploadAnswer, String>>, slot: tokio::sync::OwnedMutexGuard<()> },
}

/// What a taken upload's sender is told (`POST /api/model`'s 200).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum UploadAnswer {
    Swapped(Uploaded),
    /// The bytes of the model running: no new model, nothing checked, swapped or written.
    AlreadyRunning {
        already_running: bool,
    },
}

/// An upload that passed its checks and is being swapped in.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Uploaded {
    /// The new model.
    pub swapped: ModelInfo,
    /// With `--last-good`: why it could not be kept as the last good model (absent when it was,
    /// or without `--last-good`). The model runs either way, but a restart on a bad file would
    /// come back on an older one: the sender is told now, not only the status page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_kept: Option<String>,
}

pub struct SwapOptions {
    pub model_path: PathBuf,
    pub trusted: Option<TrustedKeys>,
    /// `--unknown-threshold` and `--min-confidence`, applied to every new model as to the first.
    pub unknown_threshold: Option<f32>,
    pub min_confidence: f32,
    /// How a bundle is tried in a child process before it is loaded here, when no trusted keys
    /// vouch for it.
    pub trial: crate::trial::Trial,
    /// Where every model that passed is kept, to start on when the model path's fails.
    pub last_good: Option<LastGood>,
}

/// The model a live box starts on.
pub struct Start {
    pub candidate: Candidate,
    /// The SHA-256 of its bundle file: the same bytes at the model path later are no new model.
    pub sha: [u8; 32],
    /// What the loop hears first, as it hears a swap (status, events): why the model path's
    /// bundle was refused when the last good model runs instead, and whether the model that
    /// passed could be kept.
    pub notes: Vec<Swap>,
}

impl Start {
    /// Whether the model path's bundle was refused (the last good model runs).
    pub fn refused(&self) -> bool {
        self.notes.iter().any(|note| matches!(note, Swap::Rejected { .. }))
    }
}

/// The model a live box starts on.
///
/// - Without `--last-good` (a start by hand, nothing to fall back on): the model path's bundle,
///   loaded here as `edge classify` loads a file (the graph limits, no trial), so that starting
///   stays quick; an error says why it cannot run.
/// - With it: the model path's bundle, checked as a new one would be, unless it is the last good
///   model (it passed on this box already, and a restart on it stays quick). When it fails
///   (unreadable, damaged, untrusted, its trial or self-check failed), the last good model, with
///   the refusal. An error says why each failed.
pub fn first_model(options: &SwapOptions) -> anyhow::Result<Start> {
    let path = &options.model_path;
    let Some(last_good) = &options.last_good else {
        let bytes = shared::Bundle::read_bytes(path)?;
        let candidate = load(&bytes, path, options).map_err(anyhow::Error::msg)?;
        return Ok(Start { candidate, sha: shared::bundle::sha256(&bytes), notes: Vec::new() });
    };
    let why = match shared::Bundle::read_bytes(path) {
        Ok(bytes) => {
            // The last good model passed here already: loaded, and not copied over itself.
            let passed_here = last_good.holds(&bytes);
            let outcome = if passed_here { load(&bytes, path, options) } else { check(&bytes, path, options) };
            match outcome {
                Ok(candidate) => {
                    let sha = shared::bundle::sha256(&bytes);
                    let notes = if passed_here { Vec::new() } else { vec![Swap::Kept { problem: last_good.keep_or_warn(&bytes, &sha) }] };
                    return Ok(Start { candidate, sha, notes });
                }
                Err(why) => named(path, &why),
            }
        }
        Err(e) => e.to_string(),
    };
    let bytes = match last_good.read() {
        None => anyhow::bail!("{why}\n(no last good model at {} yet to start on instead)", last_good.path().display()),
        Some(read) => read.map_err(|e| anyhow::anyhow!("{why}\n(and the last good model cannot be read: {e})"))?,
    };
    let candidate = load(&bytes, last_good.path(), options)
        .map_err(|e| anyhow::anyhow!("{why}\n(and the last good model fails too: {})", named(last_good.path(), &e)))?;
    tracing::warn!(
        "{why}; starting on the last good model '{}' ({}, {}) until one that passes is put at {}",
        candidate.info.name,
        candidate.info.hash,
        last_good.path().display(),
        path.display()
    );
    let refused = Swap::Rejected { from: path.display().to_string(), why: format!("{why} (the last good model runs)") };
    Ok(Start { candidate, sha: shared::bundle::sha256(&bytes), notes: vec![refused] })
}

/// What the watcher starts from, taken before the first model is read: a bundle put at the model
/// path, or a SIGHUP, while a slow start tries the first one is then not missed.
pub struct Watch {
    hangup: Arc<AtomicBool>,
    seen: Option<(SystemTime, u64)>,
    /// When to look at the model path once more whatever its stamp says ([`Watch::retry_after`]).
    retry_at: Option<std::time::Instant>,
}

/// How long after a start that refused the model path's bundle it is tried once more: a trial
/// may have overrun its deadline, or been killed, only because the board was busy booting.
pub const RETRY_REFUSED_START: Duration = Duration::from_secs(300);

impl Watch {
    pub fn begin(path: &Path) -> anyhow::Result<Self> {
        let hangup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))?;
        Ok(Self { hangup, seen: stamp(path), retry_at: None })
    }

    /// Looks at the model path once more after `delay`, as if it had changed.
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_at = Some(std::time::Instant::now() + delay);
        self
    }
}

/// The running worker and watcher: `requests` for uploads, `swaps` for the loop.
pub struct Swapper {
    pub requests: Sender<Request>,
    pub swaps: Receiver<Swap>,
}

impl Swapper {
    /// Starts the worker and the watcher of `options.model_path`; `running` is the bundle file's
    /// SHA-256 of the model the loop starts with (the same bytes again are no new model), and
    /// `notes` what the loop hears first ([`Start::notes`]).
    pub fn start(options: SwapOptions, watch_from: Watch, running: [u8; 32], notes: Vec<Swap>) -> anyhow::Result<Self> {
        let (requests, incoming) = mpsc::channel();
        let (ready, swaps) = mpsc::channel();
        for note in notes {
            ready.send(note)?;
        }
        let path = options.model_path.clone();
        let reload = requests.clone();
        std::thread::Builder::new().name("model-watch".into()).spawn(move || watch(&path, watch_from, &reload))?;
        std::thread::Builder::new().name("model-swap".into()).spawn(move || work(&options, running, &incoming, &ready))?;
        Ok(Swapper { requests, swaps })
    }
}

/// What of a file tells that it changed without reading it.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Asks for a reload when the file's stamp changed and then held still for one look (a copy in
/// progress is not read half-written), or on SIGHUP.
fn watch(path: &Path, from: Watch, requests: &Sender<Request>) {
    let Watch { hangup, mut seen, mut retry_at } = from;
    let mut changed: Option<(SystemTime, u64)> = None;
    loop {
        std::thread::sleep(WATCH_EVERY.min(retry_at.map_or(WATCH_EVERY, |at| at.saturating_duration_since(std::time::Instant::now()))));
        let now = stamp(path);
        let mut reload = hangup.swap(false, Ordering::SeqCst);
        if reload {
            tracing::info!("SIGHUP: checking {} for a new model", path.display());
        }
        if retry_at.is_some_and(|at| std::time::Instant::now() >= at) {
            retry_at = None;
            reload = true;
            tracing::info!("checking {} once more: it was refused at the start", path.display());
        }
        if now.is_some() && now != seen {
            if changed == now {
                reload = true;
                seen = now;
                changed = None;
            } else {
                changed = now;
            }
        }
        if reload && requests.send(Request::Reload).is_err() {
            return;
        }
    }
}

fn work(options: &SwapOptions, mut running: [u8; 32], requests: &Receiver<Request>, ready: &Sender<Swap>) {
    let path = &options.model_path;
    // The bundle file at the model path last dealt with here (run, refused, or written by an
    // upload): a file there that differs was put there since and is not checked yet, and an
    // upload must not write over it unread (the watcher takes it once it holds still).
    let mut settled = file_sha(path);
    for request in requests {
        let (outcome, from, reply, bytes) = match request {
            Request::Reload => {
                // Read once: what is hashed is what is checked, whatever the file becomes meanwhile.
                let bytes = match shared::Bundle::read_bytes(path) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        tracing::warn!("cannot read the new model ({e}); the running one stays");
                        continue;
                    }
                };
                let sha = shared::bundle::sha256(&bytes);
                settled = Some(sha);
                if sha == running {
                    tracing::info!("{}: the model already running", path.display());
                    // A copy that failed (a full disk since freed) is tried again: SIGHUP
                    // (`systemctl reload`) clears the problem without a new model. (`keep` writes
                    // nothing when the copy holds these bytes already.)
                    if !offer_to_last_good(options, &bytes, &sha, ready) {
                        return;
                    }
                    continue;
                }
                let outcome = check(&bytes, path, options).map(|c| (c, sha));
                (outcome, path.display().to_string(), None, bytes)
            }
            Request::Upload { bytes, reply, slot } => {
                let sha = shared::bundle::sha256(&bytes);
                let at_path = file_sha(path);
                if let Some(unread) = at_path.filter(|now| Some(*now) != settled && *now != sha) {
                    drop(slot);
                    tracing::warn!(
                        "upload refused: {} changed and is not checked yet (sha {})",
                        path.display(),
                        &hex::encode(unread)[..12]
                    );
                    let why = "a new model file was just put at the model path and is not checked yet; the upload would replace it \
                               unread: send it again once that file has been taken or refused";
                    let _ = reply.send(Err(why.into()));
                    continue;
                }
                if sha == running {
                    drop(slot);
                    tracing::info!("upload: the model already running");
                    // Its bytes still mend what a restart would meet: the model path (a box that
                    // started on its last good copy holds a refused file there) and the copy.
                    let mended = if at_path == Some(sha) { Ok(()) } else { put_in_place(&bytes, path) };
                    settled = Some(sha);
                    let _ = reply.send(mended.map(|()| UploadAnswer::AlreadyRunning { already_running: true }));
                    if !offer_to_last_good(options, &bytes, &sha, ready) {
                        return;
                    }
                    continue;
                }
                let checked = take_upload(&bytes, sha, options);
                if checked.is_ok() {
                    settled = Some(sha);
                }
                drop(slot);
                (checked, "upload".to_string(), Some(reply), bytes)
            }
        };
        let messages = match outcome {
            Ok((candidate, sha)) => {
                running = sha;
                tracing::info!(
                    "new model '{}' ({}) from {from} passed its checks; swapping it in",
                    candidate.info.name,
                    candidate.info.hash
                );
                // Kept before the upload is answered: an answered upload is also the last good one.
                let problem = options.last_good.as_ref().map(|last_good| last_good.keep_or_warn(&bytes, &sha));
                if let Some(reply) = reply {
                    let _ = reply
                        .send(Ok(UploadAnswer::Swapped(Uploaded { swapped: candidate.info.clone(), not_kept: problem.clone().flatten() })));
                }
                let kept = problem.map(|problem| Swap::Kept { problem });
                std::iter::once(Swap::Ready(Box::new(candidate))).chain(kept).collect()
            }
            Err(why) => {
                tracing::warn!("new model from {from} refused, the running one stays: {why}");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(why.clone()));
                }
                vec![Swap::Rejected { from, why }]
            }
        };
        for message in messages {
            if ready.send(message).is_err() {
                return;
            }
        }
    }
}

/// An upload is checked where it was written, next to the model path, and renamed over it once
/// it passed: the model path always holds a model that passed.
fn take_upload(bytes: &[u8], sha: [u8; 32], options: &SwapOptions) -> Result<(Candidate, [u8; 32]), String> {
    if bytes.len() > MAX_UPLOAD {
        return Err(format!("{} bytes is more than a bundle may be ({MAX_UPLOAD})", bytes.len()));
    }
    // Checked in memory first: a refused upload never touches the disk. Named "upload" in what
    // the sender is told: the box's paths are not the sender's business.
    let named = PathBuf::from("upload");
    let candidate = check(bytes, &named, options)?;
    put_in_place(bytes, &options.model_path)?;
    Ok((candidate, sha))
}

/// The SHA-256 of the bundle file at `path`, if it reads as one might.
fn file_sha(path: &Path) -> Option<[u8; 32]> {
    shared::Bundle::read_bytes(path).ok().map(|bytes| shared::bundle::sha256(&bytes))
}

/// An upload's bytes at the model path (atomically), so that a restart runs them too.
fn put_in_place(bytes: &[u8], path: &Path) -> Result<(), String> {
    shared::atomic::write_atomic(path, bytes).map_err(|e| format!("{}: cannot put the upload in place: {e}", path.display()))
}

/// Offers `bytes` to the last good copy (`--last-good`) and tells the loop how that went;
/// false when the loop is gone.
fn offer_to_last_good(options: &SwapOptions, bytes: &[u8], sha: &[u8; 32], ready: &Sender<Swap>) -> bool {
    options.last_good.as_ref().is_none_or(|last_good| ready.send(Swap::Kept { problem: last_good.keep_or_warn(bytes, sha) }).is_ok())
}

/// `why` a bundle was refused, naming it once (a reason from a check that did not name it, a
/// self-check's, gets its path in front).
pub fn named(path: &Path, why: &str) -> String {
    let name = path.display().to_string();
    if why.starts_with(&name) { why.to_string() } else { format!("{name}: {why}") }
}

/// [`check_bundle`], where a panic (a bug that a crafted bundle found) refuses the bundle and
/// leaves the worker alive for the next one.
fn check(bytes: &[u8], path: &Path, options: &SwapOptions) -> Result<Candidate, String> {
    unless_panic(|| check_bundle(bytes, path, options))
}

/// [`candidate`], as [`check`] guards it: for a bundle that passed on this box already.
fn load(bytes: &[u8], path: &Path, options: &SwapOptions) -> Result<Candidate, String> {
    unless_panic(|| candidate(bytes, path, options))
}

fn unless_panic(check: impl FnOnce() -> Result<Candidate, String>) -> Result<Candidate, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(check))
        .unwrap_or_else(|_| Err("checking it panicked (the panic is printed on standard error)".into()))
}

/// Integrity and signature (with trusted keys) or a trial in a child process (without), and the
/// self-check images run on this device.
fn check_bundle(bytes: &[u8], path: &Path, options: &SwapOptions) -> Result<Candidate, String> {
    // Without trusted keys any bundle may be crafted: it is loaded and self-checked in a child
    // process first. Its self-check is not run again here: the same binary on the same device
    // answers the same (to rounding, 1e-7 against the check's 1e-4, where memory left the two
    // loads a different share of Winograd convolutions).
    let tried = options.trusted.is_none();
    if tried {
        options.trial.run(bytes, &path.display().to_string())?;
    }
    let candidate = candidate(bytes, path, options)?;
    if !tried {
        let report = crate::selftest::run(&candidate.model).map_err(|e| format!("self-check: {e:#}"))?;
        if !report.passed {
            return Err(report.refusal());
        }
    }
    Ok(candidate)
}

/// The bundle loaded here (integrity, the signature with trusted keys, the graph limits), with
/// the thresholds it runs with.
fn candidate(bytes: &[u8], path: &Path, options: &SwapOptions) -> Result<Candidate, String> {
    let model = EdgeModel::from_bytes(bytes, path, options.trusted.as_ref()).map_err(|e| format!("{e:#}"))?;
    let thresholds = Thresholds::for_model(&model.manifest, options.unknown_threshold, options.min_confidence);
    let info = model.info(options.trusted.is_some(), &thresholds);
    Ok(Candidate { model, thresholds, info })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_refused_at_the_start_is_looked_at_once_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bundle");
        std::fs::write(&path, b"refused at the start").unwrap();
        let (requests, incoming) = mpsc::channel();
        let from =
            Watch { hangup: Arc::new(AtomicBool::new(false)), seen: stamp(&path), retry_at: None }.retry_after(Duration::from_millis(200));
        std::thread::spawn(move || watch(&path, from, &requests));
        let first = incoming.recv_timeout(Duration::from_secs(5));
        assert!(matches!(first, Ok(Request::Reload)), "one look after the delay");
        assert!(incoming.recv_timeout(Duration::from_millis(2500)).is_err(), "and only one, the file unchanged");
    }
}
