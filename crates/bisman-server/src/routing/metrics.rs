//! The replica report as Prometheus text (for `/metrics`).

use std::fmt::Write as _;

use bisman_db::replicas::{ReplicaReport, ReplicaState};

use crate::metrics::escape;

/// Appends the replica figures: state, lag, reads per replica, and the
/// replica-eligible reads the primary served, by reason.
pub fn render(report: &ReplicaReport, out: &mut String) {
    let gauge = |out: &mut String, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    gauge(
        out,
        "bisman_replica_usable",
        "1 when reads may go to the replica now (healthy, checked recently).",
    );
    for r in &report.replicas {
        let _ = writeln!(
            out,
            "bisman_replica_usable{{replica=\"{}\"}} {}",
            escape(&r.name),
            u8::from(r.usable)
        );
    }
    gauge(
        out,
        "bisman_replica_state",
        "1 for the replica's state at its last check.",
    );
    for r in &report.replicas {
        for state in [
            ReplicaState::Unknown,
            ReplicaState::Healthy,
            ReplicaState::Lagging,
            ReplicaState::Down,
            ReplicaState::Promoted,
        ] {
            let _ = writeln!(
                out,
                "bisman_replica_state{{replica=\"{}\",state=\"{}\"}} {}",
                escape(&r.name),
                state.as_str(),
                u8::from(r.state == state)
            );
        }
    }
    gauge(
        out,
        "bisman_replica_lag_seconds",
        "Replay lag behind the primary, to within one check interval (a lower bound when the replica is behind every position remembered).",
    );
    for r in &report.replicas {
        if let Some(ms) = r.lag_ms {
            let _ = writeln!(
                out,
                "bisman_replica_lag_seconds{{replica=\"{}\"}} {:.3}",
                escape(&r.name),
                ms as f64 / 1000.0
            );
        }
    }
    gauge(
        out,
        "bisman_replica_lag_bytes",
        "WAL bytes between the newest primary position seen and the replica's replay position.",
    );
    for r in &report.replicas {
        if let Some(b) = r.bytes_behind {
            let _ = writeln!(
                out,
                "bisman_replica_lag_bytes{{replica=\"{}\"}} {b}",
                escape(&r.name)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP bisman_db_reads_total Replica-eligible reads by where they went (a replica, or the primary and why).\n# TYPE bisman_db_reads_total counter"
    );
    for r in &report.replicas {
        let _ = writeln!(
            out,
            "bisman_db_reads_total{{target=\"replica\",replica=\"{}\"}} {}",
            escape(&r.name),
            r.reads
        );
    }
    for p in &report.primary_reads {
        let _ = writeln!(
            out,
            "bisman_db_reads_total{{target=\"primary\",reason=\"{}\"}} {}",
            p.reason.as_str(),
            p.reads
        );
    }
    let _ = writeln!(
        out,
        "# HELP bisman_replica_fallbacks_total Reads a replica failed, made again on the primary.\n# TYPE bisman_replica_fallbacks_total counter"
    );
    for r in &report.replicas {
        let _ = writeln!(
            out,
            "bisman_replica_fallbacks_total{{replica=\"{}\"}} {}",
            escape(&r.name),
            r.fallbacks
        );
    }
}
