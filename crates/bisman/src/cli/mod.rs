//! Argument parsing and dispatch.

mod database;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use database::{Database, DatabaseArgs};

use crate::commands;

/// Bisman: the scaling and performance layer of the BISMAN ERP.
#[derive(Debug, Parser)]
#[command(name = "bisman", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `bisman=debug`.
    #[arg(long, env = "BISMAN_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "BISMAN_LOG_JSON", global = true)]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (with its built-in maintenance).
    Serve(commands::serve::Args),
    /// Apply the embedded SQL migrations, or show their status.
    Migrate(commands::migrate::Args),
}

/// Parses the command line, runs the command, and maps errors to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Migrate(args) => commands::migrate::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
