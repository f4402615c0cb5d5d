//! Redis pub/sub as the bus.
//!
//! All instances publish, subscribe and register on ONE Redis node, so that
//! the node's processing order is the order every subscriber sees (plain
//! PUBLISH is broadcast across a cluster's bus, where messages from
//! different nodes can overtake each other). For one Redis that node is the
//! server; for a cluster it is the master owning the registry key's slot,
//! looked up again whenever the subscription breaks (after a failover).

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Value};
use tokio::sync::Mutex;

use super::Bus;
use crate::error::{CacheError, Result};

// Registry deadlines use the Redis server's clock, so that instances on
// machines with different clocks agree on who is live.
const REGISTER: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1";

const LIVE: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')";

/// Where the bus node is.
#[derive(Debug, Clone)]
enum Node {
    /// One Redis server.
    Fixed(String),
    /// The master owning the registry key's slot, found through the seeds.
    Cluster(Vec<String>),
}

/// Redis pub/sub on one node, with a sorted-set registry of instances.
pub struct RedisBus {
    node: Node,
    channel: String,
    registry: String,
    timeout: Duration,
    conn: Mutex<Option<(String, ConnectionManager)>>,
}

impl RedisBus {
    /// A bus on the Redis at `url`.
    pub fn single(url: &str, channel: String, registry: String, timeout: Duration) -> Self {
        Self::with(Node::Fixed(url.to_string()), channel, registry, timeout)
    }

    /// A bus on the cluster seeded by `nodes`.
    pub fn cluster(nodes: &[String], channel: String, registry: String, timeout: Duration) -> Self {
        Self::with(Node::Cluster(nodes.to_vec()), channel, registry, timeout)
    }

    fn with(node: Node, channel: String, registry: String, timeout: Duration) -> Self {
        Self {
            node,
            channel,
            registry,
            timeout,
            conn: Mutex::new(None),
        }
    }

    /// The URL of the node to use now.
    async fn node_url(&self) -> Result<String> {
        match &self.node {
            Node::Fixed(url) => Ok(url.clone()),
            Node::Cluster(seeds) => {
                let mut last = CacheError::Store("no cluster seed answered".into());
                for seed in seeds {
                    match self.owner_of(seed).await {
                        Ok(url) => return Ok(url),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        }
    }

    /// Asks `seed` which master owns the registry key's slot.
    async fn owner_of(&self, seed: &str) -> Result<String> {
        let client = redis::Client::open(seed)?;
        let mut conn =
            tokio::time::timeout(self.timeout, client.get_multiplexed_async_connection())
                .await
                .map_err(|_| CacheError::Store("timed out reaching a cluster seed".into()))??;
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&self.registry)
            .query_async(&mut conn)
            .await?;
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await?;
        let Value::Array(ranges) = slots else {
            return Err(CacheError::Store("unexpected CLUSTER SLOTS reply".into()));
        };
        for range in ranges {
            let Value::Array(parts) = range else { continue };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                continue;
            };
            if (*start..=*end).contains(&slot) {
                let host = match master.first() {
                    Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                    Some(Value::SimpleString(s)) => s.clone(),
                    _ => continue,
                };
                let Some(Value::Int(port)) = master.get(1) else {
                    continue;
                };
                return Ok(with_host(seed, &host, *port));
            }
        }
        Err(CacheError::Store(format!("no master owns slot {slot}")))
    }

    /// A command connection to the bus node.
    async fn conn(&self) -> Result<ConnectionManager> {
        let mut slot = self.conn.lock().await;
        if let Some((_, c)) = slot.as_ref() {
            return Ok(c.clone());
        }
        let url = self.node_url().await?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let manager =
            ConnectionManager::new_lazy_with_config(redis::Client::open(url.as_str())?, config)?;
        *slot = Some((url, manager.clone()));
        Ok(manager)
    }

    async fn run<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                // A cluster may have moved the slot: look the node up again next time.
                *self.conn.lock().await = None;
                Err(e.into())
            }
            Err(_) => Err(CacheError::Store("Redis did not answer in time".into())),
        }
    }
}

/// `seed` with its host and port replaced (keeping scheme and credentials).
fn with_host(seed: &str, host: &str, port: i64) -> String {
    let (scheme, rest) = seed.split_once("://").unwrap_or(("redis", seed));
    let auth = rest
        .rsplit_once('@')
        .map(|(a, _)| format!("{a}@"))
        .unwrap_or_default();
    format!("{scheme}://{auth}{host}:{port}")
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, payload: String) -> Result<()> {
        let mut c = self.conn().await?;
        let channel = self.channel.clone();
        self.run(async move { c.publish::<_, _, ()>(channel, payload).await })
            .await
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, String>> {
        // A fresh lookup: after a failover the node may have changed.
        *self.conn.lock().await = None;
        let url = self.node_url().await?;
        let client = redis::Client::open(url.as_str())?;
        let mut pubsub = tokio::time::timeout(self.timeout, client.get_async_pubsub())
            .await
            .map_err(|_| CacheError::Store("timed out subscribing".into()))??;
        pubsub.subscribe(&self.channel).await?;
        Ok(pubsub
            .into_on_message()
            .filter_map(|m| async move { m.get_payload::<String>().ok() })
            .boxed())
    }

    async fn register(&self, instance: &str, ttl: Duration) -> Result<()> {
        let mut c = self.conn().await?;
        let (registry, instance) = (self.registry.clone(), instance.to_string());
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX / 2);
        self.run(async move {
            redis::Script::new(REGISTER)
                .key(registry)
                .arg(instance)
                .arg(ttl_ms)
                .invoke_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn deregister(&self, instance: &str) -> Result<()> {
        let mut c = self.conn().await?;
        let (registry, instance) = (self.registry.clone(), instance.to_string());
        self.run(async move { c.zrem::<_, _, ()>(registry, instance).await })
            .await
    }

    async fn instances(&self) -> Result<Vec<String>> {
        let mut c = self.conn().await?;
        let registry = self.registry.clone();
        self.run(async move {
            redis::Script::new(LIVE)
                .key(registry)
                .invoke_async(&mut c)
                .await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_host_keeping_credentials() {
        assert_eq!(
            super::with_host("redis://:pw@seed:7000", "10.0.0.2", 7001),
            "redis://:pw@10.0.0.2:7001"
        );
        assert_eq!(
            super::with_host("rediss://seed:7000", "h", 1),
            "rediss://h:1"
        );
    }
}
