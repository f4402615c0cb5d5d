//! The measurements. Each operation runs on each layer after a warm-up,
//! many times, one call at a time; every sample is kept.
//!
//! - [`caches`]: session lookup and permission check through PostgreSQL,
//!   Redis and the near-cache, with a raw Redis `GET` and a raw
//!   primary-key `SELECT` as yardsticks.
//! - [`messages`]: a thread's newest 50 messages and a week of a thread,
//!   flat without and with the P3 index, and partitioned.
//! - [`receipts`]: "read by U in T", "unread for U in T" and "mark as
//!   read", JSONB without and with GIN vs the normalised tables.
//! - [`retention`]: one month by `DELETE` vs detach + drop.
//! - [`workload`]: the parameters (threads, users, sessions, checks) the
//!   measurements rotate through, picked from the data like real traffic.
//!
//! Writes made while measuring (marks as read, retention copies) are undone
//! before the run ends, so data sets stay reusable.

pub mod caches;
pub mod messages;
pub mod query;
pub mod receipts;
pub mod retention;
pub mod workload;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Result;
use crate::explain::PlanInfo;
use crate::options::Effort;
use crate::stats::Summary;
use crate::Progress;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Resolve a session token to a live session.
    SessionLookup,
    /// May user U see page P of module M.
    PermissionCheck,
    /// The newest 50 messages of a thread.
    NewestMessages,
    /// A thread's messages within 7 days.
    DateRange,
    /// Messages of thread T read by user U.
    ReadBy,
    /// Unread messages for U in T.
    UnreadCount,
    /// Mark one message as read by one user.
    MarkRead,
    /// Remove one month of messages with its receipts and reactions.
    Retention,
}

impl Operation {
    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            Operation::SessionLookup => "session lookup",
            Operation::PermissionCheck => "permission check",
            Operation::NewestMessages => "newest 50 messages of a thread",
            Operation::DateRange => "a thread's messages in 7 days",
            Operation::ReadBy => "messages of T read by U",
            Operation::UnreadCount => "unread count for U in T",
            Operation::MarkRead => "mark as read",
            Operation::Retention => "retention of one month",
        }
    }
}

/// Where (or how) it is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// Computed from PostgreSQL on every call (cache disabled).
    Postgres,
    /// The Redis cache, no near-cache.
    Redis,
    /// The in-process near-cache (L1) in front of Redis, hit.
    NearCache,
    /// Yardstick: one raw Redis `GET` of a value the size of a cached session.
    RawRedisGet,
    /// Yardstick: one raw primary-key `SELECT` of a `user_sessions` row.
    RawPkSelect,
    /// The pre-P3 flat table, none of the P3 indexes.
    FlatNoIndex,
    /// The flat table with the P3 indexes.
    FlatP3Index,
    /// The partitioned table (monthly partitions) with its indexes.
    Partitioned,
    /// JSONB `"readBy"`, no GIN index (pre-P3).
    JsonbNoGin,
    /// JSONB `"readBy"` with the P3 GIN index (and the P3 thread index).
    JsonbGin,
    /// `message_reads` (partitioned like the messages).
    Normalized,
    /// The read position per user and thread (`thread_read_positions`,
    /// Mattermost's `LastViewedAt`) plus the receipts after it.
    ReadPosition,
    /// `DELETE` of the month from the flat table.
    Delete,
    /// The `VACUUM` that makes the deleted month's space reusable.
    VacuumAfterDelete,
    /// Detach + drop of the month's partitions (receipts, reactions, messages).
    DetachDrop,
    /// Peer: casbin's in-memory RBAC enforcer.
    Casbin,
    /// Peer: tower-sessions' Redis store (`load`).
    TowerSessionsRedis,
}

impl Layer {
    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            Layer::Postgres => "PostgreSQL (no cache)",
            Layer::Redis => "Redis (no near-cache)",
            Layer::NearCache => "near-cache hit (L1)",
            Layer::RawRedisGet => "yardstick: raw Redis GET",
            Layer::RawPkSelect => "yardstick: raw primary-key SELECT",
            Layer::FlatNoIndex => "flat, no P3 index (before)",
            Layer::FlatP3Index => "flat, P3 index",
            Layer::Partitioned => "partitioned (after)",
            Layer::JsonbNoGin => "JSONB, no GIN (before)",
            Layer::JsonbGin => "JSONB, GIN + P3 index",
            Layer::Normalized => "normalised tables (after)",
            Layer::ReadPosition => "read position + receipts after it (after)",
            Layer::Delete => "DELETE (before)",
            Layer::VacuumAfterDelete => "VACUUM after the DELETE",
            Layer::DetachDrop => "detach + drop (after)",
            Layer::Casbin => "peer: casbin enforce (in memory)",
            Layer::TowerSessionsRedis => "peer: tower-sessions Redis store",
        }
    }

    /// A short name for table cells, like the spec's "(Redis)".
    pub fn short(self) -> &'static str {
        match self {
            Layer::Postgres => "PostgreSQL",
            Layer::Redis => "Redis",
            Layer::NearCache => "L1",
            Layer::RawRedisGet => "raw GET",
            Layer::RawPkSelect => "raw SELECT",
            Layer::FlatNoIndex => "flat, no index",
            Layer::FlatP3Index => "flat + P3 index",
            Layer::Partitioned => "partitioned",
            Layer::JsonbNoGin => "JSONB",
            Layer::JsonbGin => "JSONB + GIN",
            Layer::Normalized => "normalized",
            Layer::ReadPosition => "read position",
            Layer::Delete => "DELETE",
            Layer::VacuumAfterDelete => "VACUUM",
            Layer::DetachDrop => "detach + drop",
            Layer::Casbin => "casbin",
            Layer::TowerSessionsRedis => "tower-sessions",
        }
    }
}

/// One operation on one layer: every sample and their summary, or why it
/// was skipped.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// What.
    pub operation: Operation,
    /// Where.
    pub layer: Layer,
    /// Percentiles and throughput; `None` when skipped.
    pub summary: Option<Summary>,
    /// Every sample, in microseconds, in the order taken.
    pub samples_us: Vec<f64>,
    /// Why it was not measured.
    pub skipped: Option<String>,
    /// The plan of a representative call (queries only).
    pub plan: Option<PlanInfo>,
    /// Anything a reader should know about this row.
    pub note: Option<String>,
}

impl Measurement {
    /// A measured row.
    pub fn measured(operation: Operation, layer: Layer, samples: Samples) -> Self {
        Measurement {
            operation,
            layer,
            summary: Summary::of(&samples.us, samples.wall_secs),
            samples_us: samples.us,
            skipped: None,
            plan: None,
            note: None,
        }
    }

    /// A row that was not measured, and why.
    pub fn skipped(operation: Operation, layer: Layer, why: impl Into<String>) -> Self {
        Measurement {
            operation,
            layer,
            summary: None,
            samples_us: Vec::new(),
            skipped: Some(why.into()),
            plan: None,
            note: None,
        }
    }

    /// With a plan.
    pub fn with_plan(mut self, plan: Option<PlanInfo>) -> Self {
        self.plan = plan;
        self
    }

    /// With a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        let note = note.into();
        self.note = match self.note.take() {
            Some(old) => Some(format!("{old}; {note}")),
            None => Some(note),
        };
        self
    }

    /// The median, if measured.
    pub fn p50(&self) -> Option<f64> {
        self.summary.map(|s| s.p50_us)
    }
}

/// Samples of one sampling loop.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Each call, in microseconds.
    pub us: Vec<f64>,
    /// Wall time of the loop, seconds.
    pub wall_secs: f64,
}

/// One call of an operation on one layer, for interleaved sampling.
pub type Probe<'a> = Box<dyn FnMut(usize) -> Pin<Box<dyn Future<Output = Result<()>> + 'a>> + 'a>;

/// Wraps a closure returning a future as a [`Probe`].
pub fn probe<'a, F, Fut>(mut f: F) -> Probe<'a>
where
    F: FnMut(usize) -> Fut + 'a,
    Fut: Future<Output = Result<()>> + 'a,
{
    Box::new(move |i| Box::pin(f(i)))
}

/// How many times to call an operation.
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    /// Untimed calls first.
    pub warmup: usize,
    /// Samples wanted.
    pub samples: usize,
    /// Samples taken whatever the budget.
    pub min_samples: usize,
    /// Past this, sampling stops once `min_samples` were taken.
    pub budget: Duration,
}

impl Sampler {
    /// For in-memory and single-key operations.
    pub fn fast(e: &Effort) -> Self {
        Sampler {
            warmup: e.warmup * 10,
            samples: e.fast_samples,
            min_samples: e.min_samples,
            budget: e.budget,
        }
    }

    /// For queries.
    pub fn query(e: &Effort) -> Self {
        Sampler {
            warmup: e.warmup.min(e.query_samples),
            samples: e.query_samples,
            min_samples: e.min_samples,
            budget: e.budget,
        }
    }

    /// Calls `op(i)` for the warm-up then for each sample, timing each call.
    /// `i` counts on from the warm-up, so the calls rotate through the
    /// parameters rather than repeat the warm-up's.
    pub async fn run<F, Fut>(
        &self,
        label: &str,
        progress: &dyn Progress,
        mut op: F,
    ) -> Result<Samples>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let started = Instant::now();
        let mut i = 0;
        while i < self.warmup && started.elapsed() < self.budget / 4 {
            op(i).await?;
            i += 1;
        }
        progress.start(label, Some(self.samples as u64));
        let mut us = Vec::with_capacity(self.samples);
        let loop_start = Instant::now();
        while us.len() < self.samples
            && (us.len() < self.min_samples || loop_start.elapsed() < self.budget)
        {
            let t = Instant::now();
            op(i).await?;
            us.push(t.elapsed().as_secs_f64() * 1e6);
            i += 1;
            if us.len() % 256 == 0 {
                progress.advance(256);
            }
        }
        let wall_secs = loop_start.elapsed().as_secs_f64();
        progress.finish();
        Ok(Samples { us, wall_secs })
    }
}

impl Sampler {
    /// Samples several layers of one operation in turns (one call of each
    /// per round), so that a change of the machine's background load hits
    /// every layer alike and their ratios stay fair. Each layer is warmed up
    /// first. Throughput is per layer: its samples over their summed time.
    pub async fn run_interleaved(
        &self,
        label: &str,
        progress: &dyn Progress,
        probes: &mut [Probe<'_>],
    ) -> Result<Vec<Samples>> {
        let started = Instant::now();
        let mut i = 0;
        while i < self.warmup && started.elapsed() < self.budget / 4 {
            for p in probes.iter_mut() {
                p(i).await?;
            }
            i += 1;
        }
        progress.start(label, Some(self.samples as u64));
        let mut out: Vec<Samples> = probes.iter().map(|_| Samples::default()).collect();
        let loop_start = Instant::now();
        let budget = self.budget * 2;
        let mut n = 0;
        while n < self.samples && (n < self.min_samples || loop_start.elapsed() < budget) {
            for (p, s) in probes.iter_mut().zip(out.iter_mut()) {
                let t = Instant::now();
                p(i).await?;
                s.us.push(t.elapsed().as_secs_f64() * 1e6);
            }
            i += 1;
            n += 1;
            if n % 256 == 0 {
                progress.advance(256);
            }
        }
        progress.finish();
        for s in &mut out {
            s.wall_secs = s.us.iter().sum::<f64>() / 1e6;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;

    #[tokio::test]
    async fn samples_rotate_and_stop_at_the_count() {
        let s = Sampler {
            warmup: 3,
            samples: 10,
            min_samples: 2,
            budget: Duration::from_secs(60),
        };
        let mut seen = Vec::new();
        let out = s
            .run("t", &NoProgress, |i| {
                seen.push(i);
                async { Ok(()) }
            })
            .await
            .unwrap();
        assert_eq!(out.us.len(), 10);
        assert_eq!(seen, (0..13).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn interleaved_layers_take_turns() {
        let s = Sampler {
            warmup: 2,
            samples: 5,
            min_samples: 1,
            budget: Duration::from_secs(60),
        };
        let calls = std::cell::RefCell::new(Vec::new());
        let mut probes = vec![
            probe(|i| {
                calls.borrow_mut().push(('a', i));
                async { Ok(()) }
            }),
            probe(|i| {
                calls.borrow_mut().push(('b', i));
                async { Ok(()) }
            }),
        ];
        let out = s
            .run_interleaved("t", &NoProgress, &mut probes)
            .await
            .unwrap();
        drop(probes);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|o| o.us.len() == 5));
        let calls = calls.into_inner();
        assert_eq!(calls.len(), 14);
        assert_eq!(&calls[4..6], &[('a', 2), ('b', 2)]);
    }

    #[tokio::test]
    async fn the_budget_stops_slow_operations_after_the_minimum() {
        let s = Sampler {
            warmup: 0,
            samples: 1_000,
            min_samples: 3,
            budget: Duration::ZERO,
        };
        let out = s.run("t", &NoProgress, |_| async { Ok(()) }).await.unwrap();
        assert_eq!(out.us.len(), 3);
    }
}
