//! The cache as a whole: built from a [`CacheConfig`], it owns the shared
//! store, the near-cache and the invalidation bus, and hands out the
//! session and permission caches.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

use crate::bus::{Bus, PostgresBus, RedisBus};
use crate::clock::{Clock, SystemClock};
use crate::config::{CacheConfig, CacheMode};
use crate::engine::{Inner, SourceHook};
use crate::error::Result;
use crate::keys::Keys;
use crate::near::Near;
use crate::permissions::PermissionCache;
use crate::session::SessionCache;
use crate::stats::StatsRow;
use crate::store::{ClusterStore, MemoryStore, PostgresStore, RedisStore, ServerStats, Store};
use crate::sync::Synchronizer;

/// Session and permission caches over one store (cheap to clone).
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

/// A store and the bus that goes with it.
type Parts = (Option<Arc<dyn Store>>, Option<Arc<dyn Bus>>);

/// Builds a [`Cache`].
pub struct CacheBuilder {
    config: CacheConfig,
    pool: PgPool,
    clock: Arc<dyn Clock>,
    shared: Option<Parts>,
    hook: Option<SourceHook>,
}

/// Whether each part answers.
#[derive(Debug, Clone, Serialize)]
pub struct CacheHealth {
    /// The mode (`redis`, `memory`, …).
    pub mode: &'static str,
    /// The shared store answers (`None` without one).
    pub store_ok: Option<bool>,
    /// A near-cache is configured.
    pub near_enabled: bool,
    /// The near-cache may serve now (its subscription is confirmed).
    pub near_usable: bool,
}

impl CacheBuilder {
    /// A cache configured by `config`, reading the ERP's tables through `pool`.
    pub fn new(config: CacheConfig, pool: PgPool) -> Self {
        Self {
            config,
            pool,
            clock: Arc::new(SystemClock),
            shared: None,
            hook: None,
        }
    }

    /// Reads time from `clock` (tests move it).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses this store and bus instead of the ones `config.mode` names (for
    /// several instances sharing an in-process store in one test process).
    pub fn shared(mut self, store: Arc<dyn Store>, bus: Option<Arc<dyn Bus>>) -> Self {
        self.shared = Some((Some(store), bus));
        self
    }

    /// Runs `hook` after every PostgreSQL load, before its result is cached
    /// (tests hold loads open with it).
    pub fn source_hook(mut self, hook: SourceHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Connects (lazily: a Redis that is down now is retried later) and
    /// starts the near-cache's subscription.
    pub async fn build(self) -> Result<Cache> {
        self.config.validate()?;
        let cfg = &self.config;
        let keys = Keys::new(&cfg.prefix);
        let (store, bus): Parts = match (&self.shared, &cfg.mode) {
            (Some(parts), _) => parts.clone(),
            (None, CacheMode::Disabled) => (None, None),
            (None, CacheMode::Memory) => (Some(Arc::new(MemoryStore::new())), None),
            (None, CacheMode::Redis { url }) => (
                Some(Arc::new(RedisStore::connect(url, cfg.store_timeout)?)),
                Some(Arc::new(RedisBus::single(
                    url,
                    keys.bus_channel(),
                    keys.instances(),
                    cfg.store_timeout,
                ))),
            ),
            (None, CacheMode::Cluster { nodes }) => (
                Some(Arc::new(ClusterStore::connect(nodes, cfg.store_timeout)?)),
                Some(Arc::new(RedisBus::cluster(
                    nodes,
                    keys.bus_channel(),
                    keys.instances(),
                    cfg.store_timeout,
                ))),
            ),
            (None, CacheMode::Postgres) => (
                Some(Arc::new(PostgresStore::new(self.pool.clone()))),
                Some(Arc::new(PostgresBus::new(self.pool.clone(), &cfg.prefix))),
            ),
        };
        let near = (cfg.near.enabled && bus.is_some()).then(|| Arc::new(Near::new(cfg.near)));
        let sync = match (&near, bus) {
            (Some(near), Some(bus)) => Some(Synchronizer::start(
                bus,
                near.clone(),
                cfg.near.subscription_lease,
            )),
            _ => None,
        };
        tracing::info!(
            mode = cfg.mode.label(),
            near = near.is_some(),
            "cache ready"
        );
        let inner = Arc::new(Inner::new(
            self.config,
            self.pool,
            store,
            near,
            sync,
            self.clock,
            self.hook,
        ));
        if inner.store.is_some() {
            // A store that answers now is used from the first request; one
            // that does not is probed in the background.
            inner.recover().await;
            tokio::spawn(crate::engine::recovery_loop(Arc::downgrade(&inner)));
        }
        Ok(Cache { inner })
    }
}

impl Cache {
    /// A cache configured by `config` (see [`CacheBuilder`] for options).
    pub async fn new(config: CacheConfig, pool: PgPool) -> Result<Cache> {
        CacheBuilder::new(config, pool).build().await
    }

    /// The session cache.
    pub fn sessions(&self) -> SessionCache {
        SessionCache {
            inner: self.inner.clone(),
        }
    }

    /// The permission cache.
    pub fn permissions(&self) -> PermissionCache {
        PermissionCache {
            inner: self.inner.clone(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// This instance's id on the invalidation bus, if it has one.
    pub fn instance_id(&self) -> Option<&str> {
        self.inner.sync.as_ref().map(|s| s.instance.as_str())
    }

    /// Hits, misses, fills, invalidations and errors per namespace and layer.
    pub fn stats(&self) -> Vec<StatsRow> {
        self.inner.stats.snapshot()
    }

    /// The store server's own counters (Redis `keyspace_hits` / `keyspace_misses`).
    pub async fn server_stats(&self) -> Result<Option<ServerStats>> {
        match &self.inner.store {
            Some(store) => store.server_stats().await,
            None => Ok(None),
        }
    }

    /// Whether each part answers now.
    pub async fn health(&self) -> CacheHealth {
        let store_ok = match &self.inner.store {
            Some(store) => Some(store.ping().await.is_ok()),
            None => None,
        };
        CacheHealth {
            mode: self.inner.config.mode.label(),
            store_ok,
            near_enabled: self.inner.near.is_some(),
            near_usable: self.inner.near.as_ref().is_some_and(|n| n.health.usable()),
        }
    }

    /// Waits until the shared store is in use and the near-cache may serve
    /// (its subscription is confirmed), at most `timeout`; whether they are.
    pub async fn wait_until_synced(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let ready = |c: &Self| {
            (c.inner.store.is_none() || c.inner.store_up())
                && c.inner.near.as_ref().is_none_or(|n| n.health.usable())
        };
        while !ready(self) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Instances registered on the invalidation bus (live near-caches).
    pub async fn live_instances(&self) -> Result<Vec<String>> {
        match &self.inner.sync {
            Some(sync) => sync.instances().await,
            None => Ok(Vec::new()),
        }
    }

    /// Leaves the instance registry (call on clean shutdown, so that
    /// invalidations stop waiting for this instance at once).
    pub async fn shutdown(&self) {
        if let Some(sync) = &self.inner.sync {
            sync.deregister().await;
        }
    }
}
