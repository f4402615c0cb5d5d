//! `bisman partitions archive`: months older than a cut-off exported to
//! verified files and recorded in the ledger `bisman_partition_archives`.
//!
//! A month is exported in one REPEATABLE READ snapshot: in it the rows are
//! counted and checksummed (`bisman_rows_digest`, migration `016`) and
//! copied out, so the file holds exactly the rows of that checksum. The file
//! is written as `<partition>-<UTC time>.csv.gz` (synced, renamed, its
//! folder synced), read back whole (SHA-256, gzip, record count) and loaded
//! into a temporary table whose checksum must be the same; only then are the
//! manifest written and the archive recorded with its content checksum. A
//! month whose newest archive already holds exactly its rows is not exported
//! again; a month that changed since is. Archiving never drops anything:
//! [`super::retain`] does, and only a month whose rows, under its lock,
//! still have the archive's checksum.

pub mod file;

use std::path::{Path, PathBuf};

use chrono::Utc;
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use self::file::{Column, Manifest, Writer, ENCODING, FORMAT};
use super::ident::{quote, quote_list};
use super::registry::{self, ManagedTable, Partition};
use super::{steps, LifecycleError, LockPolicy, Progress};
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
    let cutoff = cutoff(keep_months)?;
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

/// The start of the month `keep_months` before the current UTC month.
pub(crate) fn cutoff(keep_months: i32) -> Result<chrono::NaiveDateTime, LifecycleError> {
    if !(0..=1200).contains(&keep_months) {
        return Err(LifecycleError::Invalid(format!(
            "months to keep must be between 0 and 1200, got {keep_months}"
        )));
    }
    Ok(Month::current().plus(-keep_months).start())
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

/// Row count and content checksum of `relation`'s rows over `parent`'s
/// columns (`bisman_rows_digest`).
pub async fn digest(
    conn: &mut PgConnection,
    parent: &str,
    relation: &str,
) -> Result<(i64, String), LifecycleError> {
    Ok(
        sqlx::query_as("SELECT row_count, checksum FROM bisman_rows_digest($1, $2)")
            .bind(parent)
            .bind(relation)
            .fetch_one(conn)
            .await?,
    )
}

/// The newest verified archive of a partition in the ledger.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerArchive {
    /// Ledger id.
    pub id: i64,
    /// Rows it holds.
    pub row_count: i64,
    /// Its content checksum (`None` for archives made before migration `016`).
    pub content_checksum: Option<String>,
    /// Its data file.
    pub file_name: String,
}

/// The newest verified archive of `member`'s partition.
pub async fn newest_archive(
    conn: &mut PgConnection,
    member: &Member,
) -> Result<Option<LedgerArchive>, LifecycleError> {
    Ok(sqlx::query_as(
        "SELECT id, row_count, content_checksum, file_name FROM bisman_partition_archives
         WHERE base_table = $1 AND partition_name = $2 AND verified_at IS NOT NULL
         ORDER BY archived_at DESC, id DESC LIMIT 1",
    )
    .bind(&member.table.base_table)
    .bind(&member.partition)
    .fetch_optional(conn)
    .await?)
}

/// What [`ensure_archived`] found or did.
#[derive(Debug, Clone)]
pub enum Archival {
    /// No rows.
    Empty,
    /// The newest archive holds exactly the month's rows.
    Current(LedgerArchive),
    /// Exported now; `replaced` names the archive it supersedes (the month
    /// changed since).
    Made {
        /// The new archive.
        archived: Box<Archived>,
        /// The previous archive's file, if there was one.
        replaced: Option<String>,
    },
    /// Dry run: it would be exported.
    Wanted {
        /// Rows it would hold.
        rows: i64,
    },
}

/// Archives `member` unless it is empty or its newest archive holds exactly
/// its rows now.
#[tracing::instrument(skip(pool, member, locks, progress), fields(partition = %member.partition))]
pub async fn ensure_archived(
    pool: &PgPool,
    member: &Member,
    dir: &Path,
    locks: LockPolicy,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<(Archival, i64), LifecycleError> {
    let mut tx = snapshot(pool, member, locks).await?;
    let (rows, checksum) = digest(&mut tx, &member.table.parent_table, &member.partition).await?;
    if rows == 0 {
        tx.commit().await?;
        return Ok((Archival::Empty, 0));
    }
    let previous = newest_archive(&mut tx, member).await?;
    if let Some(p) = &previous {
        if p.row_count == rows && p.content_checksum.as_deref() == Some(checksum.as_str()) {
            tx.commit().await?;
            return Ok((Archival::Current(p.clone()), rows));
        }
    }
    if dry_run {
        tx.commit().await?;
        return Ok((Archival::Wanted { rows }, rows));
    }
    steps::reach(&mut tx, steps::ARCHIVE_SNAPSHOT).await?;
    let archived = export(pool, tx, member, dir, rows, checksum, locks, progress).await?;
    Ok((
        Archival::Made {
            archived: Box::new(archived),
            replaced: previous.map(|p| p.file_name),
        },
        rows,
    ))
}

/// A REPEATABLE READ, read-only transaction holding `member`'s partition:
/// what it counts, checksums and exports are the same rows. The lock is
/// asked for with the policy's timeout and retried.
async fn snapshot(
    pool: &PgPool,
    member: &Member,
    locks: LockPolicy,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, LifecycleError> {
    locks
        .retry(&format!("reading {}", member.partition), || async {
            let mut tx = pool.begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
            locks.apply(&mut tx).await?;
            sqlx::query(&format!(
                "LOCK TABLE {} IN ACCESS SHARE MODE",
                quote(&member.partition)
            ))
            .execute(&mut *tx)
            .await?;
            Ok(tx)
        })
        .await
}

/// Exports the month in `tx`'s snapshot, verifies the file by content and
/// records it.
#[allow(clippy::too_many_arguments)]
async fn export(
    pool: &PgPool,
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    member: &Member,
    dir: &Path,
    rows: i64,
    checksum: String,
    locks: LockPolicy,
    progress: &dyn Progress,
) -> Result<Archived, LifecycleError> {
    std::fs::create_dir_all(dir).map_err(LifecycleError::io(dir))?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let data_file = format!("{}-{stamp}.csv.gz", member.partition);
    let data_path = dir.join(&data_file);
    let columns: Vec<Column> = registry::columns(&mut tx, &member.table.parent_table)
        .await?
        .into_iter()
        .map(|(name, sql_type)| Column { name, sql_type })
        .collect();
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let server_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut *tx)
        .await?;
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
    let written = copy_out(&mut tx, &copy, &mut writer, progress).await;
    let written = match written {
        Ok(()) => tx.commit().await.map_err(LifecycleError::from),
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        writer.discard();
        return Err(e);
    }
    let (sha256, bytes) = writer.finish()?;
    progress.finish();

    let manifest = Manifest {
        format: FORMAT.into(),
        version: 2,
        encoding: ENCODING.into(),
        table: member.table.base_table.clone(),
        parent_table: member.table.parent_table.clone(),
        partition: member.partition.clone(),
        partition_column: member.table.partition_column.clone(),
        range_start: member.month.start(),
        range_end: member.month.end(),
        row_count: rows,
        data_file: data_file.clone(),
        sha256,
        bytes,
        content_checksum: Some(checksum),
        load_with: load_with(&data_file, &member.partition, &names),
        columns,
        created_at: Utc::now(),
        server_version,
    };
    let verified = verify_content(pool, &manifest, &data_path, locks, progress).await;
    if let Err(e) = verified {
        let _ = std::fs::remove_file(&data_path);
        return Err(e);
    }
    let manifest_path = Manifest::path_for(&data_path);
    manifest.write(&manifest_path)?;
    let mut conn = pool.acquire().await?;
    steps::reach(&mut conn, steps::ARCHIVE_VERIFIED).await?;
    let ledger_id = record(&mut conn, &manifest).await?;
    Ok(Archived {
        ledger_id,
        manifest,
        manifest_path,
    })
}

/// The shell line that loads the file by hand: the file name and every
/// identifier quoted (camelCase columns need double quotes in SQL, and the
/// SQL needs single quotes in the shell).
fn load_with(data_file: &str, partition: &str, columns: &[&str]) -> String {
    let sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT csv, HEADER MATCH)",
        quote(partition),
        quote_list(columns)
    );
    format!(
        "gunzip -c {} | psql -v ON_ERROR_STOP=1 -c {}",
        shell_quote(data_file),
        shell_quote(&sql)
    )
}

/// `text` as one POSIX shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

async fn copy_out(
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

/// Reads the file back: its bytes against the manifest (SHA-256, gzip,
/// records), then its rows, loaded into a temporary table, against the
/// manifest's content checksum.
pub(crate) async fn verify_content(
    pool: &PgPool,
    manifest: &Manifest,
    data: &Path,
    locks: LockPolicy,
    progress: &dyn Progress,
) -> Result<(), LifecycleError> {
    file::verify(manifest, data)?;
    let Some(expected) = &manifest.content_checksum else {
        return Ok(());
    };
    let mut tx = locks.begin(pool).await?;
    sqlx::query(&format!(
        "CREATE TEMP TABLE bisman_archive_check (LIKE {}) ON COMMIT DROP",
        quote(&manifest.parent_table)
    ))
    .execute(&mut *tx)
    .await?;
    progress.start(
        &format!("checking {}", manifest.data_file),
        Some(manifest.row_count as u64),
    );
    copy_in(&mut tx, "bisman_archive_check", manifest, data, progress).await?;
    progress.finish();
    let (rows, checksum) = digest(&mut tx, &manifest.parent_table, "bisman_archive_check").await?;
    tx.rollback().await?;
    if rows != manifest.row_count || &checksum != expected {
        return Err(LifecycleError::BadArchive {
            path: data.to_path_buf(),
            reason: format!(
                "loaded back it holds {rows} rows with checksum {checksum}; the manifest says {} rows with {expected}",
                manifest.row_count
            ),
        });
    }
    Ok(())
}

/// Loads an archive's data file into `target` with COPY; returns the rows.
pub(crate) async fn copy_in(
    conn: &mut PgConnection,
    target: &str,
    m: &Manifest,
    data: &Path,
    progress: &dyn Progress,
) -> Result<i64, LifecycleError> {
    use std::io::Read;
    let names: Vec<&str> = m.columns.iter().map(|c| c.name.as_str()).collect();
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {} ({}) FROM STDIN (FORMAT csv, HEADER MATCH)",
            quote(target),
            quote_list(&names)
        ))
        .await?;
    let f = std::fs::File::open(data).map_err(LifecycleError::io(data))?;
    let mut gz = flate2::read::GzDecoder::new(std::io::BufReader::new(f));
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

async fn record(conn: &mut PgConnection, m: &Manifest) -> Result<i64, LifecycleError> {
    let manifest = serde_json::to_value(m).map_err(|source| LifecycleError::Manifest {
        path: PathBuf::from(&m.data_file),
        source,
    })?;
    Ok(sqlx::query_scalar(
        "INSERT INTO bisman_partition_archives
             (base_table, partition_name, range_start, range_end, row_count, file_name,
              file_sha256, format, manifest, content_checksum, verified_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now()) RETURNING id",
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
    .bind(&m.content_checksum)
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
    /// `archived`, `archived again`, `already archived`, `empty`, or (dry
    /// run) `would archive`.
    pub action: String,
    /// Rows in it.
    pub rows: i64,
    /// The manifest written, if any.
    pub manifest: Option<PathBuf>,
    /// Why it was archived again, when it was.
    pub reason: Option<String>,
}

impl ArchiveLine {
    pub(crate) fn new(member: &Member, archival: &Archival, rows: i64) -> Self {
        let (action, manifest, reason) = match archival {
            Archival::Empty => ("empty", None, None),
            Archival::Current(_) => ("already archived", None, None),
            Archival::Wanted { .. } => ("would archive", None, None),
            Archival::Made { archived, replaced } => (
                if replaced.is_some() {
                    "archived again"
                } else {
                    "archived"
                },
                Some(archived.manifest_path.clone()),
                replaced
                    .as_ref()
                    .map(|f| format!("its rows changed since {f}")),
            ),
        };
        Self {
            table: member.table.base_table.clone(),
            partition: member.partition.clone(),
            action: action.into(),
            rows,
            manifest,
            reason,
        }
    }
}

/// Archives every month of `roots` older than the cut-off that is not empty
/// and whose newest archive does not hold exactly its rows. Drops nothing.
#[tracing::instrument(skip_all)]
pub async fn archive(
    pool: &PgPool,
    roots: &[ManagedTable],
    keep_months: Option<i32>,
    dir: &Path,
    locks: LockPolicy,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<Vec<ArchiveLine>, LifecycleError> {
    let mut out = Vec::new();
    for root in roots {
        let keep = keep_months.unwrap_or(root.past_months);
        for group in old_months(pool, root, keep).await? {
            for m in &group.members {
                let (archival, rows) =
                    ensure_archived(pool, m, dir, locks, dry_run, progress).await?;
                out.push(ArchiveLine::new(m, &archival, rows));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_with_quotes_for_sql_and_shell() {
        let line = load_with(
            "thread_messages_p2021_05-x.csv.gz",
            "thread_messages_p2021_05",
            &["id", "createdAt", "it's"],
        );
        assert_eq!(
            line,
            "gunzip -c 'thread_messages_p2021_05-x.csv.gz' | psql -v ON_ERROR_STOP=1 -c \
             'COPY \"thread_messages_p2021_05\" (\"id\", \"createdAt\", \"it'\\''s\") FROM STDIN (FORMAT csv, HEADER MATCH)'"
        );
    }
}
