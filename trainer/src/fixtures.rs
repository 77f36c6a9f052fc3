//! Small, generated stand-ins for real data and weights, for tests and benchmarks that must
//! run on a fresh machine: a class-folder dataset of synthetic photos (with the kinds of bad
//! files and near-duplicates real folders have) and a random VGG16-shaped ONNX trunk.

use std::path::Path;

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shared::Convention;

use crate::backbone::Vgg16Weights;

/// A synthetic "photo" of class `class`: class 0 warm horizontal stripes, class 1 cool
/// vertical stripes, class 2 diagonal checks; random phase, size and noise per image.
pub fn photo(class: usize, rng: &mut impl Rng) -> RgbImage {
    let (w, h) = (rng.random_range(80..160), rng.random_range(80..160));
    let period = rng.random_range(6..14);
    let phase = rng.random_range(0..period);
    RgbImage::from_fn(w, h, |x, y| {
        let on = match class % 3 {
            0 => (y + phase) % period < period / 2,
            1 => (x + phase) % period < period / 2,
            _ => ((x + y + phase) / (period / 2).max(1)) % 2 == 0,
        };
        let noise = rng.random_range(0..40) as u8;
        let base = match (class % 3, on) {
            (0, true) => [230, 150, 30],
            (1, true) => [30, 90, 220],
            (2, true) => [40, 200, 60],
            _ => [120, 110, 100],
        };
        Rgb(base.map(|c: u8| c.saturating_sub(20).saturating_add(noise)))
    })
}

pub struct DatasetLayout {
    pub classes: Vec<String>,
    /// (original, copy) pairs written as near-duplicates: re-encoded at another quality and size.
    pub duplicates: Vec<(String, String)>,
    /// Files that are not usable images.
    pub bad_files: Vec<String>,
}

/// Writes `per_class` JPEGs per class under `root/<class>/`, plus per class one re-encoded,
/// resized copy of an image, and two bad files (empty, not an image) in the first class.
pub fn write_dataset(root: &Path, classes: &[&str], per_class: usize, seed: u64) -> anyhow::Result<DatasetLayout> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut duplicates = Vec::new();
    for (c, name) in classes.iter().enumerate() {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        for i in 0..per_class {
            let img = photo(c, &mut rng);
            let file = format!("{name}/img_{i:03}.jpg");
            img.save(root.join(&file))?;
            if i == 1 {
                let copy = image::imageops::resize(&img, img.width() * 3 / 4, img.height() * 3 / 4, image::imageops::FilterType::Triangle);
                let copy_file = format!("{name}/img_{i:03}_copy.jpg");
                let mut bytes = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 55).encode_image(&copy)?;
                std::fs::write(root.join(&copy_file), bytes)?;
                duplicates.push((file, copy_file));
            }
        }
    }
    let bad_files = vec![format!("{}/empty.jpg", classes[0]), format!("{}/notes.txt", classes[0])];
    std::fs::write(root.join(&bad_files[0]), b"")?;
    std::fs::write(root.join(&bad_files[1]), b"taken on a sunny day")?;
    Ok(DatasetLayout { classes: classes.iter().map(|s| s.to_string()).collect(), duplicates, bad_files })
}

/// A VGG16-shaped trunk (13 convs, 5 pools) with random weights, channels scaled by `width`,
/// as an ONNX file with our trunk's layer names and the caffe convention in its metadata.
pub fn write_trunk_onnx(path: &Path, width: f32, seed: u64) -> anyhow::Result<Vgg16Weights> {
    let weights = Vgg16Weights::random(seed, width, Convention::Caffe);
    crate::backbone::onnx::write_trunk(path, &weights, vec![], "random VGG16-shaped trunk for tests")?;
    Ok(weights)
}

/// Exports a random VGG16-shaped model (`width`-scaled channels, `gap` head, labels
/// `labels`) with input side `size` to `out` (`DIR/NAME`), through the real exporter and its
/// parity gate. The edge's tests and benchmarks run it.
pub fn write_random_bundle(
    out: &Path,
    size: u32,
    width: f32,
    labels: &[&str],
    precision: shared::Precision,
) -> anyhow::Result<std::path::PathBuf> {
    use burn::prelude::*;

    use crate::model::{Classifier, Head, Vgg16Trunk, to_vec};

    let preprocessing = shared::Preprocessing::new(size, shared::ResizePolicy::Stretch).map_err(anyhow::Error::msg)?;
    let trunk = Vgg16Weights::random(1, width, Convention::Caffe);
    let normalization = trunk.convention.normalization();
    let device = Device::flex();
    device.seed(1);
    let k = labels.len();
    let head = Head::new(shared::HeadKind::Gap, crate::features::feature_dims(trunk.out_channels(), size), k, 0.0, &device);
    let head_weights = head.to_weights();
    let classifier = Classifier { trunk: Vgg16Trunk::from_weights(&trunk.convs, &device), head };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let images: Vec<RgbImage> = (0..2 * k).map(|i| preprocessing.prepare_rgb(&photo(i % k, &mut rng))).collect();
    let probs = to_vec(classifier.probabilities(crate::features::images_to_tensor(&images, &normalization, &device)));
    // The open-set references: the first image of each class; the score lowered by the head's
    // evidence, as the default export's (so the edge's tests meet scores below 0 where the head
    // is sure); the threshold accepts all of them.
    let dims = crate::features::feature_dims(trunk.out_channels(), size);
    let pooled: Vec<Vec<f32>> = crate::features::burn_forward(&classifier.trunk, &device, &normalization, &images)
        .iter()
        .map(|f| crate::openset::descriptor(&f.block4_pooled, &f.map, dims))
        .collect();
    let references: Vec<Vec<f32>> = pooled[..k].iter().map(|r| crate::openset::normalized(r)).collect();
    let expected: Vec<Vec<f32>> = probs.chunks(k).map(<[f32]>::to_vec).collect();
    let scores: Vec<f32> =
        pooled.iter().zip(&expected).map(|(f, p)| crate::openset::with_evidence(crate::openset::score(f, &references), p)).collect();
    let threshold = crate::openset::threshold(&scores, 1.0);
    let input = crate::export::ExportInput {
        signing_key: None,
        name: out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
        preprocessing,
        normalization,
        backbone: trunk.info(preprocessing.input_size as usize, &trunk.sha256()),
        head_kind: shared::HeadKind::Gap,
        trunk: trunk.convs.clone(),
        head: head_weights,
        precision,
        calibration: images.iter().collect(),
        training: shared::TrainingSummary::untrained(images.len() as u32),
        images: images.iter().enumerate().map(|(i, img)| (format!("synthetic_{i}"), i % k, img)).collect(),
        expected,
        open_set: Some(crate::export::OpenSetExport {
            method: shared::manifest::OpenSetMethod::KnnCosineBlocks45Evidence,
            references,
            threshold,
            target_acceptance: 1.0,
            expected: scores,
        }),
        cross_validation: None,
    };
    Ok(crate::export::export(input, &crate::export::write::ExportLock::acquire(out)?)?.bundle_path)
}
