//! Client usage events: batch ingest and daily aggregates.

use bisman_cache::{TenantId, UserId};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

/// One event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Type (`page_view`, …).
    pub event_type: String,
    /// Module key.
    pub module: Option<String>,
    /// Page key.
    pub page: Option<String>,
    /// Free-form details.
    pub metadata: serde_json::Value,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

/// Stores `events` for `user` in one statement; how many.
#[tracing::instrument(skip(pool, events), fields(n = events.len()))]
pub async fn ingest(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
    events: &[NewEvent],
) -> Result<u64, sqlx::Error> {
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let modules: Vec<Option<&str>> = events.iter().map(|e| e.module.as_deref()).collect();
    let pages: Vec<Option<&str>> = events.iter().map(|e| e.page.as_deref()).collect();
    let metadata: Vec<String> = events.iter().map(|e| e.metadata.to_string()).collect();
    let at: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
    let r = sqlx::query(
        "INSERT INTO client_usage_events (tenant_id, user_id, event_type, module, page, metadata, occurred_at)
         SELECT $1, $2, e.t, e.m, e.p, e.d::jsonb, e.at
         FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[]) AS e(t, m, p, d, at)",
    )
    .bind(tenant.0)
    .bind(user.0)
    .bind(&types)
    .bind(&modules)
    .bind(&pages)
    .bind(&metadata)
    .bind(&at)
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}

/// Events of one type on one UTC day.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct DailyCount {
    /// The UTC day.
    pub day: NaiveDate,
    /// Event type.
    pub event_type: String,
    /// Events.
    pub events: i64,
    /// Distinct users.
    pub users: i64,
}

/// Counts by type and UTC day in `[from, to]` (days, inclusive).
#[tracing::instrument(skip(pool))]
pub async fn daily_counts(
    pool: &PgPool,
    tenant: TenantId,
    from: NaiveDate,
    to: NaiveDate,
    event_type: Option<&str>,
) -> Result<Vec<DailyCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, event_type,
                count(*) AS events, count(DISTINCT user_id) AS users
         FROM client_usage_events
         WHERE tenant_id = $1
           AND occurred_at >= ($2::date)::timestamp AT TIME ZONE 'UTC'
           AND occurred_at < ($3::date + 1)::timestamp AT TIME ZONE 'UTC'
           AND ($4::text IS NULL OR event_type = $4)
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(tenant.0)
    .bind(from)
    .bind(to)
    .bind(event_type)
    .fetch_all(pool)
    .await
}
