//! Operations views: partitions, slow queries, table access patterns and
//! the maintenance job log. These describe the database as a whole, not a
//! tenant, and are for super admins only.

use sqlx::PgPool;

/// Rows of `check_default_partitions()` as JSON objects.
#[tracing::instrument(skip(pool))]
pub async fn default_partitions(pool: &PgPool) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar("SELECT to_jsonb(d) FROM check_default_partitions() d")
        .fetch_all(pool)
        .await
}

/// Rows of `v_slow_queries`, and why it is empty when `pg_stat_statements`
/// cannot be read.
#[tracing::instrument(skip(pool))]
pub async fn slow_queries(
    pool: &PgPool,
) -> Result<(Vec<serde_json::Value>, Option<String>), sqlx::Error> {
    let problem: Option<String> = sqlx::query_scalar("SELECT bisman_stat_statements_problem()")
        .fetch_one(pool)
        .await?;
    let rows = sqlx::query_scalar("SELECT to_jsonb(v) FROM v_slow_queries v")
        .fetch_all(pool)
        .await?;
    Ok((rows, problem))
}

/// Rows of `v_table_access_patterns`.
#[tracing::instrument(skip(pool))]
pub async fn table_access(pool: &PgPool) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar("SELECT to_jsonb(v) FROM v_table_access_patterns v")
        .fetch_all(pool)
        .await
}

/// The maintenance jobs' state (`bisman_job_state`).
#[tracing::instrument(skip(pool))]
pub async fn job_state(pool: &PgPool) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar("SELECT to_jsonb(s) FROM bisman_job_state s ORDER BY job")
        .fetch_all(pool)
        .await
}

/// The newest runs in the job log.
#[tracing::instrument(skip(pool))]
pub async fn job_runs(pool: &PgPool, limit: i64) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT to_jsonb(r) FROM bisman_job_runs r ORDER BY started_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
