//! One spelling for a path the user gave: absolute for what a run records (read again from any
//! folder), resolved through links to tell whether two paths name the same file or folder.

use std::path::{Path, PathBuf};

/// `path` relative to the working folder made absolute (nothing resolved or checked: a path
/// that does not exist stays for the error that names it).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `path` made absolute with every link resolved, as far as it exists (the rest appended), so
/// that two spellings of one folder compare equal.
pub fn resolved(path: &Path) -> PathBuf {
    // `..` taken lexically first: the part that does not exist yet cannot be resolved.
    let mut normal = PathBuf::new();
    for part in absolute(path).components() {
        match part {
            std::path::Component::ParentDir => {
                normal.pop();
            }
            std::path::Component::CurDir => {}
            other => normal.push(other),
        }
    }
    let mut existing = normal.as_path();
    let mut missing = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            return missing.iter().rev().fold(real, |p, name| p.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent;
            }
            _ => return normal,
        }
    }
}

/// Whether `a` and `b` name one file or folder (through links, `..` and relative paths alike).
pub fn same(a: &Path, b: &Path) -> bool {
    resolved(a) == resolved(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_spellings_of_one_file_are_the_same_and_two_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vgg16.onnx");
        std::fs::write(&file, b"weights").unwrap();
        let link = dir.path().join("alias.onnx");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(same(&file, &link));
        assert!(same(&file, &dir.path().join("sub/../vgg16.onnx")));
        assert!(!same(&file, &dir.path().join("other.onnx")), "a file that does not exist is another");
        assert!(absolute(Path::new("runs/x")).is_absolute());
    }
}
