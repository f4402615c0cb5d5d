//! `/api/v1/usage-events`: batch ingest from the ERP's front end, and
//! daily aggregates (`reports/usage` `view`; read on a replica when one may
//! answer).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonResponse;
use bisman_cache::Action;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{check_key, check_len, Json, Query};
use crate::queries::usage::{self as q, DailyCount, NewEvent};
use crate::routing::Reads;

/// Events per batch at most.
const MAX_BATCH: usize = 1000;

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingest))
        .routes(routes!(summary))
}

/// One usage event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageEvent {
    /// Type (1 to 100 characters).
    event_type: String,
    /// Module key.
    module: Option<String>,
    /// Page key.
    page: Option<String>,
    /// Details: a JSON object of at most 4 KiB.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    /// When it happened (default: now); within the last 400 days and at most
    /// 5 minutes ahead.
    occurred_at: Option<DateTime<Utc>>,
}

/// A batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// 1 to 1000 events.
    events: Vec<UsageEvent>,
}

/// What was stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Events stored.
    accepted: u64,
}

fn validate(e: UsageEvent, now: DateTime<Utc>, i: usize) -> ApiResult<NewEvent> {
    let at = |msg: ApiError| match msg {
        ApiError::Validation(m) => ApiError::invalid(format!("events[{i}]: {m}")),
        other => other,
    };
    check_len("event_type", &e.event_type, 1, 100).map_err(at)?;
    if e.event_type.contains('\0') {
        return Err(at(ApiError::invalid("`event_type` must not contain NUL")));
    }
    for (field, v) in [("module", &e.module), ("page", &e.page)] {
        if let Some(v) = v {
            check_key(field, v).map_err(at)?;
        }
    }
    let metadata = e.metadata.unwrap_or_else(|| serde_json::json!({}));
    let text = metadata.to_string();
    if !metadata.is_object() || text.len() > 4096 || text.contains("\\u0000") {
        return Err(at(ApiError::invalid(
            "`metadata` must be a JSON object of at most 4 KiB without NUL characters",
        )));
    }
    let occurred_at = e.occurred_at.unwrap_or(now);
    if occurred_at < now - Duration::days(400) || occurred_at > now + Duration::minutes(5) {
        return Err(at(ApiError::invalid(
            "`occurred_at` must be within the last 400 days and at most 5 minutes ahead",
        )));
    }
    Ok(NewEvent {
        event_type: e.event_type,
        module: e.module,
        page: e.page,
        metadata,
        occurred_at,
    })
}

/// Store a batch of usage events for me.
#[utoipa::path(post, path = "/usage-events", tag = "usage", security(("bearer" = [])), request_body = UsageBatch,
    responses((status = 202, body = Accepted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    Json(batch): Json<UsageBatch>,
) -> ApiResult<(StatusCode, JsonResponse<Accepted>)> {
    if batch.events.is_empty() || batch.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "`events` must hold 1 to {MAX_BATCH} events"
        )));
    }
    let now = Utc::now();
    let events = batch
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| validate(e, now, i))
        .collect::<ApiResult<Vec<_>>>()?;
    let accepted = q::ingest(&state.pool, caller.tenant(), caller.user(), &events).await?;
    Ok((StatusCode::ACCEPTED, JsonResponse(Accepted { accepted })))
}

/// The period and filter of a summary.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// First UTC day (default: 30 days ago).
    from: Option<NaiveDate>,
    /// Last UTC day, inclusive (default: today); at most 366 days after `from`.
    to: Option<NaiveDate>,
    /// Only this event type.
    event_type: Option<String>,
}

/// Usage events by type and UTC day in my tenant.
#[utoipa::path(get, path = "/usage-events/summary", tag = "usage", security(("bearer" = [])), params(SummaryQuery),
    responses((status = 200, body = Vec<DailyCount>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn summary(
    State(state): State<AppState>,
    caller: Caller,
    reads: Reads,
    Query(q): Query<SummaryQuery>,
) -> ApiResult<JsonResponse<Vec<DailyCount>>> {
    let today = Utc::now().date_naive();
    let to = q.to.unwrap_or(today);
    let from = q.from.unwrap_or(to - Duration::days(30));
    if from > to || (to - from).num_days() > 366 {
        return Err(ApiError::invalid(
            "`from` must be on or before `to`, at most 366 days apart",
        ));
    }
    if let Some(t) = &q.event_type {
        check_len("event_type", t, 1, 100)?;
    }
    caller
        .require(&state, "reports", "usage", Action::View)
        .await?;
    let (tenant, event_type) = (caller.tenant(), q.event_type.as_deref());
    Ok(JsonResponse(
        reads
            .run(|db| async move { q::daily_counts(&db, tenant, from, to, event_type).await })
            .await?,
    ))
}
