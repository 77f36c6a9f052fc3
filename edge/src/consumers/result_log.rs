//! `--log FILE`: every classified frame appended to the binary result log.

use std::path::Path;

use super::{Classified, Consumer, LoopStatus};
use crate::resultlog::ResultLog;

/// Writes each frame's record; when a write fails (the disk full, say) the log stops, said once,
/// and classifying goes on: a box that exited would restart into the same full disk, and
/// classify nothing, serve no health check and send no event.
pub struct LogWriter {
    /// `None` once a write failed.
    log: Option<ResultLog>,
    path: std::path::PathBuf,
}

impl LogWriter {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self { log: Some(ResultLog::open(path)?), path: path.into() })
    }

    fn stop_on_error(&mut self, result: anyhow::Result<()>) {
        if let Err(e) = result {
            tracing::error!(
                "--log {}: cannot write ({e:#}); the result log stopped, classifying goes on (free its disk and restart to log again)",
                self.path.display()
            );
            self.log = None;
        }
    }
}

impl Consumer for LogWriter {
    fn frame(&mut self, frame: &Classified<'_>) -> anyhow::Result<()> {
        if let Some(log) = self.log.as_mut() {
            let written = log.append(frame.result);
            self.stop_on_error(written);
        }
        Ok(())
    }

    fn finish(&mut self, _status: &LoopStatus) -> anyhow::Result<()> {
        if let Some(log) = self.log.as_mut() {
            let synced = log.sync();
            self.stop_on_error(synced);
        }
        Ok(())
    }
}
