//! `trainer`: fine-tune ImageNet VGG16 on a folder of labelled photos and export a verified
//! bundle for the `edge` program.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use trainer::cli::{Cli, Command};
use trainer::commands;

fn main() -> ExitCode {
    // SAFETY: the first thing the process does; no other thread exists yet.
    unsafe { trainer::device::keep_gpu_in_full_fp32() };
    let cli = Cli::parse();
    shared::logging::init(cli.log_format);
    shared::preprocess::set_max_pixels(cli.max_pixels);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `trainer inspect M | head`: the reader had what it wanted.
        Err(e) if shared::stdout::reader_gone(&e) => ExitCode::SUCCESS,
        Err(e) => {
            shared::logging::error(&format!("{e:#}"));
            if e.downcast_ref::<trainer::export::parity::ParityFailure>().is_some() {
                ExitCode::from(3)
            } else if is_usage(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // A reader that goes (`trainer inspect M | head`) ends the command quietly: see main.
    let mut stdout = shared::stdout::guarded();
    match cli.command {
        Command::Train(args) => {
            let export_to = (!args.no_export).then(|| args.export_to.clone().unwrap_or_else(|| default_export_path(&args.out)));
            let json = args.json;
            let config = args.config();
            // Bad settings are bad usage (exit 2), found before anything is written.
            let run_folder = trainer::run_folder::RunFolder::new(&args.out);
            let destinations = run_folder
                .check_new(&config.data, args.resume)
                .and_then(|()| export_to.as_deref().map_or(Ok(()), trainer::export::write::check_destination));
            if let Err(message) = config.validate().and(destinations) {
                usage_error("train", message);
            }
            let signing_key = args.sign.as_deref().map(shared::signing::SecretKey::read).transpose()?;
            let request = commands::train::TrainRequest {
                signing_key,
                config,
                out: args.out.clone(),
                resume: args.resume,
                // The model name's one writer from now on: a destination that cannot be
                // written, or another trainer writing it, fails now, not after the training.
                export: export_to.as_deref().map(trainer::export::write::ExportLock::acquire).transpose()?,
                precision: args.precision.precision,
                condition_photos: args.conditions,
            };
            let summary = commands::train::run(request)?;
            if json {
                writeln!(stdout, "{}", serde_json::to_string_pretty(&summary)?)?;
            } else {
                writeln!(stdout, "{}", human_summary(&summary, &args.out))?;
            }
        }
        Command::Keygen { out, name } => {
            let key = shared::signing::SecretKey::generate(&name)?;
            key.write(&out)?;
            let public = key.public();
            writeln!(
                stdout,
                "wrote {} (secret: keep it on this machine) and its public key:\n{}",
                out.display(),
                public.to_line().trim_end()
            )?;
            writeln!(stdout, "put that line in the edge's --trusted-keys file; key {}", public.fingerprint())?;
        }
        Command::Export { run, out, precision, sign, json } => {
            if let Err(message) = trainer::export::write::check_destination(&out) {
                usage_error("export", message);
            }
            let signing_key = sign.as_deref().map(shared::signing::SecretKey::read).transpose()?;
            let lock = trainer::export::write::ExportLock::acquire(&out)?;
            let to = commands::train::ExportTo { lock: &lock, precision: precision.precision, signing_key: signing_key.as_ref() };
            let summary = commands::export::run(&trainer::run_folder::RunFolder::new(run), &to)?;
            if json {
                writeln!(stdout, "{}", serde_json::to_string_pretty(&summary)?)?;
            } else {
                writeln!(
                    stdout,
                    "exported {} and {} ({} bytes, {})\nparity: {} images, max |diff| {:.2e} (tolerance {}), mean {:.2e}, argmax agreement {:.3}; tract val accuracy {:.4}",
                    summary.onnx,
                    summary.bundle,
                    summary.bundle_bytes,
                    summary.precision,
                    summary.parity_images,
                    summary.parity_max_abs_diff,
                    summary.parity_tolerance,
                    summary.parity_mean_abs_diff,
                    summary.parity_argmax_agreement,
                    summary.tract_val_accuracy
                )?;
            }
        }
        Command::Evaluate(args) => {
            let report =
                trainer::evaluate::evaluate(&args.model, &args.data, (args.unknown_threshold, args.min_confidence), args.conditions)?;
            if let Some(out) = &args.out {
                trainer::evaluate::report::write(&report, out)?;
            }
            if args.json {
                writeln!(stdout, "{}", trainer::evaluate::report::json(&report)?)?;
            } else {
                writeln!(stdout, "{}", trainer::evaluate::report::human(&report))?;
                if let Some(out) = &args.out {
                    writeln!(stdout, "report folder: {} ({})", out.display(), trainer::evaluate::report::FILES.join(", "))?;
                }
            }
        }
        Command::Slim(args) => match &args.run {
            Some(from) => {
                let export_to = args.export_to.clone().unwrap_or_else(|| default_export_path(&args.out));
                let run_folder = trainer::run_folder::RunFolder::new(&args.out);
                if let Err(message) =
                    run_folder.check_new(&args.data, args.resume).and_then(|()| trainer::export::write::check_destination(&export_to))
                {
                    usage_error("slim", message);
                }
                let done = commands::slim::run_from(&args, from, export_to)?;
                if args.json {
                    writeln!(stdout, "{}", serde_json::to_string_pretty(&done)?)?;
                } else {
                    let trunk = trainer::run_folder::RunFolder::new(&args.out).slim_trunk();
                    match &done.slim {
                        Some(report) => writeln!(stdout, "{}", commands::slim::human(report, &trunk))?,
                        None => writeln!(stdout, "kept {} (slimmed before)", trunk.display())?,
                    }
                    writeln!(stdout, "{}", human_summary(&done.run, &args.out))?;
                }
            }
            None => {
                if args.export_to.is_some() {
                    use clap::CommandFactory;
                    Cli::command()
                        .error(
                            clap::error::ErrorKind::ArgumentConflict,
                            "--export-to needs --run (the plain form writes a trunk, not a bundle)",
                        )
                        .exit();
                }
                let report = commands::slim::run(&args)?;
                if args.json {
                    writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
                } else {
                    writeln!(stdout, "{}\n{}", commands::slim::human(&report, &args.out), commands::slim::next_step(&report, &args.out))?;
                }
            }
        },
        Command::Inspect { bundle, json } => writeln!(stdout, "{}", commands::inspect::run(&bundle, json)?)?,
    }
    Ok(())
}

/// Bad usage found once the data was read (ripgrep's rule: bad usage of any kind exits 2):
/// a class not among the folders, more folds than pictures, a test share of no photo.
fn is_usage(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.is::<shared::usage::UsageError>()
            || matches!(cause.downcast_ref::<trainer::data::scan::DataError>(), Some(trainer::data::scan::DataError::UnknownClass { .. }))
    })
}

/// Bad usage: clap's message and exit 2.
fn usage_error(subcommand: &str, message: String) -> ! {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    cli.build();
    // Its own usage line (`trainer train [OPTIONS] --data ...`), not the program's.
    let mut command = cli.find_subcommand(subcommand).cloned().unwrap_or(cli);
    command.error(clap::error::ErrorKind::ValueValidation, message).exit()
}

/// Where a run's bundle goes without `--export-to`: `models/<the run folder's name>`.
fn default_export_path(run: &std::path::Path) -> PathBuf {
    PathBuf::from("models").join(run.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "model".into()))
}

fn human_summary(s: &trainer::report::summary::RunSummary, out: &std::path::Path) -> String {
    let mut text = format!(
        "trained {} head on {} classes ({}), {} epochs, best epoch {} ({})\nvalidation: {} images, accuracy {:.4}, loss {:.4}\n",
        s.head,
        s.classes.len(),
        s.classes.join(", "),
        s.epochs_run,
        s.best_epoch,
        s.best_stage,
        s.val.images,
        s.val.accuracy,
        s.val.loss
    );
    if s.refit {
        text += "(the exported head was refitted on training + validation photos: cross-validation is the held-out figure)\n";
    }
    if let Some(cv) = &s.cross_validation {
        text += &format!(
            "cross-validation: {} folds, accuracy {:.4} +- {:.4}; temperature {:.3} (ECE {:.4} -> {:.4})\n",
            cv.folds, cv.mean_accuracy, cv.spread, cv.temperature, cv.ece_before, cv.ece_after
        );
    }
    if let Some(t) = &s.test {
        text += &format!("test: {} images, accuracy {:.4}\n", t.images, t.accuracy);
    }
    if !s.conditions.is_empty() {
        let seen = if s.refit { ", photos the refitted head has seen: robustness, not generalisation" } else { "" };
        text += &format!("field conditions (validation photos{seen}):\n{}\n", trainer::evaluate::conditions::table(&s.conditions));
    }
    let phases: Vec<String> = s.seconds.iter().map(|(n, t)| format!("{n} {t:.1}s")).collect();
    text += &format!("time: {:.1}s ({}) on {} {}\n", s.total_seconds, phases.join(", "), s.backend, s.device);
    text += &format!("run folder: {} ({})", out.display(), trainer::run_folder::RunFolder::reports());
    if let Some(e) = &s.export {
        text += &format!(
            "\nexported: {} ({} bytes); parity on {} images: max |diff| {:.2e} (tolerance {}), tract val accuracy {:.4}; unknown above {}",
            e.bundle,
            e.bundle_bytes,
            e.parity_images,
            e.parity_max_abs_diff,
            e.parity_tolerance,
            e.tract_val_accuracy,
            e.unknown_threshold.map_or("(no open-set output)".into(), |t| format!("{t:.4}"))
        );
    }
    text
}
