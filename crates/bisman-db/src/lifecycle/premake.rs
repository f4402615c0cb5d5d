//! `bisman partitions premake`: the Rust side of `create_future_partitions`.
//!
//! Months from the current UTC month to `months` ahead are made for every
//! managed table and the tables that follow it, one transaction per month,
//! by the same SQL as `create_future_partitions` (`bisman_premake_month`,
//! migration `016`): the month's table is built with the parent's indexes
//! and a CHECK matching its bounds, the rows waiting for it in the default
//! partition are copied in, and only then, under a short lock that keeps
//! writers out (retried on `lock_timeout`), are the copies reconciled with
//! what changed meanwhile, the originals deleted and the month attached.
//! Rows waiting in a default partition stay visible and writable throughout;
//! a crash rolls the month back whole. Two premakes of a table at once do not
//! collide: the second waits for the first and finds its months made.

use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};

use super::ident::quote;
use super::registry::{self, ManagedTable};
use super::{LifecycleError, LockPolicy, Progress};
use crate::partitions::Month;

/// What premake should do.
#[derive(Debug, Clone, Default)]
pub struct PremakeOptions {
    /// Months ahead of the current one (the registry's `premake_months` when `None`).
    pub months: Option<i32>,
    /// Report what would happen and change nothing.
    pub dry_run: bool,
    /// Lock timeout, retries and statement limit.
    pub locks: LockPolicy,
}

/// One month of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PremadeMonth {
    /// The managed table.
    pub table_name: String,
    /// The partition.
    pub partition_name: String,
    /// Whether it was (or, in a dry run, would be) created.
    pub created: bool,
    /// Rows moved (or to move) out of the default partition.
    pub rows_moved: i64,
}

/// Premakes months for `tables` (roots; their followers come along).
#[tracing::instrument(skip_all)]
pub async fn premake(
    pool: &PgPool,
    tables: &[ManagedTable],
    opts: &PremakeOptions,
    progress: &dyn Progress,
) -> Result<Vec<PremadeMonth>, LifecycleError> {
    let mut out = Vec::new();
    for table in tables {
        let ahead = opts.months.unwrap_or(table.premake_months);
        if !(0..=120).contains(&ahead) {
            return Err(LifecycleError::Invalid(format!(
                "months ahead must be between 0 and 120, got {ahead}"
            )));
        }
        let months: Vec<Month> = (0..=ahead).map(|i| Month::current().plus(i)).collect();
        if opts.dry_run {
            out.extend(plan(pool, table, &months, opts.locks).await?);
            continue;
        }
        progress.start(
            &format!("premaking {}", table.base_table),
            Some(months.len() as u64),
        );
        for m in months {
            out.extend(premake_month(pool, table, m, opts.locks).await?);
            progress.advance(1);
        }
        progress.finish();
    }
    Ok(out)
}

/// Makes month `m` of `table` and its followers in one transaction.
pub(crate) async fn premake_month(
    pool: &PgPool,
    table: &ManagedTable,
    m: Month,
    locks: LockPolicy,
) -> Result<Vec<PremadeMonth>, LifecycleError> {
    let mut tx = locks.begin(pool).await?;
    let made: Vec<PremadeMonth> = sqlx::query_as(
        "SELECT table_name, partition_name, created, rows_moved FROM bisman_premake_month($1, $2)",
    )
    .bind(&table.base_table)
    .bind(m.first_day())
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| {
        lock_error(
            e,
            &format!("making {}", m.partition_name(&table.base_table)),
            locks,
        )
    })?;
    tx.commit().await?;
    Ok(made)
}

/// The SQL functions retry their own locks; when they give up, say so as
/// the Rust retries do.
pub(crate) fn lock_error(e: sqlx::Error, what: &str, locks: LockPolicy) -> LifecycleError {
    if LifecycleError::is_lock_timeout(&e) {
        LifecycleError::LockTimeout {
            what: what.to_string(),
            timeout_ms: locks.timeout_ms,
            attempts: locks.attempts,
        }
    } else {
        LifecycleError::Database(e)
    }
}

/// What premake would do for `table`: months missing and rows waiting.
async fn plan(
    pool: &PgPool,
    table: &ManagedTable,
    months: &[Month],
    locks: LockPolicy,
) -> Result<Vec<PremadeMonth>, LifecycleError> {
    let mut conn = pool.acquire().await?;
    let mut members = vec![table.clone()];
    for t in registry::all(pool).await? {
        if t.follows.as_deref() == Some(&table.base_table) {
            members.push(t);
        }
    }
    let mut out = Vec::new();
    for &m in months {
        for t in &members {
            let name = m.partition_name(&t.base_table);
            let created = registry::attachment(&mut conn, &t.parent_table, &name)
                .await?
                .is_none();
            let rows_moved = if created {
                default_rows_in(&mut conn, t, m, locks).await?
            } else {
                0
            };
            out.push(PremadeMonth {
                table_name: t.base_table.clone(),
                partition_name: name,
                created,
                rows_moved,
            });
        }
    }
    Ok(out)
}

/// Rows of month `m` waiting in `table`'s default partition.
async fn default_rows_in(
    conn: &mut PgConnection,
    table: &ManagedTable,
    m: Month,
    locks: LockPolicy,
) -> Result<i64, LifecycleError> {
    let Some(def) = registry::default_partition(conn, &table.parent_table).await? else {
        return Ok(0);
    };
    // Month bounds are UTC, whatever the session's time zone; counting reads
    // the default partition: the maintenance statement limit.
    let mut tx = conn.begin().await?;
    locks.apply(&mut tx).await?;
    sqlx::query("SET LOCAL TimeZone = 'UTC'")
        .execute(&mut *tx)
        .await?;
    let n = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {} WHERE {col} >= $1 AND {col} < $2",
        quote(&def),
        col = quote(&table.partition_column)
    ))
    .bind(m.start())
    .bind(m.end())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n)
}
