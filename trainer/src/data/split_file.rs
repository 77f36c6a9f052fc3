//! `split.csv`: a run's split as training made it (every photo, its class, split and
//! near-duplicate group), written by `trainer train` and read back by `trainer export`, so that a
//! re-export checks and reports the very validation photos the run was judged on, even when the
//! class folders have gained photos since.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};

use super::{Dataset, Split};

const HEADER: [&str; 4] = ["image", "class", "split", "group"];
const PARTS: [&str; 3] = ["train", "val", "test"];

/// Writes `split` of `dataset` (with each photo's near-duplicate group, `groups[i]` the index of
/// the group's first photo) to `path`, atomically.
pub fn write(dataset: &Dataset, split: &Split, groups: &[usize], path: &Path) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(HEADER)?;
    for (part, items) in PARTS.iter().zip([&split.train, &split.val, &split.test]) {
        for &i in items {
            let s = &dataset.samples[i];
            out.write_record([s.name.as_str(), &dataset.classes[s.class], part, &dataset.samples[groups[i]].name])?;
        }
    }
    let bytes = out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    shared::atomic::write_atomic(path, &bytes).with_context(|| format!("{}: cannot write", path.display()))
}

/// Reads the split at `path` back onto `dataset` (scanned again): the split and each photo's
/// group. Photos of `dataset` that the file does not list (added since) are in no split; a listed
/// photo that is gone or unreadable, listed twice, or now in another class, and a class the run
/// did not train on, are errors naming them.
pub fn read(dataset: &Dataset, path: &Path) -> anyhow::Result<(Split, Vec<usize>)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read the run's split", path.display()))?;
    let by_name: HashMap<&str, usize> = dataset.samples.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let header = reader.headers().with_context(|| format!("{}: unreadable header", path.display()))?.clone();
    anyhow::ensure!(header.iter().eq(HEADER), "{}: not a split file (header {:?}, expected {HEADER:?})", path.display(), header);
    let mut split = Split::default();
    let mut groups: Vec<usize> = (0..dataset.samples.len()).collect();
    let mut missing = Vec::new();
    let mut seen = vec![false; dataset.samples.len()];
    let mut classes_seen = vec![false; dataset.classes.len()];
    for record in reader.records() {
        let record = record.with_context(|| format!("{}: unreadable record", path.display()))?;
        let line = record.position().map_or(0, |p| p.line());
        let [name, class, part, group] = [0, 1, 2, 3].map(|k| record.get(k).unwrap_or_default());
        let Some(&i) = by_name.get(name) else {
            missing.push(name.to_string());
            continue;
        };
        anyhow::ensure!(!std::mem::replace(&mut seen[i], true), "{}: line {line}: {name} is listed twice", path.display());
        let now = &dataset.classes[dataset.samples[i].class];
        if now != class {
            bail!("{}: {name} was in class '{class}' when the run trained, and is in '{now}' now", path.display());
        }
        classes_seen[dataset.samples[i].class] = true;
        match part {
            "train" => split.train.push(i),
            "val" => split.val.push(i),
            "test" => split.test.push(i),
            other => bail!("{}: line {line}: unknown split '{other}'", path.display()),
        }
        groups[i] = by_name.get(group).copied().unwrap_or(i);
    }
    if !missing.is_empty() {
        let unreadable = missing.iter().filter(|name| dataset.skipped.iter().any(|s| s.path.ends_with(name.as_str()))).count();
        bail!(
            "{}: {} photo(s) of the run's split are no longer usable in the data folders ({unreadable} of them now unreadable, the \
             rest gone), e.g. {}; restore them, or train a new run",
            path.display(),
            missing.len(),
            missing.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if let Some(c) = classes_seen.iter().position(|seen| !seen) {
        bail!("{}: the run did not train on class '{}'", path.display(), dataset.classes[c]);
    }
    let listed = split.train.len() + split.val.len() + split.test.len();
    if listed < dataset.samples.len() {
        tracing::warn!(
            "{} photo(s) in the data folders came after this run's split ({}) and are left out",
            dataset.samples.len() - listed,
            path.display()
        );
    }
    for part in [&mut split.train, &mut split.val, &mut split.test] {
        part.sort_unstable();
    }
    Ok((split, groups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::scan::{Sample, Skipped};

    /// Four photos of two classes; `a/2` is a near-duplicate of `a/1`.
    fn dataset(names: &[(&str, usize)]) -> Dataset {
        let sample = |&(name, class): &(&str, usize)| Sample {
            path: name.into(),
            name: name.to_string(),
            class,
            file_sha256: [0; 32],
            image: image::RgbImage::new(1, 1),
            phash: image_hasher::ImageHash::<Box<[u8]>>::from_bytes(&[0; 8]).unwrap(),
        };
        Dataset { roots: vec![], classes: vec!["a".into(), "b".into()], samples: names.iter().map(sample).collect(), skipped: vec![] }
    }

    const PHOTOS: [(&str, usize); 4] = [("a/1.jpg", 0), ("a/2.jpg", 0), ("b/1.jpg", 1), ("b/2.jpg", 1)];

    fn written() -> (tempfile::TempDir, std::path::PathBuf, Split, Vec<usize>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("split.csv");
        let split = Split { train: vec![0, 1, 2], val: vec![3], test: vec![] };
        let groups = vec![0, 0, 2, 3];
        write(&dataset(&PHOTOS), &split, &groups, &path).unwrap();
        (dir, path, split, groups)
    }

    #[test]
    fn reads_back_what_it_wrote_even_with_the_photos_in_another_order() {
        let (_dir, path, split, groups) = written();
        assert_eq!(read(&dataset(&PHOTOS), &path).unwrap(), (split, groups));
        // Scanned again in another order (and with a photo added since, in no split).
        let reordered = [("b/2.jpg", 1), ("new.jpg", 0), ("a/2.jpg", 0), ("b/1.jpg", 1), ("a/1.jpg", 0)];
        let (split, groups) = read(&dataset(&reordered), &path).unwrap();
        assert_eq!(split, Split { train: vec![2, 3, 4], val: vec![0], test: vec![] });
        assert_eq!(groups[2], 4, "a/2 stays in a/1's group");
        assert_eq!(groups[1], 1, "the new photo is its own group");
    }

    fn error(path: &Path, data: &Dataset) -> String {
        format!("{:#}", read(data, path).unwrap_err())
    }

    #[test]
    fn every_inconsistency_is_an_error_naming_the_photo() {
        let (_dir, path, _, _) = written();
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text.lines().find(|l| l.starts_with("b/2.jpg")).unwrap().to_string();

        std::fs::write(&path, format!("{text}{line}\n")).unwrap();
        assert!(error(&path, &dataset(&PHOTOS)).contains("b/2.jpg is listed twice"));

        std::fs::write(&path, text.replace(&line, &line.replace(",val,", ",holdout,"))).unwrap();
        assert!(error(&path, &dataset(&PHOTOS)).contains("unknown split 'holdout'"));

        std::fs::write(&path, &text).unwrap();
        let moved = [("a/1.jpg", 0), ("a/2.jpg", 0), ("b/1.jpg", 1), ("b/2.jpg", 0)];
        assert!(error(&path, &dataset(&moved)).contains("b/2.jpg was in class 'b' when the run trained, and is in 'a' now"));

        let mut gone = dataset(&PHOTOS[..3]);
        gone.skipped.push(Skipped { path: "data/b/2.jpg".into(), reason: "not an image".into() });
        let message = error(&path, &gone);
        assert!(message.contains("1 photo(s)") && message.contains("1 of them now unreadable") && message.contains("b/2.jpg"), "{message}");

        std::fs::write(&path, "name,class\nx,y\n").unwrap();
        assert!(error(&path, &dataset(&PHOTOS)).contains("not a split file"));
    }

    #[test]
    fn a_class_the_run_never_trained_on_is_refused() {
        let (_dir, path, _, _) = written();
        let mut data = dataset(&PHOTOS);
        data.classes.push("c".into());
        data.samples.push(Sample { name: "c/1.jpg".into(), class: 2, ..dataset(&PHOTOS).samples.remove(0) });
        assert!(error(&path, &data).contains("did not train on class 'c'"));
    }
}
