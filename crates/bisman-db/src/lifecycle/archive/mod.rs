//! `bisman partitions archive`: months older than a cut-off exported to
//! verified files and recorded in the ledger `bisman_partition_archives`.
//!
//! A month is exported in one REPEATABLE READ snapshot (its row count and
//! its rows agree), written as `<partition>-<UTC time>.csv.gz` with a
//! manifest beside it, read back whole and checked, and only then recorded
//! with `verified_at` set. Archiving never drops anything: [`super::retain`]
//! does, and only what the ledger shows archived.

pub mod file;

use std::path::{Path, PathBuf};

use chrono::Utc;
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};

use self::file::{Column, Manifest, Writer, ENCODING, FORMAT};
use super::ident::{quote, quote_list};
use super::registry::{self, ManagedTable, Partition};
use super::{LifecycleError, Progress};
use crate::partitions::Month;

/// A verified archive recorded in the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct Archived {
    /// Ledger id.
    pub ledger_id: i64,
    /// The manifest.
    pub manifest: Manifest,
    /// Where the manifest is.
    pub manifest_path: PathBuf,
}

/// One month of one table, old enough to be archived or retired.
#[derive(Debug, Clone)]
pub struct Member {
    /// The managed table.
    pub table: ManagedTable,
    /// The partition.
    pub partition: String,
    /// Its month.
    pub month: Month,
}

/// A month of a root table with the same month of the tables retired with it,
/// children first (the order foreign keys need for dropping).
#[derive(Debug, Clone)]
pub struct MonthGroup {
    /// The month.
    pub month: Month,
    /// Children first, the root last.
    pub members: Vec<Member>,
}

/// The months of `root` that end on or before the start of the month
/// `keep_months` before the current UTC month (`drop_old_partitions`'s rule).
#[tracing::instrument(skip(pool, root), fields(root = %root.base_table))]
pub async fn old_months(
    pool: &PgPool,
    root: &ManagedTable,
    keep_months: i32,
) -> Result<Vec<MonthGroup>, LifecycleError> {
    if !(0..=1200).contains(&keep_months) {
        return Err(LifecycleError::Invalid(format!(
            "months to keep must be between 0 and 1200, got {keep_months}"
        )));
    }
    let cutoff = Month::current().plus(-keep_months).start();
    let mut conn = pool.acquire().await?;
    let children = registry::retired_with(&mut conn, root).await?;
    let mut child_parts = Vec::new();
    for c in &children {
        child_parts.push(registry::partitions(&mut conn, &c.base_table).await?);
    }
    let mut out = Vec::new();
    for p in registry::partitions(&mut conn, &root.base_table).await? {
        let (Some(month), Some(end)) = (p.month(), p.range_end) else {
            continue;
        };
        if end > cutoff {
            continue;
        }
        let mut members = Vec::new();
        for (c, parts) in children.iter().zip(&child_parts) {
            if let Some(cp) = parts.iter().find(|cp| cp.month() == Some(month)) {
                members.push(member(c, cp, month));
            }
        }
        members.push(member(root, &p, month));
        out.push(MonthGroup { month, members });
    }
    Ok(out)
}

fn member(table: &ManagedTable, p: &Partition, month: Month) -> Member {
    Member {
        table: table.clone(),
        partition: p.partition_name.clone(),
        month,
    }
}

/// Rows in a partition now.
pub async fn row_count(conn: &mut PgConnection, partition: &str) -> Result<i64, LifecycleError> {
    Ok(
        sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quote(partition)))
            .fetch_one(conn)
            .await?,
    )
}

/// The newest verified archive of `partition` whose row count still matches
/// the partition, if there is one.
pub async fn current_archive(
    conn: &mut PgConnection,
    member: &Member,
) -> Result<Option<i64>, LifecycleError> {
    let rows = row_count(conn, &member.partition).await?;
    Ok(sqlx::query_scalar(
        "SELECT id FROM bisman_partition_archives
         WHERE base_table = $1 AND partition_name = $2 AND verified_at IS NOT NULL AND row_count = $3
         ORDER BY archived_at DESC LIMIT 1",
    )
    .bind(&member.table.base_table)
    .bind(&member.partition)
    .bind(rows)
    .fetch_optional(conn)
    .await?)
}

/// Exports one month, verifies the file and records it. `dir` is created
/// when missing.
#[tracing::instrument(skip(pool, member, progress), fields(partition = %member.partition))]
pub async fn archive_member(
    pool: &PgPool,
    member: &Member,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Archived, LifecycleError> {
    std::fs::create_dir_all(dir).map_err(LifecycleError::io(dir))?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let data_file = format!("{}-{stamp}.csv.gz", member.partition);
    let data_path = dir.join(&data_file);
    let mut conn = pool.acquire().await?;
    let columns: Vec<Column> = registry::columns(&mut conn, &member.partition)
        .await?
        .into_iter()
        .map(|(name, sql_type)| Column { name, sql_type })
        .collect();
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let server_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut *conn)
        .await?;

    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows = row_count(&mut tx, &member.partition).await?;
    progress.start(
        &format!("archiving {}", member.partition),
        Some(rows as u64),
    );
    let copy = format!(
        "COPY (SELECT {} FROM {}) TO STDOUT (FORMAT csv, HEADER)",
        quote_list(&names),
        quote(&member.partition)
    );
    let mut writer = Writer::create(&data_path)?;
    let written = export(&mut tx, &copy, &mut writer, progress).await;
    tx.commit().await?;
    if let Err(e) = written {
        writer.discard();
        return Err(e);
    }
    let (sha256, bytes) = writer.finish()?;
    progress.finish();

    let manifest = Manifest {
        format: FORMAT.into(),
        version: 1,
        encoding: ENCODING.into(),
        table: member.table.base_table.clone(),
        parent_table: member.table.parent_table.clone(),
        partition: member.partition.clone(),
        partition_column: member.table.partition_column.clone(),
        range_start: member.month.start(),
        range_end: member.month.end(),
        row_count: rows,
        data_file,
        sha256,
        bytes,
        load_with: format!(
            "gunzip -c {} | psql -c \"COPY {} ({}) FROM STDIN (FORMAT csv, HEADER MATCH)\"",
            data_path.file_name().unwrap_or_default().to_string_lossy(),
            member.partition,
            names.join(", ")
        ),
        columns,
        created_at: Utc::now(),
        server_version,
    };
    let manifest_path = Manifest::path_for(&data_path);
    manifest.write(&manifest_path)?;
    file::verify(&manifest, &data_path)?;
    let ledger_id = record(&mut conn, &manifest).await?;
    Ok(Archived {
        ledger_id,
        manifest,
        manifest_path,
    })
}

async fn export(
    conn: &mut PgConnection,
    copy: &str,
    writer: &mut Writer,
    progress: &dyn Progress,
) -> Result<(), LifecycleError> {
    let mut stream = conn.copy_out_raw(copy).await?;
    // Counting records as they stream gives the bar real rows (the header
    // is the first record and is not shown).
    let mut records = file::CsvRecords::default();
    let mut shown = 1;
    while let Some(chunk) = stream.try_next().await? {
        writer.write(&chunk)?;
        records.feed(&chunk);
        let now = records.complete();
        if now > shown {
            progress.advance((now - shown) as u64);
            shown = now;
        }
    }
    Ok(())
}

async fn record(conn: &mut PgConnection, m: &Manifest) -> Result<i64, LifecycleError> {
    let manifest = serde_json::to_value(m).map_err(|source| LifecycleError::Manifest {
        path: PathBuf::from(&m.data_file),
        source,
    })?;
    Ok(sqlx::query_scalar(
        "INSERT INTO bisman_partition_archives
             (base_table, partition_name, range_start, range_end, row_count, file_name,
              file_sha256, format, manifest, verified_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) RETURNING id",
    )
    .bind(&m.table)
    .bind(&m.partition)
    .bind(m.range_start)
    .bind(m.range_end)
    .bind(m.row_count)
    .bind(&m.data_file)
    .bind(&m.sha256)
    .bind(ENCODING)
    .bind(manifest)
    .fetch_one(conn)
    .await?)
}

/// What [`archive`] did with one month of one table.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveLine {
    /// The managed table.
    pub table: String,
    /// The partition.
    pub partition: String,
    /// `archived`, `already archived`, `empty`, or (dry run) `would archive`.
    pub action: String,
    /// Rows in it.
    pub rows: i64,
    /// The manifest written, if any.
    pub manifest: Option<PathBuf>,
}

/// Archives every month of `roots` older than the cut-off that is not empty
/// and has no current verified archive. Drops nothing.
#[tracing::instrument(skip_all)]
pub async fn archive(
    pool: &PgPool,
    roots: &[ManagedTable],
    keep_months: Option<i32>,
    dir: &Path,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<Vec<ArchiveLine>, LifecycleError> {
    let mut out = Vec::new();
    for root in roots {
        let keep = keep_months.unwrap_or(root.past_months);
        for group in old_months(pool, root, keep).await? {
            for m in &group.members {
                out.push(ensure_archived(pool, m, dir, dry_run, progress).await?.0);
            }
        }
    }
    Ok(out)
}

/// Archives `member` unless it is empty or already archived; returns the
/// line and whether the month may now be dropped.
pub(crate) async fn ensure_archived(
    pool: &PgPool,
    member: &Member,
    dir: &Path,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<(ArchiveLine, bool), LifecycleError> {
    let mut conn = pool.acquire().await?;
    let rows = row_count(&mut conn, &member.partition).await?;
    let line = |action: &str, manifest: Option<PathBuf>| ArchiveLine {
        table: member.table.base_table.clone(),
        partition: member.partition.clone(),
        action: action.into(),
        rows,
        manifest,
    };
    if rows == 0 {
        return Ok((line("empty", None), true));
    }
    if current_archive(&mut conn, member).await?.is_some() {
        return Ok((line("already archived", None), true));
    }
    drop(conn);
    if dry_run {
        return Ok((line("would archive", None), false));
    }
    let done = archive_member(pool, member, dir, progress).await?;
    Ok((line("archived", Some(done.manifest_path)), true))
}
