//! `GET /ops/cache`: hit rate per namespace and layer over the last hour
//! (from this instance's [`CacheHistory`](super::history::CacheHistory)),
//! the counters behind it (hits, misses, fills, invalidations, errors), and
//! the Redis server's `keyspace_hits` / `keyspace_misses`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bisman_cache::{Namespace, StatsRow};

use super::auth::Viewer;
use super::chart::{rate_chart, Line};
use super::error::PageError;
use super::history::{hit_rate, server_hit_rate, CacheHistory, Sample};
use super::html::{h, Markup, Num, Pct};
use super::layout::{self, Nav};
use super::widgets::{badge, Tone};
use crate::http::AppState;

/// The page.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let now = state
        .cache_history
        .latest(&state.cache, Duration::from_secs(1))
        .await;
    let samples = state.cache_history.samples();
    let health = state.cache.health().await;
    let mut body = Markup::new();
    h!(
        body,
        "<h1>Cache</h1><p class=\"muted\">Mode <strong>",
        health.mode,
        "</strong>. Shared store: ",
        match health.store_ok {
            Some(true) => badge(Tone::Good, "answers"),
            Some(false) => badge(Tone::Bad, "down"),
            None => badge(Tone::Muted, "none"),
        },
        " Near-cache: ",
        match (health.near_enabled, health.near_usable) {
            (false, _) => badge(Tone::Muted, "off"),
            (true, true) => badge(Tone::Good, "serving"),
            (true, false) => badge(Tone::Warn, "paused"),
        },
        "</p>"
    );
    charts(&mut body, &samples, health.mode.starts_with("redis"));
    counters(&mut body, &now.rows);
    server(&mut body, &now, health.mode);
    h!(
        body,
        "<p class=\"muted small\">This instance's counters since it started. Sampled every ",
        CacheHistory::EVERY.as_secs(),
        " s; the last ",
        CacheHistory::CAPACITY,
        " samples (an hour) are kept in memory, so a restart starts the chart over. <label class=\"auto\"><input type=\"checkbox\" id=\"auto-refresh\"> refresh every 10 s</label></p>"
    );
    Ok(layout::respond(
        StatusCode::OK,
        layout::document("Cache", Some((Nav::Cache, &viewer)), body),
    ))
}

fn charts(out: &mut Markup, samples: &[Sample], redis: bool) {
    out.push("<section class=\"card\"><h2>Hit rate over time</h2>");
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        out.push("</section>");
        return;
    };
    if samples.len() < 2 {
        h!(
            out,
            "<p class=\"muted\" id=\"chart-pending\">The chart fills in as samples arrive (one every ",
            CacheHistory::EVERY.as_secs(),
            " s).</p></section>"
        );
        return;
    }
    out.push("<div class=\"charts\">");
    for ns in Namespace::ALL {
        let l1 = hit_rate(samples, ns.as_str(), "l1");
        let l2 = hit_rate(samples, ns.as_str(), "l2");
        h!(out, "<figure><figcaption>", ns.as_str(), "</figcaption>");
        if l1.iter().chain(&l2).all(|p| p.1.is_none()) {
            out.push("<p class=\"muted small empty-chart\">No lookups in this period.</p>");
        } else {
            out.push(rate_chart(
                ns.as_str(),
                &[
                    Line {
                        class: "s1",
                        label: "L1 near-cache",
                        points: &l1,
                    },
                    Line {
                        class: "s2",
                        label: "L2 shared store",
                        points: &l2,
                    },
                ],
                first.at,
                last.at,
            ));
        }
        out.push("</figure>");
    }
    let server = server_hit_rate(samples);
    if server.iter().any(|p| p.1.is_some()) {
        h!(
            out,
            if redis {
                "<figure><figcaption>Redis keyspace (whole server)</figcaption>"
            } else {
                "<figure><figcaption>Store keyspace</figcaption>"
            },
            rate_chart(
                "Redis keyspace",
                &[Line {
                    class: "s3",
                    label: "keyspace hits / lookups",
                    points: &server,
                }],
                first.at,
                last.at,
            ),
            "</figure>"
        );
    }
    out.push("</div></section>");
}

fn counters(out: &mut Markup, rows: &[StatsRow]) {
    out.push("<section class=\"card\"><h2>Counters</h2><div class=\"scroll\"><table class=\"counters\"><thead><tr><th>Namespace</th><th>Layer</th><th class=\"num\">Hits</th><th class=\"num\">Misses</th><th class=\"num\">Hit rate</th><th class=\"num\">Fills</th><th class=\"num\">Invalidations</th><th class=\"num\">Errors</th></tr></thead><tbody>");
    for r in rows {
        let lookups = r.hits + r.misses;
        let rate = (lookups > 0).then(|| r.hits as f64 / lookups as f64);
        h!(
            out,
            "<tr data-ns=\"",
            r.namespace,
            "\" data-layer=\"",
            r.layer,
            "\"",
            if lookups + r.fills + r.invalidations + r.errors == 0 {
                " class=\"idle\""
            } else {
                ""
            },
            "><td>",
            r.namespace,
            "</td><td>",
            layer_label(r.layer),
            "</td><td class=\"num\">",
            Num(r.hits as i64),
            "</td><td class=\"num\">",
            Num(r.misses as i64),
            "</td><td class=\"num\">",
            Pct(rate),
            "</td><td class=\"num\">",
            Num(r.fills as i64),
            "</td><td class=\"num\" data-field=\"invalidations\">",
            Num(r.invalidations as i64),
            "</td><td class=\"num\">"
        );
        if r.errors > 0 {
            h!(out, badge(Tone::Bad, "errors"), " ");
        }
        h!(out, Num(r.errors as i64), "</td></tr>");
    }
    out.push("</tbody></table></div><p class=\"muted small\">L1: this process's near-cache. L2: the shared store. Source: PostgreSQL, where every miss ends (a miss there is an account that does not exist).</p></section>");
}

fn layer_label(layer: &str) -> &'static str {
    match layer {
        "l1" => "L1 near",
        "l2" => "L2 store",
        _ => "source",
    }
}

fn server(out: &mut Markup, now: &Sample, mode: &'static str) {
    let redis = mode.starts_with("redis");
    out.push(if redis {
        "<section class=\"card\"><h2>Redis keyspace</h2>"
    } else {
        "<section class=\"card\"><h2>Store keyspace</h2>"
    });
    match now.server {
        Some(s) => {
            let lookups = s.keyspace_hits + s.keyspace_misses;
            let rate = (lookups > 0).then(|| s.keyspace_hits as f64 / lookups as f64);
            h!(
                out,
                "<dl class=\"facts\" id=\"keyspace\"><dt>keyspace_hits</dt><dd>",
                Num(s.keyspace_hits as i64),
                "</dd><dt>keyspace_misses</dt><dd>",
                Num(s.keyspace_misses as i64),
                "</dd><dt>Hit rate</dt><dd>",
                Pct(rate),
                "</dd></dl>"
            );
            out.push(if redis {
                "<p class=\"muted small\">The whole Redis server's counters (every client, every prefix), from <code>INFO stats</code>.</p>"
            } else {
                "<p class=\"muted small\">No Redis behind this cache: these are the in-process store's own counters, the same figures Redis reports as <code>keyspace_hits</code> / <code>keyspace_misses</code>.</p>"
            });
        }
        None => {
            out.push("<p class=\"muted\">No Redis behind this cache, and this store keeps no keyspace counters.</p>");
        }
    }
    out.push("</section>");
}
