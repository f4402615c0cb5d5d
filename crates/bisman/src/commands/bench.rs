//! `bisman bench`: the spec's "expected improvements" table, measured on
//! generated data before and after P3, with peers side by side. Prints the
//! Markdown report and writes `bench.md`, `bench.json` and `bench.svg`.

use std::path::PathBuf;

use anyhow::Context;
use bisman_bench::{BenchOptions, Rows};

use crate::cli::{Bar, DatabaseArgs};

/// Options of `bisman bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Messages in the generated data sets: 1M, 10M, 250k, 20000, …
    /// (default 1M; 20k with --quick). About 5 read receipts per message.
    #[arg(long, value_name = "N")]
    pub rows: Option<Rows>,
    /// A small data set and a few iterations of everything (for CI).
    #[arg(long)]
    pub quick: bool,
    /// Folder for bench.md, bench.json and bench.svg.
    #[arg(long, value_name = "DIR", default_value = "bench-out")]
    pub out: PathBuf,
    /// Redis for the cache layers and the tower-sessions peer; those rows
    /// are skipped without it.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Rebuild the data sets even when they are current.
    #[arg(long)]
    pub rebuild: bool,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The server the data sets go on (as databases `bisman_bench_*` of
    /// their own, next to this one).
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// The command line as typed, for the report (environment not included).
fn command_line() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .and_then(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "bisman".into());
    std::iter::once(program)
        .chain(args.map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a
            }
        }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = args.db.open().await?;
    let opts = BenchOptions {
        rows: args.rows.unwrap_or(if args.quick {
            Rows::QUICK
        } else {
            Rows::DEFAULT
        }),
        quick: args.quick,
        out: args.out.clone(),
        database_url: db.url.clone(),
        redis_url: args.redis_url.clone(),
        rebuild: args.rebuild,
        seed: args.seed,
        command: command_line(),
    };
    let bar = Bar::new();
    let result = bisman_bench::run(&opts, &bar).await;
    db.close().await?;
    let report = result.context("benchmark")?;
    print!("{}", report.markdown());
    if !report.peers_built {
        eprintln!("peers skipped: {}", bisman_bench::peers::NOT_BUILT);
    }
    eprintln!(
        "wrote {}, {} and {}",
        opts.out.join("bench.md").display(),
        opts.out.join("bench.json").display(),
        opts.out.join("bench.svg").display()
    );
    Ok(())
}
