//! The report as Markdown: what stdout shows and `bench.md` holds.

use std::fmt::Write;

use super::{Report, Verdict};
use crate::peers;
use crate::stats::{human, ratio};

fn cell(us: Option<f64>, layer: &str) -> String {
    match us {
        Some(v) => format!("{} ({layer})", human(v)),
        None => "skipped".into(),
    }
}

fn gib(bytes: i64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn load(l: Option<[f64; 3]>) -> String {
    l.map_or("unknown".into(), |l| {
        format!("{:.2} / {:.2} / {:.2}", l[0], l[1], l[2])
    })
}

/// Renders `r`.
pub(super) fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = header(&mut s, r);
    let _ = spec(&mut s, r);
    let _ = aims(&mut s, r);
    let _ = peer_table(&mut s, r);
    let _ = all(&mut s, r);
    s
}

fn header(s: &mut String, r: &Report) -> std::fmt::Result {
    let m = &r.machine;
    writeln!(
        s,
        "# bisman bench: {} messages{}",
        r.shape.rows,
        if r.quick { " (quick)" } else { "" }
    )?;
    writeln!(s)?;
    writeln!(s, "- Command: `{}`", r.command)?;
    writeln!(
        s,
        "- Run: {} UTC, {:.0} s in all (data generation included); bisman {}, {} build",
        r.started_at.format("%Y-%m-%d %H:%M"),
        r.seconds,
        r.version,
        if m.release_build {
            "release"
        } else {
            "debug (numbers not representative: use --release)"
        }
    )?;
    writeln!(
        s,
        "- Machine: {} CPUs{}, {} memory, {}; load average (1/5/15 min) {} at the start, {} at the end",
        m.cpus,
        m.cpu_model.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
        m.memory_gib.map_or("unknown".into(), |g| format!("{g:.1} GiB")),
        m.os,
        load(m.load_at_start),
        load(m.load_at_end),
    )?;
    let settings: Vec<String> = m
        .postgres_settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    writeln!(
        s,
        "- PostgreSQL {} ({})",
        m.postgres_version,
        settings.join(", ")
    )?;
    writeln!(
        s,
        "- Redis {}",
        m.redis_version.as_deref().unwrap_or("not used")
    )?;
    for d in &r.datasets {
        let x = &d.meta;
        writeln!(
            s,
            "- Data set `{}` ({}, {}): {} messages from {} to {}, {} receipts, {} reactions, {} threads \
             (largest {}, median {} messages), {} users, {} tenants, {} sessions",
            d.database,
            gib(d.size_bytes),
            if d.reused { "reused".to_string() } else { format!("built in {:.0} s", x.build_seconds) },
            x.messages,
            x.start_month.format("%Y-%m"),
            x.data_end.format("%Y-%m-%d"),
            x.receipts,
            x.reactions,
            x.threads,
            x.largest_thread,
            x.median_thread,
            x.users,
            x.tenants,
            x.sessions,
        )?;
    }
    for n in &r.notes {
        writeln!(s, "- {n}")?;
    }
    writeln!(s)
}

fn spec(s: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(s, "## The spec's table (P3_SCALING_SEED.md §10), measured")?;
    writeln!(s)?;
    writeln!(s, "| Operation | spec before | spec after | measured before | measured after | measured ratio |")?;
    writeln!(s, "|---|---|---|---|---|---|")?;
    for row in &r.spec_table {
        writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            row.operation,
            if row.spec_before.is_empty() {
                "—"
            } else {
                &row.spec_before
            },
            if row.spec_after.is_empty() {
                "—"
            } else {
                &row.spec_after
            },
            cell(row.before_p50_us, row.before_layer.short()),
            cell(row.after_p50_us, row.after_layer.short()),
            match (row.before_p50_us, row.after_p50_us) {
                (Some(b), Some(a)) => ratio(b, a),
                _ => "—".into(),
            }
        )?;
    }
    writeln!(s)?;
    writeln!(
        s,
        "Medians (p50) of one client calling back to back. \"Before\" is the ERP before P3 \
         (flat tables, JSONB receipts, no P3 index; sessions and permissions read from PostgreSQL \
         on every call); \"after\" is P3 applied (Redis cache, partitioned and normalised tables). \
         Every layer, with p95, p99 and throughput, is in the last table."
    )?;
    for row in r.spec_table.iter().filter(|row| row.skipped.is_some()) {
        writeln!(
            s,
            "\n- {}: {}",
            row.operation,
            row.skipped.as_deref().unwrap_or_default()
        )?;
    }
    writeln!(s)
}

fn aims(s: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(s, "## Aims (docs/AIMS.md)")?;
    writeln!(s)?;
    writeln!(s, "| aim | measured | verdict |")?;
    writeln!(s, "|---|---|---|")?;
    for a in &r.aims {
        let v = match a.verdict {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::NotMeasured => "not measured",
        };
        writeln!(s, "| {} | {} | {v} |", a.aim, a.measured)?;
    }
    writeln!(s)
}

fn peer_table(s: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(s, "## Peers, same run")?;
    writeln!(s)?;
    if !r.peers_built {
        writeln!(s, "Peers were skipped: {}", peers::NOT_BUILT)?;
        writeln!(s)?;
    }
    writeln!(s, "| comparison | peer p50 | ours p50 | ours vs peer |")?;
    writeln!(s, "|---|---|---|---|")?;
    for p in &r.peers {
        let fmt = |v: Option<f64>| v.map_or("skipped".to_string(), human);
        writeln!(
            s,
            "| {} | {} | {} | {} |",
            p.comparison,
            fmt(p.peer_p50_us),
            fmt(p.ours_p50_us),
            match (p.peer_p50_us, p.ours_p50_us) {
                (Some(peer), Some(ours)) => ratio(peer, ours),
                _ => "—".into(),
            }
        )?;
    }
    writeln!(s)
}

fn all(s: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(s, "## Every measurement")?;
    writeln!(s)?;
    writeln!(
        s,
        "| operation | layer | p50 | p95 | p99 | mean | ops/s (1 client) | samples | notes |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|")?;
    for m in &r.measurements {
        let note = m
            .skipped
            .as_deref()
            .or(m.note.as_deref())
            .unwrap_or("")
            .replace('|', "\\|");
        match m.summary {
            Some(x) => writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {note} |",
                m.operation.label(),
                m.layer.label(),
                human(x.p50_us),
                human(x.p95_us),
                human(x.p99_us),
                human(x.mean_us),
                x.ops_per_sec,
                x.samples,
            )?,
            None => writeln!(
                s,
                "| {} | {} | — | — | — | — | — | 0 | skipped: {note} |",
                m.operation.label(),
                m.layer.label()
            )?,
        }
    }
    writeln!(s)?;
    writeln!(
        s,
        "All samples are in `bench.json`; `bench.svg` charts the medians (bars) and p95–p99 (whiskers) on a log scale."
    )
}
