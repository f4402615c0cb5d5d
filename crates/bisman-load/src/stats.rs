//! Counts and latencies per phase and operation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::mix::Op;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The expected answer.
    Ok,
    /// 503: a dependency is down (allowed in fault phases only).
    Unavailable,
    /// Any other 5xx (never allowed).
    ServerError,
    /// An unexpected 4xx (our inputs are valid: never allowed).
    ClientError,
    /// No HTTP answer (refused, reset, timed out).
    Transport,
    /// Failed on an instance the test had taken out of rotation (killed).
    Dropped,
}

impl Outcome {
    /// Whether it counts as a failure.
    pub fn failed(self) -> bool {
        !matches!(self, Outcome::Ok | Outcome::Dropped)
    }
}

/// A stretch of the run with one name ("steady", "redis down", …).
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    /// Whether every failure in it counts as an error (a fault phase that
    /// allows 503s is not strict).
    pub strict: bool,
    pub started: Instant,
    pub ended: Option<Instant>,
}

impl Phase {
    /// How long it lasted (so far, if it has not ended).
    pub fn duration(&self, now: Instant) -> Duration {
        self.ended.unwrap_or(now) - self.started
    }
}

#[derive(Debug, Default)]
pub struct Cell {
    pub counts: BTreeMap<Outcome, u64>,
    /// Latencies of all requests, microseconds.
    pub latencies_us: Vec<u32>,
}

/// Everything recorded.
#[derive(Debug, Default)]
pub struct Stats {
    pub phases: Vec<Phase>,
    pub cells: BTreeMap<(usize, Op), Cell>,
    /// A few failures, described, for diagnosis.
    pub samples: Vec<String>,
}

/// Failure descriptions kept.
const SAMPLES: usize = 12;

impl Stats {
    /// Counts one request of `op` in `phase`; `sample` describes a failure.
    pub fn record(
        &mut self,
        phase: usize,
        op: Op,
        outcome: Outcome,
        latency: Duration,
        sample: impl FnOnce() -> String,
    ) {
        let cell = self.cells.entry((phase, op)).or_default();
        *cell.counts.entry(outcome).or_default() += 1;
        cell.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        if outcome.failed() && self.samples.len() < SAMPLES {
            let name = self.phases.get(phase).map_or("?", |p| p.name.as_str());
            self.samples.push(format!("[{name}] {}", sample()));
        }
    }
}

/// The `q` quantile (0–1) of `values`, in milliseconds.
pub fn quantile_ms(values: &mut [u32], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable();
    let i = ((values.len() as f64 - 1.0) * q).round() as usize;
    f64::from(values[i.min(values.len() - 1)]) / 1000.0
}
