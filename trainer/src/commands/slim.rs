//! `trainer slim --backbone B --keep F --out SLIM.onnx`: a narrower trunk to train on.

use std::path::Path;

use crate::backbone::Vgg16Weights;
use crate::cli::SlimArgs;
use crate::slim::{self, SlimReport};

pub fn run(args: &SlimArgs) -> anyhow::Result<SlimReport> {
    // Its errors name the file.
    let teacher = Vgg16Weights::load(&args.backbone, args.backbone_convention)?;
    slim::slim(&teacher, args.keep, args.input_size as usize, &args.out)
}

pub fn human(r: &SlimReport, out: &Path) -> String {
    let gmacs = |m: u64| m as f64 / 1e9;
    format!(
        "wrote {} ({} criterion, width {:.3} of VGG16's): filters per convolution {:?}\n\
         multiply-adds per {}x{} frame: {:.2} G -> {:.2} G ({:.1}x fewer)\n\
         teacher {} sha256 {}; slim sha256 {}\n\
         next: trainer train --backbone {} ... (the head, open-set score and export as for the full trunk)",
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
        out.display()
    )
}
