//! `bisman partitions status`: where every managed table stands.
//!
//! Read-only: partitions with bounds, row estimates and sizes, months premade
//! ahead, rows waiting in default partitions, archives, and the state of a
//! table migration.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::registry::{self, ManagedTable};
use super::LifecycleError;
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
    /// Its archives, newest first.
    pub archives: Vec<ArchiveStatus>,
}

/// The status of every managed table.
#[tracing::instrument(skip_all)]
pub async fn status(pool: &PgPool) -> Result<Vec<TableStatus>, LifecycleError> {
    let mut out = Vec::new();
    for table in registry::all(pool).await? {
        out.push(table_status(pool, table).await?);
    }
    Ok(out)
}

async fn table_status(pool: &PgPool, table: ManagedTable) -> Result<TableStatus, LifecycleError> {
    let partitions: Vec<PartitionStatus> = sqlx::query_as(
        "SELECT p.partition_name AS name, p.is_default, p.range_start, p.range_end,
                CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS row_estimate,
                pg_total_relation_size(c.oid) AS bytes
         FROM bisman_partitions($1) p JOIN pg_class c ON c.oid = to_regclass(quote_ident(p.partition_name))",
    )
    .bind(&table.base_table)
    .fetch_all(pool)
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
    .fetch_one(pool)
    .await?;
    let archives = sqlx::query_as(
        "SELECT partition_name, row_count, file_name, archived_at, verified_at, dropped_at, restored_at
         FROM bisman_partition_archives WHERE base_table = $1 ORDER BY archived_at DESC",
    )
    .bind(&table.base_table)
    .fetch_all(pool)
    .await?;
    let live_is_partitioned: bool = sqlx::query_scalar(
        "SELECT coalesce((SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(quote_ident($1))), false)",
    )
    .bind(&table.base_table)
    .fetch_one(pool)
    .await?;
    let migration_state =
        sqlx::query_scalar("SELECT state FROM bisman_table_migrations WHERE base_table = $1")
            .bind(&table.base_table)
            .fetch_optional(pool)
            .await?;
    Ok(TableStatus {
        table,
        live_is_partitioned,
        migration_state,
        partitions,
        premade_months,
        default_rows,
        archives,
    })
}
