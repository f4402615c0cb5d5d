//! Configuration of `bisman serve`: one typed struct, each field a flag with
//! an environment variable. The README's configuration table lists them all
//! (the database options live in the CLI's `DatabaseArgs`, shared by every
//! command). Secrets (`REDIS_URL` may hold a password) never reach `Debug`.

use std::path::PathBuf;
use std::time::Duration;

use bisman_cache::{CacheConfig, CacheMode, NearConfig, Ttls};

/// Options of `bisman serve`.
#[derive(Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, env = "BISMAN_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Seed a demo tenant (idempotent) and print a walk-through.
    #[arg(long, env = "BISMAN_DEMO")]
    pub demo: bool,

    /// The session and permission caches.
    #[command(flatten)]
    pub cache: CacheArgs,

    /// Read replicas.
    #[command(flatten)]
    pub replicas: ReplicaArgs,

    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, env = "BISMAN_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// Time a request may take before it is answered with 503.
    #[arg(long, env = "BISMAN_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown.
    #[arg(long, env = "BISMAN_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Take the client address from the last `X-Forwarded-For` hop (behind a proxy).
    #[arg(long, env = "BISMAN_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// Failed logins per account within the window before further attempts get 429.
    #[arg(long, env = "BISMAN_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,
    /// Login attempts per client address within the window before 429.
    #[arg(long, env = "BISMAN_LOGIN_MAX_PER_ADDRESS", default_value_t = 30)]
    pub login_max_per_address: u32,
    /// The login rate-limit window.
    #[arg(long, env = "BISMAN_LOGIN_WINDOW", default_value = "15m", value_parser = parse_duration)]
    pub login_window: Duration,

    /// Run the maintenance scheduler in this process.
    #[arg(long, env = "BISMAN_MAINTENANCE", default_value_t = true, action = clap::ArgAction::Set)]
    pub maintenance: bool,
    /// How often the scheduler looks for due jobs.
    #[arg(long, env = "BISMAN_MAINTENANCE_TICK", default_value = "30s", value_parser = parse_duration)]
    pub maintenance_tick: Duration,
    /// Partition premake interval (`off` disables).
    #[arg(long, env = "BISMAN_JOB_PREMAKE_EVERY", default_value = "6h", value_parser = parse_every)]
    pub job_premake_every: Every,
    /// Retention interval (`off` disables).
    #[arg(long, env = "BISMAN_JOB_RETENTION_EVERY", default_value = "1d", value_parser = parse_every)]
    pub job_retention_every: Every,
    /// `permission_cache` cleanup interval (`off` disables).
    #[arg(long, env = "BISMAN_JOB_CACHE_CLEANUP_EVERY", default_value = "1h", value_parser = parse_every)]
    pub job_cache_cleanup_every: Every,
    /// `pg_stat_statements` snapshot interval (`off` disables).
    #[arg(long, env = "BISMAN_JOB_STATS_SNAPSHOT_EVERY", default_value = "1h", value_parser = parse_every)]
    pub job_stats_snapshot_every: Every,
    /// Archive months to this folder before retention drops them (archive-first
    /// retention). Without it, retention only drops months that are empty or
    /// already archived and verified.
    #[arg(long, env = "BISMAN_RETENTION_ARCHIVE_DIR")]
    pub retention_archive_dir: Option<PathBuf>,
    /// Months kept before the current one (default: each table's registry value).
    #[arg(long, env = "BISMAN_RETENTION_KEEP_MONTHS", value_parser = clap::value_parser!(i32).range(0..=1200))]
    pub retention_keep_months: Option<i32>,
}

/// Options of the session and permission caches, shared by `bisman serve`
/// and `bisman cache`.
#[derive(Clone, clap::Args)]
pub struct CacheArgs {
    /// Shared cache: `redis://…`, `rediss://…`, `redis+cluster://h:p,h:p`,
    /// `memory`, `postgres` or `disabled` (unset: memory).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every cache key and channel (several deployments can share a Redis).
    #[arg(long, env = "BISMAN_CACHE_PREFIX", default_value = "bisman:")]
    pub cache_prefix: String,
    /// Session idle timeout (sliding on activity).
    #[arg(long, env = "BISMAN_SESSION_TTL", default_value = "1h", value_parser = parse_duration)]
    pub session_ttl: Duration,
    /// Refresh-token lifetime.
    #[arg(long, env = "BISMAN_REFRESH_TTL", default_value = "7d", value_parser = parse_duration)]
    pub refresh_ttl: Duration,
    /// Absolute session lifetime, whatever the activity.
    #[arg(long, env = "BISMAN_SESSION_MAX_LIFETIME", default_value = "7d", value_parser = parse_duration)]
    pub session_max_lifetime: Duration,
    /// TTL of a user's cached permissions (a safety net: changes invalidate at once).
    #[arg(long, env = "BISMAN_PERMISSIONS_TTL", default_value = "5m", value_parser = parse_duration)]
    pub permissions_ttl: Duration,
    /// TTL of a role's cached page permissions.
    #[arg(long, env = "BISMAN_ROLE_PERMISSIONS_TTL", default_value = "10m", value_parser = parse_duration)]
    pub role_permissions_ttl: Duration,
    /// TTL of a super admin's cached module assignments.
    #[arg(long, env = "BISMAN_MODULE_ASSIGNMENTS_TTL", default_value = "15m", value_parser = parse_duration)]
    pub module_assignments_ttl: Duration,
    /// Keep an in-process near-cache (L1) in front of a shared store.
    #[arg(long, env = "BISMAN_NEAR_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub near_cache: bool,
    /// Near-cache capacity (entries).
    #[arg(long, env = "BISMAN_NEAR_CACHE_CAPACITY", default_value_t = 100_000)]
    pub near_cache_capacity: u64,
    /// Near-cache entry lifetime: the longest an entry is served without asking the store.
    #[arg(long, env = "BISMAN_NEAR_CACHE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub near_cache_ttl: Duration,
    /// The near-cache serves only while its invalidation subscription was confirmed this recently.
    #[arg(long, env = "BISMAN_NEAR_CACHE_LEASE", default_value = "1500ms", value_parser = parse_duration)]
    pub near_cache_lease: Duration,
    /// Timeout of one cache-store operation (then PostgreSQL answers).
    #[arg(long, env = "BISMAN_CACHE_TIMEOUT", default_value = "500ms", value_parser = parse_duration)]
    pub cache_timeout: Duration,
}

/// Read replicas: hot standbys of the database for the read-heavy routes.
#[derive(Clone, clap::Args)]
pub struct ReplicaArgs {
    /// A hot standby of the database (streaming replication) for read-heavy
    /// routes; repeatable (the environment variable takes a comma-separated list).
    #[arg(
        long = "replica-url",
        env = "DATABASE_REPLICA_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub replica_urls: Vec<String>,
    /// A replica lagging more than this behind the primary is skipped until it catches up.
    #[arg(long, env = "BISMAN_REPLICA_MAX_LAG", default_value = "1s", value_parser = parse_duration)]
    pub replica_max_lag: Duration,
    /// How often each replica's health and lag are checked.
    #[arg(long, env = "BISMAN_REPLICA_CHECK_EVERY", default_value = "100ms", value_parser = parse_duration)]
    pub replica_check_every: Duration,
    /// Connections in each replica's pool.
    #[arg(long, env = "BISMAN_REPLICA_POOL_SIZE", default_value_t = 16)]
    pub replica_pool_size: u32,
}

impl std::fmt::Debug for ReplicaArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URLs may hold passwords: only how many.
        f.debug_struct("ReplicaArgs")
            .field("replica_urls", &self.urls().len())
            .field("replica_max_lag", &self.replica_max_lag)
            .field("replica_check_every", &self.replica_check_every)
            .finish_non_exhaustive()
    }
}

impl ReplicaArgs {
    /// The replica URLs given (empty entries of the list left out).
    pub fn urls(&self) -> Vec<String> {
        self.replica_urls
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The replica set's options.
    pub fn options(&self) -> bisman_db::replicas::ReplicaOptions {
        bisman_db::replicas::ReplicaOptions {
            urls: self.urls(),
            max_lag: self.replica_max_lag,
            check_every: self.replica_check_every,
            pool_size: self.replica_pool_size,
        }
    }
}

impl std::fmt::Debug for CacheArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheArgs")
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("cache_prefix", &self.cache_prefix)
            .finish_non_exhaustive()
    }
}

impl CacheArgs {
    /// The cache configuration these options describe.
    pub fn cache_config(&self) -> anyhow::Result<CacheConfig> {
        let mode = CacheMode::parse(self.redis_url.as_deref())?;
        let config = CacheConfig {
            mode,
            prefix: self.cache_prefix.clone(),
            ttls: Ttls {
                sessions: self.session_ttl,
                refresh_tokens: self.refresh_ttl,
                user_permissions: self.permissions_ttl,
                role_permissions: self.role_permissions_ttl,
                module_assignments: self.module_assignments_ttl,
            },
            near: NearConfig {
                enabled: self.near_cache,
                capacity: self.near_cache_capacity,
                entry_ttl: self.near_cache_ttl,
                subscription_lease: self.near_cache_lease,
            },
            session_max_lifetime: self.session_max_lifetime,
            store_timeout: self.cache_timeout,
        };
        config.validate()?;
        Ok(config)
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("bind", &self.bind)
            .field("demo", &self.demo)
            .field("cache", &self.cache)
            .field("replicas", &self.replicas)
            .field("body_limit", &self.body_limit)
            .field("request_timeout", &self.request_timeout)
            .field("maintenance", &self.maintenance)
            .finish_non_exhaustive()
    }
}

impl Default for ServeConfig {
    /// The defaults of the flags (what `bisman serve` uses with no options).
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: ServeConfig,
        }
        // No arguments: every field takes its default, or its environment
        // variable when one is set, exactly as the real command would.
        Wrapper::try_parse_from(["bisman"])
            .map(|w| w.config)
            .unwrap_or_else(|e| panic!("bisman serve's defaults do not parse: {e}"))
    }
}

impl ServeConfig {
    /// The cache configuration these options describe.
    pub fn cache_config(&self) -> anyhow::Result<CacheConfig> {
        self.cache.cache_config()
    }
}

/// A job interval; `None` means the job is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every(pub Option<Duration>);

/// Parses `500ms`, `30s`, `5m`, `6h`, `1d` or a number of seconds: the
/// cache's own syntax, shared with every process that reads its variables.
pub use bisman_cache::parse_duration;

/// Parses an interval, or `off` / `0` for a disabled job.
pub fn parse_every(raw: &str) -> Result<Every, String> {
    match raw.trim() {
        "off" | "disabled" | "never" | "0" => Ok(Every(None)),
        _ => {
            let d = parse_duration(raw)?;
            if d < Duration::from_secs(1) {
                return Err(format!("{raw:?}: a job interval must be at least 1s"));
            }
            Ok(Every(Some(d)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_every("off").unwrap(), Every(None));
        assert_eq!(
            parse_every("1h").unwrap(),
            Every(Some(Duration::from_secs(3600)))
        );
        assert!(parse_every("10ms").is_err());
    }

    /// The cache flags and the shared reader of their variables
    /// (`CacheConfig::from_vars`, used by the Node.js package) agree, on
    /// the defaults and on every option set.
    #[test]
    fn cache_flags_and_the_shared_variable_reader_agree() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            cache: CacheArgs,
        }
        let defaults = Wrapper::try_parse_from(["bisman"]).unwrap().cache;
        assert_eq!(
            defaults.cache_config().unwrap(),
            CacheConfig::from_env().unwrap()
        );
        let set = [
            ("REDIS_URL", "--redis-url", "redis://127.0.0.1:6390"),
            ("BISMAN_CACHE_PREFIX", "--cache-prefix", "erp:"),
            ("BISMAN_SESSION_TTL", "--session-ttl", "2h"),
            ("BISMAN_REFRESH_TTL", "--refresh-ttl", "3d"),
            (
                "BISMAN_SESSION_MAX_LIFETIME",
                "--session-max-lifetime",
                "4d",
            ),
            ("BISMAN_PERMISSIONS_TTL", "--permissions-ttl", "1m"),
            (
                "BISMAN_ROLE_PERMISSIONS_TTL",
                "--role-permissions-ttl",
                "2m",
            ),
            (
                "BISMAN_MODULE_ASSIGNMENTS_TTL",
                "--module-assignments-ttl",
                "3m",
            ),
            ("BISMAN_NEAR_CACHE", "--near-cache", "false"),
            ("BISMAN_NEAR_CACHE_CAPACITY", "--near-cache-capacity", "77"),
            ("BISMAN_NEAR_CACHE_TTL", "--near-cache-ttl", "5s"),
            ("BISMAN_NEAR_CACHE_LEASE", "--near-cache-lease", "900ms"),
            ("BISMAN_CACHE_TIMEOUT", "--cache-timeout", "250ms"),
        ];
        assert_eq!(
            set.iter().map(|(v, _, _)| *v).collect::<Vec<_>>(),
            bisman_cache::env::VARIABLES,
            "every variable the shared reader knows has its flag here"
        );
        let mut argv = vec!["bisman"];
        for (_, flag, value) in &set {
            argv.extend([*flag, *value]);
        }
        let flags = Wrapper::try_parse_from(argv).unwrap().cache;
        let from_vars = CacheConfig::from_vars(|name| {
            set.iter()
                .find(|(v, _, _)| *v == name)
                .map(|(_, _, x)| x.to_string())
        })
        .unwrap();
        assert_eq!(flags.cache_config().unwrap(), from_vars);
    }

    #[test]
    fn defaults_make_a_valid_cache_config() {
        let c = ServeConfig::default();
        assert!(c.maintenance && c.cache.near_cache);
        let cache = c.cache_config().unwrap();
        assert_eq!(cache.ttls.user_permissions, Duration::from_secs(300));
        assert!(!format!("{c:?}").contains("redis://"));
        assert!(c.replicas.urls().is_empty());
        assert_eq!(c.replicas.replica_max_lag, Duration::from_secs(1));
    }

    #[test]
    fn replica_urls_are_repeatable_and_never_printed() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: ServeConfig,
        }
        let w = Wrapper::try_parse_from([
            "bisman",
            "--replica-url",
            "postgres://u:secret@a:5433/db",
            "--replica-url",
            "postgres://u:secret@b:5434/db",
            "--replica-max-lag",
            "250ms",
        ])
        .unwrap();
        let r = &w.config.replicas;
        assert_eq!(r.urls().len(), 2);
        assert_eq!(r.replica_max_lag, Duration::from_millis(250));
        assert!(!format!("{:?}", w.config).contains("secret"));
    }
}
