//! The `permission_cache` table as the shared store (`REDIS_URL=postgres`),
//! for installs without Redis, through the spec's `get_cached_permission` and
//! `set_cached_permission` where they fit.
//!
//! Counters are JSON numbers and sets JSON arrays in `cache_value`. The
//! compound operations serialise on a transaction-scoped advisory lock per
//! generation key, which is what makes a conditional fill atomic against a
//! concurrent bump under READ COMMITTED. Expired rows are invisible; the
//! maintenance job `cleanup_expired_permission_cache()` deletes them.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;

use super::{ServerStats, Store};
use crate::error::Result;

/// The PostgreSQL table store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

const NOW: &str = "(now() AT TIME ZONE 'UTC')";

fn secs(ttl: Duration) -> i32 {
    i32::try_from(ttl.as_secs_f64().ceil() as u64)
        .unwrap_or(i32::MAX)
        .max(1)
}

impl PostgresStore {
    /// A store on `pool` (migrated: the table and functions come with `012`).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn locked<'a>(&self, gen_key: &str) -> Result<sqlx::Transaction<'a, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(gen_key)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn label(&self) -> &'static str {
        "postgres"
    }

    async fn get(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT get_cached_permission($1)::text")
            .bind(key)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn get_guarded(&self, gen_key: &str, key: &str) -> Result<(u64, Option<String>)> {
        let (generation, value): (Option<i64>, Option<String>) = sqlx::query_as(
            "SELECT (get_cached_permission($1) #>> '{}')::bigint, get_cached_permission($2)::text",
        )
        .bind(gen_key)
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        Ok((generation.unwrap_or(0).max(0) as u64, value))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        sqlx::query("SELECT set_cached_permission($1, $2::jsonb, $3)")
            .bind(key)
            .bind(value)
            .bind(secs(ttl))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        let stored = sqlx::query(&format!(
            "INSERT INTO permission_cache (cache_key, cache_value, expires_at, created_at)
             VALUES ($1, $2::jsonb, {NOW} + make_interval(secs => $3), {NOW})
             ON CONFLICT (cache_key) DO UPDATE
                 SET cache_value = EXCLUDED.cache_value, expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at
                 WHERE permission_cache.expires_at <= {NOW}
             RETURNING 1"
        ))
        .bind(key)
        .bind(value)
        .bind(secs(ttl))
        .fetch_optional(&self.pool)
        .await?;
        Ok(stored.is_some())
    }

    async fn set_xx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        let stored = sqlx::query(&format!(
            "UPDATE permission_cache SET cache_value = $2::jsonb, expires_at = {NOW} + make_interval(secs => $3)
             WHERE cache_key = $1 AND expires_at > {NOW} RETURNING 1"
        ))
        .bind(key)
        .bind(value)
        .bind(secs(ttl))
        .fetch_optional(&self.pool)
        .await?;
        Ok(stored.is_some())
    }

    async fn set_if_generation(
        &self,
        gen_key: &str,
        generation: u64,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let mut tx = self.locked(gen_key).await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT (get_cached_permission($1) #>> '{}')::bigint")
                .bind(gen_key)
                .fetch_one(&mut *tx)
                .await?;
        if current.unwrap_or(0) as u64 != generation {
            return Ok(false);
        }
        sqlx::query("SELECT set_cached_permission($1, $2::jsonb, $3)")
            .bind(key)
            .bind(value)
            .bind(secs(ttl))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn bump(&self, gen_key: &str, keys: &[String], gen_ttl: Duration) -> Result<u64> {
        let mut tx = self.locked(gen_key).await?;
        let next: i64 = sqlx::query_scalar(&format!(
            "INSERT INTO permission_cache (cache_key, cache_value, expires_at, created_at)
             VALUES ($1, '1'::jsonb, {NOW} + make_interval(secs => $2), {NOW})
             ON CONFLICT (cache_key) DO UPDATE
                 SET cache_value = to_jsonb(CASE WHEN permission_cache.expires_at > {NOW}
                                                 THEN (permission_cache.cache_value #>> '{{}}')::bigint ELSE 0 END + 1),
                     expires_at = EXCLUDED.expires_at
             RETURNING (cache_value #>> '{{}}')::bigint"
        ))
        .bind(gen_key)
        .bind(secs(gen_ttl))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM permission_cache WHERE cache_key = ANY($1)")
            .bind(keys)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(next.max(0) as u64)
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        sqlx::query("DELETE FROM permission_cache WHERE cache_key = ANY($1)")
            .bind(keys)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO permission_cache (cache_key, cache_value, expires_at, created_at)
             VALUES ($1, jsonb_build_array($2::text), {NOW} + make_interval(secs => $3), {NOW})
             ON CONFLICT (cache_key) DO UPDATE
                 SET cache_value = CASE
                         WHEN permission_cache.expires_at <= {NOW} THEN EXCLUDED.cache_value
                         WHEN permission_cache.cache_value ? $2 THEN permission_cache.cache_value
                         ELSE permission_cache.cache_value || EXCLUDED.cache_value END,
                     expires_at = EXCLUDED.expires_at"
        ))
        .bind(key)
        .bind(member)
        .bind(secs(ttl))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT jsonb_array_elements_text(get_cached_permission($1))")
                .bind(key)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<()> {
        sqlx::query(
            "UPDATE permission_cache SET cache_value = cache_value - $2 WHERE cache_key = $1",
        )
        .bind(key)
        .bind(member)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn server_stats(&self) -> Result<Option<ServerStats>> {
        Ok(None)
    }
}
