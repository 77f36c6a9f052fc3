//! Bad usage found after clap parsed the command line (a config file's key, an address that
//! needs a token): the program says why and exits 2, as for any other bad usage.

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
