//! The append-only result log: one framed postcard record per classified frame.
//!
//! File: 8 magic bytes, then records `[len: u32 LE][crc32: u32 LE][postcard payload]`. A power
//! cut can tear the last record; the reader detects it (short length or bad checksum), skips
//! it and reports it, and every record before it stays readable.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The last byte is the record format: 2 added the open-set scores.
pub const MAGIC: &[u8; 8] = b"FCLOG\0\0\x02";

/// A log holds exactly what `edge run` printed for each frame.
pub type LogRecord = crate::frame_result::FrameResult;

pub struct ResultLog {
    file: File,
    path: PathBuf,
    last_sync: Instant,
}

impl ResultLog {
    /// Opens for appending, writing the header if the file is new. A torn last record (a power
    /// cut mid-write) is cut off first, and said: records appended after a tear would be
    /// unreadable, since the reader stops at the first bad record.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot open the result log: {e}", path.display()))?;
        let len = file.metadata()?.len();
        if len == 0 {
            file.write_all(MAGIC)?;
        } else {
            let mut magic = [0u8; 8];
            File::open(path)?.read_exact(&mut magic).ok();
            anyhow::ensure!(magic[..7] == MAGIC[..7], "{}: exists and is not a flowercam result log; choose another --log", path.display());
            anyhow::ensure!(
                &magic == MAGIC,
                "{}: a result log of another format (version {}, this build writes {}); choose another --log",
                path.display(),
                magic[7],
                MAGIC[7]
            );
            let contents = read(path)?;
            if contents.torn_bytes > 0 {
                let whole = len - contents.torn_bytes as u64;
                file.set_len(whole).map_err(|e| anyhow::anyhow!("{}: cannot repair the torn end: {e}", path.display()))?;
                file.sync_all()?;
                tracing::warn!(
                    "{}: cut {} bytes of a torn last record (a write interrupted by a power cut or kill); {} records kept",
                    path.display(),
                    contents.torn_bytes,
                    contents.records.len()
                );
            }
        }
        Ok(Self { file, path: path.into(), last_sync: Instant::now() })
    }

    pub fn append(&mut self, record: &LogRecord) -> anyhow::Result<()> {
        let payload = postcard::to_stdvec(record)?;
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

pub struct LogContents {
    pub records: Vec<LogRecord>,
    /// Bytes at the end that did not form a whole, valid record (a torn write).
    pub torn_bytes: usize,
}

pub fn read(path: &Path) -> anyhow::Result<LogContents> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    anyhow::ensure!(bytes.len() >= 8 && bytes[..7] == MAGIC[..7], "{}: not a flowercam result log", path.display());
    anyhow::ensure!(bytes[7] == MAGIC[7], "{}: result log format {} (this build reads {})", path.display(), bytes[7], MAGIC[7]);
    Ok(parse(&bytes[8..]))
}

fn parse(mut rest: &[u8]) -> LogContents {
    let mut records = Vec::new();
    while rest.len() >= 8 {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let Some(payload) = rest.get(8..8 + len) else { break };
        if crc32fast::hash(payload) != crc {
            break;
        }
        match postcard::from_bytes(payload) {
            Ok(record) => records.push(record),
            Err(_) => break,
        }
        rest = &rest[8 + len..];
    }
    LogContents { records, torn_bytes: rest.len() }
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

    #[test]
    fn survives_a_torn_last_record_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.log");
        let mut log = ResultLog::open(&path).unwrap();
        for i in 0..3 {
            log.append(&record(i)).unwrap();
        }
        drop(log);
        let full = std::fs::read(&path).unwrap();
        let whole = read(&path).unwrap();
        assert_eq!(whole.records.len(), 3);
        assert_eq!(whole.torn_bytes, 0);
        let two_records_end = full.len() - (full.len() - 8) / 3;
        for cut in two_records_end..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let got = read(&path).unwrap();
            assert_eq!(got.records, vec![record(0), record(1)], "cut at {cut}");
            assert_eq!(got.torn_bytes, cut - two_records_end);
        }
    }

    /// A log holding records 0 and 1, in a fresh folder (kept alive by the returned handle).
    fn two_records() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.log");
        let mut log = ResultLog::open(&path).unwrap();
        log.append(&record(0)).unwrap();
        log.append(&record(1)).unwrap();
        (dir, path)
    }

    #[test]
    fn a_flipped_bit_stops_at_the_damaged_record() {
        let (_dir, path) = two_records();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&path).unwrap().records, vec![record(0)]);
    }

    #[test]
    fn a_torn_end_is_cut_before_appending_so_later_records_stay_readable() {
        let (_dir, path) = two_records();
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 5]).unwrap();
        let mut log = ResultLog::open(&path).unwrap();
        log.append(&record(2)).unwrap();
        drop(log);
        let got = read(&path).unwrap();
        assert_eq!(got.records, vec![record(0), record(2)]);
        assert_eq!(got.torn_bytes, 0);
    }

    #[test]
    fn appends_across_reopenings_and_refuses_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.log");
        ResultLog::open(&path).unwrap().append(&record(0)).unwrap();
        ResultLog::open(&path).unwrap().append(&record(1)).unwrap();
        assert_eq!(read(&path).unwrap().records.len(), 2);
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, "hello, this is not a log").unwrap();
        assert!(ResultLog::open(&other).is_err());
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        /// The records of a four-record log, and its bytes after the header.
        fn body() -> &'static (Vec<LogRecord>, Vec<u8>) {
            static BODY: std::sync::OnceLock<(Vec<LogRecord>, Vec<u8>)> = std::sync::OnceLock::new();
            BODY.get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("results.log");
                let mut log = ResultLog::open(&path).unwrap();
                let records: Vec<LogRecord> = (0..4).map(record).collect();
                records.iter().for_each(|r| log.append(r).unwrap());
                drop(log);
                (records, std::fs::read(&path).unwrap()[8..].to_vec())
            })
        }

        proptest! {
            #![proptest_config(testkit::fuzz_config())]

            /// Whatever happened to the file (bytes flipped, cut, garbage appended), the reader
            /// returns the records before the first damage, unchanged, and never panics.
            #[test]
            fn a_damaged_log_reads_as_its_undamaged_records(damage in testkit::damage(), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
                let (records, good) = body();
                let (mut bytes, first_damage) = damage.apply(good);
                bytes.extend(&tail);
                let got = parse(&bytes);
                prop_assert!(got.records.len() <= records.len() || (first_damage == good.len() && tail.is_empty()));
                prop_assert_eq!(&got.records[..got.records.len().min(records.len())], &records[..got.records.len().min(records.len())]);
                // Every record that ends before the first damage is read.
                let whole_before = (0..=records.len()).rev().find(|&n| {
                    let end: usize = records[..n].iter().map(|r| 8 + postcard::to_stdvec(r).unwrap().len()).sum();
                    end <= first_damage
                }).unwrap_or(0);
                prop_assert!(got.records.len() >= whole_before, "{} < {whole_before}", got.records.len());
            }
        }
    }
}
