//! The figures of a run: throughput, latency percentiles, failures by kind
//! and phase, revocation verdicts, acknowledged writes, memory per instance.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::mix::Op;
use crate::probe::Model;
use crate::stats::{quantile_ms, Outcome, Stats};
use crate::writes::{Acknowledged, WritesCheck};

/// One instance's resident memory, KiB.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceMemory {
    /// Its URL.
    pub url: String,
    /// At the start.
    pub rss_start_kib: Option<u64>,
    /// The largest sample.
    pub rss_max_kib: Option<u64>,
    /// At the end (none once the process is gone).
    pub rss_end_kib: Option<u64>,
}

/// Requests of one phase or operation, by outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// All requests.
    pub requests: u64,
    /// Answered as expected.
    pub ok: u64,
    /// 503.
    pub unavailable: u64,
    /// Other 5xx.
    pub server_errors: u64,
    /// Unexpected 4xx.
    pub client_errors: u64,
    /// No HTTP answer.
    pub transport: u64,
    /// Failed on an instance taken out of rotation.
    pub dropped: u64,
    /// Requests per second.
    pub per_second: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

impl Counts {
    /// Failures of any kind (dropped ones aside).
    pub fn failures(&self) -> u64 {
        self.unavailable + self.server_errors + self.client_errors + self.transport
    }

    fn add(&mut self, outcome: Outcome, n: u64) {
        self.requests += n;
        match outcome {
            Outcome::Ok => self.ok += n,
            Outcome::Unavailable => self.unavailable += n,
            Outcome::ServerError => self.server_errors += n,
            Outcome::ClientError => self.client_errors += n,
            Outcome::Transport => self.transport += n,
            Outcome::Dropped => self.dropped += n,
        }
    }
}

/// One phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Its name.
    pub name: String,
    /// Whether every failure in it is an error.
    pub strict: bool,
    /// Seconds.
    pub seconds: f64,
    /// Its requests.
    #[serde(flatten)]
    pub counts: Counts,
}

/// The prober's changes and the verdicts on checks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Revocations {
    /// Acknowledged revocations.
    pub revokes: u64,
    /// Acknowledged grants.
    pub grants: u64,
    /// Changes that failed (outcome unknown, not judged).
    pub failed_changes: u64,
    /// Checks made after an acknowledged revocation.
    pub judged_checks: u64,
    /// Of those, answered "allowed": must be 0.
    pub violations: u64,
    /// Checks answered "denied" after an acknowledged grant.
    pub stale_denials: u64,
}

/// Read-your-writes checks: each acknowledged post looked for in its
/// poster's next page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadYourWrites {
    /// Posts looked for.
    pub checked: u64,
    /// Of those, missing from the poster's next page: must be 0.
    pub missed: u64,
    /// Pages that could not say (200 newer messages came in between).
    pub inconclusive: u64,
}

/// The counters behind [`ReadYourWrites`], filled while the load runs.
#[derive(Debug, Default)]
pub(crate) struct ReadYourWritesCounters {
    pub checked: std::sync::atomic::AtomicU64,
    pub missed: std::sync::atomic::AtomicU64,
    pub inconclusive: std::sync::atomic::AtomicU64,
    pub samples: std::sync::Mutex<Vec<String>>,
}

/// Everything measured in a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Wall time, seconds.
    pub seconds: f64,
    /// All requests.
    pub total: Counts,
    /// Failures in strict phases: the run's error count.
    pub errors: u64,
    /// By phase, in order.
    pub phases: Vec<PhaseReport>,
    /// By operation.
    pub operations: BTreeMap<Op, Counts>,
    /// Revocation verdicts.
    pub revocations: Revocations,
    /// Writes acknowledged (and, once [`Report::writes_check`] is filled,
    /// found in PostgreSQL).
    pub writes: WritesCheck,
    /// Whether `writes` was checked against PostgreSQL.
    pub writes_checked: bool,
    /// Read-your-writes checks (when the run made them).
    pub read_your_writes: Option<ReadYourWrites>,
    /// Memory per instance.
    pub instances: Vec<InstanceMemory>,
    /// A few failures, described.
    pub failure_samples: Vec<String>,
}

impl Report {
    /// Records the lookup of the acknowledged writes.
    pub fn writes_check(&mut self, check: WritesCheck) {
        self.writes = check;
        self.writes_checked = true;
    }

    /// The run's figures as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let t = &self.total;
        let _ = writeln!(
            s,
            "## Load run: {:.0} s, {} instances\n",
            self.seconds,
            self.instances.len()
        );
        let _ = writeln!(
            s,
            "{} requests, {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, **errors: {}**\n",
            t.requests, t.per_second, t.p50_ms, t.p99_ms, self.errors
        );
        s.push_str("| phase | strict | s | requests | req/s | p50 ms | p99 ms | 503 | other 5xx | 4xx | transport | dropped |\n");
        s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for p in &self.phases {
            let c = &p.counts;
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
                p.name,
                if p.strict { "yes" } else { "no" },
                p.seconds,
                c.requests,
                c.per_second,
                c.p50_ms,
                c.p99_ms,
                c.unavailable,
                c.server_errors,
                c.client_errors,
                c.transport,
                c.dropped
            );
        }
        s.push_str(
            "\n| operation | requests | p50 ms | p99 ms | failures |\n|---|---:|---:|---:|---:|\n",
        );
        for (op, c) in &self.operations {
            let _ = writeln!(
                s,
                "| {op} | {} | {:.2} | {:.2} | {} |",
                c.requests,
                c.p50_ms,
                c.p99_ms,
                c.failures()
            );
        }
        let r = &self.revocations;
        let _ = writeln!(
            s,
            "\nRevocations: {} revoked and {} granted back (acknowledged), {} changes failed; {} checks after a revocation, **{} violations**, {} stale denials after a grant.",
            r.revokes, r.grants, r.failed_changes, r.judged_checks, r.violations, r.stale_denials
        );
        if let Some(c) = &self.read_your_writes {
            let _ = writeln!(
                s,
                "\nRead-your-writes: {} posts looked for in their poster's next page (next instance in rotation), **{} missing**, {} inconclusive.",
                c.checked, c.missed, c.inconclusive
            );
        }
        let w = &self.writes;
        if self.writes_checked {
            let _ = writeln!(
                s,
                "\nAcknowledged writes found in PostgreSQL: posts {}/{}, reactions {}/{}, read receipts {}/{}; **lost: {}**.",
                w.posts_found, w.posts_acknowledged, w.reactions_found, w.reactions_acknowledged,
                w.reads_found, w.reads_acknowledged, w.lost()
            );
        } else {
            let _ = writeln!(
                s,
                "\nAcknowledged writes (not looked up): posts {}, reactions {}, read receipts {}.",
                w.posts_acknowledged, w.reactions_acknowledged, w.reads_acknowledged
            );
        }
        s.push_str(
            "\n| instance | RSS start MiB | RSS max MiB | RSS end MiB |\n|---|---:|---:|---:|\n",
        );
        let mib =
            |k: Option<u64>| k.map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
        for i in &self.instances {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                i.url,
                mib(i.rss_start_kib),
                mib(i.rss_max_kib),
                mib(i.rss_end_kib)
            );
        }
        if !self.failure_samples.is_empty() {
            s.push_str("\nFailures (first few):\n");
            for f in &self.failure_samples {
                let _ = writeln!(s, "- {f}");
            }
        }
        s
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    let secs = d.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Builds the report from what the run recorded.
pub(crate) fn build(
    stats: &mut Stats,
    elapsed: Duration,
    instances: Vec<InstanceMemory>,
    model: &Model,
    acked: &Acknowledged,
    ryw: &ReadYourWritesCounters,
) -> Report {
    let now = Instant::now();
    let mut total = Counts::default();
    let mut all_latencies = Vec::new();
    let mut phases = Vec::new();
    let mut operations: BTreeMap<Op, (Counts, Vec<u32>)> = BTreeMap::new();
    let mut errors = 0;
    for (i, phase) in stats.phases.iter().enumerate() {
        let mut counts = Counts::default();
        let mut latencies = Vec::new();
        for ((_, op), cell) in stats
            .cells
            .range((i, Op::ALL[0])..=(i, Op::ALL[Op::ALL.len() - 1]))
        {
            let entry = operations.entry(*op).or_default();
            for (outcome, n) in &cell.counts {
                counts.add(*outcome, *n);
                total.add(*outcome, *n);
                entry.0.add(*outcome, *n);
            }
            latencies.extend_from_slice(&cell.latencies_us);
            entry.1.extend_from_slice(&cell.latencies_us);
        }
        let d = phase.duration(now);
        counts.per_second = rate(counts.requests, d);
        counts.p50_ms = quantile_ms(&mut latencies, 0.50);
        counts.p99_ms = quantile_ms(&mut latencies, 0.99);
        if phase.strict {
            errors += counts.failures();
        }
        all_latencies.extend_from_slice(&latencies);
        phases.push(PhaseReport {
            name: phase.name.clone(),
            strict: phase.strict,
            seconds: d.as_secs_f64(),
            counts,
        });
    }
    total.per_second = rate(total.requests, elapsed);
    total.p50_ms = quantile_ms(&mut all_latencies, 0.50);
    total.p99_ms = quantile_ms(&mut all_latencies, 0.99);
    let operations = operations
        .into_iter()
        .map(|(op, (mut c, mut l))| {
            c.per_second = rate(c.requests, elapsed);
            c.p50_ms = quantile_ms(&mut l, 0.50);
            c.p99_ms = quantile_ms(&mut l, 0.99);
            (op, c)
        })
        .collect();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::SeqCst);
    Report {
        seconds: elapsed.as_secs_f64(),
        total,
        errors,
        phases,
        operations,
        revocations: Revocations {
            revokes: get(&model.revokes),
            grants: get(&model.grants),
            failed_changes: get(&model.failed_changes),
            judged_checks: get(&model.judged),
            violations: get(&model.violations),
            stale_denials: get(&model.stale_denials),
        },
        writes: WritesCheck {
            posts_acknowledged: acked.posts.len() as u64,
            reactions_acknowledged: acked.reactions.len() as u64,
            reads_acknowledged: acked.reads.len() as u64,
            ..WritesCheck::default()
        },
        writes_checked: false,
        read_your_writes: (get(&ryw.checked) + get(&ryw.inconclusive) > 0).then(|| {
            ReadYourWrites {
                checked: get(&ryw.checked),
                missed: get(&ryw.missed),
                inconclusive: get(&ryw.inconclusive),
            }
        }),
        instances,
        failure_samples: {
            let mut samples = std::mem::take(&mut stats.samples);
            samples.extend(
                ryw.samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drain(..),
            );
            samples
        },
    }
}
