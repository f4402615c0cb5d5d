//! Read replicas during a load run: every instance's `/readyz` replica
//! report (the typed `bisman_db::replicas::ReplicaReport`) sampled each
//! second for the replay lag, and read once more at the end for the
//! routing counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bisman_db::replicas::{PrimaryReason, ReplicaReport};
use http::Method;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::client::Http;

/// One replica over the run, all instances together.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicaRow {
    /// `host:port/database`.
    pub name: String,
    /// Reads routed to it.
    pub reads: u64,
    /// Reads it failed (made again on the primary).
    pub fallbacks: u64,
    /// Times it was asked on demand how far it had replayed.
    pub replay_probes: u64,
    /// Replay lag samples taken (one per instance per second).
    pub lag_samples: usize,
    /// Median of the samples, ms.
    pub lag_p50_ms: Option<u64>,
    /// 99th percentile, ms.
    pub lag_p99_ms: Option<u64>,
    /// Largest, ms.
    pub lag_max_ms: Option<u64>,
    /// Largest WAL distance behind the primary seen, bytes.
    pub bytes_behind_max: Option<u64>,
    /// Samples in which it was not usable (lagging, down, promoted).
    pub unusable_samples: usize,
}

/// The replicas over a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicaSummary {
    /// Each replica.
    pub replicas: Vec<ReplicaRow>,
    /// Replica-eligible reads the primary served, by reason.
    pub primary_reads: BTreeMap<String, u64>,
}

impl ReplicaSummary {
    /// Reads routed to replicas.
    pub fn replica_reads(&self) -> u64 {
        self.replicas.iter().map(|r| r.reads).sum()
    }

    /// Replica-eligible reads the primary served.
    pub fn primary_read_total(&self) -> u64 {
        self.primary_reads.values().sum()
    }

    /// As Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let (on_replicas, on_primary) = (self.replica_reads(), self.primary_read_total());
        let all = on_replicas + on_primary;
        let share = if all > 0 {
            on_replicas as f64 * 100.0 / all as f64
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "\n## Read replicas\n\nReplica-eligible reads: {all}, {share:.1}% served by replicas ({on_replicas}), {on_primary} by the primary.\n"
        );
        s.push_str("| replica | reads | failed reads | replay asked | lag p50 ms | lag p99 ms | lag max ms | max bytes behind | samples not usable |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        for r in &self.replicas {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} of {} |",
                r.name,
                r.reads,
                r.fallbacks,
                r.replay_probes,
                ms(r.lag_p50_ms),
                ms(r.lag_p99_ms),
                ms(r.lag_max_ms),
                ms(r.bytes_behind_max),
                r.unusable_samples,
                r.lag_samples
            );
        }
        s.push_str("\n| primary served, because | reads |\n|---|---:|\n");
        for (reason, n) in &self.primary_reads {
            let _ = writeln!(s, "| {reason} | {n} |");
        }
        s
    }
}

/// Samples the instances' replica reports until stopped.
pub struct ReplicaWatch {
    urls: Vec<String>,
    http: Http,
    samples: Arc<Mutex<Vec<ReplicaReport>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl ReplicaWatch {
    /// Starts sampling `base_urls`' `/readyz` every `every`.
    pub fn start(base_urls: Vec<String>, every: Duration) -> Self {
        let http = Http::new(Duration::from_secs(10));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (http, samples, stop, urls) = (
                http.clone(),
                samples.clone(),
                stop.clone(),
                base_urls.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    for u in &urls {
                        if let Some(r) = fetch(&http, u).await {
                            samples.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                        }
                    }
                    tokio::time::sleep(every).await;
                }
            })
        };
        Self {
            urls: base_urls,
            http,
            samples,
            stop,
            task,
        }
    }

    /// Stops sampling, reads every instance's counts once more, and sums up.
    pub async fn finish(self) -> ReplicaSummary {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        let mut finals = Vec::new();
        for u in &self.urls {
            if let Some(r) = fetch(&self.http, u).await {
                finals.push(r);
            }
        }
        let samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        summarise(&samples, &finals)
    }
}

async fn fetch(http: &Http, base: &str) -> Option<ReplicaReport> {
    let url = format!("{}/readyz", base.trim_end_matches('/'));
    let reply = http.call(Method::GET, &url, None, None).await.ok()?;
    serde_json::from_value(reply.body.get("replicas")?.clone()).ok()
}

fn summarise(samples: &[ReplicaReport], finals: &[ReplicaReport]) -> ReplicaSummary {
    let mut rows: BTreeMap<String, (ReplicaRow, Vec<u64>)> = BTreeMap::new();
    for report in samples {
        for r in &report.replicas {
            let (row, lags) = rows.entry(r.name.clone()).or_default();
            row.lag_samples += 1;
            if let Some(ms) = r.lag_ms {
                lags.push(ms);
            }
            if let Some(b) = r.bytes_behind {
                row.bytes_behind_max = Some(row.bytes_behind_max.unwrap_or(0).max(b));
            }
            if !r.usable {
                row.unusable_samples += 1;
            }
        }
    }
    let mut primary_reads = BTreeMap::new();
    for report in finals {
        for r in &report.replicas {
            let (row, _) = rows.entry(r.name.clone()).or_default();
            row.reads += r.reads;
            row.fallbacks += r.fallbacks;
            row.replay_probes += r.replay_probes;
        }
        for p in &report.primary_reads {
            *primary_reads
                .entry(reason_name(p.reason).to_string())
                .or_insert(0) += p.reads;
        }
    }
    let replicas = rows
        .into_iter()
        .map(|(name, (mut row, mut lags))| {
            row.name = name;
            lags.sort_unstable();
            let q = |f: f64| {
                (!lags.is_empty()).then(|| lags[((lags.len() - 1) as f64 * f).round() as usize])
            };
            row.lag_p50_ms = q(0.5);
            row.lag_p99_ms = q(0.99);
            row.lag_max_ms = lags.last().copied();
            row
        })
        .collect();
    ReplicaSummary {
        replicas,
        primary_reads,
    }
}

fn reason_name(r: PrimaryReason) -> &'static str {
    r.describe()
}
