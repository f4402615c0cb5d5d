//! `bisman partitions premake`: the Rust side of `create_future_partitions`.
//!
//! Months from the current UTC month to `months` ahead are made for every
//! managed table and the tables that follow it. A month whose rows wait in
//! the default partition in large numbers is filled in committed batches
//! (pg_partman's `partition_data_proc`) while still detached, and attached
//! once the stragglers are moved under a short lock, so premake never fails
//! on "updated partition constraint for default partition would be
//! violated". A crash leaves the month detached with the rows moved so far;
//! the next run goes on from there. Months of a table that foreign keys point
//! into are moved in one transaction by the SQL function instead, because a
//! row leaving the default partition would cascade to its children.

use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};

use super::ident::quote;
use super::registry::{self, ManagedTable};
use super::{LifecycleError, LockPolicy, Progress};
use crate::partitions::Month;

/// What premake should do.
#[derive(Debug, Clone)]
pub struct PremakeOptions {
    /// Months ahead of the current one (the registry's `premake_months` when `None`).
    pub months: Option<i32>,
    /// Rows moved per committed batch out of a default partition.
    pub batch_size: i64,
    /// Report what would happen and change nothing.
    pub dry_run: bool,
    /// Lock timeout and retries for ATTACH.
    pub locks: LockPolicy,
}

impl Default for PremakeOptions {
    fn default() -> Self {
        Self {
            months: None,
            batch_size: 50_000,
            dry_run: false,
            locks: LockPolicy::default(),
        }
    }
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
    if opts.batch_size < 1 {
        return Err(LifecycleError::Invalid(
            "batch size must be positive".into(),
        ));
    }
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
            out.extend(plan(pool, table, &months).await?);
            continue;
        }
        let mut batched = Vec::new();
        for &m in &months {
            if let Some(moved) = move_in_batches(pool, table, m, opts, progress).await? {
                batched.push((m.partition_name(&table.base_table), moved));
            }
        }
        let mut made: Vec<PremadeMonth> = sqlx::query_as(
            "SELECT table_name, partition_name, created, rows_moved FROM bisman_ensure_partitions($1, $2, $3)",
        )
        .bind(&table.base_table)
        .bind(Month::current().first_day())
        .bind(ahead + 1)
        .fetch_all(pool)
        .await?;
        for line in &mut made {
            if let Some((_, moved)) = batched.iter().find(|(p, _)| *p == line.partition_name) {
                line.created = true;
                line.rows_moved += moved;
            }
        }
        out.extend(made);
    }
    Ok(out)
}

/// What premake would do for `table`: months missing and rows waiting.
async fn plan(
    pool: &PgPool,
    table: &ManagedTable,
    months: &[Month],
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
                default_rows_in(&mut conn, t, m).await?
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
) -> Result<i64, LifecycleError> {
    let Some(def) = registry::default_partition(conn, &table.parent_table).await? else {
        return Ok(0);
    };
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL TimeZone = 'UTC'")
        .execute(&mut *tx)
        .await?;
    let n: i64 = sqlx::query_scalar(&format!(
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

/// Whether foreign keys point into `parent` (then rows must not leave its
/// default partition outside one transaction: they would cascade).
async fn is_referenced(conn: &mut PgConnection, parent: &str) -> Result<bool, LifecycleError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass(quote_ident($1)))",
    )
    .bind(parent)
    .fetch_one(conn)
    .await?)
}

/// Moves month `m` out of the default partition in batches and attaches it,
/// when that is worth it and safe. Returns the rows moved, or `None` when the
/// SQL function should handle the month.
async fn move_in_batches(
    pool: &PgPool,
    table: &ManagedTable,
    m: Month,
    opts: &PremakeOptions,
    progress: &dyn Progress,
) -> Result<Option<i64>, LifecycleError> {
    let mut conn = pool.acquire().await?;
    let part = m.partition_name(&table.base_table);
    let attached = registry::attachment(&mut conn, &table.parent_table, &part).await?;
    let resuming = attached.is_none() && registry::exists(&mut conn, &part).await?;
    if attached.is_some() || is_referenced(&mut conn, &table.parent_table).await? {
        return Ok(None);
    }
    let Some(def) = registry::default_partition(&mut conn, &table.parent_table).await? else {
        return Ok(None);
    };
    let waiting = default_rows_in(&mut conn, table, m).await?;
    if !resuming && waiting <= opts.batch_size {
        return Ok(None);
    }
    progress.start(&format!("moving {part} out of {def}"), Some(waiting as u64));
    if !resuming {
        sqlx::query(&format!(
            "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
            quote(&part),
            quote(&table.parent_table)
        ))
        .execute(&mut *conn)
        .await?;
    }
    let mover = MoveSql::new(table, &def, &part);
    let mut moved = 0;
    loop {
        let mut tx = conn.begin().await?;
        sqlx::query("SET LOCAL TimeZone = 'UTC'")
            .execute(&mut *tx)
            .await?;
        let n = mover.batch(&mut tx, m, Some(opts.batch_size)).await?;
        tx.commit().await?;
        moved += n;
        progress.advance(n as u64);
        if n < opts.batch_size {
            break;
        }
    }
    drop(conn);
    moved += attach_month(pool, table, &def, &part, m, &mover, opts.locks).await?;
    progress.finish();
    Ok(Some(moved))
}

/// Moves the stragglers and attaches, with the default partition locked so
/// that no row of the month can arrive between the two.
async fn attach_month(
    pool: &PgPool,
    table: &ManagedTable,
    def: &str,
    part: &str,
    m: Month,
    mover: &MoveSql,
    locks: LockPolicy,
) -> Result<i64, LifecycleError> {
    locks
        .retry(&format!("attaching {part}"), || async {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            locks.apply(&mut tx).await?;
            sqlx::query("SET LOCAL TimeZone = 'UTC'")
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE",
                quote(&table.parent_table)
            ))
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
                quote(def)
            ))
            .execute(&mut *tx)
            .await?;
            let n = mover.batch(&mut tx, m, None).await?;
            sqlx::query("SELECT bisman_attach_month(bisman_managed_table($1, true), $2)")
                .bind(&table.base_table)
                .bind(m.first_day())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(n)
        })
        .await
}

/// The statement moving rows of a month from the default partition into the
/// detached month table.
struct MoveSql {
    sql_limited: String,
    sql_all: String,
}

impl MoveSql {
    fn new(table: &ManagedTable, def: &str, part: &str) -> Self {
        let col = quote(&table.partition_column);
        let (def, part) = (quote(def), quote(part));
        let pick = format!("{col} >= $1 AND {col} < $2");
        Self {
            sql_limited: format!(
                "WITH moved AS (DELETE FROM {def} WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM {def} WHERE {pick} LIMIT $3)) RETURNING *)
                 INSERT INTO {part} SELECT * FROM moved"
            ),
            sql_all: format!(
                "WITH moved AS (DELETE FROM {def} WHERE {pick} RETURNING *) INSERT INTO {part} SELECT * FROM moved"
            ),
        }
    }

    async fn batch(
        &self,
        conn: &mut PgConnection,
        m: Month,
        limit: Option<i64>,
    ) -> Result<i64, LifecycleError> {
        let q = match limit {
            Some(n) => sqlx::query(&self.sql_limited)
                .bind(m.start())
                .bind(m.end())
                .bind(n),
            None => sqlx::query(&self.sql_all).bind(m.start()).bind(m.end()),
        };
        Ok(q.execute(conn).await?.rows_affected() as i64)
    }
}
