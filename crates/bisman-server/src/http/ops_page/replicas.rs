//! `GET /ops/replicas`: the read replicas as this instance sees them: state,
//! replay lag, reads routed to each, and the reads the primary served
//! instead, with why.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bisman_db::replicas::{ReplicaReport, ReplicaState, ReplicaStatus};

use super::auth::Viewer;
use super::error::PageError;
use super::html::{h, text, Markup, Ms, Num, Or};
use super::layout::{self, Nav};
use super::widgets::{badge, tile, Tone};
use crate::http::AppState;

/// The page.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let mut body = Markup::new();
    body.push("<h1>Replicas</h1>");
    match state.db.report() {
        None => {
            body.push(
            "<section class=\"card\"><p>No read replicas are configured: every query reads the primary. \
             Point <code>DATABASE_REPLICA_URLS</code> (or <code>--replica-url</code>, repeatable) at hot \
             standbys of the database, and message pages, unread counts, readers, reactions, usage \
             summaries, approval lists and the partition and job views read there, each caller only \
             from a standby that has replayed its own last write.</p></section>",
        );
        }
        Some(report) => {
            summary(&mut body, &report);
            table(&mut body, &report);
            primary_reads(&mut body, &report);
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Replicas", Some((Nav::Replicas, &viewer)), body),
    ))
}

fn summary(out: &mut Markup, r: &ReplicaReport) {
    out.push("<div class=\"tiles\">");
    let mut usable = Markup::new();
    h!(usable, r.usable, " / ", r.configured);
    let (tone, note) = match r.usable {
        0 => (Tone::Bad, "none: the primary serves every read"),
        n if n < r.configured => (Tone::Warn, "some skipped: see below"),
        _ => (Tone::Good, "every replica serves reads"),
    };
    tile(out, "Usable replicas", tone, usable, note);
    let worst = r
        .replicas
        .iter()
        .filter(|x| x.state != ReplicaState::Promoted)
        .filter_map(|x| x.lag_ms)
        .max();
    let mut lag = Markup::new();
    h!(lag, Or(worst.map(|ms| Ms(ms as f64))));
    let tone = match worst {
        Some(ms) if ms > r.max_lag_ms => Tone::Warn,
        Some(_) => Tone::Good,
        None => Tone::Muted,
    };
    tile(
        out,
        "Worst replay lag",
        tone,
        lag,
        "skipped above the limit",
    );
    let mut limit = Markup::new();
    h!(limit, Ms(r.max_lag_ms as f64));
    tile(out, "Lag limit", Tone::Muted, limit, "--replica-max-lag");
    let mut served = Markup::new();
    h!(
        served,
        Num(clamp(r.replica_reads())),
        " / ",
        Num(clamp(r.primary_read_total()))
    );
    tile(
        out,
        "Reads: replicas / primary",
        Tone::Muted,
        served,
        "since this instance started",
    );
    out.push("</div>");
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn state_badge(s: &ReplicaStatus) -> Markup {
    match (s.state, s.usable) {
        (ReplicaState::Healthy, true) => badge(Tone::Good, "healthy"),
        (ReplicaState::Healthy, false) => badge(Tone::Warn, "suspect: a read failed"),
        (ReplicaState::Lagging, _) => badge(Tone::Warn, "lagging"),
        (ReplicaState::Down, _) => badge(Tone::Bad, "down"),
        (ReplicaState::Promoted, _) => badge(Tone::Bad, "promoted: not a standby"),
        (ReplicaState::Unknown, _) => badge(Tone::Muted, "not checked yet"),
    }
}

fn table(out: &mut Markup, r: &ReplicaReport) {
    h!(
        out,
        "<section class=\"card\"><h2>Standbys</h2><div class=\"scroll\"><table class=\"replicas\"><thead><tr>",
        "<th>Replica</th><th>State</th><th class=\"num\">Replay lag</th><th class=\"num\">Bytes behind</th>",
        "<th>Replayed up to</th><th class=\"num\">Reads</th><th class=\"num\">Failed reads</th>",
        "<th class=\"num\">Checked</th><th>Last problem</th></tr></thead><tbody>"
    );
    for s in &r.replicas {
        let mut lag = Markup::new();
        if s.lag_at_least {
            lag.push("≥ ");
        }
        h!(lag, Or(s.lag_ms.map(|ms| Ms(ms as f64))));
        let mut replayed = Markup::new();
        h!(
            replayed,
            "<code>",
            text(&s.replay_lsn.map(|l| l.to_string()).unwrap_or_default()),
            "</code>"
        );
        if s.replay_paused == Some(true) {
            h!(replayed, " ", badge(Tone::Warn, "replay paused"));
        }
        let mut checked = Markup::new();
        match s.checked_ms_ago {
            Some(ms) => h!(checked, Ms(ms as f64), " ago"),
            None => {
                checked.push("–");
            }
        };
        h!(
            out,
            "<tr data-replica=\"",
            text(&s.name),
            "\"><td><code>",
            text(&s.name),
            "</code></td><td>",
            state_badge(s),
            "</td><td class=\"num\" data-field=\"lag\">",
            lag,
            "</td><td class=\"num\">",
            Or(s.bytes_behind.map(clamp).map(Num)),
            "</td><td>",
            replayed,
            "</td><td class=\"num\" data-field=\"reads\">",
            Num(clamp(s.reads)),
            "</td><td class=\"num\">",
            Num(clamp(s.fallbacks)),
            "</td><td class=\"num\">",
            checked,
            "</td><td class=\"detail\">",
            text(s.last_error.as_deref().unwrap_or("")),
            "</td></tr>"
        );
    }
    h!(
        out,
        "</tbody></table></div><p class=\"muted small\">Checked every ",
        Ms(r.check_every_ms as f64),
        "; the primary has flushed WAL up to <code>",
        text(&r.primary_flush_lsn.map(|l| l.to_string()).unwrap_or_default()),
        "</code>. Lag is the time since the primary was first seen past what the standby has replayed (to within one check). Counts are this instance's since it started.</p></section>"
    );
}

fn primary_reads(out: &mut Markup, r: &ReplicaReport) {
    out.push("<section class=\"card\"><h2>Reads the primary served instead</h2><div class=\"scroll\"><table><thead><tr><th>Why</th><th class=\"num\">Reads</th></tr></thead><tbody>");
    for p in &r.primary_reads {
        h!(
            out,
            "<tr><td>",
            p.reason.describe(),
            "</td><td class=\"num\">",
            Num(clamp(p.reads)),
            "</td></tr>"
        );
    }
    out.push("</tbody></table></div><p class=\"muted small\">Writes, transactions and permission and session loads always use the primary and are not counted here.</p></section>");
}
