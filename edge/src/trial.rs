//! A new bundle's trial in a child process, before a live box loads it. The checks in
//! `shared::runtime` refuse every way we know for a graph to ask for too much; a way we do not
//! know yet would abort the process (an allocation that fails is no panic to catch) or take its
//! memory. So a box that takes bundles it cannot trust (no `--trusted-keys`) loads and self-checks
//! each new one (and with `--last-good` the first) in a copy of itself (`edge check-bundle`,
//! hidden), with its address space capped, first in line for the kernel's out-of-memory killer,
//! and a deadline. Whatever that copy does, the box and its running model stay.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand that runs a trial (`edge check-bundle`).
pub const SUBCOMMAND: &str = "check-bundle";

/// How a trial is run: which binary, and the bounds it runs in.
#[derive(Debug, Clone)]
pub struct Trial {
    /// The edge binary: [`own_binary`].
    pub exe: PathBuf,
    pub threads: usize,
    /// The child's address space, bytes (`--check-memory`).
    pub memory: u64,
    /// The most a trial may take (`--check-timeout`).
    pub timeout: Duration,
}

/// How often a running trial is looked at.
const POLL: Duration = Duration::from_millis(20);
/// The most of the end of the child's standard error kept for the refusal's message.
const MAX_SAID: usize = 64 << 10;

/// The running binary, to try bundles with: `/proc/self/exe` on Linux, which stays the running
/// program even while a package upgrade replaces the file at its path (until the restart).
pub fn own_binary() -> std::io::Result<PathBuf> {
    let running = Path::new("/proc/self/exe");
    if running.exists() { Ok(running.into()) } else { std::env::current_exe() }
}

impl Trial {
    /// Loads and self-checks `bundle` in a child; `Err` says why it was refused, naming the
    /// bundle as `name`.
    pub fn run(&self, bundle: &[u8], name: &str) -> Result<(), String> {
        let mut child = Command::new(&self.exe)
            .arg(format!("--threads={}", self.threads))
            .arg(SUBCOMMAND)
            .arg(format!("--memory={}", self.memory))
            .arg(format!("--name={name}"))
            .env("RUST_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{name}: cannot start its trial ({}): {e}", self.exe.display()))?;
        let (stdin, stderr) = (child.stdin.take(), child.stderr.take());
        std::thread::scope(|scope| {
            // Fed from a thread, so that a child that never reads is still held to the deadline;
            // a child that ends (or is killed) closes the pipe, and the write gives up.
            if let Some(mut stdin) = stdin {
                scope.spawn(move || stdin.write_all(bundle));
            }
            let said = stderr.map(|stderr| scope.spawn(move || end_of(stderr)));
            let status = self.wait(&mut child, name);
            let said = said.and_then(|reader| reader.join().ok()).unwrap_or_default();
            status.and_then(|status| self.verdict(status, &said, name))
        })
    }

    /// The child's exit, or an error once it overran the deadline (then it is killed and reaped).
    fn wait(&self, child: &mut Child, name: &str) -> Result<ExitStatus, String> {
        let started = Instant::now();
        loop {
            let outcome = child.try_wait();
            match outcome {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if started.elapsed() <= self.timeout => std::thread::sleep(POLL),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(match outcome {
                        Err(e) => format!("{name}: cannot watch its trial: {e}"),
                        _ => format!("{name}: its trial did not end within {} s (--check-timeout)", self.timeout.as_secs_f32()),
                    });
                }
            }
        }
    }

    /// What the child's exit and its last words say of the bundle.
    fn verdict(&self, status: ExitStatus, said: &str, name: &str) -> Result<(), String> {
        use std::os::unix::process::ExitStatusExt;
        // Its error line, an allocation that failed, a panic's message; not what Rust adds after
        // them about backtraces.
        let about_backtraces = |line: &str| line.starts_with("note: ") || line.starts_with("skipping backtrace");
        let last = said.lines().map(str::trim).rfind(|line| !line.is_empty() && !about_backtraces(line)).unwrap_or("");
        let last = last.strip_prefix("error: ").unwrap_or(last);
        match (status.code(), status.signal()) {
            (Some(0), _) => Ok(()),
            (Some(_), _) if last.starts_with(name) => Err(last.to_string()),
            // Its last words are not its own error line: a panic, or an allocation that failed
            // where even saying so may fail.
            (Some(code), _) => {
                // "failed to initiate panic": the unwinder could not start a panic, which it needs
                // memory for; under the cap that is an allocation that failed first.
                let memory =
                    ["memory allocation", "out of memory", "allocate", "failed to initiate panic"].iter().any(|m| last.contains(m));
                let why =
                    if memory { format!(", most likely out of its {} MiB (--check-memory)", self.memory >> 20) } else { String::new() };
                let last = if last.is_empty() { String::new() } else { format!(": {last}") };
                Err(format!("{name}: its trial failed (exit {code}){why}{last}"))
            }
            (None, Some(signal)) => {
                let why = match signal {
                    6 => format!(", an abort (most likely an allocation over its {} MiB, --check-memory)", self.memory >> 20),
                    9 => format!(", most likely by the out-of-memory killer (--check-memory {} MiB)", self.memory >> 20),
                    _ => String::new(),
                };
                let last = if last.is_empty() { String::new() } else { format!(": {last}") };
                Err(format!("{name}: its trial was killed by signal {signal}{why}{last}"))
            }
            (None, None) => Err(format!("{name}: its trial ended strangely ({status})")),
        }
    }

    /// How long an upload may wait for its answer: the trial, then the load in the box itself
    /// (or, with trusted keys, the load and self-check there: about as long), and a minute to
    /// spare.
    pub fn upload_wait(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(60)
    }
}

/// The last [`MAX_SAID`] bytes of what `from` says until it ends.
fn end_of(mut from: impl Read) -> String {
    let (mut kept, mut buffer) = (Vec::new(), [0u8; 8192]);
    while let Ok(n @ 1..) = from.read(&mut buffer) {
        kept.extend_from_slice(&buffer[..n]);
        if kept.len() > 2 * MAX_SAID {
            kept.drain(..kept.len() - MAX_SAID);
        }
    }
    String::from_utf8_lossy(&kept[kept.len().saturating_sub(MAX_SAID)..]).into_owned()
}

/// The child's side (`edge check-bundle --memory BYTES --name NAME`): caps its own address space,
/// offers itself first to the out-of-memory killer, reads a bundle from standard input, loads it
/// and runs its self-check. An error says why the bundle (called `name`) is refused.
pub fn check_from_stdin(memory: u64, name: &str) -> anyhow::Result<()> {
    rlimit::Resource::AS.set(memory, memory).map_err(|e| anyhow::anyhow!("cannot cap the trial's memory: {e}"))?;
    // 1000: killed before anything else on the box; allowed without privileges (raising only).
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    let mut bytes = Vec::new();
    // The box's reader already held the bundle to its bound (an upload's or a file's).
    let most = shared::bundle::MAX_BUNDLE_BYTES;
    std::io::stdin().take(most + 1).read_to_end(&mut bytes).map_err(|e| match e.kind() {
        std::io::ErrorKind::OutOfMemory => {
            anyhow::anyhow!("{name}: its trial ran out of memory reading it ({} MiB, --check-memory)", memory >> 20)
        }
        _ => anyhow::anyhow!("{name}: its trial cannot read it: {e}"),
    })?;
    anyhow::ensure!(bytes.len() as u64 <= most, "{name}: over {most} bytes");
    let model = crate::model::EdgeModel::from_vec(bytes, std::path::Path::new(name), None)?;
    let report = crate::selftest::run(&model).map_err(|e| anyhow::anyhow!("{name}: self-check: {e:#}"))?;
    anyhow::ensure!(report.passed, "{name}: {}", report.refusal());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trial of `bundle` run by a stand-in for the edge binary: a shell script, written under a
    /// name of its own (a fork by another test may hold a file still being written: "text file
    /// busy", retried).
    fn by_script(dir: &Path, script: &str, timeout: Duration, bundle: &[u8]) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let exe = dir.join(format!("stand-in-{}", std::fs::read_dir(dir).unwrap().count()));
        std::fs::write(&exe, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let trial = Trial { exe, threads: 1, memory: 1 << 30, timeout };
        for _ in 0..50 {
            match trial.run(bundle, "upload") {
                Err(e) if e.contains("busy") => std::thread::sleep(Duration::from_millis(20)),
                outcome => return outcome,
            }
        }
        panic!("the stand-in stayed busy")
    }

    #[test]
    fn a_trial_passes_fails_or_dies_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let run = |script: &str| by_script(dir.path(), &format!("cat > /dev/null; {script}"), Duration::from_secs(30), b"bundle bytes");
        assert_eq!(run("exit 0"), Ok(()));
        let said = run("echo 'some log line' >&2; echo 'error: upload: cannot load the model: why' >&2; exit 1");
        assert_eq!(said, Err("upload: cannot load the model: why".into()), "the child's last line, as it said it");
        let panicked = run("echo 'panicked at x.rs:1:2:' >&2; echo 'a message' >&2; echo 'note: run with RUST_BACKTRACE=1' >&2; exit 101");
        assert_eq!(
            panicked,
            Err("upload: its trial failed (exit 101): a message".into()),
            "named, and the panic's message rather than the note"
        );
        let cut = run("printf 'memory allocation of 41' >&2; exit 134");
        assert_eq!(
            cut,
            Err("upload: its trial failed (exit 134), most likely out of its 1024 MiB (--check-memory): memory allocation of 41".into()),
            "an allocation that failed, even half said"
        );
        let unwound = run("echo 'fatal runtime error: failed to initiate panic, error 5, aborting' >&2; exit 1");
        assert_eq!(
            unwound,
            Err("upload: its trial failed (exit 1), most likely out of its 1024 MiB (--check-memory): fatal runtime error: failed to initiate panic, error 5, aborting".into()),
            "a panic that could not even start"
        );
        let noisy = run("head -c 300000 /dev/zero | tr '\\0' 'x' >&2; echo >&2; echo 'error: upload: the end' >&2; exit 1");
        assert_eq!(noisy, Err("upload: the end".into()), "the end of a long say is kept");
        let died = run("echo 'memory allocation of 99 bytes failed' >&2; echo 'skipping backtrace printing to avoid potential recursion' >&2; kill -ABRT $$").unwrap_err();
        assert_eq!(
            died,
            "upload: its trial was killed by signal 6, an abort (most likely an allocation over its 1024 MiB, --check-memory): memory allocation of 99 bytes failed"
        );
        let missing = Trial { exe: dir.path().join("nowhere"), threads: 1, memory: 1, timeout: Duration::from_secs(1) };
        let missing = missing.run(b"", "upload").unwrap_err();
        assert!(missing.starts_with("upload: cannot start its trial"), "{missing}");
    }

    #[test]
    fn a_trial_is_killed_at_its_deadline_even_when_it_never_reads() {
        let dir = tempfile::tempdir().unwrap();
        let megabyte = vec![0u8; 1 << 20];
        for (script, bundle) in [("cat > /dev/null; exec sleep 20", &b"bundle bytes"[..]), ("exec sleep 20", &megabyte)] {
            let started = Instant::now();
            let overran = by_script(dir.path(), script, Duration::from_millis(300), bundle).unwrap_err();
            assert_eq!(overran, "upload: its trial did not end within 0.3 s (--check-timeout)", "{script}");
            assert!(started.elapsed() < Duration::from_secs(10), "{script}: killed at its deadline, not after 20 s");
        }
    }
}
