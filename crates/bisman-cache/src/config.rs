//! Configuration: which backend (`REDIS_URL`), key prefix, TTLs, near-cache.

use std::time::Duration;

use crate::error::{CacheError, Result};
use crate::keys::Namespace;

/// The shared store, chosen by `REDIS_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum CacheMode {
    /// One Redis (`redis://…` or `rediss://…`).
    Redis {
        /// Its URL (may hold a password: never logged).
        url: String,
    },
    /// A Redis Cluster: `redis+cluster://host:port,host:port`, or a
    /// comma-separated list of `redis://` URLs or `host:port` seeds.
    Cluster {
        /// Seed nodes as `redis://host:port` URLs.
        nodes: Vec<String>,
    },
    /// In-process only (one instance; nothing shared).
    Memory,
    /// The `permission_cache` table in PostgreSQL as the shared cache, with
    /// LISTEN/NOTIFY for invalidations: for installs without Redis.
    Postgres,
    /// No cache: every lookup reads PostgreSQL.
    Disabled,
}

impl std::fmt::Debug for CacheMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs can carry passwords.
        f.write_str(self.label())
    }
}

impl CacheMode {
    /// Parses a `REDIS_URL` value. `None` (unset) means memory, as the spec's
    /// single-process default.
    pub fn parse(value: Option<&str>) -> Result<Self> {
        let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(CacheMode::Memory);
        };
        let lower = raw.to_ascii_lowercase();
        match lower.as_str() {
            "disabled" | "none" | "off" => return Ok(CacheMode::Disabled),
            "memory" => return Ok(CacheMode::Memory),
            "postgres" | "postgresql" | "pg" => return Ok(CacheMode::Postgres),
            _ => {}
        }
        let cluster_prefix = ["redis+cluster://", "redis-cluster://"]
            .into_iter()
            .find(|p| lower.starts_with(p));
        if cluster_prefix.is_some() || raw.contains(',') {
            let body = cluster_prefix.map_or(raw, |p| &raw[p.len()..]);
            let nodes: Vec<String> = body
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| {
                    if n.contains("://") {
                        n.to_string()
                    } else {
                        format!("redis://{n}")
                    }
                })
                .collect();
            if nodes.is_empty()
                || nodes
                    .iter()
                    .any(|n| !(n.starts_with("redis://") || n.starts_with("rediss://")))
            {
                return Err(CacheError::Config(
                    "REDIS_URL cluster form is redis+cluster://host:port,host:port or a comma-separated list of redis:// URLs".into(),
                ));
            }
            return Ok(CacheMode::Cluster { nodes });
        }
        if lower.starts_with("redis://") || lower.starts_with("rediss://") {
            redis::Client::open(raw).map_err(|e| {
                CacheError::Config(format!("REDIS_URL is not a valid Redis URL: {e}"))
            })?;
            return Ok(CacheMode::Redis {
                url: raw.to_string(),
            });
        }
        Err(CacheError::Config(
            "REDIS_URL must be redis://…, rediss://…, redis+cluster://host:port,…, memory, postgres or disabled".into(),
        ))
    }

    /// A short name for logs and stats.
    pub fn label(&self) -> &'static str {
        match self {
            CacheMode::Redis { .. } => "redis",
            CacheMode::Cluster { .. } => "redis-cluster",
            CacheMode::Memory => "memory",
            CacheMode::Postgres => "postgres",
            CacheMode::Disabled => "disabled",
        }
    }
}

/// Time to live per namespace (the spec's table), each overridable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    /// Sessions: idle timeout, extended on activity (1 hour).
    pub sessions: Duration,
    /// Refresh tokens and a user's session list (7 days).
    pub refresh_tokens: Duration,
    /// A user's effective permissions (5 minutes).
    pub user_permissions: Duration,
    /// A role's page permissions (10 minutes).
    pub role_permissions: Duration,
    /// A super admin's module assignments (15 minutes).
    pub module_assignments: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            sessions: Duration::from_secs(3600),
            refresh_tokens: Duration::from_secs(7 * 86400),
            user_permissions: Duration::from_secs(300),
            role_permissions: Duration::from_secs(600),
            module_assignments: Duration::from_secs(900),
        }
    }
}

impl Ttls {
    /// The TTL of a namespace.
    pub fn of(&self, ns: Namespace) -> Duration {
        match ns {
            Namespace::Sessions => self.sessions,
            Namespace::RefreshTokens => self.refresh_tokens,
            Namespace::UserPermissions => self.user_permissions,
            Namespace::RolePermissions => self.role_permissions,
            Namespace::ModuleAssignments => self.module_assignments,
        }
    }
}

/// The in-process near-cache (L1) in front of a shared store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearConfig {
    /// Whether to keep one (only meaningful with a shared store).
    pub enabled: bool,
    /// Entries at most.
    pub capacity: u64,
    /// Lifetime of an entry: the longest a value can be served without
    /// asking the shared store again, whatever happens to invalidations.
    pub entry_ttl: Duration,
    /// The invalidation subscription must have been confirmed (a self-ping
    /// came back through it) within this long for L1 to be used.
    pub subscription_lease: Duration,
}

impl Default for NearConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            capacity: 100_000,
            entry_ttl: Duration::from_secs(10),
            subscription_lease: Duration::from_millis(1500),
        }
    }
}

/// Everything the cache needs ([`CacheConfig::from_env`] reads it from the
/// variables `bisman serve` uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// The shared store.
    pub mode: CacheMode,
    /// Prefix of every key and channel (lets several deployments share a Redis).
    pub prefix: String,
    /// TTLs.
    pub ttls: Ttls,
    /// The near-cache.
    pub near: NearConfig,
    /// Absolute lifetime of a session, whatever its activity.
    pub session_max_lifetime: Duration,
    /// Timeout of one shared-store operation; past it the store counts as down
    /// and PostgreSQL answers.
    pub store_timeout: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            mode: CacheMode::Memory,
            prefix: "bisman:".into(),
            ttls: Ttls::default(),
            near: NearConfig::default(),
            session_max_lifetime: Duration::from_secs(7 * 86400),
            store_timeout: Duration::from_millis(500),
        }
    }
}

impl CacheConfig {
    /// Checks values a typo could make dangerous.
    pub fn validate(&self) -> Result<()> {
        if self.prefix.len() > 64
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":_-.".contains(&b))
        {
            return Err(CacheError::Config(
                "key prefix must be at most 64 of [A-Za-z0-9:_-.]".into(),
            ));
        }
        let ttls = [
            self.ttls.sessions,
            self.ttls.refresh_tokens,
            self.ttls.user_permissions,
            self.ttls.role_permissions,
            self.ttls.module_assignments,
        ];
        if ttls
            .iter()
            .any(|t| t.is_zero() || *t > Duration::from_secs(31 * 86400))
        {
            return Err(CacheError::Config(
                "every TTL must be between 1 second and 31 days".into(),
            ));
        }
        if self.near.subscription_lease < Duration::from_millis(100) {
            return Err(CacheError::Config(
                "the near-cache subscription lease must be at least 100 ms".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_mode() {
        assert_eq!(CacheMode::parse(None).unwrap(), CacheMode::Memory);
        assert_eq!(
            CacheMode::parse(Some("disabled")).unwrap(),
            CacheMode::Disabled
        );
        assert_eq!(CacheMode::parse(Some("memory")).unwrap(), CacheMode::Memory);
        assert_eq!(
            CacheMode::parse(Some("postgres")).unwrap(),
            CacheMode::Postgres
        );
        assert_eq!(
            CacheMode::parse(Some("redis://localhost:6379")).unwrap(),
            CacheMode::Redis {
                url: "redis://localhost:6379".into()
            }
        );
        assert_eq!(
            CacheMode::parse(Some("redis+cluster://a:1,b:2")).unwrap(),
            CacheMode::Cluster {
                nodes: vec!["redis://a:1".into(), "redis://b:2".into()]
            }
        );
        assert_eq!(
            CacheMode::parse(Some("redis://a:1, redis://b:2")).unwrap(),
            CacheMode::Cluster {
                nodes: vec!["redis://a:1".into(), "redis://b:2".into()]
            }
        );
        for bad in ["http://x", "memcached", "redis+cluster://", "a:1,http://b"] {
            assert!(CacheMode::parse(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            format!("{:?}", CacheMode::parse(Some("redis://:secret@h")).unwrap()),
            "redis"
        );
    }

    #[test]
    fn validates() {
        assert!(CacheConfig::default().validate().is_ok());
        let mut c = CacheConfig {
            prefix: "bad prefix".into(),
            ..Default::default()
        };
        assert!(c.validate().is_err());
        c.prefix = "ok:".into();
        c.ttls.user_permissions = Duration::ZERO;
        assert!(c.validate().is_err());
    }
}
