//! The `bisman` command line.
//!
//! - [`cli`]: argument parsing, logging, and the options every command shares.
//! - [`commands`]: one module per subcommand, each with its `Args` and `run`.

pub mod cli;
pub mod commands;
