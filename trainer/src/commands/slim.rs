//! `trainer slim --backbone B --keep F [--data DIR ...] --out SLIM.onnx`: a narrower trunk to
//! train on, pruned and (given photos) distilled from the full one.

use std::path::Path;

use shared::Preprocessing;

use crate::backbone::Vgg16Weights;
use crate::cli::SlimArgs;
use crate::data::scan::{ScanOptions, scan};
use crate::device;
use crate::features::{self, FeatureCache, FeatureShape, TrunkEngine, ViewKey};
use crate::slim::distill::{DistillOptions, Targets};
use crate::slim::{self, Distillation, SlimReport};

pub fn run(args: &SlimArgs) -> anyhow::Result<SlimReport> {
    // Its errors name the file.
    let teacher = Vgg16Weights::load(&args.backbone, args.backbone_convention)?;
    let input_size = args.input_size as usize;
    if args.data.is_empty() {
        return slim::slim(&teacher, args.keep, input_size, &args.out, None);
    }
    let preprocessing = Preprocessing::new(args.input_size, args.resize).map_err(anyhow::Error::msg)?;
    let options = ScanOptions { classes: args.classes.clone(), strict: false, min_images_per_class: 1 };
    let dataset = scan(&args.data, &options, &preprocessing)?;
    let normalization = teacher.convention.normalization();
    let backend = args.backend.unwrap_or(device::default_backend(args.device));
    let device = device::burn_device(backend, args.device)?;
    // The teacher's features, through the feature cache `trainer train` fills (same keys).
    let cache = FeatureCache::new(Some(args.cache_dir.clone().unwrap_or_else(features::default_cache_dir)))?;
    let context = features::cache_context(&teacher.sha256(), &preprocessing.fingerprint(), &normalization);
    let shape =
        FeatureShape { map: features::feature_dims(teacher.out_channels(), args.input_size), block4_channels: teacher.out_channels() };
    let jobs = dataset
        .samples
        .iter()
        .map(|s| {
            let key = ViewKey { context: &context, file_sha256: &s.file_sha256, augmentation: None }.hash();
            let image = move || s.image.clone();
            (key, Box::new(image) as Box<dyn Fn() -> image::RgbImage + Send + Sync>)
        })
        .collect();
    let engine = std::cell::OnceCell::new();
    let make_engine = || -> anyhow::Result<&TrunkEngine> {
        if engine.get().is_none() {
            let _ = engine.set(TrunkEngine::for_run(backend, &teacher.convs, &normalization, args.input_size, &device)?);
        }
        Ok(engine.get().expect("just set"))
    };
    let target_features = features::extract(make_engine, &cache, shape, jobs, "teacher features")?;
    let images: Vec<image::RgbImage> = dataset.samples.iter().map(|s| s.image.clone()).collect();
    let distillation = Distillation {
        targets: Targets { images: &images, features: &target_features, normalization },
        options: DistillOptions {
            learn_adapters: !args.fixed_adapters,
            epochs: args.epochs,
            batch_size: args.batch_size as usize,
            lr: args.lr,
            seed: args.seed,
        },
        device,
        resume: args.resume,
    };
    slim::slim(&teacher, args.keep, input_size, &args.out, Some(distillation))
}

pub fn human(r: &SlimReport, out: &Path) -> String {
    let gmacs = |m: u64| m as f64 / 1e9;
    let distilled = match &r.distillation {
        Some(d) => format!(
            "distilled on {} photos, {} epochs: feature loss {:.4} -> {:.4}\n",
            d.photos,
            d.history.epochs.len(),
            d.history.before,
            d.history.epochs.last().map_or(d.history.before, |e| e.loss)
        ),
        None => "pruned only (no --data to distil on)\n".into(),
    };
    format!(
        "wrote {} ({} criterion, width {:.3} of VGG16's): filters per convolution {:?}\n\
         multiply-adds per {}x{} frame: {:.2} G -> {:.2} G ({:.1}x fewer)\n\
         {distilled}\
         teacher {} sha256 {}; slim sha256 {}\n\
         next: trainer train --backbone {} --input-size {} ... (the head, open-set score and export as for the full trunk)",
        out.display(),
        r.criterion,
        r.width,
        r.channels,
        r.input_size,
        r.input_size,
        gmacs(r.teacher_macs),
        gmacs(r.slim_macs),
        r.teacher_macs as f64 / r.slim_macs.max(1) as f64,
        r.teacher,
        r.teacher_sha256,
        r.slim_sha256,
        out.display(),
        r.input_size
    )
}
