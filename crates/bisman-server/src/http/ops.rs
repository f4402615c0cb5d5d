//! `/api/v1/ops`: partitions, slow queries, table access patterns, cache
//! statistics and maintenance jobs. Super admins only (an active
//! `SUPER_ADMIN` holding `admin/ops`); the figures describe the whole
//! database, not one tenant.
//!
//! Partitions and jobs are read on a replica when one may answer (catalogs,
//! sizes and tables are the same on a standby). Slow queries and table
//! access read the primary: `pg_stat_statements` and the table statistics
//! are each server's own, and a standby's would describe the standby.

use axum::extract::State;
use axum::Json as JsonResponse;
use bisman_cache::{Action, UserType};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::queries::ops as q;
use crate::routing::Reads;

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(partitions))
        .routes(routes!(slow_queries))
        .routes(routes!(table_access))
        .routes(routes!(cache))
        .routes(routes!(jobs))
}

async fn require_super_admin(state: &AppState, caller: &Caller) -> ApiResult<()> {
    let perms = caller.permissions(state).await?;
    if perms.user_type == UserType::SuperAdmin && perms.allows("admin", "ops", Action::View) {
        Ok(())
    } else {
        Err(ApiError::forbidden("operations views are for super admins"))
    }
}

/// Partitions of every managed table, and rows waiting in default partitions.
#[utoipa::path(get, path = "/ops/partitions", tag = "ops", security(("bearer" = [])),
    responses((status = 200, description = "`tables` (bisman partitions status) and `default_partitions`", body = Object),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn partitions(
    State(state): State<AppState>,
    caller: Caller,
    reads: Reads,
) -> ApiResult<JsonResponse<Value>> {
    require_super_admin(&state, &caller).await?;
    // Catalogs, relation sizes and table rows: the same on a standby.
    reads
        .run(|db| async move {
            let tables = bisman_db::lifecycle::status::status(&db)
                .await
                .map_err(|e| ApiError::from(anyhow::Error::new(e)))?;
            let defaults = q::default_partitions(&db).await?;
            Ok::<_, ApiError>(JsonResponse(
                json!({ "tables": tables, "default_partitions": defaults }),
            ))
        })
        .await
}

/// Slow queries.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlowQueries {
    /// Rows of `v_slow_queries` (mean > 100 ms over the last 24 hours).
    #[schema(value_type = Vec<Object>)]
    queries: Vec<Value>,
    /// Why the list is empty when `pg_stat_statements` cannot be read.
    problem: Option<String>,
}

/// `v_slow_queries`: statements with a mean above 100 ms over the last 24 hours.
#[utoipa::path(get, path = "/ops/slow-queries", tag = "ops", security(("bearer" = [])),
    responses((status = 200, body = SlowQueries), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn slow_queries(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<JsonResponse<SlowQueries>> {
    require_super_admin(&state, &caller).await?;
    let (queries, problem) = q::slow_queries(&state.pool).await?;
    Ok(JsonResponse(SlowQueries { queries, problem }))
}

/// `v_table_access_patterns`: reads and writes per table, partitions rolled up.
#[utoipa::path(get, path = "/ops/table-access", tag = "ops", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn table_access(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<JsonResponse<Vec<Value>>> {
    require_super_admin(&state, &caller).await?;
    Ok(JsonResponse(q::table_access(&state.pool).await?))
}

/// Cache statistics of this instance (hits, misses, fills, invalidations and
/// errors per namespace and layer), the store server's counters, and health.
#[utoipa::path(get, path = "/ops/cache", tag = "ops", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn cache(State(state): State<AppState>, caller: Caller) -> ApiResult<JsonResponse<Value>> {
    require_super_admin(&state, &caller).await?;
    let server = state.cache.server_stats().await.ok().flatten();
    Ok(JsonResponse(json!({
        "health": state.cache.health().await,
        "stats": state.cache.stats(),
        "server": server,
    })))
}

/// Maintenance jobs: last run, duration and outcome of each, and the newest
/// runs of the job log (whichever instance ran them).
#[utoipa::path(get, path = "/ops/jobs", tag = "ops", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn jobs(
    State(state): State<AppState>,
    caller: Caller,
    reads: Reads,
) -> ApiResult<JsonResponse<Value>> {
    require_super_admin(&state, &caller).await?;
    reads
        .run(|db| async move {
            Ok::<_, sqlx::Error>(JsonResponse(json!({
                "jobs": q::job_state(&db).await?,
                "recent_runs": q::job_runs(&db, 50).await?,
            })))
        })
        .await
}
