//! The append-only result log: one framed postcard record per classified frame.
//!
//! File: 8 magic bytes, then records `[len: u32 LE][crc32: u32 LE][postcard payload]`. A power
//! cut can tear the last record: the reader reports it and `edge run` cuts it off before
//! appending. A damaged stretch inside the log (a flipped bit, bytes that read back wrong) is
//! skipped and reported, and the reader finds the next whole record after it: nothing after the
//! damage is lost, and nothing but a torn end (at most one record) is ever cut. The search is
//! bounded: crafted junk that keeps it busy ends it, and the rest is reported as damage, kept. The file is read as a stream, never whole: a
//! box's log grows by tens of megabytes a day.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The last byte is the record format: 2 added the open-set scores.
pub const MAGIC: &[u8; 8] = b"FCLOG\0\0\x02";

/// A log holds exactly what `edge run` printed for each frame.
pub type LogRecord = crate::frame_result::FrameResult;

/// The largest record payload written or read. A record is two labels (at most 255 bytes each,
/// [`shared::manifest::MAX_LABEL_BYTES`]) and a dozen numbers; the bound keeps the search for
/// the next record after damage cheap.
const MAX_RECORD_BYTES: usize = 4096;

pub struct ResultLog {
    file: File,
    path: PathBuf,
    last_sync: Instant,
    /// One writer per log: two edges appending to one would interleave records no reader can
    /// tell apart.
    _lock: shared::lock::FileLock,
}

/// Whether a log's start is a header that was being written when the power went: a part of it,
/// or nothing but zeros (a file system may show a file created just before a power cut as
/// zeros). Such a file holds no record, so writing the header afresh loses nothing.
fn is_torn_header(path: &Path, len: u64) -> bool {
    if len > 1 << 20 {
        return false;
    }
    let Ok(bytes) = std::fs::read(path) else { return false };
    (bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes)) || bytes.iter().all(|&b| b == 0)
}

impl ResultLog {
    /// Opens for appending, writing the header if the file is new. A torn last record (a power
    /// cut mid-write) is cut off first, and said: a record appended after half of one would be
    /// found again only by the search past damage. Damage inside the log is reported and kept.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot open the result log: {e}", path.display()))?;
        let meta = file.metadata()?;
        anyhow::ensure!(meta.is_file(), "{}: not a regular file; choose another --log", path.display());
        // Named after the file itself, so that two spellings of one log (a link) share a lock.
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let lock = shared::lock::FileLock::beside(&real, |pid| {
            format!("{}: another process (pid {pid}) is writing this result log; give each edge its own --log", path.display())
        })?;
        // The length once the lock is held: another writer may have appended before.
        let len = file.metadata()?.len();
        let torn_header = len > 0 && is_torn_header(path, len);
        if torn_header {
            tracing::warn!("{}: the header was cut short ({len} bytes, a power cut as the log was made); written afresh", path.display());
            file.set_len(0)?;
        }
        if len == 0 || torn_header {
            file.write_all(MAGIC)?;
            file.sync_all()?;
        } else {
            let mut records = Records::open(path).map_err(|e| anyhow::anyhow!("{e:#}; choose another --log"))?;
            let (mut kept, mut damaged, mut torn) = (0u64, 0u64, 0u64);
            for entry in &mut records {
                match entry {
                    Ok(Entry::Record(_)) => kept += 1,
                    Ok(Entry::Damaged { bytes, .. }) => damaged += bytes,
                    Ok(Entry::Torn { bytes }) => torn = bytes,
                    // A sector that cannot be read: appending needs no reading, and nothing is cut.
                    Err(e) => {
                        tracing::warn!("{e:#}; the log is kept as it is and appended to");
                        break;
                    }
                }
            }
            if damaged > 0 {
                tracing::warn!(
                    "{}: {damaged} damaged bytes inside the log skipped (kept as they are); {kept} records readable",
                    path.display()
                );
            }
            if torn > 0 {
                file.set_len(len - torn).map_err(|e| anyhow::anyhow!("{}: cannot repair the torn end: {e}", path.display()))?;
                file.sync_all()?;
                tracing::warn!(
                    "{}: cut {torn} bytes of a torn last record (a write interrupted by a power cut or kill); {kept} records kept",
                    path.display()
                );
            }
        }
        Ok(Self { file, path: path.into(), last_sync: Instant::now(), _lock: lock })
    }

    pub fn append(&mut self, record: &LogRecord) -> anyhow::Result<()> {
        let payload = postcard::to_stdvec(record)?;
        anyhow::ensure!(payload.len() <= MAX_RECORD_BYTES, "a result of {} bytes is larger than a log record may be", payload.len());
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        // One write per record: a crash tears at most this record.
        self.file.write_all(&frame).map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", self.path.display()))?;
        if self.last_sync.elapsed() > Duration::from_secs(2) {
            self.sync()?;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.file.sync_data()?;
        self.last_sync = Instant::now();
        Ok(())
    }
}

/// What a log holds, in file order.
#[derive(Debug, PartialEq)]
pub enum Entry {
    Record(LogRecord),
    /// A stretch inside the log that is no whole record, skipped: `offset` counts from the end
    /// of the header. Records follow it.
    Damaged {
        offset: u64,
        bytes: u64,
    },
    /// Bytes at the end that form no whole record and are no longer than one record's frame: a
    /// torn write, always the last entry. Longer damage at the end is [`Entry::Damaged`].
    Torn {
        bytes: u64,
    },
}

/// The entries of a log read as a stream (a window of a few kilobytes, whatever the file's size).
pub struct Records<R> {
    source: R,
    window: Vec<u8>,
    /// Bytes of `window` already taken.
    pos: usize,
    /// The file offset (after the header) of `window[0]`.
    base: u64,
    eof: bool,
    /// Where the damaged stretch being skipped began.
    damaged_from: Option<u64>,
    /// The record found right after a damaged stretch, given after its [`Entry::Damaged`].
    pending: Option<LogRecord>,
    /// Checksum bytes the search past damage may still spend: a crafted file could otherwise
    /// make it check a 4 KiB candidate at every byte. Refilled by every whole record read.
    search_budget: u64,
    path: PathBuf,
}

impl Records<BufReader<File>> {
    /// Opens a log and checks its header.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        // Checked before opening: opening a pipe with no writer would wait for ever.
        let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        anyhow::ensure!(meta.is_file(), "{}: not a regular file", path.display());
        let file = File::open(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        let mut source = BufReader::new(file);
        let mut magic = [0u8; 8];
        let got = read_up_to(&mut source, &mut magic).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        anyhow::ensure!(got == 8 && magic[..7] == MAGIC[..7], "{}: not a flowercam result log", path.display());
        anyhow::ensure!(magic[7] == MAGIC[7], "{}: result log format {} (this build reads {})", path.display(), magic[7], MAGIC[7]);
        Ok(Self::new(source, path))
    }
}

/// Reads until `buf` is full or the source ends; how many bytes came.
fn read_up_to(source: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match source.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The record at the start of `bytes`, and its length with the frame, if one is whole there.
fn record_at(bytes: &[u8]) -> Option<(LogRecord, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    if len > MAX_RECORD_BYTES {
        return None;
    }
    let payload = bytes.get(8..8 + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    Some((postcard::from_bytes(payload).ok()?, 8 + len))
}

impl<R: Read> Records<R> {
    /// The entries of `source`, positioned after the header; `path` names it in errors.
    fn new(source: R, path: &Path) -> Self {
        Self {
            source,
            window: Vec::new(),
            pos: 0,
            base: 0,
            eof: false,
            damaged_from: None,
            pending: None,
            search_budget: 16 << 20,
            path: path.into(),
        }
    }

    /// Keeps at least one largest record's frame ahead of `pos` in the window, unless the source ends first.
    fn fill(&mut self) -> std::io::Result<()> {
        const AHEAD: usize = 8 + MAX_RECORD_BYTES;
        if self.eof || self.window.len() - self.pos >= AHEAD {
            return Ok(());
        }
        self.window.drain(..self.pos);
        self.base += self.pos as u64;
        self.pos = 0;
        let have = self.window.len();
        self.window.resize(have + 4 * AHEAD, 0);
        let got = read_up_to(&mut self.source, &mut self.window[have..])?;
        self.window.truncate(have + got);
        self.eof = got < 4 * AHEAD;
        Ok(())
    }
}

impl<R: Read> Iterator for Records<R> {
    type Item = anyhow::Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(record) = self.pending.take() {
            return Some(Ok(Entry::Record(record)));
        }
        loop {
            if let Err(e) = self.fill() {
                return Some(Err(anyhow::anyhow!("{}: cannot read: {e}", self.path.display())));
            }
            let here = self.base + self.pos as u64;
            let rest = &self.window[self.pos..];
            if rest.is_empty() {
                return self.damaged_from.take().map(|from| {
                    let bytes = here - from;
                    // One write tears at most one record; anything longer is damage, never cut.
                    Ok(if bytes <= (8 + MAX_RECORD_BYTES) as u64 && self.search_budget > 0 {
                        Entry::Torn { bytes }
                    } else {
                        Entry::Damaged { offset: from, bytes }
                    })
                });
            }
            let found = if self.damaged_from.is_some() && self.search_budget == 0 { None } else { record_at(rest) };
            match found {
                Some((record, len)) => {
                    self.pos += len;
                    self.search_budget = self.search_budget.saturating_add(64 * len as u64);
                    return Some(Ok(match self.damaged_from.take() {
                        Some(from) => {
                            self.pending = Some(record);
                            Entry::Damaged { offset: from, bytes: here - from }
                        }
                        None => Entry::Record(record),
                    }));
                }
                None => {
                    self.damaged_from.get_or_insert(here);
                    // What the failed candidate cost, at most one record's checksum.
                    let candidate = rest.get(..4).map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as u64);
                    let checked = if candidate <= MAX_RECORD_BYTES as u64 { candidate } else { 0 };
                    self.search_budget = self.search_budget.saturating_sub(checked + 1);
                    self.pos += if self.search_budget == 0 { rest.len() } else { 1 };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(frame: u64) -> LogRecord {
        LogRecord {
            timestamp_ms: 1000 + frame,
            frame,
            label: "daffodil".into(),
            probability: 0.9,
            unknown_score: Some(0.2),
            smoothed_label: "daffodil".into(),
            smoothed_probability: 0.88,
            smoothed_unknown_score: Some(0.25),
            capture_ms: 1.5,
            preprocess_ms: 3.0,
            inference_ms: 12.5,
            latency_ms: 17.0,
        }
    }

    /// Every entry of the log at `path`.
    fn read(path: &Path) -> anyhow::Result<Vec<Entry>> {
        Records::open(path)?.collect()
    }

    /// The records among the entries, and the torn bytes at the end.
    fn records_and_torn(entries: &[Entry]) -> (Vec<LogRecord>, u64) {
        let records = entries.iter().filter_map(|e| if let Entry::Record(r) = e { Some(r.clone()) } else { None }).collect();
        let torn = entries.iter().map(|e| if let Entry::Torn { bytes } = e { *bytes } else { 0 }).sum();
        (records, torn)
    }

    /// A log of `n` records, in a fresh folder (kept alive by the returned handle).
    fn log_of(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.log");
        let mut log = ResultLog::open(&path).unwrap();
        (0..n).for_each(|i| log.append(&record(i)).unwrap());
        (dir, path)
    }

    #[test]
    fn survives_a_torn_last_record_at_every_cut() {
        let (_dir, path) = log_of(3);
        let full = std::fs::read(&path).unwrap();
        assert_eq!(records_and_torn(&read(&path).unwrap()), ((0..3).map(record).collect(), 0));
        let two_records_end = full.len() - (full.len() - 8) / 3;
        for cut in two_records_end..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let got = records_and_torn(&read(&path).unwrap());
            assert_eq!(got, (vec![record(0), record(1)], (cut - two_records_end) as u64), "cut at {cut}");
        }
    }

    /// One flipped bit loses its own record only: the reader finds the next one, and opening the
    /// log to append keeps everything (it used to cut the file at the damage).
    #[test]
    fn a_flipped_bit_loses_one_record_and_opening_keeps_the_rest() {
        let (_dir, path) = log_of(300);
        let mut bytes = std::fs::read(&path).unwrap();
        let record_len = (bytes.len() - 8) / 300;
        let at = 8 + 30 * record_len + record_len / 2;
        bytes[at] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let entries = read(&path).unwrap();
        let (records, torn) = records_and_torn(&entries);
        assert_eq!(torn, 0);
        assert_eq!(records, (0..300).filter(|&i| i != 30).map(record).collect::<Vec<_>>());
        assert!(entries.contains(&Entry::Damaged { offset: 30 * record_len as u64, bytes: record_len as u64 }), "{:?}", &entries[29..32]);
        let mut log = ResultLog::open(&path).unwrap();
        log.append(&record(300)).unwrap();
        drop(log);
        let added = 8 + postcard::to_stdvec(&record(300)).unwrap().len();
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, bytes.len() + added, "nothing cut, one record added");
        assert_eq!(records_and_torn(&read(&path).unwrap()).0.len(), 300);
    }

    #[test]
    fn a_torn_end_is_cut_before_appending_so_later_records_stay_readable() {
        let (_dir, path) = log_of(2);
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 5]).unwrap();
        let mut log = ResultLog::open(&path).unwrap();
        log.append(&record(2)).unwrap();
        drop(log);
        assert_eq!(records_and_torn(&read(&path).unwrap()), (vec![record(0), record(2)], 0));
    }

    /// Megabytes of junk in the middle (a crafted file, a bad disk) cost a bounded search, and
    /// the records after it are found. Junk at the end longer than one record is damage, not a
    /// tear: opening the log cuts nothing.
    #[test]
    fn junk_inside_the_log_is_skipped_to_the_next_record() {
        let (_dir, path) = log_of(4);
        let bytes = std::fs::read(&path).unwrap();
        let half = 8 + (bytes.len() - 8) / 2;
        let junk: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        std::fs::write(&path, [&bytes[..half], &junk[..], &bytes[half..]].concat()).unwrap();
        let entries = read(&path).unwrap();
        assert_eq!(records_and_torn(&entries), ((0..4).map(record).collect(), 0));
        assert!(entries.contains(&Entry::Damaged { offset: (half - 8) as u64, bytes: junk.len() as u64 }));
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, [&whole[..], &junk[..100_000]].concat()).unwrap();
        drop(ResultLog::open(&path).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, whole.len() + 100_000, "nothing cut");
    }

    /// Junk crafted so that every byte looks like the start of a 4 KiB record empties the search
    /// budget: the reader then stops searching (bounded time) and reports the rest as damage,
    /// and opening the log still cuts nothing.
    #[test]
    fn a_crafted_search_ends_in_bounded_time_and_cuts_nothing() {
        let (_dir, path) = log_of(2);
        let bytes = std::fs::read(&path).unwrap();
        let junk = [0xFFu8, 0x0F, 0x00, 0x00].repeat(8 << 10);
        std::fs::write(&path, [&bytes[..], &junk[..], &bytes[8..]].concat()).unwrap();
        let entries = read(&path).unwrap();
        assert_eq!(records_and_torn(&entries).0[..2], [record(0), record(1)]);
        assert!(matches!(entries.last(), Some(Entry::Damaged { .. }) | Some(Entry::Record(_))), "{:?}", entries.last());
        let len = std::fs::metadata(&path).unwrap().len();
        drop(ResultLog::open(&path).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "nothing cut");
    }

    #[test]
    fn appends_across_reopenings_and_refuses_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.log");
        ResultLog::open(&path).unwrap().append(&record(0)).unwrap();
        ResultLog::open(&path).unwrap().append(&record(1)).unwrap();
        assert_eq!(records_and_torn(&read(&path).unwrap()).0.len(), 2);
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, "hello, this is not a log").unwrap();
        assert!(ResultLog::open(&other).is_err());
        assert!(read(Path::new("/dev/zero")).unwrap_err().to_string().contains("not a regular file"));
    }

    #[test]
    fn one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.log");
        let first = ResultLog::open(&path).unwrap();
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = ResultLog::open(&link).err().expect("a second writer refused").to_string();
        assert!(err.contains("another process") && err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        ResultLog::open(&path).unwrap().append(&record(0)).unwrap();
    }

    #[test]
    fn a_header_torn_by_a_power_cut_is_written_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.log");
        for start in [&MAGIC[..1], &MAGIC[..5], &MAGIC[..7], &[0u8; 4096][..]] {
            std::fs::write(&path, start).unwrap();
            ResultLog::open(&path).unwrap().append(&record(3)).unwrap();
            let (records, torn) = records_and_torn(&read(&path).unwrap());
            assert_eq!((records.len(), torn), (1, 0), "{} bytes of header", start.len());
        }
        // Anything else that is not a log is still refused, and left as it was.
        std::fs::write(&path, b"FCLOX").unwrap();
        assert!(ResultLog::open(&path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"FCLOX");
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        /// The records of a four-record log, and its bytes after the header.
        fn body() -> &'static (Vec<LogRecord>, Vec<u8>) {
            static BODY: std::sync::OnceLock<(Vec<LogRecord>, Vec<u8>)> = std::sync::OnceLock::new();
            BODY.get_or_init(|| {
                let (_dir, path) = log_of(4);
                ((0..4).map(record).collect(), std::fs::read(&path).unwrap()[8..].to_vec())
            })
        }

        proptest! {
            #![proptest_config(testkit::fuzz_config())]

            /// Whatever happened to the file (bytes flipped, cut, garbage appended), the reader
            /// never panics, returns only records that were written, in order, and every record
            /// that ends before the first damage.
            #[test]
            fn a_damaged_log_reads_as_its_undamaged_records(damage in testkit::damage(), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
                let (records, good) = body();
                let (mut bytes, first_damage) = damage.apply(good);
                bytes.extend(&tail);
                let entries = Records::new(&bytes[..], Path::new("fuzz.log")).collect::<anyhow::Result<Vec<_>>>().unwrap();
                let (got, _) = records_and_torn(&entries);
                let mut written = records.iter();
                prop_assert!(got.iter().all(|r| written.any(|w| w == r)), "only written records, in order: {got:?}");
                let whole_before = (0..=records.len()).rev().find(|&n| {
                    let end: usize = records[..n].iter().map(|r| 8 + postcard::to_stdvec(r).unwrap().len()).sum();
                    end <= first_damage
                }).unwrap_or(0);
                prop_assert!(got.len() >= whole_before, "{} < {whole_before}", got.len());
                prop_assert_eq!(&got[..whole_before], &records[..whole_before]);
                // Entries tile the file: records, damage and the torn end add up to its length.
                let covered: u64 = entries.iter().map(|e| match e {
                    Entry::Record(r) => 8 + postcard::to_stdvec(r).unwrap().len() as u64,
                    Entry::Damaged { bytes, .. } | Entry::Torn { bytes } => *bytes,
                }).sum();
                prop_assert_eq!(covered, bytes.len() as u64);
            }
        }
    }
}
