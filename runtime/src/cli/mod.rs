//! Subcommands of the native binary that are more than a few lines.

pub mod generate;
