//! The `rsstyle` command-line tool's subcommands.

pub mod bench;
pub mod convert;
