//! `GET /ops/table-access`: sequential against index scans per table
//! (partitions rolled up into their table, which PgHero does not do), with
//! the view's hint where an index looks missing or vacuum falls behind.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::Viewer;
use super::error::PageError;
use super::html::{h, text, Bytes, Fixed, Markup, Num};
use super::layout::{self, Nav};
use crate::http::AppState;
use crate::queries::ops_page::{self as q, TableAccess};

/// The page.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let tables = q::table_access(&state.pool).await?;
    let mut body = Markup::new();
    body.push("<h1>Table access</h1>");
    hints(&mut body, &tables);
    h!(
        body,
        "<section class=\"card\"><div class=\"scroll\"><table class=\"access\"><thead><tr>",
        "<th>Table</th><th class=\"num\">Seq scans</th><th class=\"num\">Index scans</th>",
        "<th>Index share</th><th class=\"num\">Rows read by seq scans</th>",
        "<th class=\"num\">Live rows</th><th class=\"num\">Dead rows</th><th class=\"num\">Size</th>",
        "<th>Mostly</th><th>Hint</th></tr></thead><tbody>"
    );
    for t in &tables {
        row(&mut body, t);
    }
    body.push("</tbody></table></div><p class=\"muted small\">Counts since the statistics were last reset; partitioned tables add up their partitions. The hint fires on tables over 10,000 rows scanned sequentially more than 50 times and more often than by index, or with dead rows above a fifth of the live ones.</p></section>");
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Table access", Some((Nav::TableAccess, &viewer)), body),
    ))
}

fn hints(out: &mut Markup, tables: &[TableAccess]) {
    let hinted: Vec<&TableAccess> = tables.iter().filter(|t| t.hint.is_some()).collect();
    if hinted.is_empty() {
        out.push("<p class=\"flash good\">No table looks like it is missing an index or behind on vacuum.</p>");
        return;
    }
    out.push("<section class=\"card warnings\"><h2>Hints</h2><ul>");
    for t in hinted {
        h!(
            out,
            "<li><code>",
            text(&t.table_name),
            "</code>: ",
            text(t.hint.as_deref().unwrap_or_default()),
            "</li>"
        );
    }
    out.push("</ul></section>");
}

fn row(out: &mut Markup, t: &TableAccess) {
    let idle = t.dominant_operation == "idle";
    h!(
        out,
        "<tr data-table=\"",
        text(&t.table_name),
        "\"",
        if t.hint.is_some() {
            " class=\"hinted\""
        } else if idle {
            " class=\"idle\""
        } else {
            ""
        },
        "><td><code>",
        text(&t.table_name),
        "</code>"
    );
    if t.schema_name != "public" {
        h!(
            out,
            " <span class=\"muted small\">",
            text(&t.schema_name),
            "</span>"
        );
    }
    if t.is_partitioned {
        h!(
            out,
            "<div class=\"muted small\">",
            Num(t.partitions),
            " relations rolled up</div>"
        );
    }
    h!(
        out,
        "</td><td class=\"num\" data-field=\"seq-scans\">",
        Num(t.seq_scan),
        "</td><td class=\"num\" data-field=\"index-scans\">",
        Num(t.idx_scan),
        "</td><td>",
        share_bar(t.index_scan_pct),
        "</td><td class=\"num\">",
        Num(t.seq_tup_read),
        "</td><td class=\"num\">",
        Num(t.live_rows),
        "</td><td class=\"num\">",
        Num(t.dead_rows),
        "</td><td class=\"num\">",
        Bytes(t.total_bytes),
        "</td><td>",
        text(&t.dominant_operation),
        "</td><td class=\"hint\">",
        text(t.hint.as_deref().unwrap_or("")),
        "</td></tr>"
    );
}

/// Index scans' share of all scans as a bar with its number.
fn share_bar(pct: Option<f64>) -> Markup {
    let mut out = Markup::new();
    match pct {
        Some(p) => {
            let p = p.clamp(0.0, 100.0);
            h!(
                out,
                "<span class=\"share\"><svg class=\"bar\" viewBox=\"0 0 100 8\" aria-hidden=\"true\"><rect class=\"seq\" width=\"100\" height=\"8\"/><rect class=\"idx\" width=\"",
                Fixed(p, 1),
                "\" height=\"8\"/></svg>",
                Fixed(p, 0),
                "%</span>"
            );
        }
        None => {
            out.push("<span class=\"muted\">no scans</span>");
        }
    }
    out
}
