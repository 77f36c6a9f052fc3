//! One JSON line per classified frame, on standard output (or any writer).

use std::io::Write;

use super::{Classified, Consumer};

pub struct JsonLines<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> Consumer for JsonLines<W> {
    fn frame(&mut self, frame: &Classified<'_>) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.out, frame.result)?;
        self.out.write_all(b"\n")?;
        // A reader downstream (a pipe into jq, a shell loop) sees each frame as it happens.
        self.out.flush()?;
        Ok(())
    }
}
