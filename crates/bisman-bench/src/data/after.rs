//! The "after" layout's own tables: the messages copied into their monthly
//! partitions, the JSONB receipts and reactions into `message_reads` /
//! `message_reactions`, the foreign keys of those pointed at the
//! partitioned table (as `bisman partitions migrate`'s swap leaves them),
//! and the participants' read positions (`thread_read_positions`).
//!
//! The keys are dropped during the load and added back after it: adding a
//! key checks every row in one join, much faster than a check per insert.

use chrono::{Months, NaiveDate};
use sqlx::PgPool;

use super::shape::{Shape, Timeline};
use crate::error::Result;
use crate::Progress;

const COPY_MESSAGES: &str = r#"
INSERT INTO thread_messages_partitioned SELECT * FROM thread_messages
WHERE "createdAt" >= $1 AND "createdAt" < $2
ORDER BY "createdAt""#;

const COPY_READS: &str = r#"
INSERT INTO message_reads (message_id, user_id, read_at, tenant_id, thread_id, message_created_at)
SELECT m.id, (e->>'userId')::int, (e->>'readAt')::timestamptz AT TIME ZONE 'UTC',
       m.tenant_id, m."threadId", m."createdAt"
FROM thread_messages_partitioned m CROSS JOIN LATERAL jsonb_array_elements(m."readBy") e
WHERE m."createdAt" >= $1 AND m."createdAt" < $2
ORDER BY m."createdAt", m.id"#;

const COPY_REACTIONS: &str = r#"
INSERT INTO message_reactions (message_id, user_id, emoji, created_at, tenant_id, thread_id, message_created_at)
SELECT m.id, (e->>'userId')::int, e->>'emoji', (e->>'createdAt')::timestamptz AT TIME ZONE 'UTC',
       m.tenant_id, m."threadId", m."createdAt"
FROM thread_messages_partitioned m CROSS JOIN LATERAL jsonb_array_elements(m.reactions) e
WHERE m."createdAt" >= $1 AND m."createdAt" < $2
ON CONFLICT DO NOTHING"#;

const DROP_KEYS: &str = "
ALTER TABLE message_reads DROP CONSTRAINT IF EXISTS message_reads_message_fkey;
ALTER TABLE message_reactions DROP CONSTRAINT IF EXISTS message_reactions_message_fkey;";

const ADD_KEYS: &str = r#"
ALTER TABLE message_reads ADD CONSTRAINT message_reads_message_fkey
    FOREIGN KEY (message_id, message_created_at, tenant_id)
    REFERENCES thread_messages_partitioned (id, "createdAt", tenant_id) ON DELETE CASCADE;
ALTER TABLE message_reactions ADD CONSTRAINT message_reactions_message_fkey
    FOREIGN KEY (message_id, message_created_at, tenant_id)
    REFERENCES thread_messages_partitioned (id, "createdAt", tenant_id) ON DELETE CASCADE;"#;

fn next(m: NaiveDate) -> NaiveDate {
    m.checked_add_months(Months::new(1)).unwrap_or(m)
}

/// Fills the partitioned and normalised tables from the flat one.
pub(super) async fn partitioned(
    pool: &PgPool,
    shape: &Shape,
    timeline: &Timeline,
    progress: &dyn Progress,
) -> Result<()> {
    sqlx::query("SELECT count(*) FROM bisman_ensure_partitions('thread_messages', $1, $2)")
        .bind(timeline.start_month)
        .bind(shape.months)
        .fetch_one(pool)
        .await?;
    sqlx::raw_sql(DROP_KEYS).execute(pool).await?;
    let months = timeline.months();
    for (phase, sql) in [
        ("messages into monthly partitions", COPY_MESSAGES),
        ("receipts into message_reads", COPY_READS),
        ("reactions into message_reactions", COPY_REACTIONS),
    ] {
        progress.start(
            &format!("after: {phase} (months)"),
            Some(months.len() as u64),
        );
        for m in &months {
            sqlx::query(sql)
                .bind(m.and_hms_opt(0, 0, 0))
                .bind(next(*m).and_hms_opt(0, 0, 0))
                .execute(pool)
                .await?;
            progress.advance(1);
        }
        progress.finish();
    }
    progress.start("after: foreign keys onto the partitioned table", None);
    sqlx::raw_sql(ADD_KEYS).execute(pool).await?;
    progress.finish();
    read_positions(pool, timeline).await
}

/// Every participant's read position (`thread_read_positions`, the
/// service's Mattermost-style `LastViewedAt`) where the generator put it:
/// everything up to a week before the end is read.
async fn read_positions(pool: &PgPool, timeline: &Timeline) -> Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('thread_read_positions') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if exists {
        sqlx::query(
            "INSERT INTO thread_read_positions (tenant_id, user_id, thread_id, last_read_at)
             SELECT b.tenant_id, p, b.thread_id, $1
             FROM bisman_bench_threads b, unnest(b.participants) p
             ON CONFLICT DO NOTHING",
        )
        .bind(timeline.recent())
        .execute(pool)
        .await?;
    }
    Ok(())
}
