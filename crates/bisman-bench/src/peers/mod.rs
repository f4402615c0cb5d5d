//! Peers measured in the same run, in turns with our own layers:
//!
//! - permission checks with [casbin](https://casbin.org) (the `casbin`
//!   crate), an in-memory RBAC enforcer loaded with the same roles, pages
//!   and user roles (role pages already bounded by each tenant's super-admin
//!   modules, so that it makes the same decisions);
//! - session loads with `tower-sessions`' Redis store
//!   (`tower-sessions-redis-store`, on `fred`), records the size of ours.
//!
//! They are compiled only with the `peers` feature (the `bisman` binary's
//! `bench-peers`), so that they never reach the production dependency
//! tree; without it their rows say how to include them.

#[cfg(feature = "peers")]
mod casbin_peer;
#[cfg(feature = "peers")]
mod tower_peer;

use crate::data::Dataset;
use crate::error::Result;
use crate::measure::workload::Workload;
use crate::measure::Probe;

/// Whether this build includes the peers.
pub const ENABLED: bool = cfg!(feature = "peers");

/// Why the peers' rows are empty in a build without them.
pub const NOT_BUILT: &str = "peers not built in: rebuild with the `bench-peers` feature \
(`cargo run --release -p bisman --features bench-peers -- bench …`)";

/// A peer ready to be sampled, or why it is not.
pub enum PeerProbe<'a> {
    /// One call of the peer, and a note for its row.
    Ready(Probe<'a>, String),
    /// Why it is not measured.
    Skipped(String),
}

/// The peers, set up for one run.
pub struct Peers {
    #[cfg(feature = "peers")]
    casbin: casbin_peer::CasbinPeer,
    #[cfg(feature = "peers")]
    tower: Option<tower_peer::TowerPeer>,
}

impl Peers {
    /// Loads casbin with the data set's roles, and stores one tower-sessions
    /// record per session of the workload (when there is a Redis). `decisions`
    /// are our answers to the workload's checks, for casbin's to be compared.
    pub async fn set_up(
        after: &Dataset,
        work: &Workload,
        decisions: &[bool],
        redis_url: Option<&str>,
    ) -> Result<Peers> {
        #[cfg(feature = "peers")]
        {
            let casbin = casbin_peer::CasbinPeer::set_up(after, work, decisions).await?;
            let tower = match redis_url {
                Some(url) => Some(tower_peer::TowerPeer::set_up(url, work.sessions.len()).await?),
                None => None,
            };
            Ok(Peers { casbin, tower })
        }
        #[cfg(not(feature = "peers"))]
        {
            let _ = (after, work, decisions, redis_url);
            Ok(Peers {})
        }
    }

    /// casbin's `enforce` over the workload's checks.
    pub fn permission_probe(&self) -> PeerProbe<'_> {
        #[cfg(feature = "peers")]
        {
            PeerProbe::Ready(self.casbin.probe(), self.casbin.note())
        }
        #[cfg(not(feature = "peers"))]
        {
            PeerProbe::Skipped(NOT_BUILT.into())
        }
    }

    /// tower-sessions' `load` over its records.
    pub fn session_probe(&self) -> PeerProbe<'_> {
        #[cfg(feature = "peers")]
        {
            match &self.tower {
                Some(t) => PeerProbe::Ready(t.probe(), t.note()),
                None => PeerProbe::Skipped(crate::measure::caches::NO_REDIS.into()),
            }
        }
        #[cfg(not(feature = "peers"))]
        {
            PeerProbe::Skipped(NOT_BUILT.into())
        }
    }

    /// Removes what the peers stored.
    pub async fn tear_down(self) {
        #[cfg(feature = "peers")]
        if let Some(t) = self.tower {
            t.tear_down().await;
        }
    }
}
