//! The in-process store (`REDIS_URL=memory`): one process, nothing shared.
//!
//! A mutex over a map is all it needs: operations are tiny, and the
//! compound ones (conditional fill, bump) must be atomic anyway. Expired
//! entries are dropped when touched and swept every few thousand writes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{ServerStats, Store};
use crate::error::Result;

#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Counter(u64),
    Set(HashSet<String>),
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    expires_at: Instant,
}

/// The in-process store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<String, Entry>>,
    writes: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> T) -> T {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if self.writes.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            map.retain(|_, e| e.expires_at > now);
        }
        f(&mut map, now)
    }

    fn live<'a>(
        map: &'a mut HashMap<String, Entry>,
        key: &str,
        now: Instant,
    ) -> Option<&'a mut Entry> {
        if map.get(key).is_some_and(|e| e.expires_at <= now) {
            map.remove(key);
        }
        map.get_mut(key)
    }

    fn text(map: &mut HashMap<String, Entry>, key: &str, now: Instant) -> Option<String> {
        match Self::live(map, key, now) {
            Some(Entry {
                value: Value::Text(t),
                ..
            }) => Some(t.clone()),
            _ => None,
        }
    }

    fn counter(map: &mut HashMap<String, Entry>, key: &str, now: Instant) -> u64 {
        match Self::live(map, key, now) {
            Some(Entry {
                value: Value::Counter(c),
                ..
            }) => *c,
            _ => 0,
        }
    }

    fn count(&self, found: bool) {
        let c = if found { &self.hits } else { &self.misses };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn label(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<String>> {
        let v = self.with(|m, now| Self::text(m, key, now));
        self.count(v.is_some());
        Ok(v)
    }

    async fn get_guarded(&self, gen_key: &str, key: &str) -> Result<(u64, Option<String>)> {
        let out = self.with(|m, now| (Self::counter(m, gen_key, now), Self::text(m, key, now)));
        self.count(out.1.is_some());
        Ok(out)
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        self.with(|m, now| {
            m.insert(
                key.to_string(),
                Entry {
                    value: Value::Text(value.to_string()),
                    expires_at: now + ttl,
                },
            );
        });
        Ok(())
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        Ok(self.with(|m, now| {
            if Self::live(m, key, now).is_some() {
                return false;
            }
            m.insert(
                key.to_string(),
                Entry {
                    value: Value::Text(value.to_string()),
                    expires_at: now + ttl,
                },
            );
            true
        }))
    }

    async fn set_xx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        Ok(self.with(|m, now| match Self::live(m, key, now) {
            Some(e) => {
                *e = Entry {
                    value: Value::Text(value.to_string()),
                    expires_at: now + ttl,
                };
                true
            }
            None => false,
        }))
    }

    async fn set_if_generation(
        &self,
        gen_key: &str,
        generation: u64,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool> {
        Ok(self.with(|m, now| {
            if Self::counter(m, gen_key, now) != generation {
                return false;
            }
            m.insert(
                key.to_string(),
                Entry {
                    value: Value::Text(value.to_string()),
                    expires_at: now + ttl,
                },
            );
            true
        }))
    }

    async fn bump(&self, gen_key: &str, keys: &[String], gen_ttl: Duration) -> Result<u64> {
        Ok(self.with(|m, now| {
            let next = Self::counter(m, gen_key, now) + 1;
            m.insert(
                gen_key.to_string(),
                Entry {
                    value: Value::Counter(next),
                    expires_at: now + gen_ttl,
                },
            );
            for k in keys {
                m.remove(k);
            }
            next
        }))
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        self.with(|m, _| {
            for k in keys {
                m.remove(k);
            }
        });
        Ok(())
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        self.with(|m, now| {
            let expires_at = now + ttl;
            match Self::live(m, key, now) {
                Some(Entry {
                    value: Value::Set(s),
                    expires_at: e,
                }) => {
                    s.insert(member.to_string());
                    *e = expires_at;
                }
                _ => {
                    let set = HashSet::from([member.to_string()]);
                    m.insert(
                        key.to_string(),
                        Entry {
                            value: Value::Set(set),
                            expires_at,
                        },
                    );
                }
            }
        });
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>> {
        Ok(self.with(|m, now| match Self::live(m, key, now) {
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => s.iter().cloned().collect(),
            _ => Vec::new(),
        }))
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<()> {
        self.with(|m, now| {
            if let Some(Entry {
                value: Value::Set(s),
                ..
            }) = Self::live(m, key, now)
            {
                s.remove(member);
            }
        });
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn server_stats(&self) -> Result<Option<ServerStats>> {
        Ok(Some(ServerStats {
            keyspace_hits: self.hits.load(Ordering::Relaxed),
            keyspace_misses: self.misses.load(Ordering::Relaxed),
        }))
    }
}
