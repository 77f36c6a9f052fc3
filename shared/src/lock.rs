//! One writer per file or folder, across processes: two trainers on one run folder, two exports
//! to one model name, two edges appending to one result log or filling one saved-frames folder
//! would each mix their writes into the other's. The second fails at once, naming the holder. The
//! lock is the operating system's (released when the process ends, even by `kill -9`), on a file
//! that holds the holder's pid for the message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// An OS lock on a file, held while the value lives.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Locks `path` (created if missing). When another process holds it, the error is
    /// `busy(pid of the holder)`.
    pub fn acquire(path: &Path, busy: impl FnOnce(&str) -> String) -> anyhow::Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("{}: cannot open the lock file", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(path).unwrap_or_default();
                anyhow::bail!(busy(if holder.trim().is_empty() { "unknown" } else { holder.trim() }));
            }
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("{}: cannot lock", path.display())),
        }
        // The pid is only for the message of a process that finds the lock taken.
        if let Err(e) = file.set_len(0).and_then(|()| write!(file, "{}", std::process::id())) {
            tracing::warn!("{}: cannot write this process's id into the lock file: {e}", path.display());
        }
        Ok(Self { _file: file })
    }

    /// Locks `.NAME.lock` beside `path` (`NAME` its file name): the lock of one file's writer,
    /// which leaves the file itself as readers expect it.
    pub fn beside(path: &Path, busy: impl FnOnce(&str) -> String) -> anyhow::Result<Self> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Self::acquire(&path.with_file_name(format!(".{name}.lock")), busy)
    }

    /// Locks the folder `dir` itself, leaving no file in it (a folder people sort by hand, such
    /// as saved frames, should hold only what they put there). When another process holds it,
    /// the error is `busy()`; no pid can be told.
    pub fn on_folder(dir: &Path, busy: impl FnOnce() -> String) -> anyhow::Result<Self> {
        let folder = File::open(dir).with_context(|| format!("{}: cannot open the folder to lock it", dir.display()))?;
        match folder.try_lock() {
            Ok(()) => Ok(Self { _file: folder }),
            Err(TryLockError::WouldBlock) => anyhow::bail!(busy()),
            Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("{}: cannot lock", dir.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".x.lock");
        let first = FileLock::acquire(&path, |_| unreachable!("free")).unwrap();
        let err = FileLock::acquire(&path, |pid| format!("held by {pid}")).unwrap_err().to_string();
        assert_eq!(err, format!("held by {}", std::process::id()));
        drop(first);
        assert!(FileLock::acquire(&path, |_| unreachable!("free again")).is_ok());
        // A folder, locked without a file in it.
        let folder = FileLock::on_folder(dir.path(), || unreachable!("free")).unwrap();
        assert_eq!(FileLock::on_folder(dir.path(), || "taken".into()).unwrap_err().to_string(), "taken");
        drop(folder);
        assert!(FileLock::on_folder(dir.path(), || unreachable!("free again")).is_ok());
    }
}
