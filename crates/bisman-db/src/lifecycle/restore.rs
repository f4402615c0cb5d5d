//! `bisman partitions restore`: an archived month loaded back and attached.
//!
//! The file is verified against its manifest before anything is touched
//! (a corrupt or truncated file is refused), the columns must be the parent's
//! columns, and the month is created, loaded with `COPY … (FORMAT csv,
//! HEADER MATCH)`, counted and attached in one transaction: either the month
//! is back whole or nothing changed. Rows of the month that arrived in the
//! default partition meanwhile are moved into it in the same transaction.

use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use serde::Serialize;
use sqlx::{Acquire, PgConnection, PgPool};

use super::archive::file::{self, Manifest};
use super::ident::{checked, quote, quote_list};
use super::registry::{self, ManagedTable};
use super::{LifecycleError, LockPolicy, Progress};
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

/// Restores archives; months of tables others follow go first, so that the
/// children's foreign keys find their rows.
#[tracing::instrument(skip_all)]
pub async fn restore(
    pool: &PgPool,
    paths: &[PathBuf],
    locks: LockPolicy,
    progress: &dyn Progress,
) -> Result<Vec<Restored>, LifecycleError> {
    let mut loaded = Vec::new();
    for p in paths {
        let (manifest, manifest_path) = Manifest::read(p)?;
        let data = manifest.data_path(&manifest_path);
        file::verify(&manifest, &data)?;
        loaded.push((manifest, data));
    }
    let mut conn = pool.acquire().await?;
    let mut planned = Vec::new();
    for (manifest, data) in loaded {
        let table = registry::get(&mut conn, &manifest.table).await?;
        planned.push((table.follows.is_some(), table, manifest, data));
    }
    drop(conn);
    planned.sort_by_key(|(follower, _, m, _)| (*follower, m.range_start));
    let mut out = Vec::new();
    for (_, table, manifest, data) in planned {
        let done = locks
            .retry(&format!("restoring {}", manifest.partition), || {
                restore_one(pool, &table, &manifest, &data, locks, progress)
            })
            .await?;
        out.push(done);
    }
    Ok(out)
}

async fn restore_one(
    pool: &PgPool,
    table: &ManagedTable,
    manifest: &Manifest,
    data: &Path,
    locks: LockPolicy,
    progress: &dyn Progress,
) -> Result<Restored, LifecycleError> {
    let month = check_manifest(table, manifest)?;
    let part = manifest.partition.clone();
    let mut conn = pool.acquire().await?;
    check_target(&mut conn, table, manifest).await?;
    let mut tx = conn.begin().await?;
    locks.apply(&mut tx).await?;
    sqlx::query(&format!(
        "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
        quote(&part),
        quote(&table.parent_table)
    ))
    .execute(&mut *tx)
    .await?;
    progress.start(
        &format!("restoring {part}"),
        Some(manifest.row_count as u64),
    );
    let rows = load(&mut tx, manifest, data, progress).await?;
    progress.finish();
    if rows != manifest.row_count {
        return Err(LifecycleError::BadArchive {
            path: data.to_path_buf(),
            reason: format!(
                "loaded {rows} rows, the manifest says {}",
                manifest.row_count
            ),
        });
    }
    let rows_from_default = move_from_default(&mut tx, table, &part, month).await?;
    sqlx::query("SELECT bisman_attach_month(bisman_managed_table($1, true), $2)")
        .bind(&table.base_table)
        .bind(month.first_day())
        .execute(&mut *tx)
        .await
        .map_err(|e| attach_error(e, table))?;
    sqlx::query(
        "UPDATE bisman_partition_archives SET restored_at = now()
         WHERE base_table = $1 AND partition_name = $2 AND file_sha256 = $3",
    )
    .bind(&table.base_table)
    .bind(&part)
    .bind(&manifest.sha256)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Restored {
        table: table.base_table.clone(),
        partition: part,
        rows,
        rows_from_default,
    })
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

/// The month must not exist and the parent's columns must match the file's.
async fn check_target(
    conn: &mut PgConnection,
    table: &ManagedTable,
    m: &Manifest,
) -> Result<(), LifecycleError> {
    if registry::exists(conn, &m.partition).await? {
        return Err(LifecycleError::Invalid(format!(
            "{} already exists; drop or rename it before restoring its archive",
            m.partition
        )));
    }
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

async fn load(
    conn: &mut PgConnection,
    m: &Manifest,
    data: &Path,
    progress: &dyn Progress,
) -> Result<i64, LifecycleError> {
    use std::io::Read;
    let names: Vec<&str> = m.columns.iter().map(|c| c.name.as_str()).collect();
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {} ({}) FROM STDIN (FORMAT csv, HEADER MATCH)",
            quote(&m.partition),
            quote_list(&names)
        ))
        .await?;
    let f = std::fs::File::open(data).map_err(LifecycleError::io(data))?;
    let mut gz = GzDecoder::new(std::io::BufReader::new(f));
    let mut buf = vec![0u8; 256 * 1024];
    let mut records = file::CsvRecords::default();
    let mut shown = 1;
    loop {
        let n = match gz.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = copy.abort("archive unreadable").await;
                return Err(LifecycleError::BadArchive {
                    path: data.to_path_buf(),
                    reason: format!("truncated or corrupt (gzip: {e})"),
                });
            }
        };
        if n == 0 {
            break;
        }
        copy.send(&buf[..n]).await?;
        records.feed(&buf[..n]);
        if records.complete() > shown {
            progress.advance((records.complete() - shown) as u64);
            shown = records.complete();
        }
    }
    Ok(copy.finish().await? as i64)
}

async fn move_from_default(
    conn: &mut PgConnection,
    table: &ManagedTable,
    part: &str,
    month: Month,
) -> Result<i64, LifecycleError> {
    let Some(def) = registry::default_partition(conn, &table.parent_table).await? else {
        return Ok(0);
    };
    sqlx::query("SET LOCAL TimeZone = 'UTC'")
        .execute(&mut *conn)
        .await?;
    let col = quote(&table.partition_column);
    let moved = sqlx::query(&format!(
        "WITH moved AS (DELETE FROM {} WHERE {col} >= $1 AND {col} < $2 RETURNING *)
         INSERT INTO {} SELECT * FROM moved",
        quote(&def),
        quote(part)
    ))
    .bind(month.start())
    .bind(month.end())
    .execute(conn)
    .await?;
    Ok(moved.rows_affected() as i64)
}

fn attach_error(e: sqlx::Error, table: &ManagedTable) -> LifecycleError {
    let fk = e
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23503");
    match (&table.follows, fk) {
        (Some(leader), true) => LifecycleError::Invalid(format!(
            "{}'s rows reference {leader} rows that are not there: restore the same month of {leader} first ({e})",
            table.base_table
        )),
        _ => LifecycleError::Database(e),
    }
}
