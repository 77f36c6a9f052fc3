//! A new bundle's trial in a child process, before a live box loads it. The checks in
//! `shared::runtime` refuse every way we know for a graph to ask for too much; a way we do not
//! know yet would abort the process (an allocation that fails is no panic to catch) or take its
//! memory. So a box that takes bundles it cannot trust (no `--trusted-keys`) loads and self-checks
//! each new one first in a copy of itself (`edge check-bundle`, hidden), with its address space
//! capped, first in line for the kernel's out-of-memory killer, and a deadline. Whatever that copy
//! does, the box and its running model stay.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand that runs a trial (`edge check-bundle`).
pub const SUBCOMMAND: &str = "check-bundle";

/// How a trial is run: which binary, and the bounds it runs in.
#[derive(Debug, Clone)]
pub struct Trial {
    /// The edge binary (the running one: `std::env::current_exe`).
    pub exe: PathBuf,
    pub threads: usize,
    /// The child's address space, bytes (`--check-memory`).
    pub memory: u64,
    /// The most a trial may take (`--check-timeout`).
    pub timeout: Duration,
}

/// How often a running trial is looked at.
const POLL: Duration = Duration::from_millis(20);
/// The most of the child's standard error kept for the refusal's message.
const MAX_SAID: u64 = 64 << 10;

impl Trial {
    /// Loads and self-checks `bundle` in a child; `Err` says why it was refused.
    /// `name` is what the refusal calls the bundle.
    pub fn run(&self, bundle: &[u8], name: &str) -> Result<(), String> {
        let started = Instant::now();
        let mut child = Command::new(&self.exe)
            .args(["--threads", &self.threads.to_string(), SUBCOMMAND, "--memory", &self.memory.to_string(), "--name", name])
            .env("RUST_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{name}: cannot start its trial ({}): {e}", self.exe.display()))?;
        let said = child.stderr.take().map(|stderr| {
            std::thread::spawn(move || {
                let mut said = String::new();
                let _ = stderr.take(MAX_SAID).read_to_string(&mut said);
                said
            })
        });
        // A child that stops reading (it failed early) closes the pipe: that write fails, and
        // the exit says why.
        let _ = child.stdin.take().map(|mut stdin| stdin.write_all(bundle));
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if started.elapsed() > self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!("{name}: its trial did not end within {} s (--check-timeout)", self.timeout.as_secs_f32()));
                }
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => break Err(format!("{name}: cannot watch its trial: {e}")),
            }
        }?;
        let said = said.and_then(|reader| reader.join().ok()).unwrap_or_default();
        let last = said.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("").trim();
        let last = last.strip_prefix("error: ").unwrap_or(last);
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(0), _) => Ok(()),
            (Some(_), _) => Err(if last.is_empty() { format!("{name}: its trial failed ({status})") } else { last.to_string() }),
            (None, Some(signal)) => Err(format!(
                "{name}: its trial was killed by signal {signal}{} (limit {} MB, --check-memory)",
                match signal {
                    6 => ", an abort: it asked for more memory than it may have",
                    9 => ", most likely the out-of-memory killer",
                    _ => "",
                },
                self.memory / 1_000_000
            )),
            (None, None) => Err(format!("{name}: its trial ended strangely ({status})")),
        }
    }
}

/// The child's side (`edge check-bundle --memory BYTES --name NAME`): caps its own address space,
/// offers itself first to the out-of-memory killer, reads a bundle from standard input, loads it
/// and runs its self-check. An error says why the bundle (called `name`) is refused.
pub fn check_from_stdin(memory: u64, name: &str) -> anyhow::Result<()> {
    rlimit::Resource::AS.set(memory, memory).map_err(|e| anyhow::anyhow!("cannot cap the trial's memory: {e}"))?;
    // 1000: killed before anything else on the box; allowed without privileges (raising only).
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    let mut bytes = Vec::new();
    std::io::stdin().take(crate::swap::MAX_UPLOAD as u64 + 1).read_to_end(&mut bytes)?;
    anyhow::ensure!(bytes.len() <= crate::swap::MAX_UPLOAD, "{name}: over {} bytes", crate::swap::MAX_UPLOAD);
    let model = crate::model::EdgeModel::from_bytes(&bytes, std::path::Path::new(name), None)?;
    let report = crate::selftest::run(&model).map_err(|e| anyhow::anyhow!("{name}: self-check: {e:#}"))?;
    anyhow::ensure!(report.passed, "{name}: {}", report.refusal());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trial run by a stand-in for the edge binary: a shell script.
    fn by_script(dir: &std::path::Path, script: &str, timeout: Duration) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let exe = dir.join("stand-in");
        std::fs::write(&exe, format!("#!/bin/sh\ncat > /dev/null\n{script}\n")).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        Trial { exe, threads: 1, memory: 1 << 30, timeout }.run(b"bundle bytes", "upload")
    }

    #[test]
    fn a_trial_passes_fails_dies_or_overruns() {
        let dir = tempfile::tempdir().unwrap();
        let long = Duration::from_secs(30);
        assert_eq!(by_script(dir.path(), "exit 0", long), Ok(()));
        let said = by_script(dir.path(), "echo 'some log line' >&2; echo 'error: upload: cannot load the model: why' >&2; exit 1", long);
        assert_eq!(said, Err("upload: cannot load the model: why".into()), "the child's last line, as it said it");
        let died = by_script(dir.path(), "kill -ABRT $$", long).unwrap_err();
        assert!(died.starts_with("upload: its trial was killed by signal 6, an abort"), "{died}");
        let started = Instant::now();
        let overran = by_script(dir.path(), "sleep 20", Duration::from_millis(300)).unwrap_err();
        assert_eq!(overran, "upload: its trial did not end within 0.3 s (--check-timeout)");
        assert!(started.elapsed() < Duration::from_secs(10), "the child was killed at its deadline");
        let missing = Trial { exe: dir.path().join("nowhere"), threads: 1, memory: 1, timeout: long }.run(b"", "upload").unwrap_err();
        assert!(missing.starts_with("upload: cannot start its trial"), "{missing}");
    }
}
