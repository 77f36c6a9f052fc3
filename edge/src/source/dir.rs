//! `dir:PATH`: the images of a folder in name order, optionally paced and looped; and
//! `file:PHOTO`, one still photo read the same way (shown for ever with `--loop`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Event, Frame, FrameSource, Pacer};
use crate::backoff::Backoff;

pub struct DirSource {
    /// The folder, or the one photo.
    root: PathBuf,
    /// Whether `root` is one photo rather than a folder.
    photo: bool,
    files: Vec<PathBuf>,
    position: usize,
    looping: bool,
    number: u64,
    pacer: Pacer,
    /// Whether the pass over the folder under way has given an image yet.
    read_this_pass: bool,
    /// Waits before the next pass after one that gave no image.
    backoff: Backoff,
}

impl DirSource {
    pub fn open(root: &Path, fps: Option<f32>, looping: bool) -> anyhow::Result<Self> {
        let files = image_files(root)?;
        anyhow::ensure!(!files.is_empty(), "{}: no files to read", root.display());
        Ok(Self::of(root, false, files, fps, looping))
    }

    /// One still photo as a source: decoded by the program's own reader (EXIF orientation, the
    /// same limits), and with `--loop` repeated at `--fps` (as fast as classified without it).
    pub fn photo(path: &Path, fps: Option<f32>, looping: bool) -> Self {
        Self::of(path, true, vec![path.into()], fps, looping)
    }

    fn of(root: &Path, photo: bool, files: Vec<PathBuf>, fps: Option<f32>, looping: bool) -> Self {
        let (read_this_pass, backoff) = (false, Backoff::new());
        Self { root: root.into(), photo, files, position: 0, looping, number: 0, pacer: Pacer::new(fps), read_this_pass, backoff }
    }

    /// At the end of a pass with `--loop`: after a pass that gave no image (the files deleted
    /// or all unreadable), the folder is listed again after a wait that grows (0.5 s to 10 s),
    /// rather than spun through as fast as the CPU goes. `None` when files wait to be read.
    fn next_pass(&mut self) -> Option<Event> {
        self.position = 0;
        if std::mem::take(&mut self.read_this_pass) {
            self.backoff.reset();
            return None;
        }
        self.backoff.pause(&anyhow::anyhow!(self.nothing_read()));
        self.files = if self.photo { vec![self.root.clone()] } else { image_files(&self.root).unwrap_or_default() };
        self.files.is_empty().then(|| Event::Lost(format!("{}: no files to read", self.root.display())))
    }

    /// Why a pass gave no image, for the log before the wait.
    fn nothing_read(&self) -> String {
        match self.photo {
            true => format!("{}: the photo could not be read (deleted, or not an image)", self.root.display()),
            false => format!("{}: no readable image in a whole pass over the folder", self.root.display()),
        }
    }
}

/// The non-hidden files of `root` (anything but a folder: its reader reports what it cannot
/// read), sorted by name.
pub fn image_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    shared::folders::files(root).map_err(|e| anyhow::anyhow!("{}: cannot read the folder: {e}", root.display()))
}

impl FrameSource for DirSource {
    fn next(&mut self) -> anyhow::Result<Event> {
        if self.position == self.files.len() {
            if !self.looping {
                return Ok(Event::End);
            }
            if let Some(event) = self.next_pass() {
                return Ok(event);
            }
        }
        self.pacer.wait();
        let path = &self.files[self.position];
        self.position += 1;
        let started = Instant::now();
        match shared::preprocess::decode_file(path) {
            Ok(image) => {
                self.number += 1;
                self.read_this_pass = true;
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
        match self.photo {
            true => format!("file:{} (a photo)", self.root.display()),
            false => format!("dir:{} ({} files)", self.root.display(), self.files.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_looped_folder_without_a_readable_image_is_waited_on_not_spun() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.jpg"), b"not an image").unwrap();
        let mut source = DirSource::open(dir.path(), None, true).unwrap();
        let started = Instant::now();
        assert!(matches!(source.next().unwrap(), Event::Corrupt(_)));
        // The pass gave nothing: the next one starts after a wait, not at once.
        assert!(matches!(source.next().unwrap(), Event::Corrupt(_)));
        assert!(started.elapsed() >= std::time::Duration::from_millis(500), "{:?}", started.elapsed());
        // The files deleted: the folder is listed again, and its emptiness said as a loss.
        std::fs::remove_file(dir.path().join("bad.jpg")).unwrap();
        assert!(matches!(source.next().unwrap(), Event::Lost(why) if why.contains("no files to read")));
    }

    /// `file:PHOTO --loop` on a photo that cannot be read: waited on like a folder, and the log
    /// speaks of the photo, not of a folder.
    #[test]
    fn a_looped_unreadable_photo_is_waited_on_and_named_a_photo() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("still.jpg");
        std::fs::write(&path, b"not an image").unwrap();
        let mut source = DirSource::photo(&path, None, true);
        let started = Instant::now();
        assert!(matches!(source.next().unwrap(), Event::Corrupt(why) if why.contains("still.jpg")));
        assert!(matches!(source.next().unwrap(), Event::Corrupt(_)));
        assert!(started.elapsed() >= std::time::Duration::from_millis(500), "{:?}", started.elapsed());
        let why = source.nothing_read();
        assert!(why.contains("still.jpg") && why.contains("photo") && !why.contains("folder"), "{why}");
        let folder = DirSource::open(dir.path(), None, true).unwrap();
        assert!(folder.nothing_read().contains("folder"));
    }
}
