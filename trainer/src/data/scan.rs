//! Reads class-folder datasets (`DIR/<class>/<image>`, one or several merged by class name),
//! decoding and checking every file up front so that nothing fails halfway through training.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::RgbImage;
use image_hasher::{HashAlg, HasherConfig, ImageHash};
use rayon::prelude::*;
use shared::Preprocessing;
use shared::preprocess::{decode_bytes, read_image_file};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: cannot read the dataset folder: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("{path}: found {found} class folder(s) {names:?}; a classifier needs at least 2 (DIR/<class>/<photo>)")]
    TooFewClasses { path: PathBuf, found: usize, names: Vec<String> },
    #[error(
        "{path}: found {found} class folders; a bundle holds at most {} labels (pick some with --classes)",
        shared::bounded::MAX_LABELS
    )]
    TooManyClasses { path: PathBuf, found: usize },
    #[error("{path}: no class folder named '{class}' (found: {available})")]
    UnknownClass { path: PathBuf, class: String, available: String },
    #[error("{path}: class '{class}' has {count} usable image(s); at least {min} are needed")]
    TooFewImages { path: PathBuf, class: String, count: usize, min: usize },
    #[error("{path}: {problem}")]
    BadClassName { path: PathBuf, problem: String },
    #[error("{0} (--strict makes unreadable files fatal; drop it to skip them)")]
    Strict(String),
}

#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Class folders to use, in this order; all sub-folders (sorted) when `None`.
    pub classes: Option<Vec<String>>,
    pub strict: bool,
    pub min_images_per_class: usize,
    /// The class names become a model's labels ([`shared::manifest::check_label`]): refused
    /// before any photo is decoded if they cannot be. Off for distillation, which reads any
    /// folders (a `--save-frames` tree has `unknown/` and `unsure/`).
    pub labels: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self { classes: None, strict: false, min_images_per_class: 5, labels: true }
    }
}

/// One usable photo, decoded, checked and prepared.
pub struct Sample {
    pub path: PathBuf,
    /// For reports: the path relative to the dataset root (`daffodil/image_0001.jpg`), or the
    /// path as given when several datasets are merged (it must tell them apart).
    pub name: String,
    pub class: usize,
    /// SHA-256 of the file's bytes: the feature cache's key.
    pub file_sha256: [u8; 32],
    /// The prepared RGB square, exactly what the exported model takes as input.
    pub image: RgbImage,
    /// Perceptual hash of the whole photo, for near-duplicate detection.
    pub phash: ImageHash,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

pub struct Dataset {
    pub roots: Vec<PathBuf>,
    pub classes: Vec<String>,
    pub samples: Vec<Sample>,
    pub skipped: Vec<Skipped>,
}

impl Dataset {
    pub fn count_per_class(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for s in &self.samples {
            counts[s.class] += 1;
        }
        counts
    }

    /// max/min images per class; above 3 the smaller classes are likely to be under-learned.
    pub fn imbalance(&self) -> f32 {
        let counts = self.count_per_class();
        let (min, max) = (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
        if min == 0 { f32::INFINITY } else { max as f32 / min as f32 }
    }
}

pub fn perceptual_hasher() -> image_hasher::Hasher {
    // pHash: DCT of a 32x32 grey thumbnail, 64 bits. Robust to re-encoding and resizing.
    HasherConfig::new().hash_alg(HashAlg::Median).preproc_dct().hash_size(8, 8).to_hasher()
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |cause| DataError::Read { path: path.into(), cause }
}

/// The dataset folders as one name for messages: `a`, or `a + b`.
fn shown(roots: &[PathBuf]) -> PathBuf {
    PathBuf::from(roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(" + "))
}

pub fn scan(roots: &[PathBuf], options: &ScanOptions, preprocessing: &Preprocessing) -> Result<Dataset, DataError> {
    let root = shown(roots);
    // Class name -> its folders, one per dataset that has it.
    let mut folders: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for dir in roots {
        for (name, path) in shared::folders::subfolders(dir).map_err(read_error(dir))? {
            folders.entry(name).or_default().push(path);
        }
    }
    let classes: Vec<String> = match &options.classes {
        Some(wanted) => {
            for class in wanted {
                if !folders.contains_key(class) {
                    let available = folders.keys().cloned().collect::<Vec<_>>().join(", ");
                    return Err(DataError::UnknownClass { path: root, class: class.clone(), available });
                }
            }
            wanted.clone()
        }
        None => folders.keys().cloned().collect(),
    };
    // Distillation needs photos, not classes: one folder of them will do.
    if classes.len() < if options.labels { 2 } else { 1 } {
        return Err(DataError::TooFewClasses { path: root, found: classes.len(), names: classes });
    }
    if classes.len() > shared::bounded::MAX_LABELS {
        return Err(DataError::TooManyClasses { path: root, found: classes.len() });
    }
    if options.labels {
        for class in &classes {
            shared::manifest::check_label(class).map_err(|problem| DataError::BadClassName {
                path: root.clone(),
                problem: format!("{problem} (a --save-frames tree has unknown/ and unsure/: pick the class folders with --classes)"),
            })?;
        }
    }

    if let Some((a, b)) = differing_only_in_case(&classes).filter(|_| options.labels) {
        return Err(DataError::BadClassName {
            path: root,
            problem: format!("the classes '{a}' and '{b}' differ only in case: one class in two folders? Merge or rename them"),
        });
    }

    let mut files = Vec::new();
    for (class, name) in classes.iter().enumerate() {
        for folder in &folders[name] {
            // Photos are read from the class folder itself; say so when a folder holds more.
            if let Ok(nested) = shared::folders::subfolders(folder)
                && !nested.is_empty()
            {
                let names: Vec<&str> = nested.iter().map(|(n, _)| n.as_str()).collect();
                tracing::warn!(
                    "{}: sub-folders not read ({}): a class's photos go directly in its folder",
                    folder.display(),
                    names.join(", ")
                );
            }
            let entries = shared::folders::files(folder).map_err(read_error(folder))?;
            let dataset = folder.parent().unwrap_or(folder);
            files.extend(entries.into_iter().map(|p| (p, dataset.to_path_buf(), class)));
        }
    }
    let merged = roots.len() > 1;

    let progress = crate::progress::bar(files.len() as u64, "checking images");
    let hasher = perceptual_hasher();
    let results: Vec<Result<Sample, Skipped>> = files
        .into_par_iter()
        .map(|(path, dataset, class)| {
            let result = load_sample(if merged { Path::new("") } else { &dataset }, &path, class, preprocessing, &hasher);
            progress.inc(1);
            result
        })
        .collect();
    progress.finish_and_clear();

    let mut samples = Vec::new();
    let mut skipped = Vec::new();
    for result in results {
        match result {
            Ok(sample) => samples.push(sample),
            Err(skip) if options.strict => return Err(DataError::Strict(format!("{}: {}", skip.path.display(), skip.reason))),
            Err(skip) => {
                tracing::warn!("skipping {}: {}", skip.path.display(), skip.reason);
                skipped.push(skip);
            }
        }
    }
    let dataset = Dataset { roots: roots.to_vec(), classes, samples, skipped };
    for (class, count) in dataset.classes.iter().zip(dataset.count_per_class()) {
        if count < options.min_images_per_class {
            return Err(DataError::TooFewImages { path: root.clone(), class: class.clone(), count, min: options.min_images_per_class });
        }
    }
    if dataset.imbalance() > 3.0 {
        let counts: Vec<String> = dataset.classes.iter().zip(dataset.count_per_class()).map(|(c, n)| format!("{c} {n}")).collect();
        tracing::warn!("classes are imbalanced ({:.1}x between the largest and the smallest): {}", dataset.imbalance(), counts.join(", "));
    }
    Ok(dataset)
}

/// Two class names that differ only in letter case, if any.
fn differing_only_in_case(classes: &[String]) -> Option<(&str, &str)> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    classes.iter().find_map(|c| seen.insert(c.to_lowercase(), c).map(|earlier| (earlier, c.as_str())))
}

fn load_sample(
    root: &Path,
    path: &Path,
    class: usize,
    preprocessing: &Preprocessing,
    hasher: &image_hasher::Hasher,
) -> Result<Sample, Skipped> {
    // The report names the file once: the reason is the error without its path.
    let skip = |e: shared::preprocess::ImageError| Skipped { path: path.into(), reason: e.reason() };
    // Read once: the bytes are hashed for the feature cache and decoded.
    let bytes = read_image_file(path).map_err(skip)?;
    let decoded = decode_bytes(&bytes).map_err(|e| skip(e.at(path)))?;
    let name = path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned();
    Ok(Sample {
        path: path.into(),
        name,
        class,
        file_sha256: shared::bundle::sha256(&bytes),
        phash: hasher.hash_image(&decoded),
        image: preprocessing.prepare(&decoded),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_classes_than_a_bundle_holds_are_refused_before_any_photo_is_read() {
        let dir = tempfile::tempdir().unwrap();
        for class in 0..=shared::bounded::MAX_LABELS {
            std::fs::create_dir(dir.path().join(format!("class_{class}"))).unwrap();
        }
        let preprocessing = Preprocessing::new(64, shared::ResizePolicy::Stretch).unwrap();
        let Err(e) = scan(&[dir.path().to_path_buf()], &ScanOptions::default(), &preprocessing) else { panic!("1001 classes scanned") };
        let e = e.to_string();
        assert!(e.contains("found 1001 class folders; a bundle holds at most 1000 labels"), "{e}");
    }

    #[test]
    fn class_folders_that_differ_only_in_case_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for class in ["Daffodil", "coltsfoot", "daffodil"] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
        }
        let preprocessing = Preprocessing::new(64, shared::ResizePolicy::Stretch).unwrap();
        let Err(e) = scan(&[dir.path().to_path_buf()], &ScanOptions::default(), &preprocessing) else { panic!("scanned") };
        assert!(e.to_string().contains("'Daffodil' and 'daffodil' differ only in case"), "{e}");
        assert_eq!(differing_only_in_case(&["a".into(), "b".into()]), None);
    }
}
