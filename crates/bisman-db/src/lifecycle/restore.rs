//! `bisman partitions restore`: archived months loaded back and attached.
//!
//! Files are verified against their manifests before anything is touched (a
//! corrupt or truncated file is refused), and the columns must be the
//! parent's. Archives are restored a month at a time, one transaction per
//! month of a table and the tables that follow it (messages with their read
//! receipts and reactions): each file is loaded into a new month table (or,
//! when the month exists, appended to it through a temporary table) and its
//! rows must have the manifest's content checksum; then the month is made by
//! the same SQL as premake (`bisman_premake_month`): the rows of that month
//! that arrived in the default partitions meanwhile are moved in, the
//! followers' before the messages' (a message leaving the default partition
//! would otherwise take its receipts and reactions with it, by the foreign
//! key's cascade), under a short lock, and the month is attached. Either the
//! month is back whole or nothing changed.
//!
//! Restoring a month of messages brings back the same month of receipts and
//! reactions: their manifests are taken from beside the messages' when they
//! were not given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::archive::file::{self, Manifest};
use super::archive::{copy_in, digest};
use super::ident::{checked, quote};
use super::premake::lock_error;
use super::registry::{self, ManagedTable};
use super::{steps, LifecycleError, LockPolicy, Progress};
use crate::partitions::Month;

/// A restored month.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The managed table.
    pub table: String,
    /// The partition now attached again.
    pub partition: String,
    /// Rows loaded from the archive.
    pub rows: i64,
    /// Rows of the month moved in from the default partition.
    pub rows_from_default: i64,
}

/// Checks an archive (manifest or data file path) without touching the database.
pub fn verify_archive(path: &Path) -> Result<Manifest, LifecycleError> {
    let (manifest, manifest_path) = Manifest::read(path)?;
    file::verify(&manifest, &manifest.data_path(&manifest_path))?;
    Ok(manifest)
}

/// One archive to load.
#[derive(Debug, Clone)]
struct Load {
    table: ManagedTable,
    manifest: Manifest,
    data: PathBuf,
}

/// Restores archives, a month (of a table and its followers) at a time,
/// oldest first.
#[tracing::instrument(skip_all)]
pub async fn restore(
    pool: &PgPool,
    paths: &[PathBuf],
    locks: LockPolicy,
    progress: &dyn Progress,
) -> Result<Vec<Restored>, LifecycleError> {
    let mut conn = pool.acquire().await?;
    let mut groups: BTreeMap<(String, Month), Vec<Load>> = BTreeMap::new();
    for p in paths {
        let (manifest, manifest_path) = Manifest::read(p)?;
        let data = manifest.data_path(&manifest_path);
        file::verify(&manifest, &data)?;
        let table = registry::get(&mut conn, &manifest.table).await?;
        let month = check_manifest(&table, &manifest)?;
        let root = table.follows.clone().unwrap_or(table.base_table.clone());
        groups.entry((root, month)).or_default().push(Load {
            table,
            manifest,
            data,
        });
    }
    let mut out = Vec::new();
    for ((root, month), mut loads) in groups {
        let root = registry::root(&mut conn, &root).await?;
        let blocked: Option<String> = sqlx::query_scalar("SELECT bisman_migration_blocker($1)")
            .bind(&root.base_table)
            .fetch_one(&mut *conn)
            .await?;
        if let Some(reason) = blocked {
            return Err(LifecycleError::Invalid(format!(
                "not restoring {}: {reason}",
                month.partition_name(&root.base_table)
            )));
        }
        siblings(&mut conn, &root, month, &mut loads).await?;
        // The table others follow first, then its followers.
        loads.sort_by_key(|l| (l.table.follows.is_some(), l.table.base_table.clone()));
        out.extend(restore_month(pool, &root, month, &loads, locks, progress).await?);
    }
    Ok(out)
}

/// When a month of `root` is restored, what else is in an archive of that
/// month comes back too: the same month of the tables retired with it, and
/// other archives of the same partitions (late rows archived after the
/// month was first dropped). Their manifests are taken from beside the ones
/// given; one that is not there is an error naming it.
async fn siblings(
    conn: &mut PgConnection,
    root: &ManagedTable,
    month: Month,
    loads: &mut Vec<Load>,
) -> Result<(), LifecycleError> {
    let Some(dir) = loads
        .first()
        .and_then(|l| l.data.parent().map(Path::to_path_buf))
    else {
        return Ok(());
    };
    if !loads.iter().any(|l| l.table.base_table == root.base_table) {
        return Ok(());
    }
    let mut tables = vec![root.clone()];
    tables.extend(registry::retired_with(conn, root).await?);
    for table in tables {
        let part = month.partition_name(&table.base_table);
        let files: Vec<(String, String)> = sqlx::query_as(
            "SELECT file_name, file_sha256 FROM bisman_partition_archives
             WHERE base_table = $1 AND partition_name = $2 AND dropped_at IS NOT NULL
               AND dropped_at > coalesce(restored_at, '-infinity')
             ORDER BY archived_at, id",
        )
        .bind(&table.base_table)
        .bind(&part)
        .fetch_all(&mut *conn)
        .await?;
        for (file, sha256) in files {
            if loads.iter().any(|l| l.manifest.sha256 == sha256) {
                continue;
            }
            let data = dir.join(&file);
            let manifest_path = Manifest::path_for(&data);
            if !manifest_path.exists() {
                return Err(LifecycleError::Invalid(format!(
                    "{part} was also archived as {file}, which is not beside the manifests given; \
                     restore it together (give its manifest too)"
                )));
            }
            let (manifest, _) = Manifest::read(&manifest_path)?;
            file::verify(&manifest, &data)?;
            loads.push(Load {
                table: table.clone(),
                manifest,
                data,
            });
        }
    }
    Ok(())
}

/// Loads and attaches one month of `root` and its followers, in one transaction.
async fn restore_month(
    pool: &PgPool,
    root: &ManagedTable,
    month: Month,
    loads: &[Load],
    locks: LockPolicy,
    progress: &dyn Progress,
) -> Result<Vec<Restored>, LifecycleError> {
    let mut tx = locks.begin(pool).await?;
    // Loading waits for nothing the application holds (only the tables made
    // here are written); the locks that block writers are asked for by
    // bisman_premake_month, with the policy's timeout.
    sqlx::query("SET LOCAL lock_timeout = 0")
        .execute(&mut *tx)
        .await?;
    let mut appends = Vec::new();
    let mut created: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, l) in loads.iter().enumerate() {
        let part = l.manifest.partition.clone();
        check_columns(&mut tx, &l.table, &l.manifest).await?;
        let attached = registry::attachment(&mut tx, &l.table.parent_table, &part).await?;
        let target = match attached {
            // A second archive of a month made in this transaction: through
            // a temporary table, so that each file's rows are checked alone.
            None if created.contains(&part) => {
                let staging = format!("bisman_restore_{i}");
                sqlx::query(&format!(
                    "CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP",
                    quote(&staging),
                    quote(&l.table.parent_table)
                ))
                .execute(&mut *tx)
                .await?;
                staging
            }
            None if !registry::exists(&mut tx, &part).await? => {
                sqlx::query(&format!(
                    "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
                    quote(&part),
                    quote(&l.table.parent_table)
                ))
                .execute(&mut *tx)
                .await?;
                created.push(part.clone());
                part.clone()
            }
            Some(false) => {
                let staging = format!("bisman_restore_{i}");
                sqlx::query(&format!(
                    "CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP",
                    quote(&staging),
                    quote(&l.table.parent_table)
                ))
                .execute(&mut *tx)
                .await?;
                appends.push((part.clone(), staging.clone()));
                staging
            }
            _ => {
                return Err(LifecycleError::Invalid(format!(
                    "{part} exists but is not attached (a month table left by an interrupted operation): \
                     `bisman partitions premake` attaches it; restore after that"
                )))
            }
        };
        progress.start(
            &format!("restoring {part}"),
            Some(l.manifest.row_count as u64),
        );
        let rows = copy_in(&mut tx, &target, &l.manifest, &l.data, progress).await?;
        progress.finish();
        check_content(&mut tx, l, &target, rows).await?;
        if attached.is_none() && target != part {
            sqlx::query(&format!(
                "INSERT INTO {} SELECT * FROM {}",
                quote(&part),
                quote(&target)
            ))
            .execute(&mut *tx)
            .await?;
        }
        out.push(Restored {
            table: l.table.base_table.clone(),
            partition: part,
            rows,
            rows_from_default: 0,
        });
    }
    steps::reach(&mut tx, steps::RESTORE_LOADED).await?;
    let made: Vec<(String, i64)> =
        sqlx::query_as("SELECT partition_name, rows_moved FROM bisman_premake_month($1, $2)")
            .bind(&root.base_table)
            .bind(month.first_day())
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| attach_error(e, root, month, locks))?;
    for (part, staging) in &appends {
        sqlx::query(&format!(
            "INSERT INTO {} SELECT * FROM {}",
            quote(part),
            quote(staging)
        ))
        .execute(&mut *tx)
        .await
        .map_err(|e| attach_error(e, root, month, locks))?;
    }
    let mut counted: Vec<String> = Vec::new();
    for r in &mut out {
        if counted.contains(&r.partition) {
            continue; // A second archive of the same month: counted once.
        }
        counted.push(r.partition.clone());
        r.rows_from_default = made
            .iter()
            .find(|(p, _)| *p == r.partition)
            .map_or(0, |(_, n)| *n);
    }
    for l in loads {
        sqlx::query(
            "UPDATE bisman_partition_archives SET restored_at = now()
             WHERE base_table = $1 AND partition_name = $2 AND file_sha256 = $3",
        )
        .bind(&l.table.base_table)
        .bind(&l.manifest.partition)
        .bind(&l.manifest.sha256)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// The month the manifest describes, when its names and bounds are sane.
fn check_manifest(table: &ManagedTable, m: &Manifest) -> Result<Month, LifecycleError> {
    checked("partition", &m.partition)?;
    let month = Month::containing_naive(m.range_start);
    let sane = month.start() == m.range_start
        && month.end() == m.range_end
        && month.partition_name(&table.base_table) == m.partition;
    if !sane {
        return Err(LifecycleError::Invalid(format!(
            "manifest of {} does not describe one month of {} ({} .. {})",
            m.partition, table.base_table, m.range_start, m.range_end
        )));
    }
    Ok(month)
}

/// The parent's columns must be the file's.
async fn check_columns(
    conn: &mut PgConnection,
    table: &ManagedTable,
    m: &Manifest,
) -> Result<(), LifecycleError> {
    let columns = registry::columns(conn, &table.parent_table).await?;
    let wanted: Vec<(String, String)> = m
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.sql_type.clone()))
        .collect();
    if columns != wanted {
        return Err(LifecycleError::Invalid(format!(
            "the archive's columns {:?} differ from {}'s {:?}",
            wanted, table.parent_table, columns
        )));
    }
    Ok(())
}

/// The rows loaded are the manifest's: its count, and (manifests from
/// migration `016` on) its content checksum. A checksum made by another
/// major version of PostgreSQL may print some values differently; then the
/// count and the file's SHA-256 decide, and a warning says so.
async fn check_content(
    conn: &mut PgConnection,
    l: &Load,
    target: &str,
    rows: i64,
) -> Result<(), LifecycleError> {
    let bad = |reason: String| LifecycleError::BadArchive {
        path: l.data.clone(),
        reason,
    };
    if rows != l.manifest.row_count {
        return Err(bad(format!(
            "loaded {rows} rows, the manifest says {}",
            l.manifest.row_count
        )));
    }
    let Some(expected) = &l.manifest.content_checksum else {
        return Ok(());
    };
    let (_, checksum) = digest(conn, &l.table.parent_table, target).await?;
    if &checksum == expected {
        return Ok(());
    }
    let server: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut *conn)
        .await?;
    let major = |v: &str| v.split('.').next().unwrap_or_default().to_string();
    if major(&server) == major(&l.manifest.server_version) {
        return Err(bad(format!(
            "its rows' checksum is {checksum}, the manifest says {expected}"
        )));
    }
    tracing::warn!(
        partition = %l.manifest.partition,
        archive_server = %l.manifest.server_version,
        server = %server,
        "content checksum differs across PostgreSQL versions; rows and SHA-256 match"
    );
    Ok(())
}

fn attach_error(
    e: sqlx::Error,
    root: &ManagedTable,
    month: Month,
    locks: LockPolicy,
) -> LifecycleError {
    let fk = e
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23503");
    if fk {
        return LifecycleError::Invalid(format!(
            "rows reference {} rows that are not there: restore {} first ({e})",
            root.base_table,
            month.partition_name(&root.base_table)
        ));
    }
    lock_error(
        e,
        &format!("restoring {}", month.partition_name(&root.base_table)),
        locks,
    )
}
