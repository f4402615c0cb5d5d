//! `bisman partitions …`: status, premake, archive, retain, restore, verify,
//! migrate and unswap of the monthly partitioned tables.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bisman_db::lifecycle::archive::{self, ArchiveLine};
use bisman_db::lifecycle::premake::{self, PremadeMonth, PremakeOptions};
use bisman_db::lifecycle::retain::{self, RetainLine, RetainOptions};
use bisman_db::lifecycle::status::{self, TableStatus};
use bisman_db::lifecycle::table_migration::{self, MigrateOptions, MigrateReport, SwapReport};
use bisman_db::lifecycle::{registry, restore, LockPolicy};
use serde::Serialize;
use sqlx::PgPool;

use crate::cli::{Bar, DatabaseArgs};

/// Options of `bisman partitions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
    /// The database.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Print JSON instead of a table (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// How long a lock that blocks the application may be waited for, in ms,
    /// per attempt (keep it below the server's deadlock_timeout, 1 s by default).
    #[arg(
        long,
        env = "BISMAN_LOCK_TIMEOUT_MS",
        default_value_t = 250,
        global = true
    )]
    pub lock_timeout_ms: u64,
    /// Attempts when the lock is not granted in time.
    #[arg(
        long,
        env = "BISMAN_LOCK_ATTEMPTS",
        default_value_t = 40,
        global = true
    )]
    pub lock_attempts: u32,
    /// Longest a maintenance statement (an archive's export, a month's
    /// checksum, a restore's load) may run, in ms; 0: no limit.
    #[arg(
        long,
        env = "BISMAN_MAINTENANCE_STATEMENT_TIMEOUT_MS",
        default_value_t = 3_600_000,
        global = true
    )]
    pub statement_timeout_ms: u64,
}

/// Where archives go, for archive and retain.
#[derive(Debug, clap::Args)]
pub struct ArchiveDir {
    /// Folder for archive files (default: `archive` in the data folder, `.bisman/archive`).
    #[arg(long, env = "BISMAN_ARCHIVE_DIR")]
    pub archive_dir: Option<PathBuf>,
}

/// The `partitions` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Partitions of every managed table: bounds, rows, sizes, premade months, default rows, archives.
    Status,
    /// Make the current month and N ahead, each with its indexes before a short attach; move rows waiting in default partitions into them.
    Premake {
        /// Only these tables (default: all).
        #[arg(long = "table")]
        tables: Vec<String>,
        /// Months ahead (default: each table's premake_months).
        #[arg(long)]
        months: Option<i32>,
        /// Show what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export months older than the cut-off to verified, compressed files (drops nothing).
    Archive {
        /// Only these tables (default: all).
        #[arg(long = "table")]
        tables: Vec<String>,
        /// Months kept before the current one (default: each table's past_months).
        #[arg(long)]
        keep_months: Option<i32>,
        #[command(flatten)]
        dir: ArchiveDir,
        /// Show what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Archive (when not yet archived), then detach and drop months older than the cut-off.
    Retain {
        /// Only these tables (default: all).
        #[arg(long = "table")]
        tables: Vec<String>,
        /// Months kept before the current one (default: each table's past_months).
        #[arg(long)]
        keep_months: Option<i32>,
        #[command(flatten)]
        dir: ArchiveDir,
        /// Drop months that are not archived. Their rows are gone for good.
        #[arg(long)]
        no_archive: bool,
        /// Show what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Load archived months back as attached partitions.
    Restore {
        /// Manifests (`*.manifest.json`) or data files (`*.csv.gz`).
        #[arg(required = true)]
        archives: Vec<PathBuf>,
    },
    /// Check archive files against their manifests (checksum, rows), touching no database.
    Verify {
        /// Manifests or data files.
        #[arg(required = true)]
        archives: Vec<PathBuf>,
    },
    /// Turn a live flat table into its partitioned twin: fill, catch up, verify, swap.
    Migrate {
        /// thread_messages, client_usage_events or audit_logs.
        table: String,
        /// Rows per batch.
        #[arg(long, default_value_t = 20_000)]
        batch_size: i64,
        /// Pause between batches, in ms (throttle).
        #[arg(long, default_value_t = 0)]
        sleep_ms: u64,
        /// Stop after the copy is verified; swap on a later run.
        #[arg(long)]
        no_swap: bool,
        /// Show the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// After a swap: stop the change log (no unswap afterwards).
        #[arg(long, conflicts_with_all = ["no_swap", "dry_run"])]
        finish: bool,
    },
    /// Undo a swap: the flat table is live again, with every row written since.
    Unswap {
        /// The table that was migrated.
        table: String,
    },
}

/// Runs the command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Action::Verify { archives } = &args.action {
        return verify(archives, args.json);
    }
    let db = args.db.open().await?;
    let locks = LockPolicy {
        timeout_ms: args.lock_timeout_ms,
        attempts: args.lock_attempts,
        statement_timeout_ms: args.statement_timeout_ms,
    };
    let default_dir = args.db.data_dir.join("archive");
    let result = dispatch(&db.pool, args.action, locks, default_dir, args.json).await;
    db.close().await?;
    result
}

async fn dispatch(
    pool: &PgPool,
    action: Action,
    locks: LockPolicy,
    default_dir: PathBuf,
    json: bool,
) -> anyhow::Result<()> {
    let bar = Bar::new();
    match action {
        Action::Status => {
            let s = status::status(pool)
                .await
                .context("reading partition status")?;
            emit(json, &s[..], print_status)
        }
        Action::Premake {
            tables,
            months,
            dry_run,
        } => {
            let roots = registry::roots(pool, &tables)
                .await
                .context("choosing tables")?;
            let opts = PremakeOptions {
                months,
                dry_run,
                locks,
            };
            let made = premake::premake(pool, &roots, &opts, &bar)
                .await
                .context("premaking partitions")?;
            emit(json, &made[..], print_premade)
        }
        Action::Archive {
            tables,
            keep_months,
            dir,
            dry_run,
        } => {
            let roots = registry::roots(pool, &tables)
                .await
                .context("choosing tables")?;
            let dir = dir.archive_dir.unwrap_or(default_dir);
            let lines = archive::archive(pool, &roots, keep_months, &dir, locks, dry_run, &bar)
                .await
                .context("archiving partitions")?;
            emit(json, &lines[..], print_archived)
        }
        Action::Retain {
            tables,
            keep_months,
            dir,
            no_archive,
            dry_run,
        } => {
            let roots = registry::roots(pool, &tables)
                .await
                .context("choosing tables")?;
            let opts = RetainOptions {
                keep_months,
                archive_dir: dir.archive_dir.unwrap_or(default_dir),
                no_archive,
                dry_run,
                locks,
            };
            let lines = retain::retain(pool, &roots, &opts, &bar)
                .await
                .context("retiring old partitions")?;
            emit(json, &lines[..], print_retained)
        }
        Action::Restore { archives } => {
            let done = restore::restore(pool, &archives, locks, &bar)
                .await
                .context("restoring archives")?;
            emit(json, &done, |d| {
                for r in d {
                    println!(
                        "restored {} ({} rows{})",
                        r.partition,
                        r.rows,
                        if r.rows_from_default > 0 {
                            format!(
                                ", {} more moved in from the default partition",
                                r.rows_from_default
                            )
                        } else {
                            String::new()
                        }
                    );
                }
            })
        }
        Action::Verify { .. } => unreachable!("handled before connecting"),
        Action::Migrate {
            table,
            batch_size,
            sleep_ms,
            no_swap,
            dry_run,
            finish,
        } => {
            if finish {
                let retired = table_migration::finish(pool, &table, locks)
                    .await
                    .with_context(|| format!("finishing the migration of {table}"))?;
                println!("{table}: change log stopped; {retired} is kept (drop it once you no longer need it)");
                return Ok(());
            }
            let opts = MigrateOptions {
                batch_size,
                sleep: Duration::from_millis(sleep_ms),
                swap: !no_swap,
                dry_run,
                locks,
            };
            let report = table_migration::migrate(pool, &table, &opts, &bar)
                .await
                .with_context(|| format!("migrating {table}"))?;
            emit(json, &report, print_migrated)
        }
        Action::Unswap { table } => {
            let report = table_migration::unswap(pool, &table, locks, &bar)
                .await
                .with_context(|| format!("unswapping {table}"))?;
            emit(json, &report, |r| print_swap("unswapped", r))
        }
    }
}

fn verify(paths: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let mut manifests = Vec::new();
    for p in paths {
        let m = restore::verify_archive(p).with_context(|| format!("verifying {}", p.display()))?;
        manifests.push(m);
    }
    emit(json, &manifests, |ms| {
        for m in ms {
            println!(
                "ok  {}  {} rows  sha256 {}",
                m.data_file, m.row_count, m.sha256
            );
        }
    })
}

fn emit<T: Serialize + ?Sized>(
    json: bool,
    value: &T,
    human: impl FnOnce(&T),
) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).context("writing JSON")?
        );
    } else {
        human(value);
    }
    Ok(())
}

fn size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.0} {}", UNITS[u])
}

fn print_status(tables: &[TableStatus]) {
    for t in tables {
        println!(
            "{}  (partitioned table {}{}; live table is {}{})",
            t.table.base_table,
            t.table.parent_table,
            t.table
                .follows
                .as_ref()
                .map(|f| format!(", follows {f}"))
                .unwrap_or_default(),
            if t.live_is_partitioned {
                "partitioned"
            } else {
                "flat"
            },
            t.migration_state
                .as_ref()
                .map(|s| format!(", migration {s}"))
                .unwrap_or_default(),
        );
        println!(
            "  premade months: {}   rows in default partition: {}   archives: {}",
            t.premade_months,
            t.default_rows,
            t.archives.len()
        );
        for d in &t.default_months {
            let what = match d.kind.as_str() {
                "ahead" => "premake moves them into their month",
                "late" => "late rows of a dropped month: the next retain archives them",
                _ => "a past month without a partition: retain archives them once it is past the cut-off",
            };
            println!(
                "  WARNING: {} rows of {} wait in the default partition ({what})",
                d.rows,
                d.month.format("%Y-%m")
            );
        }
        for d in &t.detached_months {
            println!(
                "  WARNING: {} is a month table that is not attached{} ({} rows est.): premake attaches it",
                d.name,
                if d.detach_pending {
                    " (detach pending)"
                } else {
                    ""
                },
                d.row_estimate
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "?".into())
            );
        }
        for c in &t.changed_since_archive {
            println!(
                "  {} changed since its archive {} ({} rows then, {} now): {}",
                c.partition, c.archive, c.archived_rows, c.rows_now, c.note
            );
        }
        println!(
            "  {:<36} {:<11} {:<11} {:>12} {:>9}",
            "partition", "from", "to", "rows (est.)", "size"
        );
        for p in &t.partitions {
            let day = |d: Option<_>| {
                d.map(|d: sqlx::types::chrono::NaiveDateTime| d.date().to_string())
                    .unwrap_or_else(|| "default".into())
            };
            println!(
                "  {:<36} {:<11} {:<11} {:>12} {:>9}",
                p.name,
                day(p.range_start),
                if p.is_default {
                    String::new()
                } else {
                    day(p.range_end)
                },
                p.row_estimate
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "?".into()),
                size(p.bytes)
            );
        }
        for a in &t.archives {
            println!(
                "  archive {} ({} rows, {}{})",
                a.file_name,
                a.row_count,
                if a.verified_at.is_some() {
                    "verified"
                } else {
                    "NOT verified"
                },
                if a.dropped_at.is_some() {
                    ", partition dropped"
                } else {
                    ""
                }
            );
        }
        println!();
    }
}

fn print_premade(lines: &[PremadeMonth]) {
    let new: Vec<&PremadeMonth> = lines.iter().filter(|l| l.created).collect();
    for l in &new {
        println!(
            "created {} ({} rows moved from the default partition)",
            l.partition_name, l.rows_moved
        );
    }
    println!("{} months checked, {} created", lines.len(), new.len());
}

fn print_archived(lines: &[ArchiveLine]) {
    for l in lines {
        println!(
            "{:<18} {:<36} {:>10} rows{}{}",
            l.action,
            l.partition,
            l.rows,
            l.manifest
                .as_ref()
                .map(|m| format!("  {}", m.display()))
                .unwrap_or_default(),
            l.reason
                .as_ref()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default()
        );
    }
    if lines.is_empty() {
        println!("no month is older than the cut-off");
    }
}

fn print_retained(lines: &[RetainLine]) {
    for l in lines {
        println!("{:<22} {:<36} {}", l.action, l.partition, l.reason);
    }
    if lines.is_empty() {
        println!("no month is older than the cut-off");
    }
}

fn print_migrated(r: &MigrateReport) {
    for n in &r.notes {
        println!("{n}");
    }
    println!(
        "{}: {} — {} rows copied in {:.1} s ({:.0} rows/s, longest batch {:.0} ms), {} changes replayed, {} rows verified",
        r.table,
        r.state,
        r.rows_copied,
        r.fill_seconds,
        if r.fill_seconds > 0.0 { r.rows_copied as f64 / r.fill_seconds } else { 0.0 },
        r.longest_batch_ms,
        r.changes_replayed,
        r.verified_rows
    );
    if let Some(s) = &r.swap {
        print_swap("swapped", s);
    }
}

fn print_swap(what: &str, s: &SwapReport) {
    println!(
        "{what}: {} rows; exclusive lock held {:.0} ms (waited {:.0} ms); {} changes replayed under it",
        s.rows, s.lock_held_ms, s.lock_wait_ms, s.changes_replayed_under_lock
    );
    for i in &s.indexes_renamed {
        println!("  index {i}");
    }
    for f in &s.foreign_keys_repointed {
        println!("  foreign key {f} re-pointed");
    }
    for f in &s.foreign_keys_left {
        println!("  WARNING: foreign key {f} has no unique index to point at on the new table; left on the old one");
    }
    for q in &s.sequences {
        println!("  sequence {q} handed over");
    }
    for t in &s.triggers_moved {
        println!("  trigger {t} moved");
    }
}
