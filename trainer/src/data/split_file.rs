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
