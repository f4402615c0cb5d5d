//! The registry `bisman_partitioned_tables` and the partitions of each table.
//!
//! A [`ManagedTable`] can only be made from a registry row, so its names are
//! the whitelist that dynamic SQL in this module tree draws from.

use chrono::NaiveDateTime;
use sqlx::{PgConnection, PgPool};

use super::LifecycleError;
use crate::partitions::Month;

/// One managed table, as the registry describes it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ManagedTable {
    /// The name the application uses (`thread_messages`).
    pub base_table: String,
    /// The partitioned table (`thread_messages_partitioned` before a swap).
    pub parent_table: String,
    /// The partition key column.
    pub partition_column: String,
    /// The table whose months this one follows (reads and reactions).
    pub follows: Option<String>,
    /// Months kept before the current one.
    pub past_months: i32,
    /// Months made ahead of the current one.
    pub premake_months: i32,
}

/// One partition of a managed table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Partition {
    /// Its table name.
    pub partition_name: String,
    /// Whether it is the default partition.
    pub is_default: bool,
    /// Inclusive lower bound (naive UTC); `None` for the default partition.
    pub range_start: Option<NaiveDateTime>,
    /// Exclusive upper bound.
    pub range_end: Option<NaiveDateTime>,
}

impl Partition {
    /// The month it holds, `None` for the default partition.
    pub fn month(&self) -> Option<Month> {
        self.range_start.map(Month::containing_naive)
    }
}

const COLUMNS: &str =
    "base_table, parent_table, partition_column, follows, past_months, premake_months";

/// Every managed table, tables that are followed first.
#[tracing::instrument(skip_all)]
pub async fn all(pool: &PgPool) -> Result<Vec<ManagedTable>, LifecycleError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bisman_partitioned_tables ORDER BY follows NULLS FIRST, base_table"
    ))
    .fetch_all(pool)
    .await?)
}

/// The managed table called `name`, or a clear error listing the known ones.
#[tracing::instrument(skip(conn))]
pub async fn get(conn: &mut PgConnection, name: &str) -> Result<ManagedTable, LifecycleError> {
    let found: Option<ManagedTable> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bisman_partitioned_tables WHERE base_table = $1"
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    match found {
        Some(t) => Ok(t),
        None => {
            let known: Vec<String> = sqlx::query_scalar(
                "SELECT base_table FROM bisman_partitioned_tables WHERE follows IS NULL ORDER BY 1",
            )
            .fetch_all(&mut *conn)
            .await?;
            Err(LifecycleError::UnknownTable {
                name: name.to_string(),
                known: known.join(", "),
            })
        }
    }
}

/// A table that others follow (`follows IS NULL`), or an error saying which
/// table to name instead.
pub async fn root(conn: &mut PgConnection, name: &str) -> Result<ManagedTable, LifecycleError> {
    let table = get(conn, name).await?;
    match &table.follows {
        None => Ok(table),
        Some(leader) => Err(LifecycleError::Invalid(format!(
            "{name} is partitioned together with {leader}: name {leader} instead"
        ))),
    }
}

/// The managed roots named, or all roots when `names` is empty.
pub async fn roots(pool: &PgPool, names: &[String]) -> Result<Vec<ManagedTable>, LifecycleError> {
    if names.is_empty() {
        return Ok(all(pool)
            .await?
            .into_iter()
            .filter(|t| t.follows.is_none())
            .collect());
    }
    let mut conn = pool.acquire().await?;
    let mut out = Vec::new();
    for n in names {
        out.push(root(&mut conn, n).await?);
    }
    Ok(out)
}

/// The tables whose months are retired with `root`'s: they follow it and
/// their foreign key points at its partitioned parent (children of a flat
/// table keep their months until the table is migrated).
#[tracing::instrument(skip(conn, root), fields(root = %root.base_table))]
pub async fn retired_with(
    conn: &mut PgConnection,
    root: &ManagedTable,
) -> Result<Vec<ManagedTable>, LifecycleError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bisman_partitioned_tables b
         WHERE b.follows = $1
           AND EXISTS (SELECT 1 FROM pg_constraint fk
                       WHERE fk.contype = 'f'
                         AND fk.conrelid = to_regclass(quote_ident(b.parent_table))
                         AND fk.confrelid = to_regclass(quote_ident($2)))
         ORDER BY b.base_table"
    ))
    .bind(&root.base_table)
    .bind(&root.parent_table)
    .fetch_all(&mut *conn)
    .await?)
}

/// The partitions of a managed table (default first, then by month).
#[tracing::instrument(skip(conn))]
pub async fn partitions(
    conn: &mut PgConnection,
    base: &str,
) -> Result<Vec<Partition>, LifecycleError> {
    Ok(sqlx::query_as(
        "SELECT partition_name, is_default, range_start, range_end FROM bisman_partitions($1)",
    )
    .bind(base)
    .fetch_all(&mut *conn)
    .await?)
}

/// The default partition of `parent`, if it has one.
pub async fn default_partition(
    conn: &mut PgConnection,
    parent: &str,
) -> Result<Option<String>, LifecycleError> {
    Ok(sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partdefid
         WHERE pt.partrelid = to_regclass(quote_ident($1))",
    )
    .bind(parent)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Whether a relation called `name` exists.
pub async fn exists(conn: &mut PgConnection, name: &str) -> Result<bool, LifecycleError> {
    Ok(
        sqlx::query_scalar("SELECT to_regclass(quote_ident($1)) IS NOT NULL")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Whether `name` is attached to `parent` (`Some(true)` when the detach of
/// an interrupted `DETACH … CONCURRENTLY` is still pending).
pub async fn attachment(
    conn: &mut PgConnection,
    parent: &str,
    name: &str,
) -> Result<Option<bool>, LifecycleError> {
    Ok(sqlx::query_scalar(
        "SELECT i.inhdetachpending FROM pg_inherits i
         WHERE i.inhrelid = to_regclass(quote_ident($2)) AND i.inhparent = to_regclass(quote_ident($1))",
    )
    .bind(parent)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The columns of a table in order, with their SQL types.
pub async fn columns(
    conn: &mut PgConnection,
    table: &str,
) -> Result<Vec<(String, String)>, LifecycleError> {
    Ok(sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
         FROM pg_attribute a
         WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?)
}
