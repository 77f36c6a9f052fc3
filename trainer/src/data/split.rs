//! Stratified, seeded, near-duplicate-aware train/validation(/test) split.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SplitOptions {
    pub val_fraction: f32,
    pub test_fraction: f32,
    pub seed: u64,
}

/// Indices into the dataset's samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// Splits each class separately (so every split keeps the class proportions), moving whole
/// near-duplicate groups: `groups[i]` is the group id of sample `i`, `classes[i]` its class.
/// Every class gets at least one validation image and keeps at least one training image.
pub fn split(classes: &[usize], groups: &[usize], options: &SplitOptions) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let n_classes = classes.iter().max().map_or(0, |m| m + 1);
    let mut out = Split::default();
    for class in 0..n_classes {
        // The groups of this class, each with its members, in a seeded random order. A group
        // belongs to the class of its first member.
        let mut by_group: Vec<(usize, Vec<usize>)> = Vec::new();
        for (i, _) in classes.iter().enumerate().filter(|&(i, &c)| c == class && first_of_group(groups, i) == i) {
            let members: Vec<usize> = (0..groups.len()).filter(|&j| groups[j] == groups[i]).collect();
            by_group.push((i, members));
        }
        by_group.shuffle(&mut rng);
        let total: usize = by_group.iter().map(|(_, m)| m.len()).sum();
        let want_val = ((total as f32 * options.val_fraction).round() as usize).max(1);
        let want_test = (total as f32 * options.test_fraction).round() as usize;
        let (mut n_val, mut n_test) = (0, 0);
        let last = by_group.len().saturating_sub(1);
        for (k, (_, members)) in by_group.into_iter().enumerate() {
            // Fill validation first, then test; never take the class's last group from training.
            if n_val < want_val && k < last {
                n_val += members.len();
                out.val.extend(members);
            } else if n_test < want_test && k < last {
                n_test += members.len();
                out.test.extend(members);
            } else {
                out.train.extend(members);
            }
        }
    }
    out.train.sort_unstable();
    out.val.sort_unstable();
    out.test.sort_unstable();
    out
}

/// The first class (by index, of `n_classes`) that `split` leaves without a training or a
/// validation photo, and which of the two it lacks: the head needs both of every class, and
/// the export's checks run on validation photos.
pub fn class_missing_from(split: &Split, classes: &[usize], n_classes: usize) -> Option<(usize, &'static str)> {
    let has = |items: &[usize], class: usize| items.iter().any(|&i| classes[i] == class);
    (0..n_classes).find_map(|class| {
        if !has(&split.train, class) {
            Some((class, "training"))
        } else if !has(&split.val, class) {
            Some((class, "validation"))
        } else {
            None
        }
    })
}

/// How many near-duplicate groups `items` span: the most folds cross-validation can fill.
pub fn groups_among(items: &[usize], groups: &[usize]) -> usize {
    items.iter().map(|&i| groups[i]).collect::<std::collections::BTreeSet<_>>().len()
}

/// K-fold cross-validation folds: the fold (0..k) of each item, stratified per class, with every
/// near-duplicate group in one fold. Each class's groups, in a seeded random order, go one at a
/// time to the fold that holds the fewest of that class's items so far, an empty fold first
/// among equals: with at least `k` groups in all, no fold stays empty.
pub fn folds(classes: &[usize], groups: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xF01D);
    let n_classes = classes.iter().max().map_or(0, |m| m + 1);
    let mut fold = vec![0; classes.len()];
    let mut totals = vec![0usize; k];
    for class in 0..n_classes {
        let mut firsts: Vec<usize> = (0..classes.len()).filter(|&i| classes[i] == class && first_of_group(groups, i) == i).collect();
        firsts.shuffle(&mut rng);
        let mut sizes = vec![0usize; k];
        for first in firsts {
            let members: Vec<usize> = (0..groups.len()).filter(|&j| groups[j] == groups[first]).collect();
            let target = (0..k).min_by_key(|&f| (sizes[f], totals[f] > 0, f)).expect("k >= 1");
            sizes[target] += members.len();
            totals[target] += members.len();
            for m in members {
                fold[m] = target;
            }
        }
    }
    fold
}

/// Up to `n` positions of `classes` (the class of each item), taking the classes in turn (the
/// first item of each class, then the second, ...): a small sample that covers every class.
pub fn classes_in_turn(classes: &[usize], n: usize) -> Vec<usize> {
    let k = classes.iter().max().map_or(0, |m| m + 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &c) in classes.iter().enumerate() {
        by_class[c].push(i);
    }
    let rounds = by_class.iter().map(Vec::len).max().unwrap_or(0);
    (0..rounds).flat_map(|round| by_class.iter().filter_map(move |members| members.get(round).copied())).take(n).collect()
}

fn first_of_group(groups: &[usize], i: usize) -> usize {
    groups.iter().position(|&g| g == groups[i]).expect("i is in its own group")
}

#[cfg(test)]
mod fold_tests {
    use super::*;

    #[test]
    fn folds_keep_groups_together_and_balance_classes() {
        // 2 classes x 12 items; items 0-2 are one group, 13 and 14 another.
        let classes: Vec<usize> = (0..24).map(|i| i / 12).collect();
        let mut groups: Vec<usize> = (0..24).collect();
        groups[1] = 0;
        groups[2] = 0;
        groups[14] = 13;
        let fold = folds(&classes, &groups, 4, 7);
        assert_eq!((fold[0], fold[0]), (fold[1], fold[2]), "a group stays in one fold");
        assert_eq!(fold[13], fold[14]);
        for class in 0..2 {
            let counts: Vec<usize> = (0..4).map(|f| (0..24).filter(|&i| classes[i] == class && fold[i] == f).count()).collect();
            assert_eq!(counts.iter().sum::<usize>(), 12);
            assert!(counts.iter().all(|&c| (2..=4).contains(&c)), "class {class}: {counts:?}");
        }
        assert_eq!(folds(&classes, &groups, 4, 7), fold, "seeded");
    }

    #[test]
    fn no_fold_is_left_empty_while_there_are_groups_for_it() {
        // Two classes of two photos each: each class alone would fill folds 0 and 1 only.
        let classes = [0, 0, 1, 1];
        let fold = folds(&classes, &[0, 1, 2, 3], 4, 1);
        let mut used = fold.clone();
        used.sort_unstable();
        assert_eq!(used, vec![0, 1, 2, 3], "{fold:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_in_turn_covers_every_class_first() {
        let classes = [0, 0, 0, 1, 2, 2];
        assert_eq!(classes_in_turn(&classes, 3), vec![0, 3, 4]);
        assert_eq!(classes_in_turn(&classes, 5), vec![0, 3, 4, 1, 5]);
        assert_eq!(classes_in_turn(&classes, 100).len(), 6);
        assert!(classes_in_turn(&[], 4).is_empty());
    }

    #[test]
    fn a_class_of_one_picture_gets_no_validation_photo_and_is_named() {
        // Class 1's three photos are one near-duplicate group: the class keeps it for training.
        let classes = [0, 0, 0, 0, 0, 1, 1, 1];
        let groups = [0, 1, 2, 3, 4, 5, 5, 5];
        let s = split(&classes, &groups, &options(3));
        assert_eq!(class_missing_from(&s, &classes, 2), Some((1, "validation")));
        let no_train = Split { train: vec![0, 1], val: vec![2, 5], test: vec![] };
        assert_eq!(class_missing_from(&no_train, &classes, 2), Some((1, "training")));
        let fine = Split { train: vec![0, 5], val: vec![1, 6], test: vec![] };
        assert_eq!(class_missing_from(&fine, &classes, 2), None);
        assert_eq!(groups_among(&[0, 5, 6, 7], &groups), 2);
    }

    fn options(seed: u64) -> SplitOptions {
        SplitOptions { val_fraction: 0.2, test_fraction: 0.0, seed }
    }

    #[test]
    fn stratified_and_complete() {
        let classes: Vec<usize> = (0..100).map(|i| i % 2).collect();
        let groups: Vec<usize> = (0..100).collect();
        let s = split(&classes, &groups, &options(1));
        assert_eq!(s.train.len() + s.val.len(), 100);
        assert_eq!(s.val.iter().filter(|&&i| classes[i] == 0).count(), 10);
        assert_eq!(s.val.iter().filter(|&&i| classes[i] == 1).count(), 10);
    }

    #[test]
    fn seeded() {
        let classes: Vec<usize> = (0..50).map(|i| i % 2).collect();
        let groups: Vec<usize> = (0..50).collect();
        assert_eq!(split(&classes, &groups, &options(7)), split(&classes, &groups, &options(7)));
        assert_ne!(split(&classes, &groups, &options(7)).val, split(&classes, &groups, &options(8)).val);
    }

    #[test]
    fn near_duplicate_groups_stay_together() {
        let classes: Vec<usize> = (0..40).map(|i| i % 2).collect();
        // Pairs (0,2), (4,6), ... are the same photo.
        let groups: Vec<usize> = (0..40).map(|i| if i % 4 == 2 { i - 2 } else { i }).collect();
        for seed in 0..20 {
            let s = split(&classes, &groups, &options(seed));
            for a in 0..40 {
                for b in 0..40 {
                    if groups[a] == groups[b] {
                        assert_eq!(s.val.contains(&a), s.val.contains(&b), "seed {seed}: {a} and {b} split apart");
                    }
                }
            }
        }
    }

    #[test]
    fn test_split_is_carved_out_too() {
        let classes: Vec<usize> = (0..60).map(|i| i % 3).collect();
        let groups: Vec<usize> = (0..60).collect();
        let s = split(&classes, &groups, &SplitOptions { val_fraction: 0.2, test_fraction: 0.1, seed: 3 });
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (42, 12, 6));
    }
}
