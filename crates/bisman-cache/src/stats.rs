//! Counters per namespace and layer: hits, misses, fills, invalidations,
//! errors. Cheap atomics, read by `/metrics` and `bisman cache stats`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::keys::Namespace;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// The in-process near-cache.
    L1,
    /// The shared store (Redis, the PostgreSQL table, memory).
    L2,
    /// PostgreSQL's ERP tables (the truth).
    Source,
}

impl Layer {
    /// Every layer.
    pub const ALL: [Layer; 3] = [Layer::L1, Layer::L2, Layer::Source];

    /// Its label.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::L1 => "l1",
            Layer::L2 => "l2",
            Layer::Source => "source",
        }
    }
}

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Answered from this layer.
    Hit,
    /// Not in this layer.
    Miss,
    /// Stored into this layer.
    Fill,
    /// Dropped from this layer by an invalidation.
    Invalidation,
    /// This layer failed.
    Error,
}

const EVENTS: usize = 5;

/// The counters.
#[derive(Debug, Default)]
pub struct Stats {
    counters: [[[AtomicU64; EVENTS]; 3]; 5],
}

/// One row of a snapshot.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatsRow {
    /// Namespace.
    pub namespace: &'static str,
    /// Layer.
    pub layer: &'static str,
    /// Hits.
    pub hits: u64,
    /// Misses.
    pub misses: u64,
    /// Fills.
    pub fills: u64,
    /// Invalidations.
    pub invalidations: u64,
    /// Errors.
    pub errors: u64,
}

impl Stats {
    /// Counts one event.
    pub fn count(&self, ns: Namespace, layer: Layer, event: Event) {
        self.counters[ns.index()][layer as usize][event as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter, one row per namespace and layer.
    pub fn snapshot(&self) -> Vec<StatsRow> {
        let mut rows = Vec::new();
        for ns in Namespace::ALL {
            for layer in Layer::ALL {
                let c = &self.counters[ns.index()][layer as usize];
                let get = |e: Event| c[e as usize].load(Ordering::Relaxed);
                rows.push(StatsRow {
                    namespace: ns.as_str(),
                    layer: layer.as_str(),
                    hits: get(Event::Hit),
                    misses: get(Event::Miss),
                    fills: get(Event::Fill),
                    invalidations: get(Event::Invalidation),
                    errors: get(Event::Error),
                });
            }
        }
        rows
    }
}
