//! Crash-safe writes: a reader sees the old file or the new one, never half of one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes several files as one: each to its temporary sibling (synced), then renamed into place
/// in the order given, so a crash leaves the old set, or the new files up to some point of that
/// order; put the file that readers trust last (the bundle after its `.onnx`). On an error the
/// temporaries are removed, and the files already renamed into place are put back as they were
/// (a bundle that cannot be replaced keeps its `.onnx` beside it, not the new one).
pub fn write_all_atomic(files: &[(&Path, &[u8])]) -> io::Result<()> {
    let temporaries: Vec<PathBuf> = files.iter().map(|(path, _)| temp_path(path)).collect();
    let result = (|| {
        for ((_, bytes), tmp) in files.iter().zip(&temporaries) {
            let mut file = fs::File::create(tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
        }
        // The old files, kept by a second name until all are renamed: a hard link, or a copy
        // where the file system has none (FAT on a USB stick). A file that exists and cannot
        // be kept stops the write before anything is replaced.
        let mut backups: Vec<Option<PathBuf>> = Vec::new();
        for (path, _) in files {
            if fs::symlink_metadata(path).is_err() {
                backups.push(None);
                continue;
            }
            let backup = backup_path(path);
            let _ = fs::remove_file(&backup);
            let kept = fs::hard_link(path, &backup).or_else(|_| fs::copy(path, &backup).map(drop));
            if let Err(e) = kept {
                for old in backups.iter().flatten() {
                    let _ = fs::remove_file(old);
                }
                return Err(e);
            }
            backups.push(Some(backup));
        }
        let failure =
            files.iter().zip(&temporaries).enumerate().find_map(|(k, ((path, _), tmp))| fs::rename(tmp, path).err().map(|e| (k, e)));
        // After a failed rename, the files renamed before it are put back (a restored backup is
        // gone from its name; removing it again is a no-op).
        let renamed = failure.as_ref().map_or(0, |(failed, _)| *failed);
        for ((path, _), backup) in files.iter().zip(&backups).take(renamed) {
            let _ = match backup {
                Some(old) => fs::rename(old, path),
                None => fs::remove_file(path),
            };
        }
        for backup in backups.iter().flatten() {
            let _ = fs::remove_file(backup);
        }
        failure.map_or(Ok(()), |(_, cause)| Err(cause))
    })();
    if result.is_err() {
        for tmp in &temporaries {
            let _ = fs::remove_file(tmp);
        }
    }
    result
}

/// Removes the temporaries of `path` ([`temp_path`]) whose writer is no longer running: what a
/// `kill -9` or a power cut mid-write left (4-60 MB each for a model). A running writer's are
/// kept. Returns how many were removed.
pub fn remove_stale_temporaries(path: &Path) -> usize {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return 0 };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp").or_else(|| rest.strip_suffix(".old")))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let running = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !running && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Where [`write_all_atomic`] keeps the file it replaces until the whole set is in place.
fn backup_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.old", std::process::id()))
}

/// The temporary sibling used by [`write_atomic`]; unique per process so writers never collide.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("atomic-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.bin");
        write_atomic(&path, b"first version, longer").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "only the target remains: {leftovers:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pair_is_written_whole_and_a_dead_writers_temporaries_are_removed() {
        let dir = std::env::temp_dir().join(format!("atomic-pair-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (onnx, bundle) = (dir.join("m.onnx"), dir.join("m.bundle"));
        // A temporary of a writer that is gone (no such pid), and one of a live writer (us).
        let dead = dir.join(".m.onnx.4000000000.tmp");
        fs::write(&dead, b"half").unwrap();
        let live = temp_path(&bundle);
        fs::write(&live, b"in flight").unwrap();
        assert_eq!(remove_stale_temporaries(&onnx) + remove_stale_temporaries(&bundle), 1);
        assert!(!dead.exists() && live.exists());
        write_all_atomic(&[(&onnx, b"graph"), (&bundle, b"bundle")]).unwrap();
        assert_eq!((fs::read(&onnx).unwrap(), fs::read(&bundle).unwrap()), (b"graph".to_vec(), b"bundle".to_vec()));
        let left: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "only the pair remains: {left:?}");
        // A failure (the second target's folder is gone) leaves no temporary behind.
        assert!(write_all_atomic(&[(&onnx, b"x"), (&dir.join("no/such/m.bundle"), b"y")]).is_err());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pair_whose_second_file_cannot_be_replaced_is_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (onnx, bundle) = (dir.path().join("m.onnx"), dir.path().join("m.bundle"));
        write_all_atomic(&[(&onnx, b"old graph"), (&bundle, b"old bundle")]).unwrap();
        // The bundle's name taken by a folder: its rename fails after the .onnx's succeeded.
        fs::remove_file(&bundle).unwrap();
        fs::create_dir(&bundle).unwrap();
        fs::write(bundle.join("keep"), b"").unwrap();
        assert!(write_all_atomic(&[(&onnx, b"new graph"), (&bundle, b"new bundle")]).is_err());
        assert_eq!(fs::read(&onnx).unwrap(), b"old graph", "the first file is put back");
        let fresh = dir.path().join("fresh.onnx");
        assert!(write_all_atomic(&[(&fresh, b"new"), (&bundle, b"new bundle")]).is_err());
        assert!(!fresh.exists(), "a file that did not exist before is removed again");
        let mut left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, vec!["m.bundle", "m.onnx"], "no temporaries or backups left");
    }

    #[test]
    fn fails_cleanly_when_the_folder_is_missing() {
        let path = std::env::temp_dir().join("no-such-folder-for-atomic-test/out.bin");
        assert!(write_atomic(&path, b"x").is_err());
    }
}
