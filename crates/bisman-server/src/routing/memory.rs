//! The WAL position of each session's last write, remembered for
//! read-your-writes.
//!
//! Where it lives decides which instances honour it. It is kept in the
//! shared cache store (Redis, Redis Cluster or the `permission_cache` table),
//! keyed by the session's token hash, so that a caller served by another
//! instance after its write is held to it too; and in a small in-process
//! map, so that this instance honours it even while the store cannot be
//! written. With `REDIS_URL=memory` or `disabled` there is no shared store:
//! only the instance that made the write knows, and clients that talk to
//! several instances should send the position back in the `Bisman-Lsn`
//! header themselves.
//!
//! Positions only move forward: two writes of one session finishing at
//! once must leave the larger. Redis has no "set if greater", and the store
//! trait offers none, so the update is a compare-and-set on the key's
//! generation counter: bump the counter, read the value with the counter,
//! and store only if nobody bumped in between (see [`WriteMemory::remember`]).
//! Optimistic updates starve when many contend (64 writes of one session
//! at once failed 8 attempts in the tests), so contention is kept low:
//! within an instance, one update per session runs at a time and writes
//! the largest position the instance knows, so the writes queued behind it
//! usually find their position stored already; a value that is large
//! enough is only read, never bumped; and attempts back off with jitter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bisman_cache::store::{ClusterStore, PostgresStore, RedisStore, Store};
use bisman_cache::{CacheConfig, CacheError, CacheMode, TokenHash};
use bisman_db::replicas::Lsn;
use sqlx::PgPool;

/// Attempts of the compare-and-set before giving up (only concurrent writes
/// of one session on several instances contend).
const ATTEMPTS: u32 = 32;

/// How long this instance trusts that the store holds a position it stored
/// itself (far less than the TTL it stored it with).
const TRUST_OWN_WRITE: Duration = Duration::from_secs(1);

/// What this instance last stored for a session, and when.
type Stored = Option<(Lsn, Instant)>;

/// Each session's last write position (cheap to clone).
#[derive(Clone)]
pub struct WriteMemory {
    shared: Option<Arc<dyn Store>>,
    prefix: String,
    local: moka::sync::Cache<TokenHash, Lsn>,
    /// One shared-store update per session at a time in this instance.
    updating: moka::sync::Cache<TokenHash, Arc<tokio::sync::Mutex<Stored>>>,
    ttl: Duration,
}

impl WriteMemory {
    /// A memory in the store `cache` names, keeping a position for `ttl`
    /// after the session's last write.
    pub fn new(cache: &CacheConfig, primary: &PgPool, ttl: Duration) -> Result<Self, CacheError> {
        let shared: Option<Arc<dyn Store>> = match &cache.mode {
            CacheMode::Redis { url } => {
                Some(Arc::new(RedisStore::connect(url, cache.store_timeout)?))
            }
            CacheMode::Cluster { nodes } => {
                Some(Arc::new(ClusterStore::connect(nodes, cache.store_timeout)?))
            }
            CacheMode::Postgres => Some(Arc::new(PostgresStore::new(primary.clone()))),
            CacheMode::Memory | CacheMode::Disabled => None,
        };
        Ok(Self::with_store(shared, &cache.prefix, ttl))
    }

    /// A memory over `shared` (none: this process only).
    pub fn with_store(shared: Option<Arc<dyn Store>>, prefix: &str, ttl: Duration) -> Self {
        Self {
            shared,
            prefix: prefix.to_string(),
            local: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            updating: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            ttl,
        }
    }

    /// Whether positions are shared with other instances.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The value key and the generation key of a session (one hash tag).
    fn keys(&self, session: &TokenHash) -> (String, String) {
        let base = format!("{}{{rlsn:{}}}", self.prefix, session.to_hex());
        (format!("{base}:v"), format!("{base}:g"))
    }

    /// Remembers that `session` wrote up to `lsn` (never moving back).
    pub async fn remember(&self, session: &TokenHash, lsn: Lsn) -> Result<(), CacheError> {
        self.local
            .entry(*session)
            .and_upsert_with(|old| old.map_or(lsn, |o| o.into_value().max(lsn)));
        let Some(store) = &self.shared else {
            return Ok(());
        };
        let slot = self
            .updating
            .get_with(*session, || Arc::new(tokio::sync::Mutex::new(None)));
        let mut stored = slot.lock().await;
        if stored.is_some_and(|(l, at)| l >= lsn && at.elapsed() < TRUST_OWN_WRITE) {
            return Ok(());
        }
        // The largest this instance knows: it covers the writes queued behind.
        let target = self.local.get(session).map_or(lsn, |l| l.max(lsn));
        let started = Instant::now();
        if self.store_at_least(store.as_ref(), session, target).await? {
            *stored = Some((target, started));
        }
        Ok(())
    }

    /// Makes the shared value at least `lsn`; whether this call stored it.
    async fn store_at_least(
        &self,
        store: &dyn Store,
        session: &TokenHash,
        lsn: Lsn,
    ) -> Result<bool, CacheError> {
        let (key, gen_key) = self.keys(session);
        let value = serde_json::to_string(&lsn)?;
        let large_enough = |v: Option<String>| v.and_then(|v| decode(&v)).is_some_and(|c| c >= lsn);
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(jitter(attempt)).await;
            }
            // Reading alone disturbs nobody.
            let (_, current) = store.get_guarded(&gen_key, &key).await?;
            if large_enough(current) {
                return Ok(false);
            }
            // After our bump, a set by anyone who bumped earlier fails; so if
            // the counter is still ours when we read and when we set, no
            // other value landed in between and ours is the larger.
            let generation = store.bump(&gen_key, &[], self.ttl).await?;
            let (seen, current) = store.get_guarded(&gen_key, &key).await?;
            if seen != generation {
                continue;
            }
            if large_enough(current) {
                return Ok(false);
            }
            if store
                .set_if_generation(&gen_key, generation, &key, &value, self.ttl)
                .await?
            {
                return Ok(true);
            }
        }
        Err(CacheError::Store(format!(
            "the write position stayed contended for {ATTEMPTS} attempts"
        )))
    }

    /// The position `session` last wrote up to, if it wrote within the TTL.
    /// An error means it cannot be known: the caller must read the primary.
    pub async fn recall(&self, session: &TokenHash) -> Result<Option<Lsn>, CacheError> {
        let local = self.local.get(session);
        let Some(store) = &self.shared else {
            return Ok(local);
        };
        let (key, _) = self.keys(session);
        let shared = store.get(&key).await?.and_then(|v| decode(&v));
        Ok(local.max(shared))
    }
}

/// A random pause that grows with the attempt (at most about 50 ms).
fn jitter(attempt: u32) -> Duration {
    let cap = 1u128 << attempt.min(6);
    let random = uuid::Uuid::new_v4().as_u128() % (cap * 1000);
    Duration::from_micros(u64::try_from(random).unwrap_or(0).min(50_000))
}

fn decode(value: &str) -> Option<Lsn> {
    serde_json::from_str(value).ok()
}
