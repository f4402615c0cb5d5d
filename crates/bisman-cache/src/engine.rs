//! The read-through engine shared by the session and permission caches:
//! L1 → L2 → PostgreSQL, with single-flight, generation-guarded fills, a
//! circuit breaker around the shared store, and the invalidation journal
//! replayed when the store comes back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::CacheConfig;
use crate::error::{CacheError, Result};
use crate::flight::Flights;
use crate::keys::{Keys, Namespace, Scope};
use crate::near::{AnyValue, Near};
use crate::stats::{Event, Layer, Stats};
use crate::store::Store;
use crate::sync::{Delivery, Synchronizer};

/// How long a load from PostgreSQL may take. Session tombstones outlive it.
pub(crate) const LOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a purged session cannot be re-filled into the shared store.
pub(crate) const TOMBSTONE_TTL: Duration = Duration::from_secs(30);
/// Generation counters outlive every value they guard.
const GENERATION_TTL: Duration = Duration::from_secs(86_400);
/// How long the store is skipped after it failed.
const BREAKER_OPEN: Duration = Duration::from_secs(1);
/// What a tombstone holds.
pub(crate) const TOMBSTONE: &str = "\"purged\"";

/// A hook run after every PostgreSQL load and before its result is cached
/// (tests hold a load that read old data open across an invalidation).
pub type SourceHook = Arc<dyn Fn(Namespace) -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreState {
    Up,
    Down(Instant),
    Replaying,
}

/// Shared-store work an invalidation could not finish, kept in PostgreSQL
/// until the store is back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub scopes: Vec<Scope>,
    pub sessions: Vec<String>,
}

/// Probes a failed store and brings it back (with its journal replayed) as
/// soon as it answers, so that no read has to discover it.
pub(crate) async fn recovery_loop(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(inner) = inner.upgrade() else { return };
        if !inner.store_up() {
            inner.recover().await;
        }
    }
}

/// Everything a cache instance holds.
pub(crate) struct Inner {
    pub config: CacheConfig,
    pub keys: Keys,
    pub pool: PgPool,
    pub store: Option<Arc<dyn Store>>,
    pub near: Option<Arc<Near>>,
    pub sync: Option<Arc<Synchronizer>>,
    pub stats: Stats,
    pub flights: Flights,
    pub clock: Arc<dyn Clock>,
    pub hook: Option<SourceHook>,
    state: Mutex<StoreState>,
}

impl Inner {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: CacheConfig,
        pool: PgPool,
        store: Option<Arc<dyn Store>>,
        near: Option<Arc<Near>>,
        sync: Option<Arc<Synchronizer>>,
        clock: Arc<dyn Clock>,
        hook: Option<SourceHook>,
    ) -> Self {
        Self {
            keys: Keys::new(&config.prefix),
            config,
            pool,
            store,
            near,
            sync,
            stats: Stats::default(),
            flights: Flights::default(),
            clock,
            hook,
            // Replay the journal before the first use.
            state: Mutex::new(StoreState::Down(Instant::now())),
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, StoreState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The shared store, when it is up (and the invalidations it missed
    /// have been replayed into it).
    pub async fn store(&self) -> Option<&Arc<dyn Store>> {
        let store = self.store.as_ref()?;
        (*self.lock_state() == StoreState::Up).then_some(store)
    }

    /// Brings the store back into use if it answers: replays the journal
    /// first. Whether it is up afterwards. Every instance starts here, so a
    /// new instance never reads an entry an outage left stale.
    pub async fn recover(&self) -> bool {
        let Some(store) = self.store.as_ref() else {
            return false;
        };
        {
            let mut state = self.lock_state();
            match *state {
                StoreState::Up => return true,
                StoreState::Replaying => return false,
                StoreState::Down(until) if Instant::now() < until => return false,
                StoreState::Down(_) => *state = StoreState::Replaying,
            }
        }
        let attempt = async {
            store.ping().await?;
            self.replay_journal(store.as_ref()).await
        };
        match tokio::time::timeout(LOAD_TIMEOUT, attempt).await {
            Ok(Ok(n)) => {
                if n > 0 {
                    tracing::info!(
                        replayed = n,
                        "cache store reachable: replayed invalidations it missed"
                    );
                }
                *self.lock_state() = StoreState::Up;
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cache store still unusable");
                *self.lock_state() = StoreState::Down(Instant::now() + BREAKER_OPEN);
                false
            }
            Err(_) => {
                *self.lock_state() = StoreState::Down(Instant::now() + BREAKER_OPEN);
                false
            }
        }
    }

    /// Whether the store is in use now.
    pub fn store_up(&self) -> bool {
        self.store.is_some() && *self.lock_state() == StoreState::Up
    }

    /// Records a store failure and stops using it for a moment.
    pub fn store_failed(&self, ns: Namespace, error: &CacheError) {
        self.stats.count(ns, Layer::L2, Event::Error);
        let mut state = self.lock_state();
        if *state == StoreState::Up {
            tracing::warn!(error = %error, "shared cache store failed; PostgreSQL answers meanwhile");
        }
        *state = StoreState::Down(Instant::now() + BREAKER_OPEN);
    }

    /// Store work that failed: journal it for replay.
    async fn journal(&self, pending: &Pending) {
        let scopes = serde_json::to_value(pending).unwrap_or_default();
        let stored =
            sqlx::query("INSERT INTO bisman_cache_invalidations (prefix, work) VALUES ($1, $2)")
                .bind(self.keys.prefix())
                .bind(scopes)
                .execute(&self.pool)
                .await;
        if let Err(e) = stored {
            tracing::error!(error = %e, "cannot journal an invalidation the cache store missed");
        }
        *self.lock_state() = StoreState::Down(Instant::now() + BREAKER_OPEN);
    }

    async fn replay_journal(&self, store: &dyn Store) -> Result<usize> {
        let window = self
            .config
            .ttls
            .refresh_tokens
            .max(self.config.ttls.module_assignments);
        let rows: std::result::Result<Vec<(i64, serde_json::Value)>, sqlx::Error> = sqlx::query_as(
            "SELECT id, work FROM bisman_cache_invalidations
             WHERE prefix = $1 AND created_at > now() - make_interval(secs => $2) ORDER BY id",
        )
        .bind(self.keys.prefix())
        .bind(window.as_secs_f64())
        .fetch_all(&self.pool)
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            // A database without the journal (not migrated to 014) has nothing to replay.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        for (_, work) in &rows {
            let pending: Pending = serde_json::from_value(work.clone()).unwrap_or_default();
            self.apply_to_store(store, &pending).await?;
        }
        sqlx::query(
            "DELETE FROM bisman_cache_invalidations WHERE created_at < now() - interval '1 day'",
        )
        .execute(&self.pool)
        .await?;
        Ok(rows.len())
    }

    async fn apply_to_store(&self, store: &dyn Store, pending: &Pending) -> Result<()> {
        for scope in &pending.scopes {
            store
                .bump(
                    &self.keys.generation(*scope),
                    &[self.keys.value_of(*scope)],
                    GENERATION_TTL,
                )
                .await?;
        }
        for hash in &pending.sessions {
            let key = format!("{}sess:{hash}", self.keys.prefix());
            store.set(&key, TOMBSTONE, TOMBSTONE_TTL).await?;
        }
        Ok(())
    }

    /// Runs a PostgreSQL load within the load timeout, counted.
    pub async fn load_source<T>(
        &self,
        ns: Namespace,
        load: BoxFuture<'static, Result<Option<T>>>,
    ) -> Result<Option<T>> {
        let out = tokio::time::timeout(LOAD_TIMEOUT, load)
            .await
            .map_err(|_| CacheError::Unavailable("PostgreSQL did not answer in time".into()))
            .and_then(|r| r);
        if let Some(hook) = &self.hook {
            hook(ns).await;
        }
        match &out {
            Ok(Some(_)) => self.stats.count(ns, Layer::Source, Event::Hit),
            Ok(None) => self.stats.count(ns, Layer::Source, Event::Miss),
            Err(_) => self.stats.count(ns, Layer::Source, Event::Error),
        }
        out
    }

    /// Reads the value of a generation-guarded `scope` through every layer.
    pub async fn read_guarded<T, F>(
        self: &Arc<Self>,
        ns: Namespace,
        scope: Scope,
        load: F,
    ) -> Result<Option<Arc<T>>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce(Arc<Inner>) -> BoxFuture<'static, Result<Option<T>>> + Send + 'static,
    {
        let key = self.keys.value_of(scope);
        if let Some(near) = &self.near {
            if let Some(v) = near.get(&key).and_then(|v| v.downcast::<T>().ok()) {
                self.stats.count(ns, Layer::L1, Event::Hit);
                return Ok(Some(v));
            }
            self.stats.count(ns, Layer::L1, Event::Miss);
        }
        let snap = self.near.as_ref().map(|n| n.snapshot(Some(scope)));
        let inner = self.clone();
        let flight_key = format!("{key}|{snap:?}");
        let out = self
            .flights
            .run(flight_key, move || {
                async move {
                    let v = inner.load_guarded::<T, F>(ns, scope, load).await?;
                    Ok(Arc::new(v) as AnyValue)
                }
                .boxed()
            })
            .await?;
        let value = out.downcast_ref::<Option<Arc<T>>>().cloned().flatten();
        if let (Some(near), Some(snap), Some(v)) = (&self.near, snap, &value) {
            if near.insert(key, v.clone() as AnyValue, scope, snap, true) {
                self.stats.count(ns, Layer::L1, Event::Fill);
            }
        }
        Ok(value)
    }

    async fn load_guarded<T, F>(
        self: Arc<Self>,
        ns: Namespace,
        scope: Scope,
        load: F,
    ) -> Result<Option<Arc<T>>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce(Arc<Inner>) -> BoxFuture<'static, Result<Option<T>>> + Send + 'static,
    {
        let (key, gen_key) = (self.keys.value_of(scope), self.keys.generation(scope));
        let mut guard = None;
        if let Some(store) = self.store().await {
            match store.get_guarded(&gen_key, &key).await {
                Ok((g, Some(text))) => match serde_json::from_str::<T>(&text) {
                    Ok(v) => {
                        self.stats.count(ns, Layer::L2, Event::Hit);
                        return Ok(Some(Arc::new(v)));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, namespace = ns.as_str(), "undecodable cached value; reloading");
                        self.stats.count(ns, Layer::L2, Event::Error);
                        guard = Some(g);
                    }
                },
                Ok((g, None)) => {
                    self.stats.count(ns, Layer::L2, Event::Miss);
                    guard = Some(g);
                }
                Err(e) => self.store_failed(ns, &e),
            }
        }
        let loaded = self.load_source(ns, load(self.clone())).await?;
        if let (Some(v), Some(g)) = (&loaded, guard) {
            if let Some(store) = self.store().await {
                let text = serde_json::to_string(v)?;
                match store
                    .set_if_generation(&gen_key, g, &key, &text, self.config.ttls.of(ns))
                    .await
                {
                    Ok(true) => self.stats.count(ns, Layer::L2, Event::Fill),
                    Ok(false) => tracing::debug!(
                        namespace = ns.as_str(),
                        "fill skipped: invalidated while loading"
                    ),
                    Err(e) => self.store_failed(ns, &e),
                }
            }
        }
        Ok(loaded.map(Arc::new))
    }

    /// Makes every layer of every instance forget `pending`: the shared store
    /// first (generations bumped, sessions tombstoned; journaled if it
    /// cannot be reached), then every near-cache, acknowledged.
    pub async fn invalidate(&self, pending: Pending, l1_scopes: &[Scope]) -> Delivery {
        if let Some(store) = &self.store {
            let done = tokio::time::timeout(
                self.config.store_timeout * 4,
                self.apply_to_store(store.as_ref(), &pending),
            )
            .await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "invalidation could not reach the cache store; journaled for replay");
                    self.journal(&pending).await;
                }
                Err(_) => {
                    tracing::warn!(
                        "invalidation timed out on the cache store; journaled for replay"
                    );
                    self.journal(&pending).await;
                }
            }
        }
        for scope in l1_scopes {
            self.stats
                .count(namespace_of(*scope), Layer::L2, Event::Invalidation);
            self.stats
                .count(namespace_of(*scope), Layer::L1, Event::Invalidation);
        }
        match (&self.sync, &self.near) {
            (Some(sync), _) => sync.broadcast(l1_scopes).await,
            (None, Some(near)) => {
                near.apply(l1_scopes);
                Delivery {
                    acknowledged: 0,
                    unacknowledged: 0,
                    waited_out: false,
                }
            }
            _ => Delivery {
                acknowledged: 0,
                unacknowledged: 0,
                waited_out: false,
            },
        }
    }
}

/// The namespace a scope's values live in.
pub(crate) fn namespace_of(scope: Scope) -> Namespace {
    match scope {
        Scope::User(_) => Namespace::UserPermissions,
        Scope::UserSessions(_) => Namespace::Sessions,
        Scope::Role(_) => Namespace::RolePermissions,
        Scope::SuperAdmin(_) => Namespace::ModuleAssignments,
    }
}
