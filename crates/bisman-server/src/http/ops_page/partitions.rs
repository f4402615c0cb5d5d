//! `GET /ops/partitions`: every managed table rolled up (months, months
//! premade against the configured number, size, rows waiting in the default
//! partition by month — late rows of dropped months among them — month
//! tables left detached, archived months and months changed since their
//! archive), each table's partitions on demand, and
//! `POST /ops/partitions/premake`, the "premake now" button.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use bisman_db::lifecycle::status::{PartitionStatus, TableStatus};
use serde::Deserialize;

use super::auth::Viewer;
use super::error::PageError;
use super::html::{h, text, Bytes, Markup, Num, Or, When};
use super::layout::{self, csrf_field, Nav};
use super::login::CsrfForm;
use super::widgets::{badge, Tone};
use crate::auth::ClientAddr;
use crate::error::ApiError;
use crate::http::AppState;
use crate::maintenance::{Job, JobContext, JobOutcome, Scheduler};
use crate::queries::{audit, ops_page as q};

/// Something wrong with one table.
#[derive(Debug, Clone)]
pub struct TableWarning {
    /// The table.
    pub table: String,
    /// Months premade, and the number configured.
    pub premade: Option<(usize, i32)>,
    /// Rows in its default partition.
    pub default_rows: i64,
    /// Of those, rows of months already dropped.
    pub late_rows: i64,
    /// Month tables that are not attached.
    pub detached: Vec<String>,
}

/// Tables with fewer months premade than configured, rows in their default
/// partition, or month tables left detached.
pub fn warnings(tables: &[TableStatus]) -> Vec<TableWarning> {
    tables
        .iter()
        .filter_map(|t| {
            let configured = t.table.premake_months;
            let short = premade_short(t);
            (short || t.default_rows > 0 || !t.detached_months.is_empty()).then(|| TableWarning {
                table: t.table.base_table.clone(),
                premade: short.then_some((t.premade_months, configured)),
                default_rows: t.default_rows,
                late_rows: t.late_rows,
                detached: t.detached_months.iter().map(|d| d.name.clone()).collect(),
            })
        })
        .collect()
}

/// Whether `t` has fewer months premade than configured (whether or not
/// its partitioned table is live yet: the twin of a flat table waiting for
/// `partitions migrate` needs its months just the same).
fn premade_short(t: &TableStatus) -> bool {
    i64::try_from(t.premade_months).unwrap_or(i64::MAX) < i64::from(t.table.premake_months)
}

/// What the last "premake now" did (after the redirect).
#[derive(Debug, Default, Deserialize)]
pub struct Flash {
    #[serde(default)]
    premake: Option<String>,
}

/// The page.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    flash: Result<Query<Flash>, QueryRejection>,
) -> Result<Response, PageError> {
    let tables = bisman_db::lifecycle::status::status(&state.pool)
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?;
    let mut body = Markup::new();
    body.push("<h1>Partitions</h1>");
    let flash = flash.ok().and_then(|f| f.0.premake);
    flash_message(&state, &mut body, flash.as_deref()).await?;
    warning_list(&mut body, &warnings(&tables));
    premake_card(&mut body, &viewer);
    summary_table(&mut body, &tables);
    changed_archives(&mut body, &tables);
    for t in &tables {
        partition_details(&mut body, t);
    }
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Partitions", Some((Nav::Partitions, &viewer)), body),
    ))
}

async fn flash_message(
    state: &AppState,
    out: &mut Markup,
    flash: Option<&str>,
) -> Result<(), PageError> {
    match flash {
        Some("ran") => {
            let last = q::job_states(&state.pool)
                .await?
                .into_iter()
                .find(|j| j.job == Job::Premake.name());
            let ok = last.as_ref().and_then(|j| j.last_outcome.as_deref()) == Some("ok");
            let detail = last.and_then(|j| j.last_detail).unwrap_or_default();
            if ok {
                h!(
                    out,
                    "<p class=\"flash good\" role=\"status\">Premake ran: ",
                    text(&detail),
                    ".</p>"
                );
            } else {
                h!(
                    out,
                    "<p class=\"flash bad\" role=\"alert\">Premake failed: ",
                    text(&detail),
                    "</p>"
                );
            }
        }
        Some("busy") => {
            out.push("<p class=\"flash warn\" role=\"status\">Premake is running on another instance right now; reload in a moment.</p>");
        }
        _ => {}
    }
    Ok(())
}

fn warning_list(out: &mut Markup, warnings: &[TableWarning]) {
    if warnings.is_empty() {
        out.push("<p class=\"flash good\">Every managed table has its months premade and an empty default partition.</p>");
        return;
    }
    out.push("<section class=\"card warnings\"><h2>Needs attention</h2><ul>");
    for w in warnings {
        if let Some((premade, configured)) = w.premade {
            h!(
                out,
                "<li><code>",
                text(&w.table),
                "</code>: ",
                premade,
                " months premade, ",
                i64::from(configured),
                " configured. Premake now, or check the premake job's log.</li>"
            );
        }
        if w.default_rows > w.late_rows {
            h!(
                out,
                "<li><code>",
                text(&w.table),
                "</code>: ",
                Num(w.default_rows - w.late_rows),
                " rows in the default partition (written for months that had no partition). Premake moves the coming months' rows into them; retention archives past months'.</li>"
            );
        }
        if w.late_rows > 0 {
            h!(
                out,
                "<li><code>",
                text(&w.table),
                "</code>: ",
                Num(w.late_rows),
                " late rows in the default partition for months already archived and dropped. The next retention makes those months again, archives and drops them.</li>"
            );
        }
        for d in &w.detached {
            h!(
                out,
                "<li><code>",
                text(d),
                "</code>: a month table that is not attached (an interrupted operation left it): its rows are invisible. Premake attaches it.</li>"
            );
        }
    }
    out.push("</ul></section>");
}

/// Months whose rows differ from their newest archive: not a fault (retain
/// archives them again before dropping them), but worth knowing.
fn changed_archives(out: &mut Markup, tables: &[TableStatus]) {
    let changed: Vec<_> = tables
        .iter()
        .flat_map(|t| t.changed_since_archive.iter())
        .collect();
    if changed.is_empty() {
        return;
    }
    out.push("<section class=\"card\" id=\"changed-since-archive\"><h2>Changed since their archive</h2><div class=\"scroll\"><table><thead><tr><th>Partition</th><th>Archive</th><th class=\"num\">Rows then</th><th class=\"num\">Rows now</th><th>What happens</th></tr></thead><tbody>");
    for c in changed {
        h!(
            out,
            "<tr data-partition=\"",
            text(&c.partition),
            "\"><td><code>",
            text(&c.partition),
            "</code></td><td><code>",
            text(&c.archive),
            "</code></td><td class=\"num\">",
            Num(c.archived_rows),
            "</td><td class=\"num\">",
            Num(c.rows_now),
            "</td><td>",
            text(&c.note),
            "</td></tr>"
        );
    }
    out.push("</tbody></table></div></section>");
}

fn premake_card(out: &mut Markup, viewer: &Viewer) {
    h!(
        out,
        "<section class=\"card action\"><form method=\"post\" action=\"/ops/partitions/premake\" data-busy=\"Premaking…\">",
        csrf_field(viewer),
        "<button type=\"submit\" id=\"premake-now\">Premake now</button></form>",
        "<p class=\"muted\">Makes each table's months up to its configured number ahead and moves rows waiting in default partitions into them: the scheduler's premake job, run now under its lock and recorded in the job log.</p></section>"
    );
}

fn summary_table(out: &mut Markup, tables: &[TableStatus]) {
    out.push("<section class=\"card\"><h2>Managed tables</h2><div class=\"scroll\"><table class=\"partitions\"><thead><tr><th>Table</th><th class=\"num\">Months</th><th class=\"num\">Premade</th><th>Range</th><th class=\"num\">Rows (est.)</th><th class=\"num\">Size</th><th class=\"num\">In default</th><th class=\"num\">Detached</th><th class=\"num\">Archived</th></tr></thead><tbody>");
    for t in tables {
        let months: Vec<&PartitionStatus> = t.partitions.iter().filter(|p| !p.is_default).collect();
        let rows: Option<i64> = t
            .partitions
            .iter()
            .filter_map(|p| p.row_estimate)
            .reduce(|a, b| a + b);
        let bytes: i64 = t.partitions.iter().map(|p| p.bytes).sum();
        let configured = t.table.premake_months;
        let short = premade_short(t);
        let dropped = t.archives.iter().filter(|a| a.dropped_at.is_some()).count();
        h!(
            out,
            "<tr data-table=\"",
            text(&t.table.base_table),
            "\"><td><a href=\"#t-",
            text(&t.table.base_table),
            "\"><code>",
            text(&t.table.base_table),
            "</code></a>"
        );
        if let Some(f) = &t.table.follows {
            h!(
                out,
                "<div class=\"muted small\">follows ",
                text(f),
                "</div>"
            );
        }
        if !t.live_is_partitioned {
            h!(
                out,
                "<div class=\"small\">",
                badge(Tone::Warn, "flat table live"),
                " migration: ",
                text(t.migration_state.as_deref().unwrap_or("not started")),
                "</div>"
            );
        }
        h!(
            out,
            "</td><td class=\"num\" data-field=\"months\">",
            months.len(),
            "</td><td class=\"num\" data-field=\"premade\">",
            if short {
                "<span class=\"bad-text\">"
            } else {
                "<span>"
            },
            t.premade_months,
            "</span> / ",
            i64::from(configured),
            "</td><td class=\"nowrap\">",
            Or(months
                .first()
                .and_then(|p| p.range_start)
                .map(|d| MonthName(d.date()))),
            " – ",
            Or(months
                .last()
                .and_then(|p| p.range_start)
                .map(|d| MonthName(d.date()))),
            "</td><td class=\"num\">",
            Or(rows.map(Num)),
            "</td><td class=\"num\">",
            Bytes(bytes),
            "</td><td class=\"num\" data-field=\"default-rows\">",
        );
        if t.default_rows > 0 {
            h!(out, badge(Tone::Warn, "rows"), " ");
        }
        h!(out, Num(t.default_rows));
        if t.late_rows > 0 {
            h!(
                out,
                " <span class=\"muted small\">(",
                Num(t.late_rows),
                " late)</span>"
            );
        }
        h!(out, "</td><td class=\"num\" data-field=\"detached\">");
        if !t.detached_months.is_empty() {
            h!(out, badge(Tone::Warn, "detached"), " ");
        }
        h!(
            out,
            t.detached_months.len(),
            "</td><td class=\"num\" data-field=\"archived\">",
            t.archives.len(),
        );
        if dropped > 0 {
            h!(
                out,
                " <span class=\"muted small\">(",
                dropped,
                " dropped)</span>"
            );
        }
        out.push("</td></tr>");
    }
    out.push("</tbody></table></div><p class=\"muted small\">Months: monthly partitions attached now. Premade: months after the current one, against the configured number. In default: rows waiting in the default partition (late: for months already dropped). Detached: month tables not attached. Rows are the planner's estimates (blank before the first ANALYZE).</p></section>");
}

fn partition_details(out: &mut Markup, t: &TableStatus) {
    h!(
        out,
        "<details class=\"card\" id=\"t-",
        text(&t.table.base_table),
        "\"><summary><code>",
        text(&t.table.base_table),
        "</code>: ",
        t.partitions.len(),
        " partitions</summary><div class=\"scroll\"><table><thead><tr><th>Partition</th><th>From</th><th>To</th><th class=\"num\">Rows (est.)</th><th class=\"num\">Size</th></tr></thead><tbody>"
    );
    for p in &t.partitions {
        h!(
            out,
            "<tr><td><code>",
            text(&p.name),
            "</code>",
            if p.is_default {
                " <span class=\"muted small\">default</span>"
            } else {
                ""
            },
            "</td><td>",
            Or(p.range_start.map(|d| Day(d.date()))),
            "</td><td>",
            Or(p.range_end.map(|d| Day(d.date()))),
            "</td><td class=\"num\">",
            Or(p.row_estimate.map(Num)),
            "</td><td class=\"num\">",
            Bytes(p.bytes),
            "</td></tr>"
        );
    }
    out.push("</tbody></table></div>");
    if !t.default_months.is_empty() {
        out.push("<h3>Rows in the default partition</h3><div class=\"scroll\"><table><thead><tr><th>Month</th><th class=\"num\">Rows</th><th>What happens to them</th></tr></thead><tbody>");
        for d in &t.default_months {
            h!(
                out,
                "<tr data-default-month=\"",
                MonthName(d.month),
                "\"><td>",
                MonthName(d.month),
                "</td><td class=\"num\">",
                Num(d.rows),
                "</td><td>",
                match d.kind.as_str() {
                    "ahead" => "premake moves them into their month",
                    "late" => "late rows of a dropped month: the next retention archives them",
                    _ => "a past month without a partition: retention archives them once it is past the cut-off",
                },
                "</td></tr>"
            );
        }
        out.push("</tbody></table></div>");
    }
    if !t.archives.is_empty() {
        out.push("<h3>Archives</h3><div class=\"scroll\"><table><thead><tr><th>Partition</th><th class=\"num\">Rows</th><th>Archived</th><th>Verified</th><th>Dropped</th></tr></thead><tbody>");
        for a in &t.archives {
            h!(
                out,
                "<tr><td><code>",
                text(&a.partition_name),
                "</code></td><td class=\"num\">",
                Num(a.row_count),
                "</td><td>",
                When(a.archived_at),
                "</td><td>",
                Or(a.verified_at.map(When)),
                "</td><td>",
                Or(a.dropped_at.map(When)),
                "</td></tr>"
            );
        }
        out.push("</tbody></table></div>");
    }
    out.push("</details>");
}

/// `2026-11`.
struct MonthName(chrono::NaiveDate);

impl super::html::Render for MonthName {
    fn render_to(&self, out: &mut String) {
        out.push_str(&self.0.format("%Y-%m").to_string());
    }
}

/// `2026-11-01`.
struct Day(chrono::NaiveDate);

impl super::html::Render for Day {
    fn render_to(&self, out: &mut String) {
        out.push_str(&self.0.format("%Y-%m-%d").to_string());
    }
}

/// "Premake now": the premake job, run at once under its advisory lock (so
/// it never overlaps the scheduler's run on any instance) and logged in
/// `bisman_job_runs` like a scheduled run, plus an `audit_logs` row saying
/// who asked. Then back to the page (post/redirect/get).
pub async fn premake_now(
    State(state): State<AppState>,
    viewer: Viewer,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.check_form(&headers, &f.csrf)?;
    let scheduler = Scheduler::new(
        state.pool.clone(),
        format!("ops-page@{}", std::process::id()),
        Duration::from_secs(60),
        Vec::new(),
        JobContext::default(),
        state.jobs.clone(),
    );
    let outcome = scheduler
        .try_run(Job::Premake, Duration::ZERO)
        .await
        .map_err(ApiError::Internal)?;
    let (flash, result) = match &outcome {
        JobOutcome::Ran { ok: true, .. } => ("ran", "ok"),
        JobOutcome::Ran { ok: false, .. } => ("ran", "failed"),
        JobOutcome::Locked | JobOutcome::NotDue => ("busy", "busy"),
    };
    let mut tx = state.pool.begin().await?;
    audit::record(
        &mut tx,
        &audit::AuditEntry {
            tenant: viewer.session.tenant_id,
            actor: viewer.session.user_id,
            action: "ops.partitions.premake",
            entity_type: "partitions",
            entity_id: "all".into(),
            details: serde_json::json!({ "outcome": result, "via": "ops page" }),
            ip: &addr,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user = %viewer.session.user_id, outcome = result, "premake now (ops page)");
    Ok(layout::redirect(&format!(
        "/ops/partitions?premake={flash}"
    )))
}
