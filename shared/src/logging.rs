//! Logging set-up shared by the `trainer` and `edge` commands: `tracing` to standard error,
//! filtered by `RUST_LOG` (default `info`), so standard output stays for results and `--json`.
//! Colour only on a terminal (a file or journald gets no escape codes); `--log-format json` for
//! log shippers (one JSON object a line).

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, message, fields.
    Json,
}

crate::named_enum!(LogFormat, "log format", {
    LogFormat::Text => "text",
    LogFormat::Json => "json",
});

/// The format [`init`] set, for the lines that are not `tracing` events.
static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// A line for the person at the terminal (a table, a summary): as it is, or with `--log-format
/// json` an INFO event, so that every line a log shipper reads is JSON.
pub fn say(line: &str) {
    match FORMAT.get() {
        Some(LogFormat::Json) => tracing::info!("{line}"),
        _ => eprintln!("{line}"),
    }
}

/// The error a command ends with: `error: MESSAGE`, or with `--log-format json` an ERROR event.
pub fn error(message: &str) {
    match FORMAT.get() {
        Some(LogFormat::Json) => tracing::error!("{message}"),
        _ => eprintln!("error: {message}"),
    }
}

pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}
