//! "None of these": the open-set score the exported graph computes as its second output, computed
//! here the same way for calibration and the parity gate, and its threshold.
//!
//! Score (k-nearest-neighbour cosine, Sun et al. 2022): `1 - max_j cos(f, r_j)`, with `f` the
//! image's [`descriptor`] and `r_j` those of the training images, the cosine taken per part and
//! averaged. A photo of a trained class sits close to some training photo; a dandelion, a cat or
//! a wall does not. The descriptor pools the outputs of VGG16's blocks 4 and 5 by average and by
//! max: mid-level texture and the strongest single responses each add to what the block-5
//! average alone sees (BENCHMARKS.md, "Open-set scores tried": on the field set 63.9% of
//! `other` refused instead of 51.5%, at the same cost in targets).
//!
//! With the default `linear` head and its cross-validation, the head's evidence lowers the
//! score ([`with_evidence`]): a photo the calibrated head is sure of is let nearer the edge of
//! the references than one it hesitates over. Distance and evidence err on different photos (a
//! daffodil field at sunset is far from every flowers17 photo, yet plainly a daffodil to the
//! head; a wall is far and the head hesitates), so together they rank better than either
//! (BENCHMARKS.md, "A fifth round: the head's evidence").

/// Added to a norm before dividing by it: an all-zero feature vector (a black frame) scores 1
/// instead of NaN. The graph adds the same constant.
pub const NORM_EPSILON: f32 = 1e-6;

/// The share of held-out photos of the trained classes the threshold accepts by default.
pub const TARGET_ACCEPTANCE: f32 = 0.975;

pub use shared::manifest::{EVIDENCE_CAP, EVIDENCE_WEIGHT, PROBABILITY_FLOOR};

/// Draws of cross-validation folds whose held-out logits are averaged for the evidence the
/// threshold is calibrated on: one draw's folds decide which photos' evidence is low, and the
/// threshold rests on the few highest held-out scores.
pub const EVIDENCE_DRAWS: u64 = 4;

/// The head's evidence for its answer: the log-odds of its top class against all the others,
/// `ln(p / (1 - p))` of calibrated probabilities, clamped to `[0, EVIDENCE_CAP]`.
pub fn evidence(probabilities: &[f32]) -> f32 {
    let top = probabilities.iter().copied().fold(0.0, f32::max);
    let rest = (1.0 - top).max(PROBABILITY_FLOOR);
    (top.max(PROBABILITY_FLOOR).ln() - rest.ln()).clamp(0.0, EVIDENCE_CAP)
}

/// The score of a photo at `distance` from the references whose calibrated head answered
/// `probabilities`.
pub fn with_evidence(distance: f32, probabilities: &[f32]) -> f32 {
    lowered(distance, evidence(probabilities))
}

/// `distance` lowered by `evidence` ([`evidence`]).
pub fn lowered(distance: f32, evidence: f32) -> f32 {
    distance - EVIDENCE_WEIGHT * evidence
}

/// Parts of a descriptor, each of the trunk's channel count: block 4 averaged, block 4 max,
/// block 5 averaged, block 5 max. The graph builds them in this order.
pub const PARTS: usize = 4;

/// The descriptor of one image from its block-4 output pooled by average then max (`2 C`
/// values) and its block-5 feature map (`dims`).
pub fn descriptor(block4_pooled: &[f32], block5_map: &[f32], dims: [usize; 3]) -> Vec<f32> {
    let mut d = Vec::with_capacity(PARTS * dims[0]);
    d.extend_from_slice(block4_pooled);
    d.extend(crate::features::pool(block5_map, dims));
    d.extend(crate::features::pool_max(block5_map, dims));
    debug_assert_eq!(d.len(), PARTS * dims[0]);
    d
}

/// Each part L2-normalized, all scaled by `1 / sqrt(PARTS)`: the dot product of two normalized
/// descriptors is then the mean of their parts' cosines.
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let part = v.len() / PARTS;
    let scale = 1.0 / (PARTS as f32).sqrt();
    v.chunks(part.max(1))
        .flat_map(|p| {
            let norm = p.iter().map(|x| x * x).sum::<f32>().sqrt() + NORM_EPSILON;
            p.iter().map(move |x| x / norm * scale)
        })
        .collect()
}

/// The score of pooled features `feature` against L2-normalized `references`.
pub fn score(feature: &[f32], references: &[Vec<f32>]) -> f32 {
    let f = normalized(feature);
    let best = references.iter().map(|r| r.iter().zip(&f).map(|(a, b)| a * b).sum::<f32>()).fold(f32::NEG_INFINITY, f32::max);
    1.0 - best
}

/// Leave-one-out scores of the references `queries` (indices into `normalized_all`, the
/// references [`normalized`]): each against all the references except those in its own
/// near-duplicate group (its twin, or an augmented view of itself, would score it about 0 and
/// teach the threshold nothing).
pub fn held_out_scores(queries: &[usize], normalized_all: &[Vec<f32>], groups: &[usize]) -> Vec<f32> {
    queries
        .iter()
        .map(|&i| {
            let f = &normalized_all[i];
            let best = (0..normalized_all.len())
                .filter(|&j| groups[j] != groups[i])
                .map(|j| normalized_all[j].iter().zip(f).map(|(a, b)| a * b).sum::<f32>())
                .fold(f32::NEG_INFINITY, f32::max);
            1.0 - best
        })
        .collect()
}

/// The references of the exported graph: each photo's views, clean view first, with the
/// near-duplicate group of each reference and where each photo's clean view sits.
pub struct Bank {
    pub references: Vec<Vec<f32>>,
    /// The references [`normalized`], as the graph stores them.
    normalized: Vec<Vec<f32>>,
    groups: Vec<usize>,
    clean: Vec<usize>,
}

impl Bank {
    /// `views[k]`: the descriptors of photo `k`'s views, clean first; `groups[k]`: its
    /// near-duplicate group, which its views share.
    pub fn new(views: Vec<Vec<Vec<f32>>>, groups: &[usize]) -> Self {
        let (mut references, mut reference_groups, mut clean) = (Vec::new(), Vec::new(), Vec::new());
        for (photo_views, &group) in views.into_iter().zip(groups) {
            clean.push(references.len());
            reference_groups.extend(std::iter::repeat_n(group, photo_views.len()));
            references.extend(photo_views);
        }
        let normalized = references.iter().map(|r| normalized(r)).collect();
        Self { references, normalized, groups: reference_groups, clean }
    }

    pub fn photos(&self) -> usize {
        self.clean.len()
    }

    /// The distance of each photo (its clean view) to the bank without its own views and
    /// near-duplicate group, in photo order.
    pub fn held_out_distances(&self) -> Vec<f32> {
        held_out_scores(&self.clean, &self.normalized, &self.groups)
    }

    /// Each photo's views as the graph stores them ([`normalized`]), clean view first: what a
    /// `linear` head reads of them.
    pub fn normalized_views(&self) -> Vec<Vec<&[f32]>> {
        let ends = self.clean.iter().skip(1).copied().chain([self.normalized.len()]);
        self.clean.iter().zip(ends).map(|(&start, end)| self.normalized[start..end].iter().map(Vec::as_slice).collect()).collect()
    }

    /// The references as the exported graph stores them ([`normalized`]).
    pub fn into_normalized(self) -> Vec<Vec<f32>> {
        self.normalized
    }

    /// Photo `k`'s clean view scored against the whole bank, as the exported graph scores it.
    pub fn score_of_photo(&self, k: usize) -> f32 {
        score(&self.references[self.clean[k]], &self.normalized)
    }
}

/// The smallest score that accepts at least `acceptance` of `scores` (an order statistic, so no
/// interpolation between images).
pub fn threshold(scores: &[f32], acceptance: f32) -> f32 {
    let mut sorted: Vec<f32> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    if sorted.is_empty() {
        return f32::INFINITY;
    }
    let index = ((acceptance * sorted.len() as f32).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor whose four parts are all `part`.
    fn same_parts(part: &[f32]) -> Vec<f32> {
        part.repeat(PARTS)
    }

    #[test]
    fn score_is_one_minus_the_best_mean_cosine() {
        let references = vec![normalized(&same_parts(&[1.0, 0.0])), normalized(&same_parts(&[0.0, 2.0]))];
        // The epsilon in the norms keeps a perfect match a hair above 0.
        assert!(score(&same_parts(&[3.0, 0.0]), &references).abs() < 1e-5, "same direction as a reference");
        let diagonal = score(&same_parts(&[1.0, 1.0]), &references);
        assert!((diagonal - (1.0 - 0.5f32.sqrt())).abs() < 1e-5, "{diagonal}");
        assert!((score(&same_parts(&[0.0, 0.0]), &references) - 1.0).abs() < 1e-6, "a black frame: 1, not NaN");
        // Parts count alike whatever their scale: one part matching, three orthogonal -> 1/4.
        let mixed = [vec![5.0, 0.0], vec![0.0, 1.0], vec![0.0, 1.0], vec![0.0, 1.0]].concat();
        let s = score(&mixed, &references[..1]);
        assert!((s - 0.75).abs() < 1e-5, "{s}");
    }

    #[test]
    fn the_descriptor_is_block4_then_block5_average_and_max() {
        // Two channels, a 2x2 map: channel 0 is 1,2,3,6 (mean 3, max 6), channel 1 is all 1.
        let map = [1.0, 2.0, 3.0, 6.0, 1.0, 1.0, 1.0, 1.0];
        let d = descriptor(&[0.5, 0.25, 7.0, 8.0], &map, [2, 2, 2]);
        assert_eq!(d, vec![0.5, 0.25, 7.0, 8.0, 3.0, 1.0, 6.0, 1.0]);
    }

    #[test]
    fn held_out_scores_skip_the_own_group() {
        // 0 and 1 are twins (one group); 2 is orthogonal to both.
        let mut pooled: Vec<Vec<f32>> = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]].iter().map(|p| normalized(&same_parts(p))).collect();
        let loo = held_out_scores(&[0, 1, 2], &pooled, &[0, 0, 2]);
        assert!(loo.iter().all(|s| (s - 1.0).abs() < 1e-6), "{loo:?}");
        let loo = held_out_scores(&[0, 1, 2], &pooled, &[0, 1, 2]);
        assert!(loo[0].abs() < 1e-5 && loo[1].abs() < 1e-5, "{loo:?}");
        // Only the queries are scored, against every reference outside their group: 2's
        // neighbour 3 (a diagonal) counts, 0 and 1 (its own group) do not.
        pooled.push(normalized(&same_parts(&[1.0, 1.0])));
        let loo = held_out_scores(&[2], &pooled, &[0, 0, 2, 3]);
        assert_eq!(loo.len(), 1);
        assert!((loo[0] - (1.0 - 0.5f32.sqrt())).abs() < 1e-5, "{loo:?}");
        let loo = held_out_scores(&[2], &pooled, &[2, 2, 2, 2]);
        assert_eq!(loo, vec![f32::INFINITY], "nothing outside its group to compare with");
    }

    #[test]
    fn the_bank_holds_every_view_and_holds_a_photo_out_with_its_own() {
        // Photo 0: clean [1, 0] and an identical view; photo 1: clean [0, 1] and a view at
        // 0.6 / 0.8. Photo 2: [1, 0] again, in photo 0's near-duplicate group.
        let views = vec![
            vec![same_parts(&[1.0, 0.0]), same_parts(&[1.0, 0.0])],
            vec![same_parts(&[0.0, 1.0]), same_parts(&[0.6, 0.8])],
            vec![same_parts(&[1.0, 0.0])],
        ];
        let bank = Bank::new(views, &[7, 8, 7]);
        assert_eq!((bank.references.len(), bank.photos()), (5, 3));
        assert_eq!(bank.references[2], same_parts(&[0.0, 1.0]), "photo 1's clean view follows photo 0's two");
        // Held out with its view and its group, photo 0's nearest is photo 1's view (cos 0.6):
        // 0.4; photo 2 likewise; photo 1's nearest is at cos 0: 1. Were photo 0's own view or
        // twin counted, its score would be 0.
        let held_out = bank.held_out_distances();
        assert_eq!(held_out.len(), 3);
        assert!((held_out[0] - 0.4).abs() < 1e-5 && (held_out[2] - 0.4).abs() < 1e-5, "{held_out:?}");
        assert!((held_out[1] - 1.0).abs() < 1e-5, "{held_out:?}");
        let views = bank.normalized_views();
        assert_eq!(views.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1], "each photo's own views");
        assert_eq!(views[1][1], normalized(&same_parts(&[0.6, 0.8])).as_slice(), "photo 1's view, normalized");
        // Scored as the graph scores it, against the whole bank, a photo finds itself.
        for k in 0..3 {
            assert!(bank.score_of_photo(k).abs() < 1e-5, "photo {k}: {}", bank.score_of_photo(k));
        }
    }

    #[test]
    fn evidence_is_the_top_class_log_odds_clamped() {
        assert!(evidence(&[0.5, 0.5]).abs() < 1e-6, "an even split: none");
        assert!((evidence(&[0.1, 0.9]) - 9f32.ln()).abs() < 1e-5);
        assert!((evidence(&[0.1, 0.2, 0.7]) - (7f32 / 3.0).ln()).abs() < 1e-5, "the top class against all the others");
        assert_eq!(evidence(&[0.1, 0.4, 0.3, 0.2]), 0.0, "below even odds: no evidence, and never a penalty");
        assert_eq!(evidence(&[1.0, 0.0]), EVIDENCE_CAP, "a head certain in f32 counts as the cap, not infinity");
        assert_eq!(evidence(&[0.0, 0.0]), 0.0, "no answer at all: none");
        assert!((with_evidence(0.3, &[0.1, 0.9]) - (0.3 - EVIDENCE_WEIGHT * 9f32.ln())).abs() < 1e-6);
        assert!((with_evidence(0.3, &[0.5, 0.5]) - 0.3).abs() < 1e-6);
    }

    #[test]
    fn threshold_accepts_the_asked_share() {
        let scores: Vec<f32> = (1..=40).map(|i| i as f32 / 100.0).collect();
        let t = threshold(&scores, 0.975);
        assert_eq!(t, 0.39, "39 of 40 accepted");
        assert!(scores.iter().filter(|&&s| s <= t).count() as f32 / 40.0 >= 0.975);
        assert_eq!(threshold(&scores, 1.0), 0.40);
        assert_eq!(threshold(&[], 0.9), f32::INFINITY);
    }
}
