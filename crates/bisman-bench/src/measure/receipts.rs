//! Read receipts: "messages of thread T read by user U", "unread count for
//! U in T" and "mark as read", on JSONB `"readBy"` without a GIN index
//! (pre-P3), with the P3 GIN and thread indexes, and on the normalised
//! `message_reads` (partitioned by the message's month).
//!
//! Unread counts are exact on every layer (non-deleted messages of others
//! without a receipt of U); one more layer counts as `bisman serve` does,
//! after the user's read position (`thread_read_positions`) only. Marks as read go to messages of the last week
//! that U has not read; each is undone after the sampling, so the data set
//! is left as it was.

use sqlx::PgPool;

use super::query::{compare, Answer, ReadQuery};
use super::workload::{Pair, Unread};
use super::{Layer, Measurement, Operation, Sampler};
use crate::data::Dataset;
use crate::error::Result;
use crate::explain::Bind;
use crate::options::Effort;
use crate::Progress;

const READ_BY_JSONB: &str = r#"SELECT id FROM thread_messages
WHERE "threadId" = $1 AND "readBy" @> jsonb_build_array(jsonb_build_object('userId', $2::int))"#;

const READ_BY_TABLE: &str =
    "SELECT message_id FROM message_reads WHERE user_id = $2 AND thread_id = $1";

const UNREAD_JSONB: &str = r#"SELECT count(*) FROM thread_messages
WHERE "threadId" = $1 AND "senderId" <> $2 AND "isDeleted" = false
  AND NOT "readBy" @> jsonb_build_array(jsonb_build_object('userId', $2::int))"#;

const UNREAD_TABLE: &str = r#"SELECT count(*) FROM thread_messages_partitioned m
WHERE m."threadId" = $1 AND m."senderId" <> $2 AND m."isDeleted" = false
  AND NOT EXISTS (SELECT 1 FROM message_reads r
                  WHERE r.user_id = $2 AND r.thread_id = $1
                    AND r.message_id = m.id AND r.message_created_at = m."createdAt")"#;

/// What `bisman serve` counts: messages of others after the user's read
/// position without a receipt of theirs. The position bounds both tables by
/// time (each side gets the bound, so that each is pruned at executor
/// start to the partitions after it).
const UNREAD_POSITION: &str = r#"SELECT count(*) FROM thread_messages_partitioned m
WHERE m."threadId" = $1 AND m."senderId" <> $2 AND m."isDeleted" = false
  AND m."createdAt" > coalesce((SELECT rp.last_read_at FROM thread_read_positions rp
                                WHERE rp.user_id = $2 AND rp.thread_id = $1), '-infinity')
  AND NOT EXISTS (SELECT 1 FROM message_reads r
                  WHERE r.user_id = $2 AND r.thread_id = $1
                    AND r.message_id = m.id AND r.message_created_at = m."createdAt"
                    AND r.message_created_at > coalesce((SELECT rp.last_read_at FROM thread_read_positions rp
                                                         WHERE rp.user_id = $2 AND rp.thread_id = $1),
                                                        '-infinity'))"#;

/// The ERP's append to the JSONB array (Prisma also sets "updatedAt").
const MARK_JSONB: &str = r#"UPDATE thread_messages
SET "readBy" = "readBy" || jsonb_build_array(jsonb_build_object(
        'userId', $2::int,
        'readAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))),
    "updatedAt" = now() AT TIME ZONE 'UTC'
WHERE id = $1 AND NOT "readBy" @> jsonb_build_array(jsonb_build_object('userId', $2::int))"#;

/// Removes the entry the mark appended: the user had no entry before (the
/// pair was unread), so every entry of theirs goes, wherever it is (two
/// users' marks on one message interleave).
const UNMARK_JSONB: &str = r#"UPDATE thread_messages
SET "readBy" = coalesce((SELECT jsonb_agg(e ORDER BY k)
                         FROM jsonb_array_elements("readBy") WITH ORDINALITY AS x(e, k)
                         WHERE (e->>'userId')::int IS DISTINCT FROM $2::int), '[]'::jsonb),
    "updatedAt" = "createdAt"
WHERE id = $1 AND "readBy" @> jsonb_build_array(jsonb_build_object('userId', $2::int))"#;

const MARK_TABLE: &str =
    "INSERT INTO message_reads (message_id, user_id, tenant_id, thread_id, message_created_at)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

const UNMARK_TABLE: &str = "DELETE FROM message_reads
WHERE message_id = $1 AND user_id = $2 AND message_created_at = $3 AND tenant_id = $4";

fn thread_user(p: &Pair) -> Vec<Bind> {
    vec![Bind::Text(p.thread_id.clone()), Bind::Int(p.user_id)]
}

/// The two queries and the mark, on the three layers.
pub async fn measure(
    before: &Dataset,
    after: &Dataset,
    pairs: &[Pair],
    unread: &[Unread],
    effort: &Effort,
    progress: &dyn Progress,
) -> Result<Vec<Measurement>> {
    let mut out = Vec::new();
    let positions: bool =
        sqlx::query_scalar("SELECT to_regclass('thread_read_positions') IS NOT NULL")
            .fetch_one(&after.pool)
            .await?;
    for (operation, jsonb, table, answer) in [
        (
            Operation::ReadBy,
            READ_BY_JSONB,
            READ_BY_TABLE,
            Answer::Rows,
        ),
        (
            Operation::UnreadCount,
            UNREAD_JSONB,
            UNREAD_TABLE,
            Answer::Count,
        ),
    ] {
        let mut layers = vec![
            (Layer::JsonbNoGin, &before.pool, jsonb),
            (Layer::JsonbGin, &after.pool, jsonb),
            (Layer::Normalized, &after.pool, table),
        ];
        if operation == Operation::UnreadCount && positions {
            layers.push((Layer::ReadPosition, &after.pool, UNREAD_POSITION));
        }
        let queries = layers
            .into_iter()
            .map(|(layer, pool, sql)| ReadQuery {
                operation,
                layer,
                pool,
                sql: sql.to_string(),
                binds: thread_user,
                answer,
            })
            .collect();
        out.extend(compare(queries, pairs, effort, progress).await?);
        if operation == Operation::UnreadCount && !positions {
            out.push(Measurement::skipped(
                operation,
                Layer::ReadPosition,
                "this schema has no thread_read_positions",
            ));
        }
    }
    for (layer, pool) in [
        (Layer::JsonbNoGin, &before.pool),
        (Layer::JsonbGin, &after.pool),
        (Layer::Normalized, &after.pool),
    ] {
        out.push(mark(layer, pool, unread, effort, progress).await?);
    }
    Ok(out)
}

async fn mark_one(layer: Layer, pool: &PgPool, u: &Unread) -> Result<u64> {
    let q = if layer == Layer::Normalized {
        sqlx::query(MARK_TABLE)
            .bind(&u.message_id)
            .bind(u.user_id)
            .bind(u.tenant_id)
            .bind(&u.thread_id)
            .bind(u.created_at)
    } else {
        sqlx::query(MARK_JSONB).bind(&u.message_id).bind(u.user_id)
    };
    Ok(q.execute(pool).await?.rows_affected())
}

async fn unmark(layer: Layer, pool: &PgPool, done: &[Unread]) -> Result<()> {
    for u in done {
        let q = if layer == Layer::Normalized {
            sqlx::query(UNMARK_TABLE)
                .bind(&u.message_id)
                .bind(u.user_id)
                .bind(u.created_at)
                .bind(u.tenant_id)
        } else {
            sqlx::query(UNMARK_JSONB)
                .bind(&u.message_id)
                .bind(u.user_id)
        };
        q.execute(pool).await?;
    }
    Ok(())
}

async fn mark(
    layer: Layer,
    pool: &PgPool,
    unread: &[Unread],
    effort: &Effort,
    progress: &dyn Progress,
) -> Result<Measurement> {
    if unread.is_empty() {
        return Ok(Measurement::skipped(
            Operation::MarkRead,
            layer,
            "no unread messages in the data set's last week",
        ));
    }
    let mut sampler = Sampler::query(effort);
    // Each call needs a message of its own: never more calls than messages.
    sampler.warmup = sampler.warmup.min(unread.len() / 4);
    sampler.samples = sampler.samples.min(unread.len() - sampler.warmup);
    let changed = std::sync::atomic::AtomicU64::new(0);
    let used = std::sync::atomic::AtomicUsize::new(0);
    let label = format!("mark as read, {}", layer.label());
    let result = sampler
        .run(&label, progress, |i| {
            let (changed, used) = (&changed, &used);
            let u = unread.get(i);
            async move {
                let Some(u) = u else { return Ok(()) };
                used.fetch_max(i + 1, std::sync::atomic::Ordering::Relaxed);
                let n = mark_one(layer, pool, u).await?;
                changed.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
        })
        .await;
    // Undo even when sampling failed half-way.
    let used = used.into_inner();
    unmark(layer, pool, &unread[..used]).await?;
    let samples = result?;
    let changed = changed.into_inner();
    let mut m = Measurement::measured(Operation::MarkRead, layer, samples).with_note(format!(
        "{used} distinct unread (message, user) pairs, undone afterwards"
    ));
    if changed < used as u64 {
        m = m.with_note(format!("{} were already read", used as u64 - changed));
    }
    Ok(m)
}
