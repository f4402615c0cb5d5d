//! `/healthz` (the process is up), `/readyz` (PostgreSQL and the cache
//! answer; the read replicas' state as details) and `/metrics` (Prometheus
//! text).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json as JsonResponse;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::metrics::escape;

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Object)))]
async fn healthz() -> JsonResponse<Value> {
    JsonResponse(json!({ "status": "ok" }))
}

/// PostgreSQL and the cache store answer. With read replicas configured,
/// `replicas` details each one (state, lag, reads routed to it) without
/// affecting readiness.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Object), (status = 503, description = "A dependency is down", body = Object)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, JsonResponse<Value>) {
    let postgres = sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&state.pool)
        .await
        .is_ok();
    let cache = state.cache.health().await;
    let cache_ok = cache.store_ok != Some(false);
    let status = if postgres && cache_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if status != StatusCode::OK {
        tracing::warn!(postgres, cache_ok, "not ready");
    }
    let mut body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "unavailable" },
        "postgres": if postgres { "ok" } else { "unreachable" },
        "cache": cache,
    });
    // Details only: with every replica down the primary still answers
    // everything, so readiness does not depend on them.
    if let Some(report) = state.db.report() {
        body["replicas"] = json!(report);
    }
    (status, JsonResponse(body))
}

/// Prometheus metrics: requests and latency by route, cache events per
/// namespace and layer, connection pool, maintenance jobs, and the read
/// replicas (state, lag, reads routed) when configured.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(16 * 1024);
    state.http_metrics.render(&mut out);
    render_cache(&state, &mut out).await;
    render_pool(&state, &mut out);
    state.jobs.render(&state.pool, &mut out).await;
    if let Some(report) = state.db.report() {
        crate::routing::metrics::render(&report, &mut out);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

async fn render_cache(state: &AppState, out: &mut String) {
    out.push_str("# HELP bisman_cache_events_total Cache events by namespace, layer and kind.\n");
    out.push_str("# TYPE bisman_cache_events_total counter\n");
    for row in state.cache.stats() {
        for (event, n) in [
            ("hit", row.hits),
            ("miss", row.misses),
            ("fill", row.fills),
            ("invalidation", row.invalidations),
            ("error", row.errors),
        ] {
            let _ = writeln!(
                out,
                "bisman_cache_events_total{{namespace=\"{}\",layer=\"{}\",event=\"{event}\"}} {n}",
                escape(row.namespace),
                escape(row.layer)
            );
        }
    }
    if let Ok(Some(server)) = state.cache.server_stats().await {
        out.push_str("# HELP bisman_cache_store_keyspace_total The store server's keyspace hits and misses.\n");
        out.push_str("# TYPE bisman_cache_store_keyspace_total counter\n");
        let _ = writeln!(
            out,
            "bisman_cache_store_keyspace_total{{result=\"hit\"}} {}\nbisman_cache_store_keyspace_total{{result=\"miss\"}} {}",
            server.keyspace_hits, server.keyspace_misses
        );
    }
}

fn render_pool(state: &AppState, out: &mut String) {
    let size = state.pool.size();
    let idle = u32::try_from(state.pool.num_idle()).unwrap_or(u32::MAX);
    out.push_str("# HELP bisman_db_pool_connections PostgreSQL pool connections by state.\n");
    out.push_str("# TYPE bisman_db_pool_connections gauge\n");
    let _ = writeln!(
        out,
        "bisman_db_pool_connections{{state=\"idle\"}} {idle}\nbisman_db_pool_connections{{state=\"in_use\"}} {}",
        size.saturating_sub(idle)
    );
    out.push_str("# HELP bisman_db_pool_max_connections Pool size limit.\n");
    out.push_str("# TYPE bisman_db_pool_max_connections gauge\n");
    let _ = writeln!(
        out,
        "bisman_db_pool_max_connections {}",
        state.pool.options().get_max_connections()
    );
}
