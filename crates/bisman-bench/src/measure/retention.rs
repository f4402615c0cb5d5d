//! Retention of one month: `DELETE` of the month from the flat table
//! (before; plus the `VACUUM` that makes its space reusable) vs detach +
//! drop of the month's partitions of receipts, reactions and messages, in
//! that order, in one transaction (after).
//!
//! Each run works on its own fresh month: a copy of the oldest month of
//! messages (with its receipts and reactions) moved one month further back,
//! made untimed in both layouts, so both start from the same rows and the
//! data set is left as it was. A `CHECKPOINT` precedes each timed
//! operation, so that neither pays for writing back the copy made just
//! before it (without one, detach + drop's commit waited seconds on it).

use std::time::Instant;

use chrono::{Months, NaiveDate, NaiveDateTime};
use sqlx::{Connection, PgPool};

use super::{Layer, Measurement, Operation, Samples};
use crate::data::Dataset;
use crate::error::{BenchError, Result};
use crate::options::Effort;
use crate::Progress;

const COLUMNS: &str = r#"id, tenant_id, "threadId", "senderId", content, reactions, "readBy", "isDeleted", "createdAt", "updatedAt""#;

fn copy_messages(table: &str) -> String {
    format!(
        r#"INSERT INTO {table} ({COLUMNS})
           SELECT id || 'r', tenant_id, "threadId", "senderId", content, reactions, "readBy", "isDeleted",
                  "createdAt" - interval '1 month', "updatedAt" - interval '1 month'
           FROM {table} WHERE "createdAt" >= $1 AND "createdAt" < $2"#
    )
}

const COPY_READS: &str = "INSERT INTO message_reads (message_id, user_id, read_at, tenant_id, thread_id, message_created_at)
SELECT message_id || 'r', user_id, read_at - interval '1 month', tenant_id, thread_id, message_created_at - interval '1 month'
FROM message_reads WHERE message_created_at >= $1 AND message_created_at < $2";

const COPY_REACTIONS: &str = "INSERT INTO message_reactions (message_id, user_id, emoji, created_at, tenant_id, thread_id, message_created_at)
SELECT message_id || 'r', user_id, emoji, created_at - interval '1 month', tenant_id, thread_id, message_created_at - interval '1 month'
FROM message_reactions WHERE message_created_at >= $1 AND message_created_at < $2";

/// Writes dirty buffers out before a timed operation. Needs a superuser (or
/// `pg_checkpoint`); `false` when refused.
async fn checkpoint(pool: &PgPool) -> bool {
    sqlx::raw_sql("CHECKPOINT").execute(pool).await.is_ok()
}

fn midnight(d: NaiveDate) -> NaiveDateTime {
    d.and_hms_opt(0, 0, 0).unwrap_or_default()
}

/// The month copied (the oldest with data) and the fresh month it goes to.
fn months(after: &Dataset) -> (NaiveDate, NaiveDate, NaiveDate) {
    let source = after.meta.start_month;
    let target = source.checked_sub_months(Months::new(1)).unwrap_or(source);
    let next = source.checked_add_months(Months::new(1)).unwrap_or(source);
    (target, source, next)
}

/// A partition name made by `bisman_partition_name`: checked before it is
/// put into DDL.
fn ident(name: &str) -> Result<String> {
    if !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(format!("\"{name}\""))
    } else {
        Err(BenchError::Setup(format!(
            "unexpected partition name {name:?}"
        )))
    }
}

/// `DELETE` (and its `VACUUM`) vs detach + drop, `effort.retention_runs` times.
pub async fn measure(
    before: &Dataset,
    after: &Dataset,
    effort: &Effort,
    progress: &dyn Progress,
) -> Result<Vec<Measurement>> {
    let (mut delete, mut vacuum, mut drop) =
        (Samples::default(), Samples::default(), Samples::default());
    let mut rows = (0, 0, 0);
    let mut checkpoints = true;
    progress.start("retention of one month", Some(effort.retention_runs as u64));
    for _ in 0..effort.retention_runs {
        let (d, v, c1) = delete_month(&before.pool, after).await?;
        delete.us.push(d);
        vacuum.us.push(v);
        let (t, r, c2) = drop_month(&after.pool, after).await?;
        checkpoints &= c1 && c2;
        drop.us.push(t);
        rows = r;
        progress.advance(1);
    }
    progress.finish();
    for s in [&mut delete, &mut vacuum, &mut drop] {
        s.wall_secs = s.us.iter().sum::<f64>() / 1e6;
    }
    let what = format!(
        "one month: {} messages, {} receipts, {} reactions; {}",
        rows.0,
        rows.1,
        rows.2,
        if checkpoints {
            "each run on a fresh copy, after a CHECKPOINT"
        } else {
            "each run on a fresh copy; CHECKPOINT refused (not a superuser), so write-back of the copy may be counted"
        }
    );
    Ok(vec![
        Measurement::measured(Operation::Retention, Layer::Delete, delete).with_note(what.clone()),
        Measurement::measured(Operation::Retention, Layer::VacuumAfterDelete, vacuum)
            .with_note("not blocking, but the space is reusable only after it"),
        Measurement::measured(Operation::Retention, Layer::DetachDrop, drop).with_note(what),
    ])
}

/// Copies the month into the flat table, then times its `DELETE` and `VACUUM`.
async fn delete_month(pool: &PgPool, after: &Dataset) -> Result<(f64, f64, bool)> {
    let (target, source, next) = months(after);
    sqlx::query(&copy_messages("thread_messages"))
        .bind(midnight(source))
        .bind(midnight(next))
        .execute(pool)
        .await?;
    sqlx::raw_sql("ANALYZE thread_messages")
        .execute(pool)
        .await?;
    let checkpointed = checkpoint(pool).await;
    let t = Instant::now();
    sqlx::query(r#"DELETE FROM thread_messages WHERE "createdAt" >= $1 AND "createdAt" < $2"#)
        .bind(midnight(target))
        .bind(midnight(source))
        .execute(pool)
        .await?;
    let deleted = t.elapsed().as_secs_f64() * 1e6;
    let t = Instant::now();
    sqlx::raw_sql("VACUUM thread_messages")
        .execute(pool)
        .await?;
    Ok((deleted, t.elapsed().as_secs_f64() * 1e6, checkpointed))
}

/// Makes the fresh month's partitions and fills them, then times their
/// detach + drop. Returns the time and the month's messages, receipts and
/// reactions.
async fn drop_month(pool: &PgPool, after: &Dataset) -> Result<(f64, (i64, i64, i64), bool)> {
    let (target, source, next) = months(after);
    sqlx::query("SELECT count(*) FROM bisman_ensure_partitions('thread_messages', $1, 1)")
        .bind(target)
        .fetch_one(pool)
        .await?;
    let mut counts = [0i64; 3];
    for (k, sql) in [
        copy_messages("thread_messages_partitioned"),
        COPY_READS.to_string(),
        COPY_REACTIONS.to_string(),
    ]
    .iter()
    .enumerate()
    {
        counts[k] = sqlx::query(sql)
            .bind(midnight(source))
            .bind(midnight(next))
            .execute(pool)
            .await?
            .rows_affected() as i64;
    }
    let mut parts = Vec::new();
    for (parent, base) in [
        ("message_reads", "message_reads"),
        ("message_reactions", "message_reactions"),
        ("thread_messages_partitioned", "thread_messages"),
    ] {
        let name: String = sqlx::query_scalar("SELECT bisman_partition_name($1, $2)")
            .bind(base)
            .bind(target)
            .fetch_one(pool)
            .await?;
        parts.push((parent, ident(&name)?));
    }
    let checkpointed = checkpoint(pool).await;
    let mut conn = pool.acquire().await?;
    let t = Instant::now();
    let mut tx = conn.begin().await?;
    for (parent, part) in &parts {
        sqlx::raw_sql(&format!(
            "ALTER TABLE {parent} DETACH PARTITION {part}; DROP TABLE {part};"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok((
        t.elapsed().as_secs_f64() * 1e6,
        (counts[0], counts[1], counts[2]),
        checkpointed,
    ))
}
