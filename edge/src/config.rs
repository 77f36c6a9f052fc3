//! `edge run --config FILE`: a TOML file of `run`'s options. Each key is a flag's name without
//! the dashes (`unknown-threshold = 0.3`, `loop = true`); the file's options are put on the
//! command line before the ones typed, so typed flags win (ripgrep's rule for its config file).
//! Every value goes through its flag's own parser, so the file takes exactly what the command
//! line takes, and a mistake is named by file, line and key. The commented default file is made
//! from the same definition, so it cannot drift from the flags.

use std::ffi::OsString;
use std::path::Path;

use clap::{Arg, ArgAction, Command, CommandFactory};
use toml::de::{DeTable, DeValue};

use crate::cli::{Cli, RUN};
use shared::usage::UsageError;

/// Options that are never config keys.
const NOT_KEYS: [&str; 2] = ["config", "help"];

/// The `run` subcommand, built (so its value parsers can be called directly).
fn run_command() -> Command {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand(RUN).expect("edge has a run subcommand").clone()
}

fn keys(run: &Command) -> impl Iterator<Item = (&str, &Arg)> {
    run.get_arguments().filter_map(|a| Some((a.get_long()?, a))).filter(|(long, _)| !NOT_KEYS.contains(long))
}

/// The command line with the file's options inserted right after `run`.
pub fn merge(args: &[OsString], file: &Path) -> Result<Vec<OsString>, UsageError> {
    // `--flag=value` as one word: a value that starts with a dash stays a value.
    let from_file = options_in(file)?.into_iter().map(|o| OsString::from(o.value.map_or(o.flag.clone(), |v| format!("{}={v}", o.flag))));
    let at = args.iter().position(|a| a == RUN).ok_or_else(|| UsageError("--config is an option of `edge run`".into()))?;
    Ok(args[..=at].iter().cloned().chain(from_file).chain(args[at + 1..].iter().cloned()).collect())
}

/// One option from the file: `--flag`, with its value unless it is a switch (`--loop`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub flag: String,
    pub value: Option<String>,
}

/// The file's options, each value checked by its flag's parser.
pub fn options_in(file: &Path) -> Result<Vec<Setting>, UsageError> {
    // A config file is a page of text; a megabyte is already far too much.
    let text =
        shared::read::read_text(file, 1 << 20).map_err(|e| UsageError(format!("{}: cannot read the config file: {e}", file.display())))?;
    let table = DeTable::parse(&text).map_err(|e| UsageError(format!("{}: not valid TOML: {e}", file.display())))?;
    let run = run_command();
    let mut args = Vec::new();
    for (key, value) in table.get_ref() {
        let line = text[..key.span().start].matches('\n').count() + 1;
        let at = |what: String| UsageError(format!("{}:{line}: {what}", file.display()));
        let name: &str = key.get_ref();
        let Some((_, arg)) = keys(&run).find(|(long, _)| *long == name) else {
            let known: Vec<&str> = keys(&run).map(|(long, _)| long).collect();
            return Err(at(format!("unknown key '{name}' (the keys are `edge run`'s flags: {})", known.join(", "))));
        };
        let flag = format!("--{name}");
        match (value.get_ref(), arg.get_action()) {
            (DeValue::Boolean(on), ArgAction::SetTrue) => {
                if *on {
                    args.push(Setting { flag, value: None });
                }
            }
            (_, ArgAction::SetTrue) => return Err(at(format!("{name}: expected true or false"))),
            (value, _) => {
                let text = scalar(value).ok_or_else(|| at(format!("{name}: expected a string or a number")))?;
                // Shown without a password, should a value hold a URL with one.
                let shown = crate::redact::redact(&text);
                check(arg, &flag, &text).map_err(|e| at(format!("{name} = {shown}: {}", clap_message(&e).replace(&text, &shown))))?;
                check_at_start(name, &text).map_err(|e| at(e.0))?;
                if is_relative_path(arg, name, &text) {
                    // As on the command line; but a config file is read where it lies, and a
                    // service starts in /, so the path is likely not where its writer meant.
                    tracing::warn!(
                        "{}:{line}: {name} = {shown} is a relative path: it is read from the folder edge starts in (/ under systemd), \
                         not from the config file's folder",
                        file.display()
                    );
                }
                args.push(Setting { flag, value: Some(text) });
            }
        }
    }
    Ok(args)
}

/// Runs the flag's own parser on one value (a command of that one flag parses it).
fn check(arg: &Arg, flag: &str, value: &str) -> Result<(), clap::Error> {
    Command::new("config").no_binary_name(true).arg(arg.clone()).try_get_matches_from([format!("{flag}={value}")]).map(drop)
}

/// What `edge run` checks when it starts rather than clap (which would echo a URL's password):
/// checked here the same way, so that `config --check` finds what `run` would refuse.
fn check_at_start(key: &str, value: &str) -> Result<(), UsageError> {
    match key {
        "source" => crate::source::check_spec(value),
        "mqtt" => crate::events::mqtt::BrokerUrl::parse(value).map(drop),
        "webhook" => crate::events::webhook::check_url(value),
        _ => Ok(()),
    }
}

/// Whether the value of `arg` (config key `key`) names a file by a relative path: a path
/// option's value, or a `dir:`/`file:` source's.
fn is_relative_path(arg: &Arg, key: &str, value: &str) -> bool {
    let path = match key {
        "source" => match value.strip_prefix("dir:").or_else(|| value.strip_prefix("file:")) {
            Some(path) => path,
            None => return false,
        },
        _ if arg.get_value_hint() == clap::ValueHint::AnyPath => value,
        _ => return false,
    };
    Path::new(path).is_relative()
}

fn scalar(value: &DeValue<'_>) -> Option<String> {
    Some(match value {
        DeValue::String(s) => s.to_string(),
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()?.to_string(),
        DeValue::Float(f) => f.as_str().replace('_', ""),
        _ => return None,
    })
}

/// clap's message without its "error: " prefix and usage footer.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Every `run` option with its help and default, commented out: `edge config --print-default`.
pub fn default_file() -> String {
    let run = run_command();
    let mut out = String::from(
        "# flowercam edge: options for `edge run --config FILE`.\n\
         # Each key is an `edge run` flag without its dashes; flags typed on the command line win.\n\
         # Relative paths are read from the folder edge starts in (/ under systemd): give absolute ones.\n\
         # Uncomment and edit what you need; `edge config --check FILE` checks a file.\n",
    );
    for (name, arg) in keys(&run) {
        out.push('\n');
        let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
        for line in textwrap(&help, 96) {
            out += &format!("# {line}\n");
        }
        let default = arg.get_default_values().first().map(|v| v.to_string_lossy().into_owned());
        out += &match (default, arg.get_action()) {
            (_, ArgAction::SetTrue) => format!("#{name} = false\n"),
            (Some(v), _) if v.parse::<f64>().is_ok() => format!("#{name} = {v}\n"),
            (Some(v), _) => format!("#{name} = {}\n", serde_json::Value::from(v)),
            (None, _) => format!("# {name} = (no default)\n"),
        };
    }
    out
}

fn textwrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn relative_paths_are_told_apart() {
        let run = run_command();
        let arg = |key: &str| keys(&run).find(|(long, _)| *long == key).unwrap().1;
        for (key, value, relative) in [
            ("model", "m.bundle", true),
            ("model", "/var/lib/flowercam/m.bundle", false),
            ("log", "results.log", true),
            ("save-frames", "saved", true),
            ("last-good", "/var/lib/lg.bundle", false),
            ("source", "dir:frames", true),
            ("source", "file:/srv/clip.avi", false),
            ("source", "camera:0", false),
            ("http", "127.0.0.1:8080", false),
        ] {
            assert_eq!(is_relative_path(arg(key), key, value), relative, "{key} = {value}");
        }
    }

    #[test]
    fn file_options_come_before_typed_ones() {
        // (in the order of the keys' names: TOML tables are unordered)
        let (_dir, path) = write("model = \"m.bundle\"\nfps = 2.5\nloop = true\nquiet = false\nhttp = \"127.0.0.1:8080\"\nsmoothing = 3\n");
        let merged = merge(&args(&["edge", "--threads", "2", "run", "--fps", "7"]), &path).unwrap();
        assert_eq!(
            merged,
            args(&[
                "edge",
                "--threads",
                "2",
                "run",
                "--fps=2.5",
                "--http=127.0.0.1:8080",
                "--loop",
                "--model=m.bundle",
                "--smoothing=3",
                "--fps",
                "7"
            ])
        );
        let cli = <Cli as clap::Parser>::try_parse_from(&merged).unwrap();
        let crate::cli::Command::Run(run) = cli.command else { panic!("not run") };
        assert_eq!(run.fps, Some(7.0), "the typed flag wins");
        assert_eq!(run.smoothing, 3);
        assert!(run.looping);
    }

    #[test]
    fn mistakes_are_named_by_line_and_key() {
        let cases = [
            ("model = \"m\"\n\nsmothing = 3\n", "edge.toml:3: unknown key 'smothing'"),
            ("fps = 0\n", "edge.toml:1: fps = 0: "),
            ("min-confidence = 1.5\n", "edge.toml:1: min-confidence = 1.5: "),
            ("loop = \"yes\"\n", "edge.toml:1: loop: expected true or false"),
            ("resolution = [640, 480]\n", "edge.toml:1: resolution: expected a string or a number"),
            ("http = \"localhost\"\n", "edge.toml:1: http = localhost: "),
            ("config = \"other.toml\"\n", "edge.toml:1: unknown key 'config'"),
            ("threads = 0\n", "edge.toml:1: threads = 0: "),
            ("fps = \n", "not valid TOML"),
            ("max-frames = -1\n", "edge.toml:1: max-frames = -1: invalid value '-1'"),
            ("mqtt-topic = \"+\"\n", "edge.toml:1: mqtt-topic = +: "),
            ("mqtt = \"http://x\"\n", "edge.toml:1: --mqtt http://x: "),
            ("mqtt = \"mqtts://u:hunter2@x\"\n", "edge.toml:1: --mqtt mqtts://u:***@x: "),
            ("webhook = \"https://hooks.example/x\"\n", "edge.toml:1: --webhook https://hooks.example/x: "),
            ("source = \"bogus\"\n", "edge.toml:1: --source bogus: unknown source"),
            ("source = \"https://u:hunter2@cam/x\"\n", "edge.toml:1: --source https://u:***@cam/x: https is not supported"),
        ];
        for (text, expected) in cases {
            let (_dir, path) = write(text);
            let e = options_in(&path).unwrap_err().0;
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_default_file_uncommented_is_a_valid_config_with_the_defaults() {
        let text = default_file();
        assert!(text.contains("#unknown-threshold") || text.contains("# unknown-threshold = (no default)"), "{text}");
        // Uncomment every line that has a value: the result must parse, and give clap's defaults.
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix('#').filter(|rest| !rest.starts_with(' ') && rest.contains(" = ")))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(uncommented.contains("smoothing = 5") && uncommented.contains("source = \"camera:0\""), "{uncommented}");
        let (_dir, path) = write(&uncommented);
        let merged = merge(&args(&["edge", "run", "--model", "m.bundle"]), &path).unwrap();
        let cli = <Cli as clap::Parser>::try_parse_from(&merged).unwrap();
        let crate::cli::Command::Run(run) = cli.command else { panic!("not run") };
        assert_eq!((run.smoothing, run.resolution, run.http_max_clients), (5, (640, 480), 4));
    }
}
