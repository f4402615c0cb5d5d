//! `bisman normalize reads|reactions|verify|unmirror`: the JSONB read
//! receipts and reactions moved into tables while the ERP keeps writing.

use anyhow::Context;
use bisman_db::lifecycle::LockPolicy;
use bisman_db::normalize::{self, Kind, NormalizeOptions, VerifyReport};
use sqlx::PgPool;

use crate::cli::{Bar, DatabaseArgs};

/// Options of `bisman normalize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
    /// The database.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Options of a backfill.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Messages per batch (each holds its messages' rows until it commits).
    #[arg(long, default_value_t = 1_000)]
    pub batch_size: i32,
    /// Start from the first message instead of the checkpoint.
    #[arg(long)]
    pub restart: bool,
}

/// The `normalize` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// "readBy" into message_reads (mirror trigger + batched, resumable backfill).
    Reads(RunArgs),
    /// reactions into message_reactions (mirror trigger + batched, resumable backfill).
    Reactions(RunArgs),
    /// Compare JSONB and tables; exits 1 when they differ.
    Verify {
        /// reads or reactions (default: both).
        kind: Option<String>,
        /// Messages per batch.
        #[arg(long, default_value_t = 10_000)]
        batch_size: i32,
        /// Differences to list.
        #[arg(long, default_value_t = 20)]
        sample: usize,
    },
    /// Stop mirroring JSONB writes (once the application writes the tables itself).
    Unmirror {
        /// reads or reactions.
        kind: String,
    },
}

/// Runs the command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = args.db.open().await?;
    let result = dispatch(&db.pool, args.action, args.json).await;
    db.close().await?;
    result
}

async fn dispatch(pool: &PgPool, action: Action, json: bool) -> anyhow::Result<()> {
    let bar = Bar::new();
    match action {
        Action::Reads(a) => backfill(pool, Kind::Reads, a, json, &bar).await,
        Action::Reactions(a) => backfill(pool, Kind::Reactions, a, json, &bar).await,
        Action::Verify {
            kind,
            batch_size,
            sample,
        } => {
            let kinds = match kind {
                Some(k) => vec![k.parse::<Kind>()?],
                None => Kind::ALL.to_vec(),
            };
            let mut reports = Vec::new();
            for k in kinds {
                reports.push(
                    normalize::verify(pool, k, batch_size, sample, &bar)
                        .await
                        .with_context(|| format!("verifying {k}"))?,
                );
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                reports.iter().for_each(print_verify);
            }
            if reports.iter().all(VerifyReport::is_clean) {
                Ok(())
            } else {
                anyhow::bail!("JSONB and tables differ")
            }
        }
        Action::Unmirror { kind } => {
            let k: Kind = kind.parse()?;
            normalize::unmirror(pool, k, LockPolicy::default())
                .await
                .context("removing the mirror trigger")?;
            println!("{k}: JSONB writes are no longer mirrored into the table");
            Ok(())
        }
    }
}

async fn backfill(
    pool: &PgPool,
    kind: Kind,
    a: RunArgs,
    json: bool,
    bar: &Bar,
) -> anyhow::Result<()> {
    let opts = NormalizeOptions {
        batch_size: a.batch_size,
        restart: a.restart,
        locks: LockPolicy::default(),
    };
    let r = normalize::normalize(pool, kind, &opts, bar)
        .await
        .with_context(|| format!("normalizing {kind}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{kind}: {} messages scanned{}, {} entries, {} rows inserted, {} already present, {} malformed (quarantined); new JSONB writes are mirrored",
            r.messages_scanned,
            r.resumed_after.as_ref().map(|a| format!(" after {a}")).unwrap_or_default(),
            r.entries_found,
            r.rows_inserted,
            r.already_present,
            r.malformed_entries
        );
    }
    Ok(())
}

fn print_verify(r: &VerifyReport) {
    let kind = r.kind.map(Kind::as_str).unwrap_or("?");
    println!(
        "{kind}: {} messages checked; {} valid JSONB entries missing from the table, {} rows not in JSONB, {} entries in quarantine",
        r.messages_checked, r.missing_in_table, r.extra_in_table, r.quarantined
    );
    for d in &r.samples {
        println!("  {} {}: {}", d.message_id, d.detail, d.problem);
    }
}
