//! Logging set-up shared by the `trainer` and `edge` commands: `tracing` to standard error,
//! filtered by `RUST_LOG` (default `info`), so standard output stays for results and `--json`.

pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
