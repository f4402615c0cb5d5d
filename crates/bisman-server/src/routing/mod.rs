//! Where a request's queries go: the primary, or a read replica.
//!
//! [`DbRouter`] is the pool router every handler reaches through
//! `AppState::db`. Writes, transactions, and the session and permission
//! loads (the revocation path) always use the primary: handlers keep using
//! `AppState::pool` for them. Read-heavy handlers take the [`Reads`]
//! extractor and run their queries through [`Reads::run`], which sends them
//! to a healthy replica that has replayed the caller's last write
//! (read-your-writes by WAL position), or to the primary.
//!
//! - [`reads`]: the extractor and the fallback to the primary.
//! - [`writes`]: the layer that remembers each write's WAL position.
//! - [`memory`]: where those positions live (the shared cache store).
//! - [`metrics`]: the replica figures in Prometheus text.
//!
//! The replica set itself (pools, health, lag, routing counters, its typed
//! report) is `bisman_db::replicas`. With no replica configured none of
//! this does anything: every query reads the primary, as before.

pub mod memory;
pub mod metrics;
pub mod reads;
pub mod writes;

use std::sync::Arc;
use std::time::Duration;

use bisman_cache::{CacheConfig, TokenHash};
use bisman_db::replicas::{primary_flush_lsn, Lsn, ReplicaOptions, ReplicaReport, ReplicaSet};
use sqlx::PgPool;

pub use memory::WriteMemory;
pub use reads::Reads;

/// The header carrying a WAL position: sent after every write, honoured on
/// reads ("read at least this far").
pub const LSN_HEADER: &str = "bisman-lsn";

/// The primary pool and, when configured, the replicas (cheap to clone).
#[derive(Clone)]
pub struct DbRouter {
    primary: PgPool,
    replicated: Option<Arc<Replicated>>,
}

struct Replicated {
    set: ReplicaSet,
    writes: WriteMemory,
}

impl DbRouter {
    /// Everything on `primary`.
    pub fn primary_only(primary: PgPool) -> Self {
        Self {
            primary,
            replicated: None,
        }
    }

    /// The primary plus the replicas of `options` (none: primary only), with
    /// write positions remembered in the store `cache` names. Starts the
    /// replica monitor (inside a Tokio runtime).
    pub fn start(
        primary: PgPool,
        options: &ReplicaOptions,
        cache: &CacheConfig,
    ) -> anyhow::Result<Self> {
        if options.urls.is_empty() {
            return Ok(Self::primary_only(primary));
        }
        let set = ReplicaSet::start(primary.clone(), options)?;
        let writes = WriteMemory::new(cache, &primary, memory_ttl(options.max_lag))?;
        if !writes.is_shared() {
            tracing::warn!(
                "read replicas without a shared cache store: read-your-writes holds per instance \
                 (and for clients that send Bisman-Lsn back)"
            );
        }
        Ok(Self::with_parts(primary, set, writes))
    }

    /// The primary, a started replica set and a write memory (tests build
    /// their own memory).
    pub fn with_parts(primary: PgPool, set: ReplicaSet, writes: WriteMemory) -> Self {
        Self {
            primary,
            replicated: Some(Arc::new(Replicated { set, writes })),
        }
    }

    /// The primary pool.
    pub fn primary(&self) -> &PgPool {
        &self.primary
    }

    /// The replicas, if any are configured.
    pub fn replicas(&self) -> Option<&ReplicaSet> {
        self.replicated.as_ref().map(|r| &r.set)
    }

    /// The replicas' report, if any are configured.
    pub fn report(&self) -> Option<ReplicaReport> {
        self.replicas().map(ReplicaSet::report)
    }

    /// The lowest WAL position a read must see: the client's own ask and
    /// the session's last write, whichever is further. `Err` when the
    /// session's last write cannot be known (its store failed).
    async fn floor(
        &self,
        session: Option<&TokenHash>,
        asked: Option<Lsn>,
    ) -> Result<Option<Lsn>, ()> {
        let (Some(r), Some(session)) = (&self.replicated, session) else {
            return Ok(asked);
        };
        match r.writes.recall(session).await {
            Ok(written) => Ok(asked.max(written)),
            Err(e) => {
                tracing::warn!(error = %e, "the session's last write position cannot be read; reading the primary");
                Err(())
            }
        }
    }

    /// After a write: the primary's flushed WAL position, remembered for
    /// `session`. `None` without replicas or when the primary cannot say.
    pub async fn remember_write(&self, session: Option<&TokenHash>) -> Option<Lsn> {
        let r = self.replicated.as_ref()?;
        let lsn = match primary_flush_lsn(&self.primary).await {
            Ok(lsn) => lsn,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the primary's WAL position after a write");
                return None;
            }
        };
        if let Some(session) = session {
            if let Err(e) = r.writes.remember(session, lsn).await {
                // This instance still remembers it; others learn it from the
                // client's Bisman-Lsn, or read the primary once their store
                // lookups fail too.
                tracing::warn!(error = %e, "cannot share the session's write position");
            }
        }
        Some(lsn)
    }
}

/// How long a session's write position is kept. A replica lagging more
/// than `max_lag` is skipped, so a write older than that (plus one check)
/// is on every replica still serving; the memory keeps it far longer, as a
/// margin for a lag measured to within one check interval.
pub fn memory_ttl(max_lag: Duration) -> Duration {
    (max_lag * 20).max(Duration::from_secs(60))
}
