//! Read replicas: pools to hot standbys, their health, and where a read goes.
//!
//! A [`ReplicaSet`] holds one read-only pool per standby and a monitor task
//! that checks every standby each `check_every`: whether it answers, whether
//! it is still a standby (`pg_is_in_recovery()`), how far it has replayed
//! (`pg_last_wal_replay_lsn()`), whether replay is paused, and how long ago
//! the primary was where the standby is now (its lag in time, see [`lag`]).
//! A standby that does not answer, is no longer a standby, or lags more than
//! `max_lag` is skipped until a later check finds it well again.
//!
//! [`ReplicaSet::route`] picks where one read goes, given the caller's
//! *floor*: the WAL position of the caller's last write, if it must see it
//! (read-your-writes). A replica qualifies when it is usable and has
//! replayed at least the floor; replicas take turns. A caller that wrote a
//! moment ago is usually ahead of what the last check saw (streaming replay
//! takes about a millisecond here, checks come every 100 ms): then the
//! usable replica furthest along is asked where it is now (one round trip,
//! far cheaper than the read itself on the primary). With none qualifying
//! the read goes to the primary, and the reason is counted. Every route is
//! counted per replica (or per reason on the primary) for the report.
//!
//! What must read the primary (writes, transactions, permission and session
//! loads) never asks: the caller simply uses the primary pool. This module
//! only serves reads that may be a little behind.

mod lag;
mod lsn;
mod monitor;
pub mod report;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub use lag::{History, Lag};
pub use lsn::{primary_flush_lsn, InvalidLsn, Lsn};
pub use report::{PrimaryReads, PrimaryReason, ReplicaReport, ReplicaState, ReplicaStatus};

/// How to reach and judge the standbys.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// One PostgreSQL URL per standby (each naming one server, not a balancer).
    pub urls: Vec<String>,
    /// A standby lagging more than this is skipped.
    pub max_lag: Duration,
    /// How often each standby is checked.
    pub check_every: Duration,
    /// Connections per standby pool.
    pub pool_size: u32,
}

/// A replica set that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// A URL does not parse (its text is not repeated: it may hold a password).
    #[error("replica URL number {number} is not a PostgreSQL URL ({reason})")]
    BadUrl {
        /// 1-based position in the list.
        number: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// A setting is out of range.
    #[error("{0}")]
    Setting(&'static str),
    /// Built outside a Tokio runtime: the monitor cannot start.
    #[error("the replica monitor needs a Tokio runtime")]
    NoRuntime,
}

/// Where one read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The replica at this index.
    Replica(usize),
    /// The primary, for this reason.
    Primary(PrimaryReason),
}

/// Pools to the standbys, their observed health, and the routing counters
/// (cheap to clone). The monitor runs as long as a clone is alive.
#[derive(Clone)]
pub struct ReplicaSet {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    primary: PgPool,
    replicas: Vec<Replica>,
    max_lag: Duration,
    check_every: Duration,
    check_timeout: Duration,
    history: Mutex<History>,
    next: AtomicUsize,
    primary_reads: [AtomicU64; PrimaryReason::ALL.len()],
}

pub(crate) struct Replica {
    name: String,
    check_options: PgConnectOptions,
    pool: PgPool,
    observed: RwLock<Observed>,
    reads: AtomicU64,
    fallbacks: AtomicU64,
    probes: AtomicU64,
}

/// What the last check saw.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    state: ReplicaState,
    replay: Option<Lsn>,
    lag: Lag,
    bytes_behind: Option<u64>,
    paused: Option<bool>,
    checked_at: Option<Instant>,
    error: Option<String>,
    /// A read failed on it since the last check.
    suspect: bool,
}

impl Default for Observed {
    fn default() -> Self {
        Self {
            state: ReplicaState::Unknown,
            replay: None,
            lag: Lag::Unknown,
            bytes_behind: None,
            paused: None,
            checked_at: None,
            error: None,
            suspect: false,
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl ReplicaSet {
    /// Opens a lazy read-only pool per standby (a standby that is down now
    /// is simply skipped until it answers) and starts the monitor. Must be
    /// called inside a Tokio runtime.
    pub fn start(primary: PgPool, options: &ReplicaOptions) -> Result<Self, ReplicaError> {
        if options.max_lag.is_zero() || options.check_every.is_zero() {
            return Err(ReplicaError::Setting(
                "the replica lag limit and check interval must be above zero",
            ));
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ReplicaError::NoRuntime)?;
        let replicas = options
            .urls
            .iter()
            .enumerate()
            .map(|(i, url)| Replica::new(i + 1, url, options.pool_size))
            .collect::<Result<Vec<_>, _>>()?;
        // Long enough to measure any lag that matters against max_lag.
        let keep = (options.max_lag * 4).max(Duration::from_secs(10));
        let inner = Arc::new(Inner {
            primary,
            replicas,
            max_lag: options.max_lag,
            check_every: options.check_every,
            // A standby slower than this to say where it is does not serve.
            check_timeout: options.max_lag.max(Duration::from_secs(1)),
            history: Mutex::new(History::new(keep)),
            next: AtomicUsize::new(0),
            primary_reads: Default::default(),
        });
        handle.spawn(monitor::run(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// Number of replicas configured.
    pub fn len(&self) -> usize {
        self.inner.replicas.len()
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.inner.replicas.is_empty()
    }

    /// The pool of replica `i`.
    pub fn pool(&self, i: usize) -> &PgPool {
        &self.inner.replicas[i].pool
    }

    /// The name of replica `i` (`host:port/database`).
    pub fn name(&self, i: usize) -> &str {
        &self.inner.replicas[i].name
    }

    /// The most lag a replica may have and still serve.
    pub fn max_lag(&self) -> Duration {
        self.inner.max_lag
    }

    /// Whether some replica may serve reads now.
    pub fn any_usable(&self) -> bool {
        let now = Instant::now();
        self.inner
            .replicas
            .iter()
            .any(|r| self.inner.usable(&read(&r.observed), now))
    }

    /// Where a read that must see WAL up to `floor` goes, counted. Replicas
    /// take turns among those usable and caught up with `floor`; when the
    /// last checks saw none caught up, the one furthest along is asked again.
    pub async fn route(&self, floor: Option<Lsn>) -> Route {
        let mut route = self.route_known(floor);
        if let (Route::Primary(PrimaryReason::NotCaughtUp), Some(floor)) = (route, floor) {
            if let Some(i) = self.furthest_usable() {
                if self.probe(i).await.is_some_and(|r| r >= floor) {
                    route = Route::Replica(i);
                }
            }
        }
        match route {
            Route::Replica(i) => {
                self.inner.replicas[i].reads.fetch_add(1, Ordering::Relaxed);
            }
            Route::Primary(reason) => self.count_primary(reason),
        }
        route
    }

    /// Where a read goes by what the checks saw (not counted).
    fn route_known(&self, floor: Option<Lsn>) -> Route {
        let inner = &self.inner;
        let n = inner.replicas.len();
        if n == 0 {
            return Route::Primary(PrimaryReason::NoneHealthy);
        }
        let now = Instant::now();
        let start = inner.next.fetch_add(1, Ordering::Relaxed);
        let mut any_usable = false;
        for k in 0..n {
            let i = (start + k) % n;
            let o = read(&inner.replicas[i].observed);
            if !inner.usable(&o, now) {
                continue;
            }
            any_usable = true;
            if floor.is_none_or(|f| o.replay.is_some_and(|r| r >= f)) {
                return Route::Replica(i);
            }
        }
        Route::Primary(if any_usable {
            PrimaryReason::NotCaughtUp
        } else {
            PrimaryReason::NoneHealthy
        })
    }

    /// The usable replica that had replayed furthest at its last check
    /// (ties taken in turns, so that on-demand questions spread out).
    fn furthest_usable(&self) -> Option<usize> {
        let inner = &self.inner;
        let n = inner.replicas.len();
        let now = Instant::now();
        let start = inner.next.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(Lsn, usize)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let o = read(&inner.replicas[i].observed);
            if !inner.usable(&o, now) {
                continue;
            }
            let replay = o.replay.unwrap_or_default();
            if best.is_none_or(|(b, _)| replay > b) {
                best = Some((replay, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Asks replica `i` how far it has replayed now (a round trip on its
    /// pool, bounded by the check interval); remembers the answer.
    async fn probe(&self, i: usize) -> Option<Lsn> {
        let r = &self.inner.replicas[i];
        r.probes.fetch_add(1, Ordering::Relaxed);
        let limit = self.inner.check_every.max(Duration::from_millis(50));
        let ask = sqlx::query_scalar::<_, Option<String>>("SELECT pg_last_wal_replay_lsn()::text")
            .fetch_one(&r.pool);
        let now: Lsn = tokio::time::timeout(limit, ask)
            .await
            .ok()?
            .ok()??
            .parse()
            .ok()?;
        let mut o = write(&r.observed);
        // Replay only moves forward; the rest of the picture is the check's.
        if o.replay.is_none_or(|known| known < now) {
            o.replay = Some(now);
        }
        Some(now)
    }

    /// Counts a read sent to the primary for `reason` without asking
    /// [`Self::route`] (e.g. the caller's floor could not be read).
    pub fn count_primary(&self, reason: PrimaryReason) {
        let i = PrimaryReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.inner.primary_reads[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Replica `i` failed a read, which is made again on the primary. When
    /// `unreachable` (its connection failed), it is skipped until the next
    /// check says it answers.
    pub fn read_failed(&self, i: usize, unreachable: bool) {
        let r = &self.inner.replicas[i];
        r.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.count_primary(PrimaryReason::Fallback);
        if unreachable {
            write(&r.observed).suspect = true;
        }
    }

    /// The set as it is now.
    pub fn report(&self) -> ReplicaReport {
        let inner = &self.inner;
        let now = Instant::now();
        let replicas: Vec<ReplicaStatus> = inner
            .replicas
            .iter()
            .map(|r| {
                let o = read(&r.observed).clone();
                let (lag_ms, lag_at_least) = match o.lag {
                    Lag::Unknown => (None, false),
                    Lag::Behind(d) => (Some(millis(d)), false),
                    Lag::AtLeast(d) => (Some(millis(d)), true),
                };
                ReplicaStatus {
                    name: r.name.clone(),
                    state: o.state,
                    usable: inner.usable(&o, now),
                    lag_ms,
                    lag_at_least,
                    bytes_behind: o.bytes_behind,
                    replay_lsn: o.replay,
                    replay_paused: o.paused,
                    checked_ms_ago: o
                        .checked_at
                        .map(|t| millis(now.saturating_duration_since(t))),
                    last_error: o.error.clone(),
                    reads: r.reads.load(Ordering::Relaxed),
                    fallbacks: r.fallbacks.load(Ordering::Relaxed),
                    replay_probes: r.probes.load(Ordering::Relaxed),
                }
            })
            .collect();
        ReplicaReport {
            configured: replicas.len(),
            usable: replicas.iter().filter(|r| r.usable).count(),
            max_lag_ms: millis(inner.max_lag),
            check_every_ms: millis(inner.check_every),
            primary_flush_lsn: inner
                .history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .latest(),
            replicas,
            primary_reads: PrimaryReason::ALL
                .iter()
                .zip(&inner.primary_reads)
                .map(|(reason, n)| PrimaryReads {
                    reason: *reason,
                    reads: n.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }
}

impl Inner {
    /// Whether reads may go to a replica observed as `o`: healthy at a check
    /// recent enough to trust, and no read failed on it since.
    fn usable(&self, o: &Observed, now: Instant) -> bool {
        // A check older than this means the monitor could not get an answer
        // in time: whatever it saw last is no longer a promise.
        let stale_after = self.check_timeout + self.check_every * 2;
        o.state == ReplicaState::Healthy
            && !o.suspect
            && o.checked_at
                .is_some_and(|t| now.saturating_duration_since(t) <= stale_after)
    }
}

impl Replica {
    fn new(number: usize, url: &str, pool_size: u32) -> Result<Self, ReplicaError> {
        let bad = |e: sqlx::Error| ReplicaError::BadUrl {
            number,
            reason: e.to_string(),
        };
        let base = crate::pool::session_options(url).map_err(bad)?;
        let name = format!(
            "{}:{}/{}",
            base.get_host(),
            base.get_port(),
            base.get_database().unwrap_or("")
        );
        // Read-only even if the server stops being a standby (promoted): a
        // write sent here by mistake fails instead of forking the data.
        let read_options = base
            .clone()
            .application_name("bisman-replica")
            .options([("default_transaction_read_only", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            // A standby that cannot give a connection soon is not worth
            // waiting for: the read goes to the primary instead.
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(read_options);
        Ok(Self {
            name,
            check_options: base.application_name("bisman-replica-check"),
            pool,
            observed: RwLock::new(Observed::default()),
            reads: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            probes: AtomicU64::new(0),
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
