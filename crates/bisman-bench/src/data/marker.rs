//! The marker row that says a data set is complete, and what it holds.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sqlx::PgPool;

use super::shape::{Shape, Timeline};
use super::{Layout, GENERATOR_VERSION};
use crate::error::Result;

const TABLE: &str = "
CREATE TABLE IF NOT EXISTS bisman_bench_dataset (
    layout             TEXT NOT NULL,
    generator_version  INTEGER NOT NULL,
    rows               BIGINT NOT NULL,
    seed               BIGINT NOT NULL,
    start_month        DATE NOT NULL,
    data_end           TIMESTAMP NOT NULL,
    tenants            BIGINT NOT NULL,
    users              BIGINT NOT NULL,
    threads            BIGINT NOT NULL,
    sessions           BIGINT NOT NULL,
    messages           BIGINT NOT NULL,
    receipts           BIGINT NOT NULL,
    reactions          BIGINT NOT NULL,
    largest_thread     BIGINT NOT NULL,
    median_thread      BIGINT NOT NULL,
    build_seconds      FLOAT8 NOT NULL,
    built_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    in_use_since       TIMESTAMPTZ
)";

/// What a data set holds, as recorded when it was built.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct DatasetMeta {
    /// `before` or `after`.
    pub layout: String,
    /// The generator that made it.
    pub generator_version: i32,
    /// Messages asked for.
    pub rows: i64,
    /// Seed.
    pub seed: i64,
    /// First month with messages.
    pub start_month: NaiveDate,
    /// The newest message is just before this (UTC).
    pub data_end: NaiveDateTime,
    /// Tenants.
    pub tenants: i64,
    /// Users.
    pub users: i64,
    /// Threads.
    pub threads: i64,
    /// Rows in `user_sessions`.
    pub sessions: i64,
    /// Messages.
    pub messages: i64,
    /// Read receipts (JSONB entries; rows of `message_reads` in the after layout).
    pub receipts: i64,
    /// Reactions.
    pub reactions: i64,
    /// Messages in the largest thread.
    pub largest_thread: i64,
    /// Messages in the median thread.
    pub median_thread: i64,
    /// How long the build took.
    pub build_seconds: f64,
    /// When it was built.
    pub built_at: DateTime<Utc>,
    /// Set while a run measures it (changes not yet undone).
    pub in_use_since: Option<DateTime<Utc>>,
}

impl DatasetMeta {
    /// The timeline the data was generated on.
    pub fn timeline(&self) -> Timeline {
        Timeline {
            start_month: self.start_month,
            end: self.data_end,
        }
    }
}

/// The marker, if the data set is complete.
pub(super) async fn read(pool: &PgPool) -> Result<Option<DatasetMeta>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('bisman_bench_dataset') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(None);
    }
    Ok(sqlx::query_as("SELECT * FROM bisman_bench_dataset LIMIT 1")
        .fetch_optional(pool)
        .await?)
}

/// Counts what was generated and records it: the data set is complete.
pub(super) async fn write(
    pool: &PgPool,
    layout: Layout,
    shape: &Shape,
    timeline: &Timeline,
    build_seconds: f64,
) -> Result<DatasetMeta> {
    sqlx::raw_sql(TABLE).execute(pool).await?;
    let receipts = match layout {
        Layout::Before => {
            r#"(SELECT coalesce(sum(jsonb_array_length("readBy")), 0)::bigint FROM thread_messages)"#
        }
        Layout::After => "(SELECT count(*) FROM message_reads)",
    };
    let reactions = match layout {
        Layout::Before => {
            "(SELECT coalesce(sum(jsonb_array_length(reactions)), 0)::bigint FROM thread_messages)"
        }
        Layout::After => "(SELECT count(*) FROM message_reactions)",
    };
    let sql = format!(
        "INSERT INTO bisman_bench_dataset
             (layout, generator_version, rows, seed, start_month, data_end, tenants, users, threads,
              sessions, messages, receipts, reactions, largest_thread, median_thread, build_seconds)
         SELECT $1, $2, $3, $4, $5, $6,
                (SELECT count(*) FROM tenants), (SELECT count(*) FROM users),
                (SELECT count(*) FROM threads), (SELECT count(*) FROM user_sessions),
                (SELECT count(*) FROM thread_messages), {receipts}, {reactions},
                (SELECT coalesce(max(messages), 0) FROM bisman_bench_threads),
                (SELECT coalesce(percentile_disc(0.5) WITHIN GROUP (ORDER BY messages), 0)
                 FROM bisman_bench_threads),
                $7
         RETURNING *"
    );
    Ok(sqlx::query_as(&sql)
        .bind(layout.name())
        .bind(GENERATOR_VERSION)
        .bind(shape.rows.get() as i64)
        .bind(shape.seed as i64)
        .bind(timeline.start_month)
        .bind(timeline.end)
        .bind(build_seconds)
        .fetch_one(pool)
        .await?)
}

/// Sets or clears the "being measured" mark.
pub(super) async fn set_in_use(pool: &PgPool, in_use: bool) -> Result<()> {
    sqlx::query("UPDATE bisman_bench_dataset SET in_use_since = CASE WHEN $1 THEN now() END")
        .bind(in_use)
        .execute(pool)
        .await?;
    Ok(())
}
