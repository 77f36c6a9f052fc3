//! One module per `trainer` subcommand.

pub mod export;
pub mod inspect;
pub mod slim;
pub mod train;
