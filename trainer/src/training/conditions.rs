//! The field-conditions suite at the end of training: the trained classifier on validation
//! photos under each field condition ([`crate::data::conditions`]), one accuracy per condition,
//! on the frozen trunk's cached features (a second run costs nothing). `trainer evaluate
//! --conditions` runs the same suite on an exported bundle through tract, on any photos.

use image::RgbImage;
use rayon::prelude::*;

use super::prepare::Prepared;
use crate::data::conditions::Condition;
use crate::evaluate::conditions::{self, ConditionResult, Outcome};
use crate::model::weights::ModelWeights;

/// Runs the suite on up to `photos` validation photos, taken from each class in turn. Empty when
/// `photos` is 0, without validation photos, or when training changed the trunk (the cached
/// features are the frozen trunk's; `trainer evaluate --conditions` measures such a model).
pub fn run(p: &Prepared, weights: &ModelWeights, photos: usize) -> anyhow::Result<Vec<ConditionResult>> {
    if photos == 0 || p.split.val.is_empty() {
        return Ok(Vec::new());
    }
    if weights.trunk.is_some() {
        tracing::warn!(
            "no field-conditions suite at the end of training: the trunk was trained; run `trainer evaluate --conditions` on the bundle"
        );
        return Ok(Vec::new());
    }
    let val_classes = p.classes_of(&p.split.val);
    let picked: Vec<usize> = crate::data::split::classes_in_turn(&val_classes, photos).into_iter().map(|k| p.split.val[k]).collect();
    // The whole photos, not the prepared squares: frames and crops start from what the camera saw.
    let paths: Vec<&std::path::Path> = picked.iter().map(|&i| p.dataset.samples[i].path.as_path()).collect();
    let originals: Vec<RgbImage> =
        paths.par_iter().map(|path| shared::preprocess::decode_file(path).map(|d| d.to_rgb8())).collect::<Result<_, _>>()?;
    let mut jobs = Vec::new();
    for condition in Condition::ALL {
        for (index, (&i, photo)) in picked.iter().zip(&originals).enumerate() {
            let sample = &p.dataset.samples[i];
            let view = (condition != Condition::Original).then(|| condition.fingerprint());
            let preprocessing = p.preprocessing;
            let job: Box<dyn Fn() -> RgbImage + Send + Sync> = Box::new(move || match condition {
                Condition::Original => sample.image.clone(),
                _ => preprocessing.prepare_rgb(&condition.apply(photo, index)),
            });
            jobs.push((p.view_key(sample, view), job));
        }
    }
    let feature_maps: Vec<Vec<f32>> = p.features_of(jobs, "field conditions")?.into_iter().map(|f| p.head_input(f)).collect();
    let classes = p.classes_of(&picked);
    let per_condition = classes.len();
    let results = Condition::ALL
        .iter()
        .zip(feature_maps.chunks(per_condition))
        .map(|(&condition, maps)| {
            let evaluation = p.evaluate_features(weights, &maps.iter().map(Vec::as_slice).collect::<Vec<_>>(), &classes);
            let outcomes: Vec<Outcome> = evaluation
                .probabilities
                .into_iter()
                .zip(&classes)
                .map(|(probabilities, &class)| Outcome { class, probabilities, answer: None })
                .collect();
            conditions::tally(condition, &outcomes)
        })
        .collect();
    Ok(results)
}
