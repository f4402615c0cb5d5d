//! `bisman partitions migrate` / `unswap`: a live flat table turned into its
//! partitioned twin without losing or doubling a row, and back.
//!
//! pgslice's plan (prep, fill in key order, swap in one short transaction,
//! unswap) with what its users miss:
//!
//! - a change log: a row trigger on the live table records the key of every
//!   insert, update and delete from before the first batch until the swap;
//!   replaying a key deletes it from the copy and copies it again, so rows
//!   written, changed or removed during the fill — anywhere in key order, as
//!   with text ids — all end up right ([`sync`]);
//! - a checkpoint row (`bisman_table_migrations`) written in the same
//!   transaction as each batch, so a killed fill resumes where it stopped
//!   and never copies a row twice;
//! - a count and checksum of both tables on one snapshot before the swap, and
//!   under the swap's lock a count of both and a checksum of every key
//!   replayed since: any difference aborts the swap;
//! - the swap hands over sequences, renames indexes so the spec's names end
//!   up on the live table, moves triggers and grants, and re-points the
//!   foreign keys that point into the table (pgslice's #42) ([`swap`]);
//! - after the swap the log runs the other way, so `unswap` brings the flat
//!   table back with every row written since.

mod fill;
mod shape;
mod swap;
mod sync;

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;

use self::shape::Shape;
pub use self::swap::SwapReport;
use super::{steps, LifecycleError, LockPolicy, Progress};

/// Marks a step between transactions.
async fn step(pool: &PgPool, name: &str) -> Result<(), LifecycleError> {
    let mut conn = pool.acquire().await?;
    steps::reach(&mut conn, name).await?;
    Ok(())
}

/// What `migrate` should do.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Rows per fill batch (one transaction each, checkpoint included).
    pub batch_size: i64,
    /// Pause between batches, to leave I/O to the application.
    pub sleep: Duration,
    /// Swap once the copy is verified (otherwise stop after verifying).
    pub swap: bool,
    /// Report the plan, change nothing.
    pub dry_run: bool,
    /// Lock timeout and retries for the trigger install and the swap.
    pub locks: LockPolicy,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self {
            batch_size: 20_000,
            sleep: Duration::ZERO,
            swap: true,
            dry_run: false,
            locks: LockPolicy::default(),
        }
    }
}

/// What `migrate` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MigrateReport {
    /// The base table.
    pub table: String,
    /// The state it ends in (`filling`, `filled`, `swapped`, …).
    pub state: String,
    /// What the operator should know (plan lines in a dry run).
    pub notes: Vec<String>,
    /// Rows copied by this run's fill.
    pub rows_copied: i64,
    /// Seconds this run's fill took.
    pub fill_seconds: f64,
    /// Longest single fill batch, in milliseconds (it holds only a share
    /// lock on the source: writers are not blocked).
    pub longest_batch_ms: f64,
    /// Logged changes replayed before the swap.
    pub changes_replayed: i64,
    /// Rows counted and checksummed on one snapshot before the swap.
    pub verified_rows: i64,
    /// The swap, when it happened.
    pub swap: Option<SwapReport>,
}

/// Migrates `base` to its partitioned twin (resuming a previous run).
#[tracing::instrument(skip(pool, opts, progress))]
pub async fn migrate(
    pool: &PgPool,
    base: &str,
    opts: &MigrateOptions,
    progress: &dyn Progress,
) -> Result<MigrateReport, LifecycleError> {
    if opts.batch_size < 1 {
        return Err(LifecycleError::Invalid(
            "batch size must be positive".into(),
        ));
    }
    let shape = Shape::load(pool, base).await?;
    let mut report = MigrateReport {
        table: base.to_string(),
        ..Default::default()
    };
    if opts.dry_run {
        report.state = shape.state.clone().unwrap_or_else(|| "not started".into());
        report.notes = shape.plan(pool).await?;
        return Ok(report);
    }
    match shape.state.as_deref() {
        Some("swapped") | Some("finished") => {
            report.state = shape.state.clone().unwrap_or_default();
            report.notes.push(format!(
                "{base} is already the partitioned table; nothing to do"
            ));
            return Ok(report);
        }
        None => shape.prepare(pool, opts.locks).await?,
        Some(state) => progress.note(&format!(
            "{base}: resuming ({state}, checkpoint {})",
            shape.last_key.as_deref().unwrap_or("none")
        )),
    }
    step(pool, steps::MIGRATE_PREPARED).await?;
    let started = Instant::now();
    let filled = fill::fill(pool, &shape, opts, progress).await?;
    report.rows_copied = filled.rows;
    report.longest_batch_ms = filled.longest_batch_ms;
    report.fill_seconds = started.elapsed().as_secs_f64();
    report.changes_replayed =
        sync::catch_up(pool, &shape, opts.batch_size, opts.locks, progress).await?;
    step(pool, steps::MIGRATE_CAUGHT_UP).await?;
    report.verified_rows = sync::verify_snapshot(pool, &shape, opts.locks).await?;
    step(pool, steps::MIGRATE_VERIFIED).await?;
    report.state = "filled".into();
    if opts.swap {
        sync::vacuum_analyze(pool, sync::target(&shape), opts.locks).await?;
        report.swap = Some(swap::swap(pool, &shape, opts.locks).await?);
        report.state = "swapped".into();
    }
    Ok(report)
}

/// Swaps back: the flat table is live again, with every row written since
/// the swap; the partitioned table keeps its rows under its own name.
#[tracing::instrument(skip(pool, locks, progress))]
pub async fn unswap(
    pool: &PgPool,
    base: &str,
    locks: LockPolicy,
    progress: &dyn Progress,
) -> Result<SwapReport, LifecycleError> {
    let shape = Shape::load(pool, base).await?;
    if shape.state.as_deref() != Some("swapped") {
        return Err(LifecycleError::Invalid(format!(
            "{base} is not swapped (state: {}); unswap only undoes `bisman partitions migrate`",
            shape.state.as_deref().unwrap_or("never migrated")
        )));
    }
    sync::catch_up(pool, &shape, 20_000, locks, progress).await?;
    swap::unswap(pool, &shape, locks).await
}

/// Ends the migration of a swapped table: the change log stops (writes no
/// longer pay for it) and `unswap` is no longer possible. The retired flat
/// table is kept; drop it yourself once you no longer want it.
#[tracing::instrument(skip(pool, locks))]
pub async fn finish(
    pool: &PgPool,
    base: &str,
    locks: LockPolicy,
) -> Result<String, LifecycleError> {
    let shape = Shape::load(pool, base).await?;
    if shape.state.as_deref() != Some("swapped") {
        return Err(LifecycleError::Invalid(format!(
            "{base} is not swapped (state: {}); only a swapped table can be finished",
            shape.state.as_deref().unwrap_or("never migrated")
        )));
    }
    swap::finish(pool, &shape, locks).await?;
    Ok(shape.retired.clone())
}
