//! The last model that passed its checks on this box (`edge run --last-good FILE`), so that a
//! box restarted on a model that no longer passes comes back on the model it ran before instead
//! of staying down. The model path can hold such a model: one moved over it that its trial or
//! self-check refused (the running model stayed, but the file is still there), a file damaged on
//! disk, an unsigned bundle after `--trusted-keys` was set. Without a copy, the next restart (a
//! power cut, an upgrade) would meet only that file, and systemd would restart the box in vain.

use std::path::{Path, PathBuf};

/// Where the copy lives.
#[derive(Debug, Clone)]
pub struct LastGood {
    path: PathBuf,
}

impl LastGood {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps `bundle`, a model that just passed, unless the copy already holds these bytes.
    /// Written atomically, so a power cut leaves the old copy or the new one, never half of one.
    /// Returns whether it wrote.
    pub fn keep(&self, bundle: &[u8]) -> std::io::Result<bool> {
        if self.holds(bundle) {
            return Ok(false);
        }
        shared::atomic::write_atomic(&self.path, bundle)?;
        Ok(true)
    }

    /// Whether the copy holds exactly these bytes (read a piece at a time: a board need not hold
    /// two bundles in memory to tell).
    pub fn holds(&self, bundle: &[u8]) -> bool {
        use std::io::Read;
        let Ok(mut file) = std::fs::File::open(&self.path) else { return false };
        if !file.metadata().is_ok_and(|m| m.is_file() && m.len() == bundle.len() as u64) {
            return false;
        }
        let mut piece = vec![0u8; 1 << 20];
        let mut rest = bundle;
        while !rest.is_empty() {
            let n = piece.len().min(rest.len());
            if file.read_exact(&mut piece[..n]).is_err() || piece[..n] != rest[..n] {
                return false;
            }
            rest = &rest[n..];
        }
        true
    }

    /// [`LastGood::keep`], where a failure is logged, not raised: the model runs either way.
    pub fn keep_or_warn(&self, bundle: &[u8]) {
        match self.keep(bundle) {
            Ok(true) => tracing::info!("kept this model as the last good one, {}", self.path.display()),
            Ok(false) => {}
            Err(e) => tracing::warn!("cannot keep this model as the last good one, {}: {e}", self.path.display()),
        }
    }

    /// The copy's bytes; `None` when there is none yet.
    pub fn read(&self) -> Option<Result<Vec<u8>, shared::BundleError>> {
        self.path.exists().then(|| shared::Bundle::read_bytes(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_new_model_once_and_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let last_good = LastGood::new(dir.path().join("last-good.bundle"));
        assert!(last_good.read().is_none(), "nothing kept yet");
        assert!(!last_good.holds(b"first model"));
        assert!(last_good.keep(b"first model").unwrap(), "a first model is written");
        assert!(last_good.holds(b"first model") && !last_good.holds(b"first mode") && !last_good.holds(b"first_model"));
        assert!(!last_good.keep(b"first model").unwrap(), "the same bytes are not written again");
        assert!(last_good.keep(b"second model").unwrap(), "other bytes replace them");
        assert!(last_good.keep(b"second mode!").unwrap(), "of the same length too");
        assert_eq!(last_good.read().unwrap().unwrap(), b"second mode!");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["last-good.bundle"], "no temporary file left beside it");
    }

    #[test]
    fn a_copy_that_cannot_be_written_is_an_error_naming_nothing_lost() {
        let dir = tempfile::tempdir().unwrap();
        let last_good = LastGood::new(dir.path().join("no such folder").join("last-good.bundle"));
        assert!(last_good.keep(b"model").is_err());
        assert!(last_good.read().is_none());
    }
}
