//! `dir:PATH`: the images of a folder in name order, optionally paced and looped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Event, Frame, FrameSource, Pacer};

pub struct DirSource {
    root: PathBuf,
    files: Vec<PathBuf>,
    position: usize,
    looping: bool,
    number: u64,
    pacer: Pacer,
}

impl DirSource {
    pub fn open(root: &Path, fps: Option<f32>, looping: bool) -> anyhow::Result<Self> {
        let files = image_files(root)?;
        anyhow::ensure!(!files.is_empty(), "{}: no files to read", root.display());
        Ok(Self { root: root.into(), files, position: 0, looping, number: 0, pacer: Pacer::new(fps) })
    }
}

/// The regular, non-hidden files of `root`, sorted by name.
pub fn image_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    shared::folders::files(root).map_err(|e| anyhow::anyhow!("{}: cannot read the folder: {e}", root.display()))
}

impl FrameSource for DirSource {
    fn next(&mut self) -> anyhow::Result<Event> {
        if self.position == self.files.len() {
            if !self.looping {
                return Ok(Event::End);
            }
            self.position = 0;
        }
        self.pacer.wait();
        let path = &self.files[self.position];
        self.position += 1;
        let started = Instant::now();
        match shared::preprocess::decode_file(path) {
            Ok(image) => {
                self.number += 1;
                Ok(Event::Frame(Frame {
                    number: self.number,
                    captured_at: started,
                    timestamp_ms: crate::unix_ms(),
                    image,
                    capture_ms: started.elapsed().as_secs_f32() * 1000.0,
                }))
            }
            Err(e) => Ok(Event::Corrupt(e.to_string())),
        }
    }

    fn is_live(&self) -> bool {
        self.pacer.interval.is_some()
    }

    fn describe(&self) -> String {
        format!("dir:{} ({} files)", self.root.display(), self.files.len())
    }
}
