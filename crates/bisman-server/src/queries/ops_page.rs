//! What the ops web page reads: database health, the maintenance log,
//! slow queries over a window, table access patterns, and the viewer's
//! e-mail. Apart from the e-mail (scoped by tenant) these describe the
//! database as a whole, for super admins only. No SQL here is built from
//! input: the window is a bound parameter from a fixed list.

use bisman_cache::{TenantId, UserId};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// How the database is doing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DatabaseHealth {
    /// `server_version`.
    pub version: String,
    /// The database's name.
    pub database: String,
    /// Its size on disk.
    pub size_bytes: i64,
    /// Backends connected to it now.
    pub connections: i64,
    /// `max_connections` of the server.
    pub max_connections: i32,
    /// Share of block reads served from shared buffers.
    pub buffer_hit_ratio: Option<f64>,
    /// Transactions committed since the statistics reset.
    pub xact_commit: i64,
    /// Transactions rolled back.
    pub xact_rollback: i64,
    /// Deadlocks detected.
    pub deadlocks: i64,
    /// Age of the oldest unfrozen transaction id (wraparound at ~2 billion).
    pub xid_age: i32,
    /// When the server started.
    pub started_at: DateTime<Utc>,
}

/// Health figures of the current database.
#[tracing::instrument(skip(pool))]
pub async fn database_health(pool: &PgPool) -> Result<DatabaseHealth, sqlx::Error> {
    sqlx::query_as(
        "SELECT current_setting('server_version') AS version,
                current_database()::text AS database,
                pg_database_size(current_database()) AS size_bytes,
                (SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.datid) AS connections,
                current_setting('max_connections')::int AS max_connections,
                d.blks_hit::float8 / nullif(d.blks_hit + d.blks_read, 0) AS buffer_hit_ratio,
                d.xact_commit, d.xact_rollback, d.deadlocks,
                age(db.datfrozenxid) AS xid_age,
                pg_postmaster_start_time() AS started_at
         FROM pg_stat_database d JOIN pg_database db ON db.oid = d.datid
         WHERE d.datname = current_database()",
    )
    .fetch_one(pool)
    .await
}

/// One maintenance job's latest run (`bisman_job_state`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobState {
    /// Job name.
    pub job: String,
    /// Last start.
    pub last_started_at: Option<DateTime<Utc>>,
    /// Last end.
    pub last_finished_at: Option<DateTime<Utc>>,
    /// `ok`, `failed` or `running`.
    pub last_outcome: Option<String>,
    /// Last duration.
    pub last_duration_ms: Option<i64>,
    /// Last summary or error.
    pub last_detail: Option<String>,
    /// Instance that ran it.
    pub last_instance: Option<String>,
}

/// Every job's latest run.
#[tracing::instrument(skip(pool))]
pub async fn job_states(pool: &PgPool) -> Result<Vec<JobState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT job, last_started_at, last_finished_at, last_outcome, last_duration_ms, last_detail,
                last_instance
         FROM bisman_job_state ORDER BY job",
    )
    .fetch_all(pool)
    .await
}

/// One run in the job log (`bisman_job_runs`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRun {
    /// Job name.
    pub job: String,
    /// Instance that ran it.
    pub instance: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// Duration.
    pub duration_ms: Option<i64>,
    /// `ok`, `failed` or `running`.
    pub outcome: String,
    /// Summary or error.
    pub detail: Option<String>,
}

/// The newest `limit` runs.
#[tracing::instrument(skip(pool))]
pub async fn recent_job_runs(pool: &PgPool, limit: i64) -> Result<Vec<JobRun>, sqlx::Error> {
    sqlx::query_as(
        "SELECT job, instance, started_at, duration_ms, outcome, detail
         FROM bisman_job_runs ORDER BY started_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Why `pg_stat_statements` cannot be read, or `None` when it can.
#[tracing::instrument(skip(pool))]
pub async fn stat_statements_problem(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT bisman_stat_statements_problem()")
        .fetch_one(pool)
        .await
}

/// One statement over a window (`bisman_slow_queries`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SlowQuery {
    /// `pg_stat_statements.queryid`.
    pub queryid: i64,
    /// Normalised query text (constants replaced by `$n`).
    pub query: String,
    /// Calls in the window.
    pub calls: i64,
    /// Total execution time in the window.
    pub total_ms: f64,
    /// Mean execution time in the window.
    pub mean_ms: f64,
    /// Longest execution since the statistics reset.
    pub max_ms: f64,
    /// Rows returned or affected in the window.
    pub rows: i64,
    /// Start of the window actually covered (`None`: since the reset).
    pub window_start: Option<DateTime<Utc>>,
    /// `snapshot difference` or `since statistics reset`.
    pub source: String,
}

/// The order of a slow-query list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowOrder {
    /// By total execution time.
    Total,
    /// By mean execution time.
    Mean,
}

/// The `limit` heaviest statements over `window` (a PostgreSQL interval
/// from the page's fixed list), by total or mean time. Every statement
/// counts (no minimum mean); `bisman_slow_queries` considers the 100
/// heaviest by total time, so the list by mean is drawn from those.
#[tracing::instrument(skip(pool))]
pub async fn slow_queries(
    pool: &PgPool,
    window: &'static str,
    order: SlowOrder,
    limit: i64,
) -> Result<Vec<SlowQuery>, sqlx::Error> {
    let sql = match order {
        SlowOrder::Total => {
            "SELECT queryid, query, calls, total_ms, mean_ms, max_ms, rows, window_start, source
             FROM bisman_slow_queries($1::interval, 0) ORDER BY total_ms DESC LIMIT $2"
        }
        SlowOrder::Mean => {
            "SELECT queryid, query, calls, total_ms, mean_ms, max_ms, rows, window_start, source
             FROM bisman_slow_queries($1::interval, 0) ORDER BY mean_ms DESC LIMIT $2"
        }
    };
    sqlx::query_as(sql)
        .bind(window)
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// Execution time of the statements `bisman_slow_queries` considers over
/// `window` (the 100 heaviest), added up: what a statement's share is of.
#[tracing::instrument(skip(pool))]
pub async fn slow_queries_total_ms(
    pool: &PgPool,
    window: &'static str,
) -> Result<f64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(total_ms), 0)::float8 FROM bisman_slow_queries($1::interval, 0)",
    )
    .bind(window)
    .fetch_one(pool)
    .await
}

/// The oldest and the newest snapshot times.
pub type SnapshotSpan = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// When the oldest and the newest `pg_stat_statements` snapshots kept were
/// taken (both `None` before the first).
#[tracing::instrument(skip(pool))]
pub async fn snapshot_span(pool: &PgPool) -> Result<SnapshotSpan, sqlx::Error> {
    sqlx::query_as(
        "SELECT min(captured_at), max(captured_at) FROM bisman_stat_statements_snapshots",
    )
    .fetch_one(pool)
    .await
}

/// One table of `v_table_access_patterns` (partitions rolled up).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TableAccess {
    /// Schema.
    pub schema_name: String,
    /// Table (the partitioned parent for partitions).
    pub table_name: String,
    /// Whether it is partitioned.
    pub is_partitioned: bool,
    /// Relations rolled up (partitions, or 1).
    pub partitions: i64,
    /// Sequential scans.
    pub seq_scan: i64,
    /// Rows read by sequential scans.
    pub seq_tup_read: i64,
    /// Index scans.
    pub idx_scan: i64,
    /// Rows fetched by index scans.
    pub idx_tup_fetch: i64,
    /// Rows inserted.
    pub inserts: i64,
    /// Rows updated.
    pub updates: i64,
    /// Rows deleted.
    pub deletes: i64,
    /// Live rows (estimate).
    pub live_rows: i64,
    /// Dead rows (estimate).
    pub dead_rows: i64,
    /// Size with indexes and TOAST.
    pub total_bytes: i64,
    /// Index scans as a share of all scans, percent.
    pub index_scan_pct: Option<f64>,
    /// `read`, `insert`, `update`, `delete` or `idle`.
    pub dominant_operation: String,
    /// A missing index or vacuum falling behind, when it looks so.
    pub hint: Option<String>,
}

/// Every table, busiest first.
#[tracing::instrument(skip(pool))]
pub async fn table_access(pool: &PgPool) -> Result<Vec<TableAccess>, sqlx::Error> {
    sqlx::query_as(
        "SELECT schema_name, table_name, is_partitioned, partitions, seq_scan, seq_tup_read,
                idx_scan, idx_tup_fetch, inserts, updates, deletes, live_rows, dead_rows,
                total_bytes, index_scan_pct::float8 AS index_scan_pct, dominant_operation, hint
         FROM v_table_access_patterns",
    )
    .fetch_all(pool)
    .await
}

/// The e-mail of `user` in `tenant`.
#[tracing::instrument(skip(pool))]
pub async fn user_email(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT email FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.0)
        .bind(user.0)
        .fetch_optional(pool)
        .await
}
