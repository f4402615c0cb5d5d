//! `GET /ops/slow-queries?window=1h|6h|24h|7d`: the statements that took
//! the most time over the window, by total and by mean, from the
//! `pg_stat_statements` snapshots (`bisman_slow_queries`), with a clear
//! notice when the extension cannot be read.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Viewer;
use super::error::PageError;
use super::html::{h, text, Markup, Ms, Num, Pct, When};
use super::layout::{self, Nav};
use crate::http::AppState;
use crate::queries::ops_page::{self as q, SlowOrder, SlowQuery};

/// Statements per list.
const TOP: i64 = 20;
/// Characters of a query shown before "more".
const SHORT: usize = 160;

/// The windows offered: (parameter, label, PostgreSQL interval).
const WINDOWS: [(&str, &str, &str); 4] = [
    ("1h", "last hour", "1 hour"),
    ("6h", "last 6 hours", "6 hours"),
    ("24h", "last 24 hours", "24 hours"),
    ("7d", "last 7 days", "7 days"),
];

/// The chosen window.
#[derive(Debug, Default, Deserialize)]
pub struct WindowParam {
    #[serde(default)]
    window: Option<String>,
}

/// The window named `param`, the last 24 hours otherwise.
fn window(param: Option<&str>) -> (&'static str, &'static str, &'static str) {
    WINDOWS
        .into_iter()
        .find(|w| Some(w.0) == param)
        .unwrap_or(WINDOWS[2])
}

/// The page.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    param: Result<Query<WindowParam>, QueryRejection>,
) -> Result<Response, PageError> {
    let chosen = window(param.ok().and_then(|p| p.0.window).as_deref());
    let mut body = Markup::new();
    body.push("<h1>Slow queries</h1>");
    window_form(&mut body, chosen.0);
    match q::stat_statements_problem(&state.pool).await? {
        Some(problem) => absent_notice(&mut body, &problem),
        None => {
            let by_total = q::slow_queries(&state.pool, chosen.2, SlowOrder::Total, TOP).await?;
            let by_mean = q::slow_queries(&state.pool, chosen.2, SlowOrder::Mean, TOP).await?;
            let (oldest, newest) = q::snapshot_span(&state.pool).await?;
            coverage(&mut body, chosen.1, by_total.first(), oldest, newest);
            let grand_total = q::slow_queries_total_ms(&state.pool, chosen.2).await?;
            list(&mut body, "By total time", &by_total, grand_total);
            list(&mut body, "By mean time", &by_mean, grand_total);
        }
    }
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Slow queries", Some((Nav::SlowQueries, &viewer)), body),
    ))
}

fn window_form(out: &mut Markup, chosen: &'static str) {
    out.push("<form class=\"inline\" method=\"get\" action=\"/ops/slow-queries\"><label>Window <select name=\"window\" data-autosubmit>");
    for (param, label, _) in WINDOWS {
        let selected = if param == chosen { " selected" } else { "" };
        h!(
            out,
            "<option value=\"",
            param,
            "\"",
            selected,
            ">",
            label,
            "</option>"
        );
    }
    out.push("</select></label> <button type=\"submit\" class=\"secondary\">Show</button></form>");
}

fn absent_notice(out: &mut Markup, problem: &str) {
    h!(
        out,
        "<section class=\"card notice\" id=\"no-pg-stat-statements\"><h2>pg_stat_statements is not available</h2><p>",
        text(problem),
        ".</p><p>Slow queries come from <code>pg_stat_statements</code>: add it to <code>shared_preload_libraries</code> in <code>postgresql.conf</code>, restart PostgreSQL, run <code>CREATE EXTENSION pg_stat_statements</code> in this database (or run <code>bisman migrate</code>, which creates it when it can). ",
        "<code>bisman serve</code> then snapshots it every hour (<code>BISMAN_JOB_STATS_SNAPSHOT_EVERY</code>), which gives the windows their history. The embedded PostgreSQL of <code>bisman serve --demo</code> has it preloaded.</p></section>"
    );
}

fn coverage(
    out: &mut Markup,
    label: &'static str,
    first: Option<&SlowQuery>,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
    newest: Option<chrono::DateTime<chrono::Utc>>,
) {
    out.push("<p class=\"muted\">");
    match first.and_then(|s| s.window_start) {
        Some(start) => h!(
            out,
            "Differences since the snapshot of ",
            When(start),
            " (",
            label,
            " asked)."
        ),
        None if first.is_some() => {
            out.push("No snapshot yet: totals since the statistics were last reset.");
        }
        None => {
            out.push("No statement ran in this window.");
        }
    }
    if let (Some(o), Some(n)) = (oldest, newest) {
        h!(out, " Snapshots kept from ", When(o), " to ", When(n), ".");
    }
    out.push("</p>");
}

fn list(out: &mut Markup, title: &'static str, rows: &[SlowQuery], grand_total: f64) {
    h!(out, "<section class=\"card\"><h2>", title, "</h2>");
    if rows.is_empty() {
        out.push("<p class=\"muted\">No statements.</p></section>");
        return;
    }
    out.push("<div class=\"scroll\"><table class=\"queries\"><thead><tr><th>Query</th><th class=\"num\">Calls</th><th class=\"num\">Total</th><th class=\"num\" title=\"of the time of the 100 heaviest statements in the window\">Share</th><th class=\"num\">Mean</th><th class=\"num\">Max</th><th class=\"num\">Rows</th></tr></thead><tbody>");
    for s in rows {
        out.push("<tr><td class=\"query\">");
        query_text(out, &s.query);
        let share = (grand_total > 0.0).then(|| s.total_ms / grand_total);
        h!(
            out,
            "</td><td class=\"num\">",
            Num(s.calls),
            "</td><td class=\"num\">",
            Ms(s.total_ms),
            "</td><td class=\"num\">",
            Pct(share),
            "</td><td class=\"num\">",
            Ms(s.mean_ms),
            "</td><td class=\"num\">",
            Ms(s.max_ms),
            "</td><td class=\"num\">",
            Num(s.rows),
            "</td></tr>"
        );
    }
    out.push("</tbody></table></div></section>");
}

/// The query, escaped; long ones shortened with the rest behind "more".
pub fn query_text(out: &mut Markup, query: &str) {
    let one_line: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= SHORT {
        h!(out, "<code>", text(&one_line), "</code>");
        return;
    }
    let short: String = one_line.chars().take(SHORT).collect();
    h!(
        out,
        "<details><summary><code>",
        text(&short),
        "…</code></summary><pre>",
        text(query),
        "</pre></details>"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_come_from_the_list_only() {
        assert_eq!(window(Some("1h")).2, "1 hour");
        assert_eq!(window(Some("7d")).2, "7 days");
        assert_eq!(window(Some("1 year'); DROP TABLE x; --")).2, "24 hours");
        assert_eq!(window(None).2, "24 hours");
    }

    #[test]
    fn query_texts_are_escaped_short_and_long() {
        let mut m = Markup::new();
        query_text(&mut m, "SELECT '<script>alert(1)</script>' FROM \"t\"");
        let html = m.into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        let long = format!(
            "SELECT {} FROM \"<img src=x onerror=alert(1)>\"",
            "a, ".repeat(100)
        );
        let mut m = Markup::new();
        query_text(&mut m, &long);
        let html = m.into_string();
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("<details>") && html.contains("&lt;img"),
            "{html}"
        );
    }
}
