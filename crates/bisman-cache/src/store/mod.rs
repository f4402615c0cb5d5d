//! The shared store (L2) behind one trait, with one implementation per
//! backend; every implementation passes the same conformance suite
//! (`tests/store_conformance.rs`).
//!
//! Values are JSON text. The operations are the few the caches need, each
//! atomic on its own: conditional fills guarded by a generation counter, a
//! bump that moves the counter and deletes what it guards, set-if-absent
//! for session fills that must not overwrite a tombstone.

mod memory;
mod postgres;
mod redis;

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;

pub use self::memory::MemoryStore;
pub use self::postgres::PostgresStore;
pub use self::redis::{ClusterStore, RedisStore};

/// The server's own hit counters (Redis `INFO stats`), as spec §10 reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServerStats {
    /// `keyspace_hits`.
    pub keyspace_hits: u64,
    /// `keyspace_misses`.
    pub keyspace_misses: u64,
}

/// A shared key-value store with TTLs.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name (`redis`, `redis-cluster`, `memory`, `postgres`).
    fn label(&self) -> &'static str;

    /// The value at `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<String>>;

    /// The generation at `gen_key` (0 when absent) and the value at `key`,
    /// read together. `gen_key` and `key` share a hash tag.
    async fn get_guarded(&self, gen_key: &str, key: &str) -> Result<(u64, Option<String>)>;

    /// Stores `value` at `key` for `ttl`.
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<()>;

    /// Stores `value` only if `key` is absent; whether it stored.
    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool>;

    /// Replaces `value` only if `key` is present (refreshing a sliding entry
    /// must not resurrect one that was deleted); whether it stored.
    async fn set_xx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool>;

    /// Stores `value` only if the counter at `gen_key` still equals
    /// `generation`: a fill that started before an invalidation cannot land
    /// after it. Whether it stored.
    async fn set_if_generation(
        &self,
        gen_key: &str,
        generation: u64,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool>;

    /// Increments the counter at `gen_key` (keeping it for `gen_ttl`) and
    /// deletes `keys`, atomically; returns the new generation. `keys` share
    /// `gen_key`'s hash tag.
    async fn bump(&self, gen_key: &str, keys: &[String], gen_ttl: Duration) -> Result<u64>;

    /// Deletes `keys` (any slots).
    async fn delete(&self, keys: &[String]) -> Result<()>;

    /// Adds `member` to the set at `key` and sets the set's TTL.
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()>;

    /// Members of the set at `key`.
    async fn set_members(&self, key: &str) -> Result<Vec<String>>;

    /// Removes `member` from the set at `key`.
    async fn set_remove(&self, key: &str, member: &str) -> Result<()>;

    /// Whether the store answers.
    async fn ping(&self) -> Result<()>;

    /// The server's own hit counters, where it keeps any.
    async fn server_stats(&self) -> Result<Option<ServerStats>>;
}

/// Milliseconds of a TTL, at least 1.
pub(crate) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
