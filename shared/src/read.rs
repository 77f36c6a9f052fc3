//! Reading a whole file that a user named: only a regular file (a device such as `/dev/zero`, a
//! pipe or a folder can be endless), and only up to a bound, checked before a byte is read.

use std::io::{self, Read};
use std::path::Path;

/// The length of the regular file at `path`, if it is one of at most `limit` bytes; checked
/// before opening (opening a pipe with no writer would wait for ever). For a reader that opens
/// the file itself; [`read_file`] checks the same.
pub fn check_file(path: &Path, limit: u64) -> io::Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| match std::fs::symlink_metadata(path) {
        Ok(link) if link.file_type().is_symlink() && e.kind() == io::ErrorKind::NotFound => {
            io::Error::new(io::ErrorKind::NotFound, "a link to a file that does not exist")
        }
        _ => e,
    })?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file (a device, pipe or folder)"));
    }
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    Ok(meta.len())
}

fn too_large(limit: u64) -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, format!("larger than {}", size(limit)))
}

/// The bytes of the regular file at `path`, if it holds at most `limit` of them.
pub fn read_file(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let len = check_file(path, limit)?;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(len as usize);
    // The file may grow while it is read.
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// [`read_file`] for a text file (UTF-8).
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_file(path, limit)?).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{} MB", b >> 20),
        b if b >= 1 << 10 => format!("{} KB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_within_the_bound_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "hello").unwrap();
        assert_eq!(read_text(&path, 5).unwrap(), "hello");
        let err = read_file(&path, 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(err.to_string(), "larger than 4 bytes");
        for special in ["/dev/zero", "/dev/null"] {
            let err = read_file(Path::new(special), 1 << 20).unwrap_err();
            assert!(err.to_string().contains("not a regular file"), "{special}: {err}");
        }
        assert!(read_file(dir.path(), 1 << 20).is_err(), "a folder");
        let link = dir.path().join("link.jpg");
        std::os::unix::fs::symlink(dir.path().join("gone.jpg"), &link).unwrap();
        assert_eq!(read_file(&link, 10).unwrap_err().to_string(), "a link to a file that does not exist");
        let fifo = dir.path().join("pipe");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(read_file(&fifo, 10).unwrap_err().to_string().contains("not a regular file"), "a pipe is refused, not waited on");
        std::fs::write(&path, [0xFF, 0xFE]).unwrap();
        assert_eq!(read_text(&path, 10).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
