//! Cache counters over time, for the cache page's chart.
//!
//! An in-process ring buffer: every [`CacheHistory::EVERY`] the service
//! copies this instance's cache counters (per namespace and layer) and the
//! store server's `keyspace_hits` / `keyspace_misses` into it, keeping the
//! last [`CacheHistory::CAPACITY`] samples (one hour). Hit rates over time
//! are the differences between neighbouring samples. Nothing is persisted:
//! the counters themselves are per process and start at zero, so a restart
//! starts a new history, and each instance charts its own traffic
//! (`/metrics` is the place for fleet-wide history).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bisman_cache::store::ServerStats;
use bisman_cache::{Cache, StatsRow};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// One copy of the counters.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Counters per namespace and layer (cumulative since start).
    pub rows: Vec<StatsRow>,
    /// The store server's counters (Redis), when there is one.
    pub server: Option<ServerStats>,
}

/// The ring buffer.
#[derive(Debug)]
pub struct CacheHistory {
    samples: Mutex<VecDeque<Sample>>,
    capacity: usize,
}

impl Default for CacheHistory {
    fn default() -> Self {
        Self::with_capacity(Self::CAPACITY)
    }
}

impl CacheHistory {
    /// Time between samples.
    pub const EVERY: Duration = Duration::from_secs(10);
    /// Samples kept (an hour at one per [`Self::EVERY`]).
    pub const CAPACITY: usize = 360;

    /// An empty history keeping `capacity` samples.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            samples: Mutex::new(VecDeque::with_capacity(capacity.min(Self::CAPACITY))),
            capacity: capacity.max(2),
        }
    }

    /// Adds `sample`, dropping the oldest when full.
    pub fn record(&self, sample: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == self.capacity {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// Takes a sample of `cache` now and records it.
    pub async fn sample(&self, cache: &Cache) -> Sample {
        let server = cache.server_stats().await.ok().flatten();
        let sample = Sample {
            at: Utc::now(),
            rows: cache.stats(),
            server,
        };
        self.record(sample.clone());
        sample
    }

    /// The newest sample if it is younger than `fresh`, else a new one of
    /// `cache` (recorded): a page view shows figures of now without
    /// filling the ring when someone reloads quickly.
    pub async fn latest(&self, cache: &Cache, fresh: Duration) -> Sample {
        let newest = {
            let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
            samples.back().cloned()
        };
        match newest {
            Some(s) if (Utc::now() - s.at).to_std().is_ok_and(|age| age < fresh) => s,
            _ => self.sample(cache).await,
        }
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.iter().cloned().collect()
    }

    /// Samples `cache` every [`Self::EVERY`] until `stop` fires.
    pub async fn run(self: Arc<Self>, cache: Cache, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Self::EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => { self.sample(&cache).await; }
            }
        }
    }
}

/// Hit rate between neighbouring samples: one point per interval, `None`
/// where there were no lookups.
pub type Series = Vec<(DateTime<Utc>, Option<f64>)>;

/// Hit rate of `namespace` in `layer` over the samples.
pub fn hit_rate(samples: &[Sample], namespace: &str, layer: &str) -> Series {
    let counts = |s: &Sample| {
        s.rows
            .iter()
            .find(|r| r.namespace == namespace && r.layer == layer)
            .map(|r| (r.hits, r.misses))
    };
    pairs(samples, counts)
}

/// Hit rate of the store server (`keyspace_hits` / lookups) over the samples.
pub fn server_hit_rate(samples: &[Sample]) -> Series {
    pairs(samples, |s| {
        s.server.map(|v| (v.keyspace_hits, v.keyspace_misses))
    })
}

fn pairs(samples: &[Sample], counts: impl Fn(&Sample) -> Option<(u64, u64)>) -> Series {
    samples
        .windows(2)
        .map(|w| {
            let rate = match (counts(&w[0]), counts(&w[1])) {
                (Some((h0, m0)), Some((h1, m1))) => {
                    // A counter that went down was reset (a new Redis, say):
                    // count from zero.
                    let (dh, dm) = if h1 < h0 || m1 < m0 {
                        (h1, m1)
                    } else {
                        (h1 - h0, m1 - m0)
                    };
                    (dh + dm > 0).then(|| dh as f64 / (dh + dm) as f64)
                }
                _ => None,
            };
            (w[1].at, rate)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(secs: i64, hits: u64, misses: u64) -> Sample {
        Sample {
            at: DateTime::from_timestamp(secs, 0).unwrap(),
            rows: vec![StatsRow {
                namespace: "sessions",
                layer: "l1",
                hits,
                misses,
                fills: 0,
                invalidations: 0,
                errors: 0,
            }],
            server: Some(ServerStats {
                keyspace_hits: hits * 2,
                keyspace_misses: misses,
            }),
        }
    }

    #[test]
    fn ring_keeps_the_newest() {
        let h = CacheHistory::with_capacity(3);
        for i in 0..5 {
            h.record(sample(i, 0, 0));
        }
        let at: Vec<i64> = h.samples().iter().map(|s| s.at.timestamp()).collect();
        assert_eq!(at, vec![2, 3, 4]);
    }

    #[test]
    fn rates_are_per_interval() {
        let s = [
            sample(0, 0, 0),
            sample(10, 9, 1),
            sample(20, 9, 1),
            sample(30, 10, 4),
            sample(40, 1, 1),
        ];
        let r = hit_rate(&s, "sessions", "l1");
        let rates: Vec<Option<f64>> = r.iter().map(|p| p.1).collect();
        assert_eq!(rates, vec![Some(0.9), None, Some(0.25), Some(0.5)]);
        assert_eq!(r[0].0.timestamp(), 10);
        assert!(hit_rate(&s, "sessions", "l2").iter().all(|p| p.1.is_none()));
        assert_eq!(server_hit_rate(&s)[0].1, Some(18.0 / 19.0));
    }
}
