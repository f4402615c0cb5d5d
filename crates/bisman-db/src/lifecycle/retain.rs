//! `bisman partitions retain`: months older than the cut-off archived (when
//! their newest archive does not hold exactly their rows), then detached and
//! dropped, children first.
//!
//! The drop is the SQL of `drop_old_partitions` (`bisman_retire_months`,
//! migration `016`), in one transaction: every member month (the month and
//! the same month of the tables whose foreign keys point into it) locked
//! against writes first, then its content checksummed and compared with its
//! archive's, then detached and dropped. A month written to after its
//! archive (a read receipt on an old message, a usage event up to 400 days
//! late) is archived again and the drop tried again; a month that keeps
//! changing is kept and the line says so. Nothing unarchived is dropped
//! unless the caller passes `no_archive`.
//!
//! Rows that arrive for a month already dropped wait in the default
//! partition until the next run, which makes that month again with them and
//! archives and drops it like any old month: the default partition stays
//! small (every month's ATTACH scans it) and the late rows end in an archive.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use sqlx::PgPool;

use super::archive::{self, Archival, MonthGroup};
use super::premake;
use super::registry::ManagedTable;
use super::{steps, LifecycleError, LockPolicy, Progress};
use crate::partitions::Month;

/// Archive-and-drop rounds for a month that keeps changing.
const ROUNDS: usize = 3;

/// What retain should do.
#[derive(Debug, Clone)]
pub struct RetainOptions {
    /// Months kept before the current one (the registry's `past_months` when `None`).
    pub keep_months: Option<i32>,
    /// Where archives go.
    pub archive_dir: PathBuf,
    /// Drop without archiving (explicit operator choice).
    pub no_archive: bool,
    /// Report, change nothing.
    pub dry_run: bool,
    /// Lock timeout, retries and statement limit.
    pub locks: LockPolicy,
}

/// What happened to one month of one table.
#[derive(Debug, Clone, Serialize)]
pub struct RetainLine {
    /// The managed table.
    pub table: String,
    /// The partition.
    pub partition: String,
    /// `dropped`, `skipped`, `would drop`, `would archive and drop`.
    pub action: String,
    /// Why.
    pub reason: String,
    /// Manifest written on the way, if any.
    pub manifest: Option<PathBuf>,
}

/// One row of `bisman_retire_months`.
#[derive(Debug, sqlx::FromRow)]
struct Retired {
    partition_name: String,
    action: String,
    reason: String,
    outcome: String,
}

/// Retires old months of `roots`.
#[tracing::instrument(skip_all)]
pub async fn retain(
    pool: &PgPool,
    roots: &[ManagedTable],
    opts: &RetainOptions,
    progress: &dyn Progress,
) -> Result<Vec<RetainLine>, LifecycleError> {
    let mut out = Vec::new();
    for root in roots {
        let keep = opts.keep_months.unwrap_or(root.past_months);
        let cutoff = archive::cutoff(keep)?;
        if let Some(reason) = migration_blocker(pool, root).await? {
            for group in archive::old_months(pool, root, keep).await? {
                out.extend(group.members.iter().map(|m| RetainLine {
                    table: m.table.base_table.clone(),
                    partition: m.partition.clone(),
                    action: "skipped".into(),
                    reason: reason.clone(),
                    manifest: None,
                }));
            }
            continue;
        }
        let late = late_months(pool, root, cutoff, opts.locks).await?;
        if opts.dry_run {
            out.extend(late.iter().map(|(m, rows)| RetainLine {
                table: root.base_table.clone(),
                partition: m.partition_name(&root.base_table),
                action: "would archive late rows".into(),
                reason: format!(
                    "{rows} rows in the default partition for this month, which has no partition: \
                     it is made again with them, archived and dropped"
                ),
                manifest: None,
            }));
        } else {
            for &m in late.keys() {
                premake::premake_month(pool, root, m, opts.locks).await?;
            }
        }
        for group in archive::old_months(pool, root, keep).await? {
            let mut lines = retire_group(pool, root, &group, opts, progress).await?;
            if let Some(rows) = late.get(&group.month) {
                if let Some(line) = lines.last_mut() {
                    line.reason.push_str(&format!(
                        "; made again first for {rows} rows that arrived after it was dropped"
                    ));
                }
            }
            out.extend(lines);
        }
    }
    Ok(out)
}

/// Why the lifecycle leaves `root` alone now (a migration in progress).
async fn migration_blocker(
    pool: &PgPool,
    root: &ManagedTable,
) -> Result<Option<String>, LifecycleError> {
    Ok(sqlx::query_scalar("SELECT bisman_migration_blocker($1)")
        .bind(&root.base_table)
        .fetch_one(pool)
        .await?)
}

/// Months older than the cut-off whose rows wait in the default partition.
async fn late_months(
    pool: &PgPool,
    root: &ManagedTable,
    cutoff: chrono::NaiveDateTime,
    locks: LockPolicy,
) -> Result<BTreeMap<Month, i64>, LifecycleError> {
    // Reads the whole default partition: the maintenance statement limit.
    let mut tx = locks.begin(pool).await?;
    sqlx::query("SET LOCAL lock_timeout = 0")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(chrono::NaiveDate, i64)> =
        sqlx::query_as("SELECT month, row_count FROM bisman_late_months($1, $2)")
            .bind(&root.base_table)
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|(d, n)| {
            (
                Month::containing_naive(d.and_time(chrono::NaiveTime::MIN)),
                n,
            )
        })
        .collect())
}

async fn retire_group(
    pool: &PgPool,
    root: &ManagedTable,
    group: &MonthGroup,
    opts: &RetainOptions,
    progress: &dyn Progress,
) -> Result<Vec<RetainLine>, LifecycleError> {
    let n = group.members.len();
    let mut manifests: Vec<Option<PathBuf>> = vec![None; n];
    let mut again: Vec<Option<String>> = vec![None; n];
    for round in 1..=ROUNDS {
        let mut ready = true;
        if !opts.no_archive {
            for (i, m) in group.members.iter().enumerate() {
                let (archival, _) = archive::ensure_archived(
                    pool,
                    m,
                    &opts.archive_dir,
                    opts.locks,
                    opts.dry_run,
                    progress,
                )
                .await?;
                match archival {
                    Archival::Made { archived, replaced } => {
                        manifests[i] = Some(archived.manifest_path.clone());
                        if let Some(f) = replaced {
                            again[i] = Some(format!("archived again: its rows changed since {f}"));
                        } else if round > 1 {
                            again[i] = Some(
                                "archived again: rows arrived while it was being retired".into(),
                            );
                        }
                    }
                    Archival::Wanted { .. } => ready = false,
                    Archival::Empty | Archival::Current(_) => {}
                }
            }
        }
        if opts.dry_run {
            let (action, reason) = match (opts.no_archive, ready) {
                (true, _) => ("would drop", "without archive, as asked"),
                (false, true) => ("would drop", "empty or archived and verified"),
                (false, false) => (
                    "would archive and drop",
                    "not archived yet, or changed since its archive",
                ),
            };
            return Ok(group
                .members
                .iter()
                .map(|m| RetainLine {
                    table: m.table.base_table.clone(),
                    partition: m.partition.clone(),
                    action: action.into(),
                    reason: reason.into(),
                    manifest: None,
                })
                .collect());
        }
        let mut conn = pool.acquire().await?;
        steps::reach(&mut conn, steps::RETAIN_ARCHIVED).await?;
        drop(conn);
        let rows = retire(pool, root, group.month, opts).await?;
        let changed = rows
            .iter()
            .any(|r| r.outcome == "changed" || r.outcome == "not_archived");
        if changed && !opts.no_archive && round < ROUNDS {
            // Written to between its archive and the lock: archive it again.
            continue;
        }
        return Ok(group
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let r = rows.iter().find(|r| r.partition_name == m.partition);
                let mut reason = r.map(|r| r.reason.clone()).unwrap_or_else(|| {
                    "no longer attached (retired or restored by another run)".into()
                });
                if let Some(a) = &again[i] {
                    reason = format!("{reason}; {a}");
                }
                if changed && !opts.no_archive {
                    reason.push_str(&format!(
                        "; it kept changing while being archived ({ROUNDS} rounds): run retain again once writes to it stop"
                    ));
                }
                RetainLine {
                    table: m.table.base_table.clone(),
                    partition: m.partition.clone(),
                    action: r.map(|r| r.action.clone()).unwrap_or_else(|| "skipped".into()),
                    reason,
                    manifest: manifests[i].clone(),
                }
            })
            .collect());
    }
    unreachable!("the last round returns")
}

/// Locks, checks and drops the month (`bisman_retire_months`), in one
/// transaction; the SQL retries its own locks.
async fn retire(
    pool: &PgPool,
    root: &ManagedTable,
    month: Month,
    opts: &RetainOptions,
) -> Result<Vec<Retired>, LifecycleError> {
    let mut tx = opts.locks.begin(pool).await?;
    let rows: Vec<Retired> = sqlx::query_as(
        "SELECT partition_name, action, reason, outcome FROM bisman_retire_months($1, ARRAY[$2::date], $3)",
    )
    .bind(&root.base_table)
    .bind(month.first_day())
    .bind(opts.no_archive)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}
