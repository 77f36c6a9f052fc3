//! One writer per run folder ([`shared::lock::FileLock`] on `RUN/.lock`): two `trainer train`
//! runs on one `--out` would write each other's checkpoints and leave a bundle of mixed weights.
//! Held, the lock also makes the temporaries a killed run left safe to remove.

use std::path::Path;

use shared::lock::FileLock;

use crate::run_folder::RunFolder;

/// Held for as long as the run's process works in the folder.
#[derive(Debug)]
pub struct RunLock {
    _lock: FileLock,
}

impl RunLock {
    /// Locks `run` (which must exist), then removes temporaries that a killed run left behind:
    /// with the lock held, no other writer can own them.
    pub fn acquire(run: &RunFolder) -> anyhow::Result<Self> {
        let lock = FileLock::acquire(&run.lock(), |pid| {
            format!(
                "{}: another trainer (pid {pid}) is working in this run folder; wait for it to finish or choose another --out",
                run.root().display()
            )
        })?;
        remove_stale_temporaries(run.root());
        Ok(Self { _lock: lock })
    }
}

/// `.NAME.PID.tmp` files ([`shared::atomic::temp_path`]) are only ever half-written files of a
/// process that died mid-write.
fn remove_stale_temporaries(run: &Path) {
    let Ok(entries) = std::fs::read_dir(run) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!("{}: removed a temporary a killed run left behind", entry.path().display()),
                Err(e) => tracing::warn!("{}: cannot remove a stale temporary: {e}", entry.path().display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".checkpoint.bin.4242.tmp"), b"half").unwrap();
        let first = RunLock::acquire(&RunFolder::new(dir.path())).unwrap();
        assert!(!dir.path().join(".checkpoint.bin.4242.tmp").exists(), "the stale temporary is removed");
        let err = RunLock::acquire(&RunFolder::new(dir.path())).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(first);
        RunLock::acquire(&RunFolder::new(dir.path())).unwrap();
    }
}
