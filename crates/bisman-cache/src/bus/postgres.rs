//! PostgreSQL's LISTEN/NOTIFY as the bus (with the `permission_cache` store).
//! Notifications reach every listener in commit order, which is the order
//! the near-cache lease relies on. NOTIFY payloads are limited to 8000 bytes;
//! the publisher splits larger invalidations.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgListener;
use sqlx::PgPool;

use super::Bus;
use crate::error::Result;

/// LISTEN/NOTIFY on a channel derived from the key prefix.
#[derive(Debug, Clone)]
pub struct PostgresBus {
    pool: PgPool,
    channel: String,
    registry_prefix: String,
}

impl PostgresBus {
    /// A bus for keys under `prefix`.
    pub fn new(pool: PgPool, prefix: &str) -> Self {
        // Channel names are identifiers: derive a safe one from the prefix.
        let digest = hex::encode(&Sha256::digest(prefix.as_bytes())[..8]);
        Self {
            pool,
            channel: format!("bisman_cache_{digest}"),
            registry_prefix: format!("{prefix}{{bus}}:instance:"),
        }
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[async_trait]
impl Bus for PostgresBus {
    async fn publish(&self, payload: String) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, String>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        // Reconnecting silently would lose notifications: end the stream instead.
        listener.ignore_pool_close_event(true);
        listener.listen(&self.channel).await?;
        Ok(futures::stream::unfold(listener, |mut l| async move {
            match l.try_recv().await {
                Ok(Some(n)) => Some((n.payload().to_string(), l)),
                _ => None,
            }
        })
        .boxed())
    }

    async fn register(&self, instance: &str, ttl: Duration) -> Result<()> {
        sqlx::query("SELECT set_cached_permission($1, 'true'::jsonb, $2)")
            .bind(format!("{}{instance}", self.registry_prefix))
            .bind(i32::try_from(ttl.as_secs().max(1)).unwrap_or(i32::MAX))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn deregister(&self, instance: &str) -> Result<()> {
        sqlx::query("DELETE FROM permission_cache WHERE cache_key = $1")
            .bind(format!("{}{instance}", self.registry_prefix))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn instances(&self) -> Result<Vec<String>> {
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT cache_key FROM permission_cache
             WHERE cache_key LIKE $1 || '%' AND expires_at > (now() AT TIME ZONE 'UTC')",
        )
        .bind(like_escape(&self.registry_prefix))
        .fetch_all(&self.pool)
        .await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.registry_prefix).map(str::to_string))
            .collect())
    }
}
