//! `bisman partitions retain`: months older than the cut-off archived (when
//! they are not already), then detached and dropped, children first.
//!
//! A month is dropped only when every member (the month and the same month
//! of the tables whose foreign keys point into it) is empty or has a
//! verified archive whose row count still matches — checked by the SQL
//! `bisman_drop_blocker` under a lock that keeps rows from arriving between
//! the check and the drop — unless the caller passes `no_archive`.
//!
//! `DETACH … CONCURRENTLY` cannot run in a transaction block and PostgreSQL
//! refuses it while the table has a default partition (every table premade by
//! bisman has one), so it is used only when the parent has none; otherwise a
//! plain `DETACH` under a short `lock_timeout`, retried, in one transaction
//! with the drop.

use std::path::PathBuf;

use serde::Serialize;
use sqlx::{Acquire, PgConnection, PgPool};

use super::archive::{self, Member, MonthGroup};
use super::ident::quote;
use super::registry::{self, ManagedTable};
use super::{LifecycleError, LockPolicy, Progress};

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
    /// Lock timeout and retries for DETACH.
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
        for group in archive::old_months(pool, root, keep).await? {
            out.extend(retire_group(pool, &group, opts, progress).await?);
        }
    }
    Ok(out)
}

async fn retire_group(
    pool: &PgPool,
    group: &MonthGroup,
    opts: &RetainOptions,
    progress: &dyn Progress,
) -> Result<Vec<RetainLine>, LifecycleError> {
    let mut manifests = Vec::new();
    let mut ready = true;
    for m in &group.members {
        if opts.no_archive {
            manifests.push(None);
            continue;
        }
        let (line, ok) =
            archive::ensure_archived(pool, m, &opts.archive_dir, opts.dry_run, progress).await?;
        ready &= ok;
        manifests.push(line.manifest);
    }
    let lines = |action: &str, reason: &str| -> Vec<RetainLine> {
        group
            .members
            .iter()
            .zip(&manifests)
            .map(|(m, manifest)| RetainLine {
                table: m.table.base_table.clone(),
                partition: m.partition.clone(),
                action: action.into(),
                reason: reason.into(),
                manifest: manifest.clone(),
            })
            .collect()
    };
    if opts.dry_run {
        let (action, reason) = match (opts.no_archive, ready) {
            (true, _) => ("would drop", "without archive, as asked"),
            (false, true) => ("would drop", "empty or archived and verified"),
            (false, false) => ("would archive and drop", "not archived yet"),
        };
        return Ok(lines(action, reason));
    }
    let concurrent = can_detach_concurrently(pool, group).await?;
    let outcome = if concurrent {
        drop_concurrently(pool, group, opts).await?
    } else {
        opts.locks
            .retry(&format!("retiring {}", group.month), || {
                drop_in_one_transaction(pool, group, opts)
            })
            .await?
    };
    Ok(match outcome {
        Ok(()) => lines(
            "dropped",
            if opts.no_archive {
                "dropped without archive, as asked"
            } else {
                "archived and verified (or empty)"
            },
        ),
        Err(reason) => lines("skipped", &reason),
    })
}

/// Whether no member's parent has a default partition.
async fn can_detach_concurrently(
    pool: &PgPool,
    group: &MonthGroup,
) -> Result<bool, LifecycleError> {
    let mut conn = pool.acquire().await?;
    for m in &group.members {
        if registry::default_partition(&mut conn, &m.table.parent_table)
            .await?
            .is_some()
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Why `m` may not be dropped, or `None`.
async fn blocker(conn: &mut PgConnection, m: &Member) -> Result<Option<String>, LifecycleError> {
    Ok(
        sqlx::query_scalar("SELECT bisman_drop_blocker(bisman_managed_table($1, true), $2)")
            .bind(&m.table.base_table)
            .bind(&m.partition)
            .fetch_one(conn)
            .await?,
    )
}

async fn first_blocker(
    conn: &mut PgConnection,
    group: &MonthGroup,
) -> Result<Option<String>, LifecycleError> {
    for m in &group.members {
        if let Some(reason) = blocker(conn, m).await? {
            return Ok(Some(format!("{}: {reason}", m.partition)));
        }
    }
    Ok(None)
}

async fn drop_member(conn: &mut PgConnection, m: &Member) -> Result<(), LifecycleError> {
    sqlx::query(&format!("DROP TABLE {}", quote(&m.partition)))
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE bisman_partition_archives SET dropped_at = now()
         WHERE base_table = $1 AND partition_name = $2 AND dropped_at IS NULL",
    )
    .bind(&m.table.base_table)
    .bind(&m.partition)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks the month's partitions against writes, checks, detaches and drops,
/// all or nothing. The inner result is `Err(reason)` when the month is kept.
async fn drop_in_one_transaction(
    pool: &PgPool,
    group: &MonthGroup,
    opts: &RetainOptions,
) -> Result<Result<(), String>, LifecycleError> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    opts.locks.apply(&mut tx).await?;
    for m in &group.members {
        sqlx::query(&format!("LOCK TABLE {} IN SHARE MODE", quote(&m.partition)))
            .execute(&mut *tx)
            .await?;
    }
    if !opts.no_archive {
        if let Some(reason) = first_blocker(&mut tx, group).await? {
            return Ok(Err(reason));
        }
    }
    for m in &group.members {
        sqlx::query(&format!(
            "ALTER TABLE {} DETACH PARTITION {}",
            quote(&m.table.parent_table),
            quote(&m.partition)
        ))
        .execute(&mut *tx)
        .await?;
        drop_member(&mut tx, m).await?;
    }
    tx.commit().await?;
    Ok(Ok(()))
}

/// The path for parents without a default partition: detach without
/// blocking writers, check the now static table, then drop it (or attach it
/// back when a row arrived after its archive).
async fn drop_concurrently(
    pool: &PgPool,
    group: &MonthGroup,
    opts: &RetainOptions,
) -> Result<Result<(), String>, LifecycleError> {
    let mut conn = pool.acquire().await?;
    if !opts.no_archive {
        if let Some(reason) = first_blocker(&mut conn, group).await? {
            return Ok(Err(reason));
        }
    }
    for m in &group.members {
        let parent = quote(&m.table.parent_table);
        let part = quote(&m.partition);
        let sql = match registry::attachment(&mut conn, &m.table.parent_table, &m.partition).await?
        {
            Some(true) => format!("ALTER TABLE {parent} DETACH PARTITION {part} FINALIZE"),
            Some(false) => format!("ALTER TABLE {parent} DETACH PARTITION {part} CONCURRENTLY"),
            None => continue,
        };
        sqlx::query(&sql).execute(&mut *conn).await?;
        let mut tx = conn.begin().await?;
        sqlx::query(&format!("LOCK TABLE {part} IN ACCESS EXCLUSIVE MODE"))
            .execute(&mut *tx)
            .await?;
        if !opts.no_archive {
            if let Some(reason) = blocker(&mut tx, m).await? {
                sqlx::query("SELECT bisman_attach_month(bisman_managed_table($1, true), $2)")
                    .bind(&m.table.base_table)
                    .bind(m.month.first_day())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(Err(format!("{}: {reason}", m.partition)));
            }
        }
        drop_member(&mut tx, m).await?;
        tx.commit().await?;
    }
    Ok(Ok(()))
}
