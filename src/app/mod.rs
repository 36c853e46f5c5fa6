//! The `rsstyle` command-line tool's subcommands.

pub mod bench;
pub mod capture;
pub mod convert;
pub mod live;
pub mod models;
