//! The derived tables: the spec's §10 rows with measured columns, the aims
//! of docs/AIMS.md, and the peers next to our layers.

use serde::Serialize;

use super::find;
use crate::measure::{Layer, Measurement, Operation};

/// One row of the spec's table, measured.
#[derive(Debug, Clone, Serialize)]
pub struct SpecRow {
    /// Stable name of the row.
    pub id: String,
    /// The row as the table shows it.
    pub operation: String,
    /// The spec's "before" ("" where the spec has no row).
    pub spec_before: String,
    /// The spec's "after".
    pub spec_after: String,
    /// What "before" measures.
    pub before_operation: Operation,
    /// … on which layer.
    pub before_layer: Layer,
    /// What "after" measures.
    pub after_operation: Operation,
    /// … on which layer.
    pub after_layer: Layer,
    /// Measured median before, µs.
    pub before_p50_us: Option<f64>,
    /// Measured median after, µs.
    pub after_p50_us: Option<f64>,
    /// before / after.
    pub ratio: Option<f64>,
    /// Why a side is missing.
    pub skipped: Option<String>,
}

/// The rows: (id, label, spec before, spec after, operation, before layer, after layer).
/// `{rows}` in a label is the data set's size.
pub const SPEC_ROWS: &[(&str, &str, &str, &str, Operation, Layer, Layer)] = &[
    (
        "session_lookup",
        "Session lookup",
        "~50ms (DB)",
        "~2ms (Redis)",
        Operation::SessionLookup,
        Layer::Postgres,
        Layer::Redis,
    ),
    (
        "session_lookup_l1",
        "Session lookup, near-cache hit",
        "",
        "",
        Operation::SessionLookup,
        Layer::Postgres,
        Layer::NearCache,
    ),
    (
        "permission_check",
        "Permission check",
        "~30ms (DB)",
        "~1ms (Redis)",
        Operation::PermissionCheck,
        Layer::Postgres,
        Layer::Redis,
    ),
    (
        "permission_check_l1",
        "Permission check, near-cache hit",
        "",
        "",
        Operation::PermissionCheck,
        Layer::Postgres,
        Layer::NearCache,
    ),
    (
        "message_query",
        "Message query ({rows} rows): newest 50 of a thread",
        "~500ms",
        "~50ms (partitioned)",
        Operation::NewestMessages,
        Layer::FlatNoIndex,
        Layer::Partitioned,
    ),
    (
        "message_range",
        "Message query: a thread's messages in 7 days",
        "",
        "",
        Operation::DateRange,
        Layer::FlatNoIndex,
        Layer::Partitioned,
    ),
    (
        "read_receipts",
        "Read receipt query: messages of T read by U",
        "~100ms (JSONB)",
        "~10ms (normalized)",
        Operation::ReadBy,
        Layer::JsonbNoGin,
        Layer::Normalized,
    ),
    (
        "unread_count",
        "Unread count for U in T",
        "",
        "",
        Operation::UnreadCount,
        Layer::JsonbNoGin,
        Layer::ReadPosition,
    ),
    (
        "mark_read",
        "Mark as read",
        "",
        "",
        Operation::MarkRead,
        Layer::JsonbNoGin,
        Layer::Normalized,
    ),
    (
        "retention",
        "Retention of one month",
        "",
        "",
        Operation::Retention,
        Layer::Delete,
        Layer::DetachDrop,
    ),
];

fn p50(all: &[Measurement], op: Operation, layer: Layer) -> Option<f64> {
    find(all, op, layer).and_then(Measurement::p50)
}

fn skip_reason(all: &[Measurement], op: Operation, layers: &[Layer]) -> Option<String> {
    layers.iter().find_map(|l| match find(all, op, *l) {
        None => Some(format!("{} was not measured", l.label())),
        Some(m) => m.skipped.clone(),
    })
}

/// The spec's table with measured columns.
pub fn spec_table(all: &[Measurement], rows: &str) -> Vec<SpecRow> {
    SPEC_ROWS
        .iter()
        .map(|&(id, label, sb, sa, op, before, after)| {
            let (b, a) = (p50(all, op, before), p50(all, op, after));
            SpecRow {
                id: id.into(),
                operation: label.replace("{rows}", rows),
                spec_before: sb.into(),
                spec_after: sa.into(),
                before_operation: op,
                before_layer: before,
                after_operation: op,
                after_layer: after,
                before_p50_us: b,
                after_p50_us: a,
                ratio: b.zip(a).map(|(b, a)| b / a),
                skipped: skip_reason(all, op, &[before, after]),
            }
        })
        .collect()
}

/// Whether an aim was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Met.
    Met,
    /// Missed.
    Missed,
    /// Not measured in this run.
    NotMeasured,
}

/// One aim of docs/AIMS.md.
#[derive(Debug, Clone, Serialize)]
pub struct Aim {
    /// The aim.
    pub aim: String,
    /// What was measured.
    pub measured: String,
    /// Met or not.
    pub verdict: Verdict,
}

fn aim(text: &str, measured: Option<(String, bool)>) -> Aim {
    match measured {
        Some((m, ok)) => Aim {
            aim: text.into(),
            measured: m,
            verdict: if ok { Verdict::Met } else { Verdict::Missed },
        },
        None => Aim {
            aim: text.into(),
            measured: "not measured".into(),
            verdict: Verdict::NotMeasured,
        },
    }
}

use crate::stats::human;

fn at_most(
    all: &[Measurement],
    op: Operation,
    layer: Layer,
    limit_us: f64,
) -> Option<(String, bool)> {
    p50(all, op, layer).map(|v| (format!("p50 {}", human(v)), v <= limit_us))
}

/// `slow / fast` of two medians, at least `factor`.
fn faster(
    all: &[Measurement],
    op: Operation,
    slow: Layer,
    fast: Layer,
    factor: f64,
) -> Option<(String, bool)> {
    let (s, f) = (p50(all, op, slow)?, p50(all, op, fast)?);
    Some((
        format!("{} vs {}: {:.1}×", human(f), human(s), s / f),
        s / f >= factor,
    ))
}

/// The aims with their verdicts.
pub fn aims(all: &[Measurement]) -> Vec<Aim> {
    use Layer as L;
    use Operation as O;
    let redis_vs_get = p50(all, O::SessionLookup, L::Redis)
        .zip(p50(all, O::SessionLookup, L::RawRedisGet))
        .map(|(r, g)| {
            (
                format!("{} vs GET {}: {:.2}×", human(r), human(g), r / g),
                r / g <= 1.3,
            )
        });
    let range_partitions = find(all, O::DateRange, L::Partitioned)
        .and_then(|m| m.plan.as_ref())
        .and_then(|p| {
            p.tables
                .iter()
                .find(|t| t.table == "thread_messages_partitioned")
        })
        .map(|t| {
            (
                format!("{} of {} partitions", t.touched, t.total),
                t.touched <= 2,
            )
        });
    let drop_secs = at_most(all, O::Retention, L::DetachDrop, 1e6);
    vec![
        aim(
            "L1 session hit ≤ 2 µs (p50)",
            at_most(all, O::SessionLookup, L::NearCache, 2.0),
        ),
        aim(
            "L1 permission hit ≤ 2 µs (p50)",
            at_most(all, O::PermissionCheck, L::NearCache, 2.0),
        ),
        aim(
            "Redis session path ≤ 1.3× a raw Redis GET (p50, same run)",
            redis_vs_get,
        ),
        aim(
            "Permission check computed from PostgreSQL ≤ 1 ms (p50)",
            at_most(all, O::PermissionCheck, L::Postgres, 1_000.0),
        ),
        aim(
            "Newest 50 messages of a thread ≤ 1 ms (partitioned, p50; the aim is for 10M rows)",
            at_most(all, O::NewestMessages, L::Partitioned, 1_000.0),
        ),
        aim("A thread's week scans ≤ 2 partitions", range_partitions),
        aim(
            "Unread count per user and thread ≤ 1 ms (read position + receipts, p50)",
            at_most(all, O::UnreadCount, L::ReadPosition, 1_000.0)
                .or_else(|| at_most(all, O::UnreadCount, L::Normalized, 1_000.0)),
        ),
        aim(
            "Mark-read ≥ 5× faster normalised than the JSONB append (no GIN, as today)",
            faster(all, O::MarkRead, L::JsonbNoGin, L::Normalized, 5.0),
        ),
        aim(
            "Mark-read ≥ 5× faster normalised than the JSONB append with the P3 GIN index",
            faster(all, O::MarkRead, L::JsonbGin, L::Normalized, 5.0),
        ),
        aim(
            "Retention by detach + drop ≥ 100× faster than DELETE",
            faster(all, O::Retention, L::Delete, L::DetachDrop, 100.0),
        ),
        aim("Retention by detach + drop ≤ 1 s", drop_secs),
        aim(
            "Our permission check (L1) faster than casbin's enforce",
            faster(all, O::PermissionCheck, L::Casbin, L::NearCache, 1.0),
        ),
        aim(
            "Our session load (Redis path) faster than tower-sessions' Redis store",
            faster(all, O::SessionLookup, L::TowerSessionsRedis, L::Redis, 1.0),
        ),
    ]
}

/// A peer next to one of our layers.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRow {
    /// What is compared.
    pub comparison: String,
    /// The peer's layer.
    pub peer: Layer,
    /// Ours.
    pub ours: Layer,
    /// The peer's median, µs.
    pub peer_p50_us: Option<f64>,
    /// Our median, µs.
    pub ours_p50_us: Option<f64>,
    /// peer / ours: above 1 means ours is faster.
    pub ratio: Option<f64>,
    /// Why the peer is missing.
    pub skipped: Option<String>,
}

/// The peers next to our layers.
pub fn peers(all: &[Measurement]) -> Vec<PeerRow> {
    use Layer as L;
    use Operation as O;
    [
        (
            "Permission check: casbin enforce vs our near-cache hit",
            O::PermissionCheck,
            L::Casbin,
            L::NearCache,
        ),
        (
            "Permission check: casbin enforce vs our Redis path",
            O::PermissionCheck,
            L::Casbin,
            L::Redis,
        ),
        (
            "Session load: tower-sessions Redis store vs our Redis path",
            O::SessionLookup,
            L::TowerSessionsRedis,
            L::Redis,
        ),
        (
            "Session load: tower-sessions Redis store vs our near-cache hit",
            O::SessionLookup,
            L::TowerSessionsRedis,
            L::NearCache,
        ),
    ]
    .into_iter()
    .map(|(label, op, peer, ours)| {
        let (p, o) = (p50(all, op, peer), p50(all, op, ours));
        PeerRow {
            comparison: label.into(),
            peer,
            ours,
            peer_p50_us: p,
            ours_p50_us: o,
            ratio: p.zip(o).map(|(p, o)| p / o),
            skipped: skip_reason(all, op, &[peer, ours]),
        }
    })
    .collect()
}
