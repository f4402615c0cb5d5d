//! The fill: rows copied in key order, one transaction per batch, the
//! checkpoint advanced in the same transaction, so a killed run resumes
//! exactly after the last committed batch.

use std::time::Instant;

use sqlx::{Acquire, PgConnection, PgPool};

use super::shape::Shape;
use super::MigrateOptions;
use crate::lifecycle::ident::{quote, quote_list};
use crate::lifecycle::{steps, LifecycleError, Progress};

/// What a fill did.
pub(super) struct Filled {
    pub rows: i64,
    pub longest_batch_ms: f64,
}

/// Copies everything after the checkpoint; marks the migration `filled`.
pub(super) async fn fill(
    pool: &PgPool,
    shape: &Shape,
    opts: &MigrateOptions,
    progress: &dyn Progress,
) -> Result<Filled, LifecycleError> {
    let mut filled = Filled {
        rows: 0,
        longest_batch_ms: 0.0,
    };
    if shape.state.as_deref() != Some("filling") && shape.state.is_some() {
        return Ok(filled);
    }
    let mut conn = pool.acquire().await?;
    let (done, estimate): (i64, i64) = sqlx::query_as(
        "SELECT m.rows_copied, greatest(c.reltuples, 0)::bigint
         FROM bisman_table_migrations m, pg_class c
         WHERE m.base_table = $1 AND c.oid = to_regclass(quote_ident($1))",
    )
    .bind(&shape.base)
    .fetch_one(&mut *conn)
    .await?;
    progress.start(
        &format!("filling {}", shape.twin),
        Some(estimate.max(done) as u64),
    );
    progress.advance(done as u64);
    let sql = BatchSql::new(shape);
    let mut cursor = Cursor::start(&mut conn, shape, &sql).await?;
    loop {
        let started = Instant::now();
        let mut tx = conn.begin().await?;
        opts.locks.apply(&mut tx).await?;
        let (n, next) = cursor.batch(&mut tx, &sql, opts.batch_size).await?;
        if let Some(next) = &next {
            sqlx::query(
                "UPDATE bisman_table_migrations SET last_key = $2, rows_copied = rows_copied + $3,
                     batches = batches + 1, updated_at = now() WHERE base_table = $1",
            )
            .bind(&shape.base)
            .bind(next)
            .bind(n)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "UPDATE bisman_table_migrations SET state = 'filled', filled_at = now(), updated_at = now()
                 WHERE base_table = $1",
            )
            .bind(&shape.base)
            .execute(&mut *tx)
            .await?;
        }
        if next.is_some() {
            steps::reach(&mut tx, steps::MIGRATE_BATCH).await?;
        }
        tx.commit().await?;
        filled.longest_batch_ms = filled
            .longest_batch_ms
            .max(started.elapsed().as_secs_f64() * 1e3);
        if next.is_none() {
            break;
        }
        filled.rows += n;
        progress.advance(n as u64);
        if !opts.sleep.is_zero() {
            tokio::time::sleep(opts.sleep).await;
        }
    }
    progress.finish();
    Ok(filled)
}

/// Where the fill stands. Integer keys are copied by key range (no sort,
/// no materialised batch: the fastest plan), up to the largest key that
/// existed when the fill (re)started: rows written after that are in the
/// change log, which the catch-up replays. Other keys (the text ids of
/// messages) go in key order with a LIMIT until no row is left.
enum Cursor {
    Ranged { after: i64, max: i64 },
    Ordered { after: Option<String> },
}

impl Cursor {
    async fn start(
        conn: &mut PgConnection,
        shape: &Shape,
        sql: &BatchSql,
    ) -> Result<Self, LifecycleError> {
        if !sql.ranged {
            return Ok(Cursor::Ordered {
                after: shape.last_key.clone(),
            });
        }
        let (min, max): (Option<i64>, Option<i64>) =
            sqlx::query_as(&sql.bounds).fetch_one(&mut *conn).await?;
        let after = match &shape.last_key {
            Some(k) => k.parse().map_err(|_| {
                LifecycleError::Invalid(format!(
                    "checkpoint {k:?} of {} is not an integer",
                    shape.base
                ))
            })?,
            None => min.unwrap_or(0).saturating_sub(1),
        };
        Ok(Cursor::Ranged {
            after,
            max: max.unwrap_or(i64::MIN),
        })
    }

    /// Copies one batch; returns the rows and the new checkpoint (`None`
    /// when there is nothing left).
    async fn batch(
        &mut self,
        conn: &mut PgConnection,
        sql: &BatchSql,
        size: i64,
    ) -> Result<(i64, Option<String>), LifecycleError> {
        match self {
            Cursor::Ranged { after, max } => {
                if *after >= *max {
                    return Ok((0, None));
                }
                let upto = after.saturating_add(size).min(*max);
                let n: i64 = sqlx::query_scalar(&sql.range)
                    .bind(*after)
                    .bind(upto)
                    .fetch_one(conn)
                    .await?;
                *after = upto;
                Ok((n, Some(upto.to_string())))
            }
            Cursor::Ordered { after } => {
                let (n, last): (i64, Option<String>) = match after {
                    None => sqlx::query_as(&sql.first).bind(size),
                    Some(k) => sqlx::query_as(&sql.next).bind(k.clone()).bind(size),
                }
                .fetch_one(conn)
                .await?;
                if n == 0 {
                    return Ok((0, None));
                }
                after.clone_from(&last);
                Ok((n, last))
            }
        }
    }
}

/// The batch statements.
struct BatchSql {
    ranged: bool,
    bounds: String,
    range: String,
    first: String,
    next: String,
}

impl BatchSql {
    fn new(shape: &Shape) -> Self {
        let cols = quote_list(&shape.columns);
        let key = quote(&shape.key);
        let (src, dst) = (quote(&shape.base), quote(&shape.twin));
        let make = |filter: &str| {
            format!(
                "WITH batch AS (SELECT {cols} FROM {src} {filter} ORDER BY {key} LIMIT $LIMIT),
                      ins AS (INSERT INTO {dst} ({cols}) SELECT {cols} FROM batch)
                 SELECT count(*), max({key})::text FROM batch"
            )
        };
        Self {
            ranged: matches!(shape.key_type.as_str(), "bigint" | "integer" | "smallint"),
            bounds: format!("SELECT min({key})::bigint, max({key})::bigint FROM {src}"),
            range: format!(
                "WITH ins AS (INSERT INTO {dst} ({cols}) SELECT {cols} FROM {src}
                              WHERE {key} > $1::bigint AND {key} <= $2::bigint RETURNING 1)
                 SELECT count(*) FROM ins"
            ),
            first: make("").replace("$LIMIT", "$1"),
            next: make(&format!("WHERE {key} > $1::{}", shape.key_type)).replace("$LIMIT", "$2"),
        }
    }
}
