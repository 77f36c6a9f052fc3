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

    /// [`LastGood::keep`], where a failure is logged and returned, not raised: the model runs
    /// either way, and the loop tells the status and the events ([`crate::swap::Swap::Kept`]).
    /// `sha` is the bundle's SHA-256, to name it.
    pub fn keep_or_warn(&self, bundle: &[u8], sha: &[u8; 32]) -> Option<String> {
        match self.keep(bundle) {
            Ok(true) => tracing::info!("kept this model as the last good one, {}", self.path.display()),
            Ok(false) => {}
            Err(e) => {
                let problem = format!(
                    "cannot keep the running model (bundle sha256 {}) as the last good one, {}: {e}",
                    &hex::encode(sha)[..12],
                    self.path.display()
                );
                tracing::warn!("{problem}");
                return Some(problem);
            }
        }
        None
    }

    /// The copy's bytes; `None` when there is none yet (any other trouble is an error).
    pub fn read(&self) -> Option<Result<Vec<u8>, shared::BundleError>> {
        match std::fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            _ => Some(shared::Bundle::read_bytes(&self.path)),
        }
    }

    /// Whether `model` is the copy itself (the same file, by another name or a link): then the
    /// model would pass as "the last good one" without its checks.
    pub fn is(&self, model: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(&self.path), std::fs::metadata(model)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => canonical(&self.path).is_some_and(|a| canonical(model).is_some_and(|b| a == b)),
        }
    }

    /// Its folder must exist: a copy that can never be written would leave the box unprotected
    /// with only a warning to say so.
    pub fn check_folder(&self) -> Result<(), String> {
        let folder = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if folder.is_dir() {
            Ok(())
        } else {
            Err(format!("--last-good {}: its folder {} does not exist", self.path.display(), folder.display()))
        }
    }
}

/// A path with its folder resolved (the file itself need not exist).
fn canonical(path: &Path) -> Option<PathBuf> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Some(folder.canonicalize().ok()?.join(path.file_name()?))
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
    fn a_copy_in_a_folder_that_is_not_there_is_refused_before_anything_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let last_good = LastGood::new(dir.path().join("no such folder").join("last-good.bundle"));
        let e = last_good.check_folder().unwrap_err();
        assert!(e.contains("no such folder") && e.contains("does not exist"), "{e}");
        assert!(last_good.keep(b"model").is_err());
        assert!(last_good.read().is_none());
        assert!(LastGood::new(dir.path().join("last-good.bundle")).check_folder().is_ok());
    }

    #[test]
    fn the_model_itself_is_recognised_by_any_name() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model.bundle");
        std::fs::write(&model, b"model").unwrap();
        std::os::unix::fs::symlink(&model, dir.path().join("link.bundle")).unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for same in [model.clone(), dir.path().join("link.bundle"), sub.join("..").join("model.bundle")] {
            assert!(LastGood::new(same.clone()).is(&model), "{}", same.display());
        }
        assert!(!LastGood::new(dir.path().join("last-good.bundle")).is(&model));
        // Not written yet: the same name through another spelling of its folder.
        let unwritten = dir.path().join("new.bundle");
        assert!(LastGood::new(sub.join("..").join("new.bundle")).is(&unwritten));
    }
}
