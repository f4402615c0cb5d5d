//! `bisman partitions status`: where every managed table stands.
//!
//! Read-only: partitions with bounds, row estimates and sizes, months premade
//! ahead, rows waiting in default partitions (by month: ahead of premake,
//! late rows of months already dropped, or past months without a
//! partition), month tables left detached (an operation interrupted, or a
//! detach pending), archives, months changed since their archive, and the
//! state of a table migration.
//!
//! "Changed since its archive" is exact: the rows of every month that has an
//! archive and is still attached are checksummed and compared with it (a
//! full read of those months, usually few: archived months are dropped by
//! the next retention).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::archive::digest;
use super::registry::{self, ManagedTable};
use super::{LifecycleError, LockPolicy};
use crate::partitions::Month;

/// One partition with its size.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PartitionStatus {
    /// Its name.
    pub name: String,
    /// Whether it is the default partition.
    pub is_default: bool,
    /// Inclusive lower bound (naive UTC).
    pub range_start: Option<NaiveDateTime>,
    /// Exclusive upper bound.
    pub range_end: Option<NaiveDateTime>,
    /// The planner's row estimate (`None` before the first ANALYZE).
    pub row_estimate: Option<i64>,
    /// Bytes on disk, indexes included.
    pub bytes: i64,
}

/// One archive in the ledger.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ArchiveStatus {
    /// The partition it holds.
    pub partition_name: String,
    /// Rows in it.
    pub row_count: i64,
    /// Its data file's name.
    pub file_name: String,
    /// When it was written.
    pub archived_at: DateTime<Utc>,
    /// When it was verified by reading it back.
    pub verified_at: Option<DateTime<Utc>>,
    /// When its partition was dropped.
    pub dropped_at: Option<DateTime<Utc>>,
    /// When it was last restored.
    pub restored_at: Option<DateTime<Utc>>,
}

/// A month table that is not attached: left by an interrupted operation (or
/// a detach that is still pending).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DetachedMonth {
    /// Its name.
    pub name: String,
    /// The planner's row estimate.
    pub row_estimate: Option<i64>,
    /// Bytes on disk.
    pub bytes: i64,
    /// Whether it is still attached, detach pending (an interrupted
    /// `DETACH … CONCURRENTLY`).
    pub detach_pending: bool,
}

/// Rows of one month waiting in the default partition.
#[derive(Debug, Clone, Serialize)]
pub struct DefaultMonth {
    /// The month (its first day).
    pub month: chrono::NaiveDate,
    /// Rows.
    pub rows: i64,
    /// `ahead`: premake moves them into their month; `late`: the month was
    /// archived and dropped, they arrived after (retention archives them as
    /// that month again); `gap`: a past month that never had a partition
    /// (retention archives them once the month is past the cut-off).
    pub kind: String,
}

/// A month whose rows differ from its newest archive's.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedMonth {
    /// The partition.
    pub partition: String,
    /// The archive's data file.
    pub archive: String,
    /// Rows in the archive.
    pub archived_rows: i64,
    /// Rows now.
    pub rows_now: i64,
    /// What retain will do.
    pub note: String,
}

/// Everything `status` says about one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    /// The registry row.
    pub table: ManagedTable,
    /// Whether the name the application uses is the partitioned table.
    pub live_is_partitioned: bool,
    /// The state of `bisman partitions migrate`, when one was started.
    pub migration_state: Option<String>,
    /// Its partitions, default first.
    pub partitions: Vec<PartitionStatus>,
    /// Months that exist after the current UTC month.
    pub premade_months: usize,
    /// Rows sitting in the default partition.
    pub default_rows: i64,
    /// Those rows by month.
    pub default_months: Vec<DefaultMonth>,
    /// Rows in the default partition for months already dropped.
    pub late_rows: i64,
    /// Month tables of this table that are not attached.
    pub detached_months: Vec<DetachedMonth>,
    /// Attached months whose rows differ from their newest archive.
    pub changed_since_archive: Vec<ChangedMonth>,
    /// Its archives, newest first.
    pub archives: Vec<ArchiveStatus>,
}

/// The status of every managed table.
#[tracing::instrument(skip_all)]
pub async fn status(pool: &PgPool) -> Result<Vec<TableStatus>, LifecycleError> {
    let tables = registry::all(pool).await?;
    // One read-only snapshot. Counting default partitions and checksumming
    // archived months reads whole tables: the maintenance statement limit,
    // not the pool's; and it waits for locks as any reader does.
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    LockPolicy::default().apply(&mut tx).await?;
    sqlx::query("SET LOCAL lock_timeout = 0")
        .execute(&mut *tx)
        .await?;
    let mut out = Vec::new();
    for table in tables {
        out.push(table_status(&mut tx, table).await?);
    }
    tx.commit().await?;
    Ok(out)
}

async fn table_status(
    conn: &mut PgConnection,
    table: ManagedTable,
) -> Result<TableStatus, LifecycleError> {
    let partitions: Vec<PartitionStatus> = sqlx::query_as(
        "SELECT p.partition_name AS name, p.is_default, p.range_start, p.range_end,
                CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS row_estimate,
                pg_total_relation_size(c.oid) AS bytes
         FROM bisman_partitions($1) p JOIN pg_class c ON c.oid = to_regclass(quote_ident(p.partition_name))",
    )
    .bind(&table.base_table)
    .fetch_all(&mut *conn)
    .await?;
    let now = Month::current().end();
    let premade_months = partitions
        .iter()
        .filter(|p| p.range_start.is_some_and(|s| s >= now))
        .count();
    let default_rows: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(row_count), 0)::bigint FROM check_default_partitions() WHERE table_name = $1",
    )
    .bind(&table.base_table)
    .fetch_one(&mut *conn)
    .await?;
    let archives = sqlx::query_as(
        "SELECT partition_name, row_count, file_name, archived_at, verified_at, dropped_at, restored_at
         FROM bisman_partition_archives WHERE base_table = $1 ORDER BY archived_at DESC",
    )
    .bind(&table.base_table)
    .fetch_all(&mut *conn)
    .await?;
    let live_is_partitioned: bool = sqlx::query_scalar(
        "SELECT coalesce((SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(quote_ident($1))), false)",
    )
    .bind(&table.base_table)
    .fetch_one(&mut *conn)
    .await?;
    let migration_state =
        sqlx::query_scalar("SELECT state FROM bisman_table_migrations WHERE base_table = $1")
            .bind(&table.base_table)
            .fetch_optional(&mut *conn)
            .await?;
    let default_months = default_months(&mut *conn, &table).await?;
    let late_rows = default_months
        .iter()
        .filter(|d| d.kind == "late")
        .map(|d| d.rows)
        .sum();
    let detached_months = sqlx::query_as(
        "SELECT c.relname::text AS name,
                CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS row_estimate,
                pg_total_relation_size(c.oid) AS bytes, coalesce(i.inhdetachpending, false) AS detach_pending
         FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
         WHERE c.relkind = 'r' AND pg_table_is_visible(c.oid)
           AND c.relname ~ ('^' || $1 || '_p[0-9]{4}_[0-9]{2}$')
           AND (i.inhrelid IS NULL OR i.inhdetachpending)
         ORDER BY 1",
    )
    .bind(&table.base_table)
    .fetch_all(&mut *conn)
    .await?;
    let changed_since_archive = changed_since_archive(&mut *conn, &table, &partitions).await?;
    Ok(TableStatus {
        table,
        live_is_partitioned,
        migration_state,
        partitions,
        premade_months,
        default_rows,
        default_months,
        late_rows,
        detached_months,
        changed_since_archive,
        archives,
    })
}

/// Rows in the default partition by month, and what becomes of them.
async fn default_months(
    conn: &mut PgConnection,
    table: &ManagedTable,
) -> Result<Vec<DefaultMonth>, LifecycleError> {
    let rows: Vec<(chrono::NaiveDate, i64, bool)> = sqlx::query_as(
        "SELECT l.month, l.row_count,
                EXISTS (SELECT 1 FROM bisman_partition_archives a
                        WHERE a.base_table = $1 AND a.partition_name = bisman_partition_name($1, l.month)
                          AND a.dropped_at IS NOT NULL)
         FROM bisman_late_months($1, 'infinity') l ORDER BY 1",
    )
    .bind(&table.base_table)
    .fetch_all(&mut *conn)
    .await?;
    let current = Month::current().first_day();
    Ok(rows
        .into_iter()
        .map(|(month, rows, dropped)| DefaultMonth {
            month,
            rows,
            kind: if month >= current {
                "ahead"
            } else if dropped {
                "late"
            } else {
                "gap"
            }
            .into(),
        })
        .collect())
}

/// Attached months whose content differs from their newest archive.
async fn changed_since_archive(
    conn: &mut PgConnection,
    table: &ManagedTable,
    partitions: &[PartitionStatus],
) -> Result<Vec<ChangedMonth>, LifecycleError> {
    let newest: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT DISTINCT ON (partition_name) partition_name, file_name, row_count, content_checksum
         FROM bisman_partition_archives WHERE base_table = $1 AND verified_at IS NOT NULL
         ORDER BY partition_name, archived_at DESC, id DESC",
    )
    .bind(&table.base_table)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    let attached: Vec<&str> = partitions
        .iter()
        .filter(|p| !p.is_default)
        .map(|p| p.name.as_str())
        .collect();
    for (partition, file, archived_rows, checksum) in newest {
        if !attached.contains(&partition.as_str()) {
            continue;
        }
        let (rows_now, now) = digest(&mut *conn, &table.parent_table, &partition).await?;
        let note = match &checksum {
            None => {
                "archived before content checksums: retain archives it again before dropping it"
            }
            Some(c) if *c == now && rows_now == archived_rows => continue,
            Some(_) => "changed since its archive: retain archives it again before dropping it",
        };
        out.push(ChangedMonth {
            partition,
            archive: file,
            archived_rows,
            rows_now,
            note: note.into(),
        });
    }
    Ok(out)
}
