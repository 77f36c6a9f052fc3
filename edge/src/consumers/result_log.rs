//! `--log FILE`: every classified frame appended to the binary result log.

use std::path::Path;

use super::{Classified, Consumer, LoopStatus};
use crate::resultlog::ResultLog;

pub struct LogWriter {
    log: ResultLog,
}

impl LogWriter {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self { log: ResultLog::open(path)? })
    }
}

impl Consumer for LogWriter {
    fn frame(&mut self, frame: &Classified<'_>) -> anyhow::Result<()> {
        self.log.append(frame.result)
    }

    fn finish(&mut self, _status: &LoopStatus) -> anyhow::Result<()> {
        self.log.sync()
    }
}
