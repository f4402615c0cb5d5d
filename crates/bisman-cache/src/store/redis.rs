//! Redis and Redis Cluster stores: one implementation over any redis-rs
//! connection (a reconnecting `ConnectionManager` for one server, a
//! `ClusterConnection` for a cluster).
//!
//! Compound operations are Lua scripts touching keys of one hash tag, so
//! they are atomic and run unchanged on a cluster.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncCommands, Script, Value};
use tokio::sync::Mutex;

use super::{ttl_ms, ServerStats, Store};
use crate::error::{CacheError, Result};

const SET_IF_GENERATION: &str = r"
local g = redis.call('GET', KEYS[1]) or '0'
if g == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0";

const BUMP: &str = r"
local g = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return g";

/// A connection source: a ready connection, or a cluster connection made
/// on first use (so that the service starts while the cluster is down).
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The connection type.
    type Conn: ConnectionLike + Clone + Send + Sync + 'static;
    /// A connection to use now.
    async fn conn(&self) -> Result<Self::Conn>;
}

/// One Redis server through a reconnecting connection manager.
pub struct SingleConnector(ConnectionManager);

#[async_trait]
impl Connector for SingleConnector {
    type Conn = ConnectionManager;
    async fn conn(&self) -> Result<ConnectionManager> {
        Ok(self.0.clone())
    }
}

/// A Redis Cluster, connected lazily and reconnected after failures.
pub struct ClusterConnector {
    client: redis::cluster::ClusterClient,
    conn: Mutex<Option<ClusterConnection>>,
}

#[async_trait]
impl Connector for ClusterConnector {
    type Conn = ClusterConnection;
    async fn conn(&self) -> Result<ClusterConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = self.client.get_async_connection().await?;
        *slot = Some(c.clone());
        Ok(c)
    }
}

/// A Redis-protocol store over a [`Connector`].
pub struct RedisLike<K: Connector> {
    connector: K,
    label: &'static str,
    timeout: Duration,
    set_if_generation: Script,
    bump: Script,
}

/// One Redis server.
pub type RedisStore = RedisLike<SingleConnector>;
/// A Redis Cluster.
pub type ClusterStore = RedisLike<ClusterConnector>;

impl RedisStore {
    /// A store on the Redis at `url`; connects lazily and reconnects by itself.
    pub fn connect(url: &str, timeout: Duration) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| CacheError::Config(format!("REDIS_URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self::with(SingleConnector(manager), "redis", timeout))
    }
}

impl ClusterStore {
    /// A store on the cluster seeded by `nodes`; connects on first use.
    pub fn connect(nodes: &[String], timeout: Duration) -> Result<Self> {
        let client = redis::cluster::ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(2)
            .build()
            .map_err(|e| CacheError::Config(format!("REDIS_URL cluster nodes: {e}")))?;
        Ok(Self::with(
            ClusterConnector {
                client,
                conn: Mutex::new(None),
            },
            "redis-cluster",
            timeout,
        ))
    }
}

impl<K: Connector> RedisLike<K> {
    fn with(connector: K, label: &'static str, timeout: Duration) -> Self {
        Self {
            connector,
            label,
            timeout,
            set_if_generation: Script::new(SET_IF_GENERATION),
            bump: Script::new(BUMP),
        }
    }

    /// `SET key value <condition> PX ttl`: whether it stored.
    async fn set_when(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
        condition: &'static str,
    ) -> Result<bool> {
        let r: Option<String> = self
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg(condition)
                    .arg("PX")
                    .arg(ttl_ms(ttl))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(r.is_some())
    }

    /// Runs `op` on a connection within the store timeout.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnOnce(K::Conn) -> Fut + Send,
        Fut: std::future::Future<Output = redis::RedisResult<T>> + Send,
    {
        let conn = tokio::time::timeout(self.timeout, self.connector.conn())
            .await
            .map_err(|_| CacheError::Store("timed out connecting to Redis".into()))??;
        tokio::time::timeout(self.timeout, op(conn))
            .await
            .map_err(|_| CacheError::Store("Redis did not answer in time".into()))?
            .map_err(CacheError::from)
    }
}

#[async_trait]
impl<K: Connector> Store for RedisLike<K> {
    fn label(&self) -> &'static str {
        self.label
    }

    async fn get(&self, key: &str) -> Result<Option<String>> {
        self.run(|mut c| async move { c.get(key).await }).await
    }

    async fn get_guarded(&self, gen_key: &str, key: &str) -> Result<(u64, Option<String>)> {
        let (g, v): (Option<u64>, Option<String>) = self
            .run(|mut c| async move {
                redis::cmd("MGET")
                    .arg(gen_key)
                    .arg(key)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok((g.unwrap_or(0), v))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        self.run(|mut c| async move { c.pset_ex(key, value, ttl_ms(ttl)).await })
            .await
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        self.set_when(key, value, ttl, "NX").await
    }

    async fn set_xx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        self.set_when(key, value, ttl, "XX").await
    }

    async fn set_if_generation(
        &self,
        gen_key: &str,
        generation: u64,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let script = &self.set_if_generation;
        let stored: i64 = self
            .run(|mut c| async move {
                script
                    .key(gen_key)
                    .key(key)
                    .arg(generation)
                    .arg(value)
                    .arg(ttl_ms(ttl))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(stored == 1)
    }

    async fn bump(&self, gen_key: &str, keys: &[String], gen_ttl: Duration) -> Result<u64> {
        let script = &self.bump;
        self.run(|mut c| async move {
            let mut inv = script.key(gen_key);
            for k in keys {
                inv.key(k);
            }
            inv.arg(ttl_ms(gen_ttl)).invoke_async(&mut c).await
        })
        .await
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        // A cluster connection splits a multi-key DEL by slot.
        self.run(|mut c| async move { c.del::<_, ()>(keys).await })
            .await
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        self.run(|mut c| async move {
            redis::pipe()
                .atomic()
                .sadd(key, member)
                .ignore()
                .pexpire(key, i64::try_from(ttl_ms(ttl)).unwrap_or(i64::MAX))
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>> {
        self.run(|mut c| async move { c.smembers(key).await }).await
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<()> {
        self.run(|mut c| async move { c.srem::<_, _, ()>(key, member).await })
            .await
    }

    async fn ping(&self) -> Result<()> {
        let _: String = self
            .run(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
            .await?;
        Ok(())
    }

    async fn server_stats(&self) -> Result<Option<ServerStats>> {
        let info: Value = self
            .run(|mut c| async move { redis::cmd("INFO").arg("stats").query_async(&mut c).await })
            .await?;
        // One server answers with text; a cluster with one text per node.
        let mut total = ServerStats {
            keyspace_hits: 0,
            keyspace_misses: 0,
        };
        let mut texts = Vec::new();
        collect_texts(&info, &mut texts);
        for text in texts {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("keyspace_hits:") {
                    total.keyspace_hits += v.trim().parse::<u64>().unwrap_or(0);
                } else if let Some(v) = line.strip_prefix("keyspace_misses:") {
                    total.keyspace_misses += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
        Ok(Some(total))
    }
}

fn collect_texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => out.push(s.clone()),
        Value::Map(pairs) => pairs.iter().for_each(|(_, v)| collect_texts(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_texts(v, out)),
        _ => {}
    }
}
