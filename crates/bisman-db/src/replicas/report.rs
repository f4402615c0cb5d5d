//! What the replica set reports: one typed snapshot, serialisable both ways,
//! that `/metrics`, `/readyz` and the ops page render today and a monitor
//! command can fetch and render later.

use serde::{Deserialize, Serialize};

use super::Lsn;

/// The state of one standby as the last check saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// Not checked yet.
    Unknown,
    /// Answers, is a standby, and lags no more than the allowed maximum.
    Healthy,
    /// Answers, but lags more than the allowed maximum (or by an unknown
    /// amount): skipped until it catches up.
    Lagging,
    /// Does not answer (or failed a read since its last check): skipped.
    Down,
    /// Answers but is no longer a standby (promoted): it no longer follows
    /// the primary, so it is skipped for good until it is a standby again.
    Promoted,
}

impl ReplicaState {
    /// Its name in metrics and pages.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Unknown => "unknown",
            ReplicaState::Healthy => "healthy",
            ReplicaState::Lagging => "lagging",
            ReplicaState::Down => "down",
            ReplicaState::Promoted => "promoted",
        }
    }
}

/// Why a read went to the primary although replicas are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrimaryReason {
    /// No replica was healthy.
    NoneHealthy,
    /// Read-your-writes: no healthy replica had replayed the caller's last
    /// write yet.
    NotCaughtUp,
    /// The caller's last write position could not be read (shared cache
    /// down): the primary is the only safe answer.
    FloorUnknown,
    /// A replica failed the read; it was made again on the primary.
    Fallback,
}

impl PrimaryReason {
    /// Every reason, in report order.
    pub const ALL: [PrimaryReason; 4] = [
        PrimaryReason::NoneHealthy,
        PrimaryReason::NotCaughtUp,
        PrimaryReason::FloorUnknown,
        PrimaryReason::Fallback,
    ];

    /// Its name in metrics and pages.
    pub fn as_str(self) -> &'static str {
        match self {
            PrimaryReason::NoneHealthy => "none_healthy",
            PrimaryReason::NotCaughtUp => "not_caught_up",
            PrimaryReason::FloorUnknown => "floor_unknown",
            PrimaryReason::Fallback => "fallback",
        }
    }

    /// What it means, for people.
    pub fn describe(self) -> &'static str {
        match self {
            PrimaryReason::NoneHealthy => "no replica healthy",
            PrimaryReason::NotCaughtUp => {
                "read-your-writes: no replica had replayed the caller's last write"
            }
            PrimaryReason::FloorUnknown => "the caller's last write position could not be read",
            PrimaryReason::Fallback => "a replica failed the read",
        }
    }
}

/// One standby.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// `host:port/database` (never the user or password).
    pub name: String,
    /// Its state at the last check.
    pub state: ReplicaState,
    /// Whether reads may go to it now (healthy, checked recently, not
    /// suspected since).
    pub usable: bool,
    /// Replay lag in milliseconds (to within one check interval).
    pub lag_ms: Option<u64>,
    /// The lag is a lower bound (behind every primary position remembered).
    pub lag_at_least: bool,
    /// WAL bytes between the newest primary position seen and its replay position.
    pub bytes_behind: Option<u64>,
    /// How far it has replayed.
    pub replay_lsn: Option<Lsn>,
    /// Replay paused (`pg_wal_replay_pause()`).
    pub replay_paused: Option<bool>,
    /// Milliseconds since its last check answered.
    pub checked_ms_ago: Option<u64>,
    /// Why the last check failed, when it did.
    pub last_error: Option<String>,
    /// Reads routed to it.
    pub reads: u64,
    /// Reads it failed (made again on the primary).
    pub fallbacks: u64,
    /// Times it was asked on demand how far it has replayed (a caller's
    /// last write was past what its last check saw).
    pub replay_probes: u64,
}

/// Reads the primary served for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryReads {
    /// Why.
    pub reason: PrimaryReason,
    /// How many.
    pub reads: u64,
}

/// The replica set as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// Replicas configured.
    pub configured: usize,
    /// Replicas usable now.
    pub usable: usize,
    /// The most lag a replica may have and still serve reads, milliseconds.
    pub max_lag_ms: u64,
    /// How often each replica is checked, milliseconds.
    pub check_every_ms: u64,
    /// The newest primary WAL position seen.
    pub primary_flush_lsn: Option<Lsn>,
    /// Each replica, in configuration order.
    pub replicas: Vec<ReplicaStatus>,
    /// Replica-eligible reads the primary served, by reason.
    pub primary_reads: Vec<PrimaryReads>,
}

impl ReplicaReport {
    /// Reads routed to replicas, all together.
    pub fn replica_reads(&self) -> u64 {
        self.replicas.iter().map(|r| r.reads).sum()
    }

    /// Replica-eligible reads the primary served, all together.
    pub fn primary_read_total(&self) -> u64 {
        self.primary_reads.iter().map(|p| p.reads).sum()
    }
}
