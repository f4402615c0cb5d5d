//! `GET /ops`: database and cache health, partition warnings, and the
//! maintenance jobs' last runs with their outcome.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bisman_cache::CacheHealth;

use super::auth::Viewer;
use super::error::PageError;
use super::html::{h, text, Bytes, Markup, Ms, Num, Or, Pct, When};
use super::layout::{self, Nav};
use super::partitions::{warnings, TableWarning};
use super::widgets::{badge, tile, Tone};
use crate::http::AppState;
use crate::queries::ops_page::{self as q, DatabaseHealth, JobRun, JobState};

/// The overview.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let db = q::database_health(&state.pool).await;
    if let Err(e) = &db {
        tracing::warn!(error = %e, "ops overview: database health unavailable");
    }
    let cache = state.cache.health().await;
    let server = state.cache.server_stats().await.ok().flatten();
    let tables = bisman_db::lifecycle::status::status(&state.pool)
        .await
        .map_err(|e| crate::error::ApiError::Internal(anyhow::Error::new(e)))?;
    let jobs = q::job_states(&state.pool).await?;
    let runs = q::recent_job_runs(&state.pool, 10).await?;

    let mut body = Markup::new();
    body.push("<h1>Overview</h1><div class=\"tiles\">");
    tiles(&mut body, db.as_ref().ok(), &cache, &warnings(&tables));
    body.push("</div><div class=\"cols\">");
    database_card(&mut body, db.as_ref().ok());
    cache_card(&mut body, &cache, server);
    body.push("</div>");
    jobs_card(&mut body, &jobs);
    runs_card(&mut body, &runs);
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Overview", Some((Nav::Overview, &viewer)), body),
    ))
}

fn tiles(
    out: &mut Markup,
    db: Option<&DatabaseHealth>,
    cache: &CacheHealth,
    warnings: &[TableWarning],
) {
    match db {
        Some(d) => {
            // `15.20 (Debian 15.20-0+deb12u1)`: the number is enough here.
            let number = d.version.split_whitespace().next().unwrap_or_default();
            let mut v = Markup::new();
            h!(v, "PostgreSQL ", text(number));
            tile(out, "Database", Tone::Good, v, "answers");
            let mut c = Markup::new();
            h!(c, Num(d.connections), " / ", Num(d.max_connections.into()));
            let tone = if d.connections * 10 > i64::from(d.max_connections) * 8 {
                Tone::Warn
            } else {
                Tone::Good
            };
            tile(out, "Connections", tone, c, "in use / max");
        }
        None => tile(
            out,
            "Database",
            Tone::Bad,
            Markup::from_static("unreachable"),
            "see the service log",
        ),
    }
    let (tone, what) = match cache.store_ok {
        Some(true) => (Tone::Good, "store answers"),
        Some(false) => (Tone::Bad, "store DOWN: PostgreSQL answers"),
        None => (Tone::Good, "no shared store"),
    };
    let mut mode = Markup::new();
    mode.push(cache.mode);
    tile(out, "Cache", tone, mode, what);
    let mut n = Markup::new();
    n.push(warnings.len());
    let (tone, what) = if warnings.is_empty() {
        (Tone::Good, "every table premade, defaults empty")
    } else {
        (Tone::Warn, "tables need attention")
    };
    tile(out, "Partition warnings", tone, n, what);
}

fn database_card(out: &mut Markup, db: Option<&DatabaseHealth>) {
    out.push("<section class=\"card\"><h2>Database</h2>");
    let Some(d) = db else {
        h!(
            out,
            "<p>",
            badge(Tone::Bad, "unreachable"),
            " The health query failed; the service log has the error.</p></section>"
        );
        return;
    };
    h!(
        out,
        "<dl class=\"facts\"><dt>Database</dt><dd>",
        text(&d.database),
        "</dd><dt>Version</dt><dd>",
        text(&d.version),
        "</dd><dt>Size</dt><dd>",
        Bytes(d.size_bytes),
        "</dd><dt>Connections</dt><dd>",
        Num(d.connections),
        " of ",
        Num(d.max_connections.into()),
        "</dd><dt>Buffer cache hit rate</dt><dd>",
        Pct(d.buffer_hit_ratio),
        "</dd><dt>Commits / rollbacks</dt><dd>",
        Num(d.xact_commit),
        " / ",
        Num(d.xact_rollback),
        "</dd><dt>Deadlocks</dt><dd>",
        Num(d.deadlocks),
        "</dd><dt>Transaction id age</dt><dd>",
        Num(d.xid_age.into()),
    );
    // Autovacuum forces a freeze at 200 million by default; wraparound is
    // at about 2 billion.
    if d.xid_age > 1_000_000_000 {
        h!(out, " ", badge(Tone::Bad, "wraparound danger"));
    } else if d.xid_age > 200_000_000 {
        h!(out, " ", badge(Tone::Warn, "freeze overdue"));
    }
    h!(
        out,
        "</dd><dt>Server started</dt><dd>",
        When(d.started_at),
        "</dd></dl></section>"
    );
}

fn cache_card(
    out: &mut Markup,
    cache: &CacheHealth,
    server: Option<bisman_cache::store::ServerStats>,
) {
    let store = match cache.store_ok {
        Some(true) => badge(Tone::Good, "answers"),
        Some(false) => badge(Tone::Bad, "down"),
        None => badge(Tone::Muted, "none"),
    };
    let near = match (cache.near_enabled, cache.near_usable) {
        (false, _) => badge(Tone::Muted, "off"),
        (true, true) => badge(Tone::Good, "serving"),
        (true, false) => badge(Tone::Warn, "paused (subscription not confirmed)"),
    };
    h!(
        out,
        "<section class=\"card\"><h2>Cache</h2><dl class=\"facts\"><dt>Mode</dt><dd>",
        cache.mode,
        "</dd><dt>Shared store (L2)</dt><dd>",
        store,
        "</dd><dt>Near-cache (L1)</dt><dd>",
        near,
        "</dd>"
    );
    if let Some(s) = server {
        let lookups = s.keyspace_hits + s.keyspace_misses;
        let rate = (lookups > 0).then(|| s.keyspace_hits as f64 / lookups as f64);
        h!(
            out,
            "<dt>Redis keyspace hits</dt><dd>",
            Pct(rate),
            " <span class=\"muted\">(",
            Num(s.keyspace_hits as i64),
            " hits, ",
            Num(s.keyspace_misses as i64),
            " misses)</span></dd>"
        );
    }
    out.push("</dl><p><a href=\"/ops/cache\">Hit rates per namespace →</a></p></section>");
}

fn outcome(o: Option<&str>) -> Markup {
    match o {
        Some("ok") => badge(Tone::Good, "ok"),
        Some("failed") => badge(Tone::Bad, "failed"),
        Some("running") => badge(Tone::Warn, "running"),
        _ => badge(Tone::Muted, "never ran"),
    }
}

fn jobs_card(out: &mut Markup, jobs: &[JobState]) {
    out.push("<section class=\"card\"><h2>Maintenance jobs</h2>");
    if jobs.is_empty() {
        out.push("<p class=\"muted\">No maintenance job has run yet: the scheduler is off (<code>BISMAN_MAINTENANCE=false</code>, cron runs the SQL functions instead) or has not ticked yet.</p></section>");
        return;
    }
    out.push("<div class=\"scroll\"><table><thead><tr><th>Job</th><th>Last start</th><th class=\"num\">Took</th><th>Outcome</th><th>Summary</th><th>Instance</th></tr></thead><tbody>");
    for j in jobs {
        h!(
            out,
            "<tr><td><code>",
            text(&j.job),
            "</code></td><td>",
            Or(j.last_started_at.map(When)),
            "</td><td class=\"num\">",
            Or(j.last_duration_ms.map(|ms| Ms(ms as f64))),
            "</td><td>",
            outcome(j.last_outcome.as_deref()),
            "</td><td class=\"detail\">",
            text(j.last_detail.as_deref().unwrap_or("")),
            "</td><td class=\"muted\">",
            text(j.last_instance.as_deref().unwrap_or("")),
            "</td></tr>"
        );
    }
    out.push("</tbody></table></div></section>");
}

fn runs_card(out: &mut Markup, runs: &[JobRun]) {
    if runs.is_empty() {
        return;
    }
    out.push("<section class=\"card\"><h2>Latest runs</h2><div class=\"scroll\"><table><thead><tr><th>Job</th><th>Started</th><th class=\"num\">Took</th><th>Outcome</th><th>Summary</th></tr></thead><tbody>");
    for r in runs {
        h!(
            out,
            "<tr><td><code>",
            text(&r.job),
            "</code></td><td>",
            When(r.started_at),
            "</td><td class=\"num\">",
            Or(r.duration_ms.map(|ms| Ms(ms as f64))),
            "</td><td>",
            outcome(Some(r.outcome.as_str())),
            "</td><td class=\"detail\">",
            text(r.detail.as_deref().unwrap_or("")),
            "</td></tr>"
        );
    }
    out.push("</tbody></table></div></section>");
}
