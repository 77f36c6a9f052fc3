//! Class-folder datasets (`DIR/<class>/<image>`) as the trainer, `trainer evaluate` and the edge's
//! `dir:` source read them: non-hidden entries, sorted by name.

use std::path::{Path, PathBuf};

fn entries(dir: &Path, want_dir: bool) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // A file is anything but a folder: a link to nowhere or a pipe among the photos is listed
        // too, so that its reader reports it (skipped, with the reason) instead of it vanishing.
        if !name.starts_with('.') && path.is_dir() == want_dir {
            found.push((name, path));
        }
    }
    found.sort();
    Ok(found)
}

/// The non-hidden entries of `dir` that are not folders, sorted, without the `.json` sidecars
/// that `edge run --save-frames` writes beside each frame (a saved-frames folder is a dataset too).
pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let is_sidecar = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    Ok(entries(dir, false)?.into_iter().map(|(_, p)| p).filter(|p| !is_sidecar(p)).collect())
}

/// The non-hidden sub-folders of `dir` with their names, sorted by name.
pub fn subfolders(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    entries(dir, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_sorted_and_skips_hidden_files_and_sidecars() {
        let dir = std::env::temp_dir().join(format!("flowercam-folders-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["b", "a", ".hidden"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for file in ["z.jpg", "y.jpg", ".x.jpg", "y.json"] {
            std::fs::write(dir.join("a").join(file), b"").unwrap();
        }
        std::os::unix::fs::symlink(dir.join("gone.jpg"), dir.join("a").join("x.jpg")).unwrap();
        let names: Vec<String> = subfolders(&dir).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b"]);
        let files: Vec<_> = files(&dir.join("a")).unwrap().into_iter().map(|p| p.file_name().unwrap().to_owned()).collect();
        assert_eq!(files, ["x.jpg", "y.jpg", "z.jpg"], "a link to nowhere is listed, for its reader to report");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
