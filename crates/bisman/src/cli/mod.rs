//! Argument parsing and dispatch.

mod database;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use database::{Database, DatabaseArgs};
pub use progress::Bar;

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
    Serve(Box<commands::serve::Args>),
    /// Apply the embedded SQL migrations, or show their status.
    Migrate(commands::migrate::Args),
    /// Monthly partitions: status, premake, archive, retain, restore, migrate, unswap.
    Partitions(commands::partitions::Args),
    /// Move the JSONB read receipts and reactions into tables, online; verify.
    Normalize(commands::normalize::Args),
    /// Measure the spec's performance table before and after P3, with peers.
    Bench(Box<commands::bench::Args>),
    /// Cache statistics (spec §10's keyspace hits and misses, per-namespace
    /// counters of running services) and hand-made invalidations (spec §4).
    Cache(Box<commands::cache::Args>),
    /// Load the service (N instances, the ERP's request mix, revocations
    /// throughout) and report throughput, latency, errors and memory.
    Loadtest(Box<commands::loadtest::Args>),
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
            Command::Serve(args) => commands::serve::run(*args).await,
            Command::Migrate(args) => commands::migrate::run(args).await,
            Command::Partitions(args) => commands::partitions::run(args).await,
            Command::Normalize(args) => commands::normalize::run(args).await,
            Command::Bench(args) => commands::bench::run(*args).await,
            Command::Cache(args) => commands::cache::run(*args).await,
            Command::Loadtest(args) => commands::loadtest::run(*args).await,
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
