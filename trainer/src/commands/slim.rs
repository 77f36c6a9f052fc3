//! `trainer slim --backbone B --keep F [--data DIR ...] --out SLIM.onnx`: a narrower trunk to
//! train on, pruned and (given photos) distilled from the full one. `trainer slim --run RUN --keep
//! F --out RUN2`: the same from a finished run's settings, then its head trained on the slim trunk
//! into RUN2 and the bundle exported.

use std::path::{Path, PathBuf};

use serde::Serialize;
use shared::{Convention, Precision, Preprocessing, ResizePolicy};

use crate::backbone::Vgg16Weights;
use crate::cli::SlimArgs;
use crate::data::scan::{ScanOptions, scan};
use crate::device::{self, Backend, DeviceSpec};
use crate::features::{self, FeatureCache, FeatureShape, TrunkEngine, ViewKey};
use crate::report::summary::RunSummary;
use crate::run_folder::RunFolder;
use crate::slim::distill::{DistillOptions, Targets};
use crate::slim::{self, Distillation, SlimReport};
use crate::training::job;

/// What to slim and what to distil on, from the command line or from a run's settings.
struct Teacher {
    backbone: PathBuf,
    convention: Option<Convention>,
    data: Vec<PathBuf>,
    classes: Option<Vec<String>>,
    input_size: u32,
    resize: ResizePolicy,
    backend: Backend,
    device: DeviceSpec,
    cache_dir: Option<PathBuf>,
}

/// `trainer slim --backbone ...`: the slim trunk at `--out`.
pub fn run(args: &SlimArgs) -> anyhow::Result<SlimReport> {
    let device = args.device.unwrap_or(DeviceSpec::Cpu);
    let teacher = Teacher {
        backbone: args.backbone.clone().ok_or_else(|| anyhow::anyhow!("--backbone or --run is required"))?,
        convention: args.backbone_convention,
        data: args.data.clone(),
        classes: args.classes.clone(),
        input_size: args.input_size.unwrap_or(224),
        resize: args.resize.unwrap_or(ResizePolicy::CenterCrop),
        backend: args.backend.unwrap_or(device::default_backend(device)),
        device,
        cache_dir: args.cache_dir.clone(),
    };
    slim_trunk(&teacher, args, &args.out)
}

/// What `trainer slim --run` did: the slimming (`None` when `--resume` found the slim trunk
/// already written) and the run trained on it.
#[derive(Serialize)]
pub struct SlimmedRun {
    pub slim: Option<SlimReport>,
    pub run: RunSummary,
}

/// `trainer slim --run RUN ... --out RUN2`: slims RUN's backbone into RUN2's trunk, then trains
/// RUN's head with RUN's settings on it into RUN2 and exports the bundle to `export_to`.
pub fn run_from(args: &SlimArgs, from: &Path, export_to: PathBuf) -> anyhow::Result<SlimmedRun> {
    let out = RunFolder::new(&args.out);
    if crate::paths::same(from, out.root()) {
        let message = format!("{}: --out is the run being slimmed (--run); the slim run goes to a new folder", out.root().display());
        return Err(shared::usage::UsageError(message).into());
    }
    let mut config = job::load_run_config(&RunFolder::new(from))?;
    // Held from here, once --run is known to be a run (a mistyped one makes no model folder):
    // another trainer writing the name is refused before the distillation.
    let export = crate::export::write::ExportLock::acquire(&export_to)?;
    // The run's settings, with what the command line changes; the slim trunk trains under them.
    config.input_size = args.input_size.unwrap_or(config.input_size);
    config.resize = args.resize.unwrap_or(config.resize);
    config.device = args.device.unwrap_or(config.device);
    // The fastest engine of this build, as `train` picks it; the run's was its build's.
    config.backend = args.backend.unwrap_or(device::default_backend(config.device));
    config.cache_dir = args.cache_dir.clone().or(config.cache_dir);
    let (data, classes) =
        if args.data.is_empty() { (config.data.clone(), config.classes.clone()) } else { (args.data.clone(), args.classes.clone()) };
    let teacher = Teacher {
        backbone: config.backbone.clone(),
        convention: config.convention,
        data,
        classes,
        input_size: config.input_size,
        resize: config.resize,
        backend: config.backend,
        device: config.device,
        cache_dir: config.cache_dir.clone(),
    };
    let trunk = out.slim_trunk();
    let slim = if args.resume && trunk.exists() {
        tracing::info!("--resume: keeping {} (slimmed before)", trunk.display());
        None
    } else {
        std::fs::create_dir_all(out.root()).map_err(|e| anyhow::anyhow!("{}: cannot create the run folder: {e}", out.root().display()))?;
        Some(slim_trunk(&teacher, args, &trunk)?)
    };
    // Its convention is in the trunk file; absolute, as `train` records every path.
    config.backbone = crate::paths::absolute(&trunk);
    config.convention = None;
    let request = super::train::TrainRequest {
        config,
        out: args.out.clone(),
        // A run killed after its trunk was made but before its training began has no run to
        // resume: it starts.
        resume: args.resume && out.config().exists(),
        export: Some(export),
        precision: Precision::F32,
        signing_key: None,
        condition_photos: 0,
    };
    Ok(SlimmedRun { slim, run: super::train::run(request)? })
}

fn slim_trunk(t: &Teacher, args: &SlimArgs, out: &Path) -> anyhow::Result<SlimReport> {
    refuse_to_overwrite(out, &t.backbone, args.resume)?;
    create_folder_of(out)?;
    // Its errors name the file.
    let teacher = Vgg16Weights::load(&t.backbone, t.convention)?;
    let input_size = t.input_size as usize;
    if t.data.is_empty() {
        return slim::slim(&teacher, args.keep, input_size, out, None);
    }
    let preprocessing = Preprocessing::new(t.input_size, t.resize).map_err(anyhow::Error::msg)?;
    let options = ScanOptions { classes: t.classes.clone(), strict: false, min_images_per_class: 1, labels: false };
    let dataset = scan(&t.data, &options, &preprocessing)?;
    let normalization = teacher.convention.normalization();
    let device = device::burn_device(t.backend, t.device)?;
    // The teacher's features, through the feature cache `trainer train` fills (same keys).
    let cache = FeatureCache::from_setting(t.cache_dir.clone())?;
    let context = features::cache_context(&teacher.sha256(), &preprocessing.fingerprint(), &normalization);
    let shape = FeatureShape { map: features::feature_dims(teacher.out_channels(), t.input_size), block4_channels: teacher.out_channels() };
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
    let make_engine = || engine.get_or_init(|| TrunkEngine::for_run(t.device, &teacher.convs, &normalization, &device));
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
    slim::slim(&teacher, args.keep, input_size, out, Some(distillation))
}

/// A slim trunk is written only where nothing is lost: never over its teacher, never over an
/// existing file or an interrupted distillation unless `--resume` continues it.
fn refuse_to_overwrite(out: &Path, teacher: &Path, resume: bool) -> anyhow::Result<()> {
    // Bad usage (exit 2), said before the teacher's features take minutes.
    let usage = |message: String| -> anyhow::Result<()> { Err(shared::usage::UsageError(message).into()) };
    if crate::paths::same(out, teacher) {
        return usage(format!("{}: --out is the trunk being slimmed; choose another --out", out.display()));
    }
    let checkpoint = slim::checkpoint_path(out);
    if !resume && checkpoint.exists() {
        return usage(format!(
            "{}: an interrupted distillation of {} is there; pass --resume to continue it, or delete it to start again",
            checkpoint.display(),
            out.display()
        ));
    }
    // With --resume, only a distillation under way continues: a finished trunk is kept.
    if out.exists() && !(resume && checkpoint.exists()) {
        return usage(format!(
            "{}: already exists; trainer slim never overwrites a file: choose another --out, or delete it",
            out.display()
        ));
    }
    Ok(())
}

/// The slim trunk's folder, made before the distillation: a path that cannot be written fails
/// then, not after the teacher's features and an epoch.
fn create_folder_of(out: &Path) -> anyhow::Result<()> {
    match out.parent().filter(|f| !f.as_os_str().is_empty()) {
        Some(folder) => std::fs::create_dir_all(folder).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", folder.display())),
        None => Ok(()),
    }
}

/// The slimming in a few lines: channels, multiply-adds, distillation, hashes.
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
        "wrote {} ({} criterion, width per block {} of VGG16's): filters per convolution {:?}\n\
         multiply-adds per {}x{} frame: {:.2} G -> {:.2} G ({:.1}x fewer)\n\
         {distilled}\
         teacher {} sha256 {}; slim sha256 {}",
        out.display(),
        r.criterion,
        r.width.map(|w| format!("{w:.3}")).join("/"),
        r.channels,
        r.input_size,
        r.input_size,
        gmacs(r.teacher_macs),
        gmacs(r.slim_macs),
        r.teacher_macs as f64 / r.slim_macs.max(1) as f64,
        r.teacher,
        r.teacher_sha256,
        r.slim_sha256,
    )
}

/// What to do with a slim trunk written by the plain form.
pub fn next_step(r: &SlimReport, out: &Path) -> String {
    format!(
        "next: trainer train --backbone {} --input-size {} ... (the head, open-set score and export as for the full trunk)",
        out.display(),
        r.input_size
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slim_trunk_never_replaces_its_teacher_a_file_or_an_interrupted_distillation() {
        let dir = tempfile::tempdir().unwrap();
        let teacher = dir.path().join("vgg16.onnx");
        std::fs::write(&teacher, b"weights").unwrap();
        let alias = dir.path().join("alias.onnx");
        std::os::unix::fs::symlink(&teacher, &alias).unwrap();
        for resume in [false, true] {
            let err = refuse_to_overwrite(&alias, &teacher, resume).unwrap_err().to_string();
            assert!(err.contains("is the trunk being slimmed"), "{err}");
        }
        let out = dir.path().join("slim.onnx");
        assert!(refuse_to_overwrite(&out, &teacher, false).is_ok());
        std::fs::write(&out, b"an earlier slim trunk").unwrap();
        assert!(refuse_to_overwrite(&out, &teacher, false).unwrap_err().to_string().contains("never overwrites"));
        assert!(refuse_to_overwrite(&out, &teacher, true).is_err(), "a finished trunk has nothing to resume");
        std::fs::write(slim::checkpoint_path(&out), b"epoch 3").unwrap();
        assert!(refuse_to_overwrite(&out, &teacher, false).unwrap_err().to_string().contains("pass --resume"));
        assert!(refuse_to_overwrite(&out, &teacher, true).is_ok(), "--resume continues it");
        std::fs::remove_file(&out).unwrap();
        assert!(refuse_to_overwrite(&out, &teacher, true).is_ok());
        let err = refuse_to_overwrite(&alias, &teacher, false).unwrap_err();
        assert!(err.is::<shared::usage::UsageError>(), "bad usage: exit 2");
        let nested = dir.path().join("new/sub/slim.onnx");
        create_folder_of(&nested).unwrap();
        assert!(nested.parent().unwrap().is_dir(), "its folder is made before the distillation");
    }
}
